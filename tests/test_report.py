"""The report on a synthetic study with real artifacts: HTML, PDF, a real browser, and the prose.

The study (tests/report_fixtures.py) is written to a real SQLite storage with real MNIST-digit
grids in a real artifact store; its metrics follow a known formula, so the tests know what the
report must find. The PDF and the HTML are made once for the module.
"""

from __future__ import annotations

import html
import itertools
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pypdf
import pytest
from optuna._hypervolume import compute_hypervolume
from PIL import Image

from search.configurations import Run, choose, group_runs, pareto_front
from search.pareto import hypervolume_2d
from search.report import prose, report_context, write_report
from search.report.analysis import project_2d
from search.report.figures import build_figures
from search.report.sections import CapacityAxis, CapacityGroup, SeedSpread
from search.report.trials import redact_url
from tests.report_fixtures import SWEEPS, build_study

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SECTION_IDS = [
    "summary",
    "pareto",
    "reconstructions",
    "effects",
    "bias-variance",
    "importance",
    "diagnostics",
    "latent",
    "reproducibility",
]
SECTION_TITLES = [
    "1. Summary",
    "2. Pareto front",
    "3. Reconstructions",
    "4. Effect of each hyperparameter",
    "5. Bias and variance",
    "6. Parameter importance",
    "7. Search diagnostics",
    "8. Latent space",
    "9. Reproducibility",
]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


