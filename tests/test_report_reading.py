"""The report read page by page (issue 19): what a reader met that the numbers did not explain.

Each test names a defect seen in the main job's or the k-sweep's PDF and reads the HTML text
or the context (never pixels): the budget row's validation_subset beside the split's size, the
summary's run row (the representative run, not the luckiest seed), the one-point front's table
line, the stopping-rule sentence recorded before the confirmation runs, the package table's
empty cells, the dashboard note's importance lines and the undertrained reconstructions.
"""

from __future__ import annotations

import re

import pytest

from search import records
from search.report import report_context
from search.report.figures import build_figures
from search.report.render import render_html_text
from tests.report_fixtures import FixtureRun, build_runs_study, build_study
from tests.test_report import ParsedReport


def story_markdown(context, paths):
    # imported here: search.dashboard_story first would import search.report half-way
    from search.dashboard_story import story_markdown as markdown

    return markdown(context, paths)


# k = 4 is recommended on its mean over three seeds; its first run (trial 0) is the luckiest,
# its second (trial 1) lies on the mean.
K4 = [(0.880, 0.0440), (0.870, 0.0450), (0.860, 0.0460)]


def _runs() -> list[FixtureRun]:
    return [
        FixtureRun({"latent_dim": 4}, *K4[0], train_mse=0.040, test=(0.875, 0.0445)),
        FixtureRun({"latent_dim": 4}, *K4[1], train_mse=0.041, confirms=0, test=(0.870, 0.0450)),
        FixtureRun({"latent_dim": 4}, *K4[2], train_mse=0.042, confirms=0, test=(0.865, 0.0455)),
        FixtureRun({"latent_dim": 2}, 0.700, 0.0700, train_mse=0.066),
        FixtureRun({"latent_dim": 2}, 0.690, 0.0710, train_mse=0.067, confirms=3),
        FixtureRun({"latent_dim": 8}, 0.800, 0.0600, train_mse=0.057),
    ]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    study = build_runs_study(
        tmp_path_factory.mktemp("reading"),
        _runs(),
        name="reading",
        counts={"train": 3600, "validation": 400, "test": 1000},
    )
    study.set_user_attr(records.BUDGET, {"epochs": 10, "validation_subset": 500})
    # as `run` records it when sampling ends: the confirmation runs (trials 1, 2, 4) came after
    convergence = {
        "stopped_at": 0,
        "finished": 3,
        "trials_since": 2,
        "window": 8,
        "converged": False,
        "noise": "this study's, 3 degrees of freedom",
    }
    records.write_convergence(study, convergence)
    records.append_run(
        study,
        study.user_attrs,
        {"command": "python -m search run", "versions": {"keras": "3.15.1", "optuna": "5.1.0"}},
    )
    return study


@pytest.fixture(scope="module")
def context(study):
    return report_context(study)


@pytest.fixture(scope="module")
def sections(context) -> dict[str, str]:
    page = render_html_text(context, build_figures(context), "html")
    parts = re.split(r'<(?:section|div) class="(?:report-section|answer)" id="([a-z-]+)"', page)
    return {
        parts[i]: ParsedReport("<div " + parts[i + 1]).visible_text()
        for i in range(1, len(parts), 2)
    }


def test_validation_subset_is_explained_beside_the_splits_size(context, sections):
    # seen: "validation_subset 500" in the budget row, "validation 400" in the data row
    explained = "validation_subset 500 (a cap: the split has 400, all scored)"
    assert explained in sections["summary"]
    assert "validation 400" in sections["summary"]
    assert explained in story_markdown(context, {})  # the dashboard note's budget line too
    assert "on 400 validation images (all of the split" in sections["answer"]


def test_the_summary_shows_the_run_nearest_the_mean_not_the_luckiest_seed(context, sections):
    rec = context.summary.recommendation
    assert rec.numbers == (0, 1, 2) and rec.representative == 1
    summary = sections["summary"]
    assert "trial 1 alone (the run nearest the mean) 0.8700 0.04500" in summary
    assert "trial 0 alone" not in summary and "0.8800" not in summary


def test_the_dashboard_notes_test_column_is_mean_and_sd(context):
    # page one gives the test metrics as mean ± SD; the note gave the mean alone
    assert "| MSE (lower is better) | 0.04500 ± 0.00100 | 0.04500 ± 0.00050 |" in story_markdown(
        context, {}
    )


