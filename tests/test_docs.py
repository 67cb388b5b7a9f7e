"""The documentation states only measured figures that a results file holds, links only to
files that exist inside the repository, and keeps the README short.

A *figure* is a number with a unit of measurement in running prose: a percentage, an `x`
ratio, a duration, a rate (trials/h, images/s), a size. Each must appear, number and unit
alike, in a report a benchmark script wrote (`bench/results/*.md`), so a number typed in by
hand that no measurement backs, or one left behind when the measurement changed, fails here.
Not figures: numbers without a unit (versions, section numbers, counts), numbers inside code
spans and code blocks (commands and option values are what a user types, not results), and
the few settings listed in `SETTINGS` (a timeout, a size cap, a confidence level), each with
the place that sets it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
README_LIMIT_BYTES = 10 * 1024
PAGES = [README, *sorted(DOCS.glob("*.md"))]

sys.path.insert(0, str(REPO / "bench"))
import make_docs  # noqa: E402

# "4 min 11 s" is one figure: a stale minute or second must not pass on a match of its half.
_COMPOUND = r"\d+ h \d+ min|\d+ min \d+ s"
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT = (
    r"%|ms|s|sec|seconds?|min|minutes?|h|hours?|trials/h(?:our)?|trials/s|images/s"
    r"|MiB|GiB|KiB|MB|GB|KB"
)
FIGURE = re.compile(
    rf"(?<![\w.,/])(?:(?P<compound>{_COMPOUND})(?![\w/])"
    rf"|(?P<number>{_NUMBER})(?:\s?(?P<unit>{_UNIT})(?![\w/])|(?P<ratio>x)(?!\w)))"
)
_CANONICAL_UNIT = {
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "minute": "min",
    "minutes": "min",
    "hour": "h",
    "hours": "h",
    "trials/hour": "trials/h",
}

# Settings stated in prose, not measurements: (phrase, where it is set). A phrase no page uses
# any more fails `test_every_allowed_setting_is_still_used`, so this list cannot rot.
SETTINGS: list[tuple[str, str]] = [
    (r"95 ?% (?:upper bound|Student-t)", "the confidence level of bounds and t quantiles"),
    (r"10 ?% of (?:the|their|its) range", "the hypervolume reference point, search/report"),
    (r"10 ?% of the rest", "the validation split, search/data.py"),
    (r"at most 1 GiB", "the data file size cap, search/data.py"),
    (r"at most 64 KiB", "the CSV line cap, search/data.py"),
    (r"5 s connect timeout", "PostgreSQL's connect timeout, search/storage.py"),
    (r"over 10 KB", "README_LIMIT_BYTES, below"),
]


def prose(text: str) -> str:
    """The page without what is not prose: code blocks and spans, HTML comments, URLs and
    link targets (a path is not a claim)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"https?://\S+", " ", text)


def figures(text: str) -> Iterator[tuple[str, str]]:
    """(figure as normalised, figure as written) for every figure in `text`."""
    for match in FIGURE.finditer(text):
        if match.group("compound"):
            key = match.group("compound")
        else:
            number = match.group("number").replace(",", "")
            unit = match.group("ratio") or match.group("unit")
            key = f"{number} {_CANONICAL_UNIT.get(unit, unit)}"
        yield key, match.group(0)


def held_figures() -> set[str]:
    return {key for path in RESULTS.glob("*.md") for key, _ in figures(path.read_text())}


def without_settings(text: str) -> str:
    for phrase, _ in SETTINGS:
        text = re.sub(phrase, " ", text)
    return text


