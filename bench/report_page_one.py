"""Render page one of a study's report.pdf to docs/images/report-page1.png (the README's
picture), with poppler's pdftoppm.

Page one is the answer (search/report/answer.py): the recommendation, its mean ± SD, what the
noise cannot tell from it, the caveats, the budget, the front and the representative run's
reconstructions. The page is checked to be that page (it names the recommendation before any
numbered section begins); `--page N` picks another.

    python bench/report_page_one.py                         # studies/mnist-vae/report.pdf
    python bench/report_page_one.py --pdf path/to/report.pdf

Run it after `nox -s run` (or `python bench/time_quickstart.py --keep`, on the clone it keeps),
so the picture shows what the main job writes today.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PICTURE = REPO / "docs" / "images" / "report-page1.png"
# Wide enough to read the headline numbers on a README page, small enough to keep the
# repository light (an A4 page at this width is a few hundred KB).
WIDTH_PX = 900


def answer_page(pdf: Path) -> int:
    """Page one, checked: the answer comes before the first bookmarked section (a PDF whose
    first page is a table of contents, or a section, is not the report this picture shows)."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    text = reader.pages[0].extract_text() or ""
    if "Recommended:" not in text and "No recommendation" not in text:
        raise SystemExit(f"error: page 1 of {pdf} is not the answer page; pass --page N")
    outline = [entry for entry in reader.outline if not isinstance(entry, list)]
    if outline and reader.get_destination_page_number(outline[0]) == 0:
        raise SystemExit(f"error: page 1 of {pdf} is a section, not the answer; pass --page N")
    return 1


def render_page(pdf: Path, page: int, out: Path = PICTURE, width: int = WIDTH_PX) -> Path:
    if shutil.which("pdftoppm") is None:
        raise SystemExit("error: pdftoppm not found: apt-get install poppler-utils")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        stem = Path(scratch) / "page"
        pages = ["-f", str(page), "-l", str(page)]
        size = ["-scale-to-x", str(width), "-scale-to-y", "-1"]
        command = ["pdftoppm", *pages, "-png", "-singlefile", *size, str(pdf), str(stem)]
        subprocess.run(command, check=True)
        shutil.move(f"{stem}.png", out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdf", type=Path, default=REPO / "studies" / "mnist-vae" / "report.pdf")
    parser.add_argument("--out", type=Path, default=PICTURE)
    parser.add_argument("--page", type=int, help="this page instead (1-based)")
    args = parser.parse_args()
    if not args.pdf.is_file():
        raise SystemExit(f"error: no report at {args.pdf}: run `nox -s run` first, or pass --pdf")
    page = args.page or answer_page(args.pdf)
    written = render_page(args.pdf, page, args.out)
    print(f"page {page} of {args.pdf}")
    print(f"wrote {written.relative_to(REPO) if written.is_relative_to(REPO) else written}")


if __name__ == "__main__":
    sys.exit(main())