def test_a_one_point_front_says_its_row_is_the_recommended_one(context):
    assert len(context.pareto.front) == 1
    assert context.pareto.intro.endswith("; it is the recommended one (★).")
    assert not context.pareto.intro.endswith(", the recommended one.")


def test_the_stopping_rule_says_when_run_judged_it(context, sections):
    sentence = context.trust.convergence_sentence
    assert sentence is not None
    assert "beyond this study's own seed noise (3 degrees of freedom) at trial 0" in sentence
    assert "noise this study's" not in sentence
    # 6 finished trials now, 3 when sampling ended: the 3 confirmation runs are not in it
    assert "judged this when sampling ended, after 3 finished trials; the 3 trials" in sentence
    assert "with 2 finished trials after it against a window of 8" in sentence
    assert sentence.split("`run --until-converged`")[0] in sections["diagnostics"]
    # seen: the command printed with its backticks; it is set as code, like every command
    assert "`" not in sections["diagnostics"]


def test_the_package_table_has_no_bare_dashes(sections):
    table = sections["reproducibility"].split("Package versions", 1)[1]
    assert "keras 3.15.1 not needed (the report trains nothing)" in table
    assert "kaleido not recorded" in table
    assert not re.search(r"(^| )-( |$)", table), table


def test_the_dashboard_note_reconciles_the_importance_panel(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=24, sweeps=False)
    context = report_context(fixture.study, fixture.artifacts_dir)
    assert context.importance.per_objective
    note = story_markdown(context, {})
    top = max(context.importance.per_objective[0].importances.items(), key=lambda kv: kv[1])
    assert "### Parameter importance" in note
    shown = top[0].replace("_", "\\_")  # stored names are literal Markdown text in the note
    assert f"The report's fANOVA, per objective (top 3): SSIM: {shown} {top[1]:.2f}" in note
    from search.dashboard_story import md_text

    panel = md_text("optuna-dashboard's importance panel can rank the parameters differently")
    assert panel in note
    assert md_text("PED-ANOVA") in note


def test_undertrained_reconstructions_say_so(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=12, sweeps=False)
    context = report_context(fixture.study, fixture.artifacts_dir)
    assert context.answer.still_improving  # the fixture's curves still fall at the last epoch
    page = render_html_text(context, build_figures(context), "html")
    reconstructions = page.split('id="reconstructions"', 1)[1].split("</section>", 1)[0]
    assert "These models were still improving at their last epoch" in reconstructions


def _k_sweep_runs() -> list[FixtureRun]:
    """A study that is one k sweep, two seeds per value, as `run --sweep latent_dim=...`
    writes it: every other parameter fixed, the parameter count following k."""
    runs = []
    for repeat in range(2):
        for k in (2, 3, 4, 6, 8, 10):
            mse = 0.062 - 0.0016 * k + 0.0004 * repeat
            runs.append(
                FixtureRun(
                    {"latent_dim": k},
                    0.16 + 0.024 * k - 0.004 * repeat,
                    mse,
                    train_mse=mse + 0.0004,
                    sweep=records.sweep_point("latent_dim", k, repeat),
                    n_params=230_559 + 388 * k,
                )
            )
    return runs


@pytest.fixture(scope="module")
def k_sweep(tmp_path_factory):
    study = build_runs_study(tmp_path_factory.mktemp("k-sweep"), _k_sweep_runs(), name="k")
    context = report_context(study)
    return context, build_figures(context)