def test_figure_extraction_reads_what_a_page_claims():
    found = [key for key, _ in figures("took 4 min 11 s, 13.7x faster, 12 % less, 568 trials/h")]
    assert found == ["4 min 11 s", "13.7 x", "12 %", "568 trials/h"]
    # Versions, grids, counts, section numbers and code are not figures.
    assert list(figures(prose("Python 3.11, a 10x10 grid, 48 configurations, section 5"))) == []
    assert list(figures(prose("run `--timeout 60` or\n```\nsleep 5s\n```\n"))) == []
    assert [key for key, _ in figures("1,647 seconds")] == ["1647 s"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_figure_is_held_by_a_results_file(page):
    held = held_figures()
    stated = figures(without_settings(prose(page.read_text())))
    missing = sorted({written for key, written in stated if key not in held})
    assert not missing, (
        f"{page.relative_to(REPO)} states figures that no bench/results/*.md holds: {missing}; "
        "quote a results file (through bench/make_docs.py), or, for a setting, add it to "
        "SETTINGS in tests/test_docs.py with where it is set"
    )


def test_every_allowed_setting_is_still_used():
    text = "\n".join(prose(page.read_text()) for page in PAGES)
    unused = [phrase for phrase, _ in SETTINGS if not re.search(phrase, text)]
    assert not unused, f"SETTINGS entries no page uses any more: {unused}"


def test_a_stale_or_typed_in_timing_is_caught():
    held = held_figures()
    stale = "The main job took 1 min 32 s here; SSIM is 31.4x faster."
    assert {key for key, _ in figures(stale)} - held == {"1 min 32 s", "31.4 x"}


def test_readme_stays_short():
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes (limit {README_LIMIT_BYTES})"


def test_generated_pages_are_current():
    """docs/benchmarks.md and the README's measured lines are what bench/make_docs.py writes
    from bench/results/ now (`nox -s docs` rewrites them)."""
    stale = [
        str(path.relative_to(REPO))
        for path, text in make_docs.expected().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"not what bench/make_docs.py writes (run `nox -s docs`): {stale}"


# A markdown link or image `[text](target "title")`, or an HTML image's src.
LINK = re.compile(
    r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
    r"|<img[^>]+src=\"([^\"]+)\""
)


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (outside code blocks)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)
    return {make_docs.anchor(h.replace("`", "")) for h in headings}


def markdown_files() -> list[Path]:
    return [*PAGES, *sorted(RESULTS.glob("*.md"))]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_in_the_repository(page):
    broken = []
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in heading_anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(REPO)}: broken links: {broken}"


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    suffixes = {".py", ".md", ".toml", ".html", ".css", ".txt", ".cfg", ".yaml", ".yml", ""}
    return [
        REPO / name
        for name in listed
        if name and Path(name).suffix in suffixes and (REPO / name).is_file()
    ]


def test_no_file_refers_to_a_place_outside_the_repository():
    """A reader of the repository alone can follow every reference: no markdown file named
    that the repository lacks (a design note kept elsewhere), no path into the machine it was
    written on, no `../` out of the repository in the docs."""
    names = {path.name for path in REPO.rglob("*.md")}
    problems = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        where = path.relative_to(REPO)
        for mention in re.findall(r"[\w./-]*\w\.md\b", text):
            if Path(mention).name not in names:
                problems.append(f"{where}: {mention} (not in the repository)")
        for absolute in re.findall(r"(?<![\w.])/(?:work|root|home)/[\w./-]+", text):
            problems.append(f"{where}: {absolute} (a path on one machine)")
        if path.suffix == ".md":
            for up in re.findall(r"(?:\.\./)+[\w./-]+", text):
                if not (path.parent / up).resolve().is_relative_to(REPO):
                    problems.append(f"{where}: {up} (outside the repository)")
    assert not problems, problems


def test_durations_read_as_a_person_says_them():
    from common import duration_text

    assert [duration_text(s) for s in (0.4, 59.4, 60, 251, 3599.6, 3720)] == [
        "0 s",
        "59 s",
        "1 min 0 s",
        "4 min 11 s",
        "1 h 0 min",
        "1 h 2 min",
    ]


def test_a_generated_block_that_no_one_writes_is_an_error():
    page = (
        "<!-- generated by bench/make_docs.py: nobody -->\nold\n<!-- end of generated: nobody -->"
    )
    with pytest.raises(SystemExit, match="nobody"):
        make_docs.fill_blocks(page)


def test_every_module_is_in_the_architecture_page():
    """docs/architecture.md's module map names every module of search/ (a new module without
    a row is a layout a newcomer cannot find)."""
    page = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted((REPO / "search").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if path.name == "__main__.py" or relative == "search/__init__.py":
            continue
        name = relative.removesuffix("__init__.py") if path.name == "__init__.py" else relative
        if f"`{name}`" not in page:
            missing.append(name)
    assert not missing, f"modules without a row in docs/architecture.md: {missing}"