class ParsedReport(HTMLParser):
    """Start tags with attributes, <script> bodies, visible text, and the `finding` paragraphs."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self.findings: list[tuple[str | None, str]] = []
        self._stack: list[tuple[str, dict[str, str | None]]] = []
        self._buffer: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in ("script", "style") or (
            tag == "p" and "finding" in (attributes.get("class") or "")
        ):
            self._stack.append((tag, attributes))
            self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1][0] == tag:
            _, attributes = self._stack.pop()
            body = "".join(self._buffer)
            if tag == "script":
                self.scripts.append((attributes, body))
            elif tag == "p":
                self.findings.append((attributes.get("data-axis"), " ".join(body.split())))

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._buffer.append(data)
        if not self._stack or self._stack[-1][0] == "p":
            self.text.append(data)

    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def with_class(self, name: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.tags if name in (a.get("class") or "").split()]


@pytest.fixture(scope="module")
def fixture_study(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("report-study"), n_trials=36, n_pruned=5)


@pytest.fixture(scope="module")
def report(fixture_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-out")
    # (paths, None): the second slot held a wall-clock time, which no test asserts on any more
    return write_report(fixture_study.study, out), None


@pytest.fixture(scope="module")
def context(fixture_study):
    return report_context(fixture_study.study)


@pytest.fixture(scope="module")
def parsed(report) -> ParsedReport:
    return ParsedReport(report[0]["html"].read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pdf(report) -> pypdf.PdfReader:
    return pypdf.PdfReader(report[0]["pdf"])


def _numbers(text: str) -> list[str]:
    return re.findall(r"[-+]?\d+\.\d+", text)


# ---------------------------------------------------------------- files


@pytest.mark.slow
def test_write_report_writes_both_files_into_out_dir(report):
    paths, _ = report
    assert set(paths) == {"html", "pdf"}
    assert paths["html"].name == "report.html" and paths["pdf"].name == "report.pdf"
    assert paths["html"].stat().st_size > 1_000_000  # plotly.js alone is ~4.8 MB
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert not list(paths["html"].parent.glob(".partial-*"))  # no temporary leftovers


# ---------------------------------------------------------------- HTML


def test_html_has_every_section_and_one_figure_div_per_figure(parsed, context):
    sections = [a["id"] for tag, a in parsed.tags if tag == "section"]
    assert sections == SECTION_IDS
    assert [a for tag, a in parsed.tags if a.get("id") == "answer"]  # page one, before them
    headings = parsed.visible_text()
    for title in SECTION_TITLES:
        assert title in headings
    expected = sum(len(specs) for specs in build_figures(context).values())
    # pareto, 6 parameters, 3 capacity axes, learning curves, importance, hypervolume,
    # timeline, latent space
    assert expected == 15
    assert len(parsed.with_class("plotly-graph")) == expected
    assert len([a for a, _ in parsed.scripts if a.get("class") == "plotly-spec"]) == expected


def test_html_inlines_plotly_js_once_and_embeds_images(parsed, context):
    library = [body for _, body in parsed.scripts if "Plotly" in body and len(body) > 1_000_000]
    assert len(library) == 1
    images = [a["src"] for tag, a in parsed.tags if tag == "img"]
    panels = len(context.reconstructions.panels)
    assert panels >= 2
    # page one's originals and reconstructions, then section 3's, and the prior samples
    assert len(images) == 2 + 1 + panels + 1
    assert all(src.startswith("data:image/png;base64,") for src in images)


def test_html_refers_to_no_external_host(report, parsed):
    for tag, attributes in parsed.tags:
        for name in ("src", "href", "action", "data"):
            value = attributes.get(name)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value[:80])
    assert not [a for tag, a in parsed.tags if tag == "link"]
    page = report[0]["html"].read_text(encoding="utf-8")
    config = next(body for _, body in parsed.scripts if "newPlot" in body and len(body) < 5000)
    assert '"showSendToCloud": false' in config and '"displaylogo": false' in config
    assert "cdn.plot.ly/plotly" not in page.split("<script>", 1)[0]


# ---------------------------------------------------------------- PDF


def test_pdf_pages_text_numbers_and_images(pdf, context):
    n_pages = len(pdf.pages)
    assert 10 <= n_pages <= 30
    text = "\n".join(page.extract_text() for page in pdf.pages)
    flat = " ".join(text.split())
    for title in SECTION_TITLES:
        assert title in flat
    recommendation = context.summary.recommendation
    assert f"trial {recommendation.number}" in flat
    assert prose.fmt_metric("SSIM", recommendation.values["SSIM"]) in flat
    assert prose.fmt_metric("MSE", recommendation.values["MSE"]) in flat
    assert "5,000-image MNIST subset" in flat
    assert f"page 1 of {n_pages}" in flat and f"page {n_pages} of {n_pages}" in flat
    images = sum(len(page.images) for page in pdf.pages)
    assert images >= 15 + len(context.reconstructions.panels) + 2


def test_pdf_bookmarks_and_table_of_contents_page_numbers(pdf):
    outline = [item for item in pdf.outline if not isinstance(item, list)]
    titles = [item.title for item in outline]
    assert titles == SECTION_TITLES
    contents = " ".join(pdf.pages[1].extract_text().split())  # page one is the answer
    for item in outline:
        page = pdf.get_destination_page_number(item) + 1
        # the TOC line: title, dot leader, the page number target-counter() computed
        assert re.search(re.escape(item.title) + r"[ .]*" + str(page) + r"\b", contents), item.title
        assert item.title in " ".join(pdf.pages[page - 1].extract_text().split())


# ---------------------------------------------------------------- a real browser


def test_chromium_renders_every_figure_offline(report, context):
    from playwright.sync_api import sync_playwright

    # Like a missing PostgreSQL, a missing browser fails: a skipped check proves nothing.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} not found: apt-get install chromium"
    expected = sum(len(specs) for specs in build_figures(context).values())
    errors: list[str] = []
    refused: list[str] = []

    def only_local(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_local)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report[0]["html"].as_uri(), wait_until="load")
            page.wait_for_function(
                "n => document.querySelectorAll('.plotly-graph .main-svg').length >= n",
                arg=expected,
                timeout=60_000,
            )
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('.plotly-graph')].map(div =>
                    div.querySelectorAll('.main-svg').length > 0 &&
                    div.querySelectorAll('g.trace, g.points path, g.barlayer path').length > 0)"""
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert len(drawn) == expected and all(drawn)
    assert errors == []
    assert refused == []
    with Image.open(ARTIFACTS / "report.png") as screenshot:
        assert screenshot.width == 1280 and screenshot.height > 900  # the whole, long page
        # not a blank page: the figures and text put many distinct colours on it
        assert len(screenshot.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100


# ---------------------------------------------------------------- what the prose says


def _sweep_means(study, name: str, value: int, key: str) -> float:
    values = [
        t.user_attrs[key]
        for t in study.get_trials()
        if t.state.name == "COMPLETE"
        and t.user_attrs.get("sweep", {}).get("name") == name
        and t.user_attrs["sweep"]["value"] == value
    ]
    assert len(values) == 2
    return statistics.fmean(values)


def test_numbers_in_the_prose_equal_the_context_and_the_raw_trials(fixture_study, parsed, context):
    axis = next(a for a in context.bias_variance.axes if a.name == "latent_dim")
    first, last = axis.groups[0], axis.groups[-1]
    sentence = next(text for name, text in parsed.findings if name == "latent_dim")
    quoted = _numbers(sentence)
    expected = [prose.fmt_mse(first.val_mse), prose.fmt_mse(last.val_mse)]
    assert quoted[:2] == expected
    # and the context's numbers are the sweep means computed here from the raw trials
    low, high = SWEEPS["latent_dim"][0], SWEEPS["latent_dim"][-1]
    assert first.val_mse == pytest.approx(
        _sweep_means(fixture_study.study, "latent_dim", low, "val_mse")
    )
    assert last.val_mse == pytest.approx(
        _sweep_means(fixture_study.study, "latent_dim", high, "val_mse")
    )
    assert last.train_mse == pytest.approx(
        _sweep_means(fixture_study.study, "latent_dim", high, "train_mse")
    )
    assert prose.fmt_mse(first.train_mse) in sentence and prose.fmt_mse(last.train_mse) in sentence


def test_overfitting_is_said_only_where_validation_rises_and_the_gap_widens(parsed, context):
    by_axis = {a.name: a for a in context.bias_variance.axes}
    # the fixture's formula: the gap grows past l = 2 while train error keeps falling
    layers = by_axis["n_layers"]
    best = min(layers.groups, key=lambda g: g.val_mse)
    assert best.label in ("2", "3")
    layer_text = " ".join(text for name, text in parsed.findings if name == "n_layers")
    assert "overfitting" in layer_text
    latent_text = " ".join(text for name, text in parsed.findings if name == "latent_dim")
    assert "overfit" not in latent_text


def _axis(groups: list[tuple[float, float, float]]) -> CapacityAxis:
    return CapacityAxis(
        name="latent_dim",
        title="latent dimension k",
        source="test",
        statistic="mean",
        log_x=False,
        xs=[],
        train_mse=[],
        val_mse=[],
        numbers=[],
        groups=[
            CapacityGroup(str(x), x, 2, train, val, val - train)
            for x, (train, val, _) in zip((2.0, 4.0, 8.0), groups, strict=True)
        ],
        sentences=[],
    )


def test_prose_rules_on_hand_made_numbers():
    # t(3) = 3.18: two means of 2 runs differ when further apart than 3.18 x 0.001 x 1 = 0.0032
    spread = SeedSpread(n_configs=3, n_runs=6, dof=3, val_sd=0.001, gap_sd=0.001, which="test")
    # validation rises past the minimum but train rises as much: the gap does not widen
    rises_no_gap = _axis([(0.020, 0.030, 0), (0.010, 0.020, 0), (0.020, 0.030, 0)])
    text = " ".join(prose.capacity_sentences(rises_no_gap, spread))
    assert "signature of overfitting" not in text and "not attributed to overfitting" in text
    # a rise smaller than the threshold is called indistinguishable
    tiny = _axis([(0.020, 0.030, 0), (0.0195, 0.0290, 0), (0.0195, 0.0310, 0)])
    text = " ".join(prose.capacity_sentences(tiny, spread))
    assert "not distinguishable" in text and "overfit" not in text
    # validation rises and the gap widens by more than the threshold: overfitting
    overfit = _axis([(0.020, 0.030, 0), (0.010, 0.020, 0), (0.005, 0.030, 0)])
    text = " ".join(prose.capacity_sentences(overfit, spread))
    assert "overfitting beyond latent dimension k 4" in text
    # without a known spread there is no verdict at all, whatever the numbers
    text = " ".join(prose.capacity_sentences(overfit, None))
    assert "overfit" not in text and "lowest" not in text and "no verdict" in text
    # falling error all the way: no rise, no overfitting
    falling = _axis([(0.020, 0.030, 0), (0.015, 0.025, 0), (0.010, 0.020, 0)])
    text = " ".join(prose.capacity_sentences(falling, spread))
    assert "fell from 0.03000 to 0.02000 (-0.01000)" in text and "overfit" not in text
    # a gap below zero that rises toward zero is said to rise, not to widen
    negative_gap = _axis([(0.031, 0.030, 0), (0.0255, 0.025, 0), (0.0201, 0.020, 0)])
    text = " ".join(prose.capacity_sentences(negative_gap, spread))
    assert "the gap rose from -0.00100 to -0.00010 (+0.00090)" in text


# ---------------------------------------------------------------- context, with numbers


def test_pareto_front_and_knee_on_hand_made_points():
    # (SSIM, MSE) of five single-run configurations
    points = [(0.9, 0.05), (0.8, 0.02), (0.85, 0.03), (0.7, 0.04), (0.6, 0.01)]
    configurations = group_runs(Run(i, {"k": i}, p) for i, p in enumerate(points))
    front = pareto_front(configurations, (True, False))
    assert [c.first for c in front] == [0, 1, 2, 4]
    # scaled to [0, 1] over the front: (0, 1), (1/3, 1/4), (1/6, 1/2), (1, 0); trial 1 is
    # nearest the ideal corner (0, 0)
    choice = choose(front, (True, False), configurations)
    assert choice.configuration.first == 1 and choice.has_knee
    assert not choose(front[:1], (True, False), configurations).has_knee


def test_hypervolume_matches_optuna(fixture_study, context):
    rng = np.random.default_rng(0)
    points = rng.uniform([-1.0, 0.0], [0.0, 0.3], size=(40, 2))
    reference = np.array([0.0, 0.25])
    inside = points[np.all(points < reference, axis=1)]
    assert hypervolume_2d(points, reference) == pytest.approx(
        compute_hypervolume(inside, reference)
    )
    # on configuration means, the hypervolume can fall only where a trial added a seed to a
    # configuration already measured (a new point can only add dominated area)
    hypervolume = context.diagnostics.hypervolume
    params = {t.number: t.params for t in fixture_study.study.get_trials()}
    seen: list[dict] = []
    for number, (before, after) in zip(
        hypervolume.numbers[1:], itertools.pairwise(hypervolume.values), strict=True
    ):
        seen.append(params[hypervolume.numbers[len(seen)]])
        if after < before:
            assert params[number] in seen, number


def test_pca_projection_keeps_the_two_largest_variances():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    coords, explained, method = project_2d(z)
    variances = np.var(z - z.mean(axis=0), axis=0)
    assert coords.shape == (500, 2) and "PCA of the 6-D" in method
    assert explained[0] == pytest.approx(variances[0] / variances.sum(), rel=0.1)
    assert np.var(coords[:, 0]) >= np.var(coords[:, 1])
    two = rng.normal(size=(10, 2))
    assert np.array_equal(project_2d(two)[0], two)


def test_seed_spread_is_the_pooled_sd_of_repeated_configurations(fixture_study, context):
    spread = context.bias_variance.spread
    assert spread is not None
    # the sweeps' base configuration (k 8, l 2) is in both sweeps: one configuration, 4 runs
    assert spread.n_configs == sum(len(v) for v in SWEEPS.values()) - 1
    groups: dict[str, list[float]] = {}
    for t in fixture_study.study.get_trials():
        if t.state.name == "COMPLETE":
            key = repr(sorted(t.params.items()))
            groups.setdefault(key, []).append(t.user_attrs["val_mse"])
    repeated = [v for v in groups.values() if len(v) >= 2]
    dof = sum(len(v) - 1 for v in repeated)
    pooled = np.sqrt(sum(np.var(v, ddof=1) * (len(v) - 1) for v in repeated) / dof)
    assert (spread.dof, spread.n_runs) == (dof, sum(len(v) for v in repeated))
    assert spread.val_sd == pytest.approx(pooled)
    assert spread.which == "5 latent_dim sweep values, 4 n_layers sweep values"


def test_importance_finds_what_the_formula_depends_on(context):
    # the fixture's metrics depend on latent_dim, beta, loss and n_layers, never on the
    # filters or dense_units
    by_objective = {i.objective.name: i.importances for i in context.importance.per_objective}
    assert set(by_objective) == {"SSIM", "MSE"}
    for importances in by_objective.values():
        assert max(importances, key=importances.get) in ("latent_dim", "beta")
        # 30 trials: a parameter without effect still picks up a little by chance
        assert importances["filters"] < 0.2 and importances["dense_units"] < 0.2
        assert sum(importances.values()) == pytest.approx(1.0)
    assert max(by_objective["MSE"], key=by_objective["MSE"].get) == "latent_dim"


def test_pruning_savings_add_up(fixture_study, context):
    pruned = [t for t in fixture_study.study.get_trials() if t.state.name == "PRUNED"]
    saved = sum(t.user_attrs["epochs_planned"] - t.user_attrs["epochs_run"] for t in pruned)
    assert context.diagnostics.pruning.n_pruned == len(pruned) == 5
    assert context.diagnostics.pruning.epochs_saved == saved == context.summary.budget.epochs_saved


def test_storage_passwords_never_reach_the_report(report):
    assert (
        redact_url("postgresql://vae:s3cret@db:5432/optuna")
        == "postgresql://vae:***@db:5432/optuna"
    )
    assert redact_url("sqlite:///studies/x.db") == "sqlite:///studies/x.db"
    # the fixture's second run recorded its storage URL with the password in it
    assert "s3cret" not in report[0]["html"].read_text(encoding="utf-8")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(report[0]["pdf"]).pages)
    assert "s3cret" not in text and "vae:***@db.example" in text.replace("\n", "")