def test_a_k_sweep_reads_as_a_sweep_everywhere(k_sweep):
    context, figures = k_sweep
    # seen: "other parameters vary between the points" when only k varied
    assert "Only latent_dim varies between the configurations" in context.effects.intro
    assert "Other parameters vary" not in context.effects.intro
    # seen: the parameter count read as a median over configurations whose other parameters
    # vary, with single-run thresholds; in a pure sweep it is the sweep again
    axis = next(a for a in context.bias_variance.axes if a.name == "n_params")
    assert axis.statistic == "mean"
    assert axis.source.startswith("the latent_dim sweep's configurations, other parameters")
    assert not any("may be theirs" in sentence for sentence in axis.sentences)
    (spec,) = [s for s in figures["effects"]]
    layout = spec.figure.to_plotly_json()["layout"]
    # seen: a tick dropped although it had room (k = 2 of 1, 2, 4, 6, 8, 10; here 8)
    assert layout["xaxis"]["tickvals"] == [2, 3, 4, 6, 8, 10]
    names = {trace.name for trace in spec.figure.data}
    # seen: a median dash of one configuration drawn over each sweep point, and "n=3" beside
    # each point, over its error bar; one n for all goes into the legend
    assert not any(name.startswith("median") for name in names)
    assert "designed sweep: mean ± SD over 2 seeds each" in names
    sweep = next(t for t in spec.figure.data if t.name.startswith("designed sweep"))
    assert sweep.mode == "lines+markers" and sweep.text is None
    assert "median" not in spec.caption and "dash" not in context.effects.intro
    assert "other parameters differing" not in spec.caption
    # seen: the capacity figure's sweep means without the error bars the effect figure has
    capacity = next(s for s in figures["bias_variance"] if s.key == "capacity-latent_dim")
    bars = {t.name: t.error_y for t in capacity.figure.data if t.error_y.visible}
    assert set(bars) == {"validation (sweep mean ± SD)", "gap (sweep mean ± SD)"}
    assert all(v > 0 for v in bars["validation (sweep mean ± SD)"].array)


def test_rate_distortion_colours_only_by_what_varies():
    from search.report.figure_style import TEMPLATE
    from search.report.latent_use import (
        LatentUseInfo,
        RatePoint,
        rate_distortion_caption,
        rate_distortion_figure,
    )

    # seen in the k sweep: a beta colour scale from 1 to 2 over points all at beta 1, and
    # "one panel per loss" under one panel
    sweep = LatentUseInfo(
        points=[RatePoint(i, 2.0 + i, 190.0 - 5 * i, 1.0, "bce", k) for i, k in enumerate((1, 4))]
    )
    caption = rate_distortion_caption(sweep)
    assert "coloured by latent dimension k (all at beta 1)" in caption
    assert "panel per loss" not in caption and "coloured by beta" not in caption
    (trace,) = rate_distortion_figure(sweep, TEMPLATE).data
    assert list(trace.marker.color) == [1, 4] and trace.marker.colorbar.title.text == "k"
    one = LatentUseInfo(points=[RatePoint(i, 2.0 + i, 190.0, 1.0, "bce", 8) for i in range(2)])
    (trace,) = rate_distortion_figure(one, TEMPLATE).data
    assert trace.marker.showscale is None and isinstance(trace.marker.color, str)
    mixed = LatentUseInfo(
        points=[RatePoint(0, 2.0, 190.0, 0.5, "bce", 8), RatePoint(1, 3.0, 1700.0, 2.0, "mse", 8)]
    )
    assert rate_distortion_caption(mixed).endswith(
        "coloured by beta; one panel per loss, whose reconstruction terms have different units."
    )


def test_page_ones_front_is_drawn_at_the_width_it_is_shown(context):
    from search.report.figure_style import ANSWER_FIGURE_WIDTH_PX, FIGURE_WIDTH_PX

    # seen: drawn 760 px wide and shown in half the page, its tick labels printed at 6 px
    (spec,) = build_figures(context)["answer"]
    assert spec.width == ANSWER_FIGURE_WIDTH_PX < FIGURE_WIDTH_PX
    shown_px = 0.52 * 660  # .answer-front's share of the A4 text width
    assert 12 * shown_px / spec.width >= 9  # the 12-px font as printed


def test_paths_wrap_after_slashes_not_at_hyphens(context):
    from search.report.render import path_breaks

    # seen: "sqlite:////tmp/r19/main/studies/mnist-" / "vae.db" in the reproducibility table
    html = str(path_breaks("sqlite:////tmp/r19/main/studies/mnist-vae.db"))
    assert html.startswith('<span class="word">sqlite:////</span><wbr>')
    assert html.endswith('<wbr><span class="word">mnist-vae.db</span>')
    assert html.count("<wbr>") == 5
    page = render_html_text(context, build_figures(context), "html")
    storage = context.reproducibility.settings["storage"]
    assert str(path_breaks(storage)) in page