def test_axis_labels_stay_distinct_when_short_ones_would_collide():
    from search.report.bias_variance import value_labels

    assert value_labels([2.0, 8.0, 16.0]) == ["2", "8", "16"]
    assert value_labels([120_000.0, 263_000.0]) == ["120k", "263k"]
    assert value_labels([231_521.0, 232_305.0, 233_089.0]) == ["231,521", "232,305", "233,089"]


def test_no_paragraph_or_sentence_is_printed_twice(report):
    """Boilerplate shows as repetition: every paragraph, caption and long sentence of the
    report is printed once (issue 19: an explanation printed twice word for word)."""
    page = report[0]["html"].read_text(encoding="utf-8").split("<script>")[0]
    blocks = [
        " ".join(html.unescape(re.sub(r"<[^>]+>", "", b)).split())
        for b in re.findall(r"<(?:p|figcaption)[^>]*>(.*?)</(?:p|figcaption)>", page, re.S)
    ]
    sentences = [s for b in blocks for s in re.split(r"(?<=\.)\s+(?=[A-Z])", b) if len(s) > 40]
    assert len(blocks) > 30
    repeated = {s for s in sentences if sentences.count(s) > 1}
    assert not repeated, repeated


def test_every_verdict_of_the_fixture_study_has_its_numbers_in_its_section(report):
    """Each sentence that judges against the seed noise prints the numbers it compares, and
    its section prints the SD and degrees of freedom the threshold was made from."""
    page = report[0]["html"].read_text(encoding="utf-8").split("<script>")[0]
    parts = re.split(r'<(?:section|div) class="(?:report-section|answer)" id="([a-z-]+)"', page)
    judged = 0
    for i in range(1, len(parts), 2):
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", parts[i + 1])).split())
        for sentence in re.split(r"(?<=\.)\s+(?=[A-Z])", text):
            if not re.search(r"threshold|told apart|not distinguishable", sentence):
                continue
            if "no verdict" in sentence or "page one" in sentence:
                continue
            judged += 1
            numbers = re.findall(r"\d\.\d{3,}", sentence)
            assert len(numbers) >= 2, (parts[i], sentence)  # what is compared, and the threshold
            assert re.search(r"\d+ degrees of freedom", text), (parts[i], sentence)
            assert " SD" in text, (parts[i], sentence)
    assert judged >= 5
