"""Issue 13, item 3: the HTML report printed to PDF on Letter and A4 clips nothing.

Chromium lays the page out as it prints it (print media, the page's content width), and every
table, figure and the page itself must fit that width; then it prints the PDF, and each page's
right margin must stay blank (whatever overflowed would be drawn there and cut at the paper's
edge). The pages are kept as PNG in ``PLEDGER_PRINT_DIR`` when set (to look at them), else in
the test's temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from playwright.sync_api import Browser

from projections.render import report_html
from tests.projections.test_render import LONG_NAME, promise, readable_report

MM_PER_INCH = 25.4
CSS_PX_PER_INCH = 96
PAGE_MARGIN_MM = 14  # @page { margin: 14mm } in the report's CSS
PAPERS = {"Letter": 215.9, "A4": 210.0}  # paper widths in mm


def printed_report() -> dict[str, Any]:
    """A report that strains the width: long names and words, three currencies, big sums."""
    report = readable_report()
    first = report["members"][0]
    first["name"] = "Fundación" + "Solidaridad" * 6  # one word longer than any column
    first["payments"] = {"EUR": "1234567.89", "MXN": "98765432.10", "USD": "12750.50"}
    first["promises"].append(
        promise("partner", LONG_NAME + " " + "x" * 90, "2026-03-01", "overdue", 30)
    )
    report["totals"]["payments"] = {"EUR": "1234617.89", "MXN": "98765432.10", "USD": "12761.00"}
    return report


def content_width_px(paper_mm: float) -> int:
    return int((paper_mm - 2 * PAGE_MARGIN_MM) / MM_PER_INCH * CSS_PX_PER_INCH)


@pytest.fixture(scope="module")
def page_html() -> str:
    return report_html(printed_report()).decode("utf-8")


@pytest.fixture
def print_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PLEDGER_PRINT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("paper", list(PAPERS))
def test_every_table_fits_the_printed_pages_width(
    browser: Browser, page_html: str, paper: str
) -> None:
    width = content_width_px(PAPERS[paper])
    page = browser.new_page(viewport={"width": width, "height": 1200})
    try:
        page.emulate_media(media="print")
        page.set_content(page_html)
        overflowing = page.evaluate(
            """(width) => [...document.querySelectorAll('table, figure, svg, dl, h3, ul')]
                .filter((e) => e.scrollWidth > e.clientWidth + 1
                    || e.getBoundingClientRect().right > width + 1)
                .map((e) => e.tagName + ' ' + (e.textContent || '').slice(0, 60))""",
            width,
        )
        page_width = page.evaluate("document.documentElement.scrollWidth")
    finally:
        page.close()

    assert overflowing == []
    assert page_width <= width


@pytest.mark.parametrize("paper", list(PAPERS))
def test_the_printed_pdf_leaves_every_right_margin_blank(
    browser: Browser, page_html: str, paper: str, print_dir: Path
) -> None:
    page = browser.new_page()
    try:
        page.set_content(page_html)
        pdf = page.pdf(format=paper, print_background=True)
    finally:
        page.close()

    document = pypdfium2.PdfDocument(pdf)
    assert len(document) >= 2
    scale = 2
    margin_px = int(PAGE_MARGIN_MM / MM_PER_INCH * 72 * scale)
    for number, pdf_page in enumerate(document, start=1):
        picture = pdf_page.render(scale=scale).to_pil()
        picture.save(print_dir / f"report-{paper}-{number}.png")
        image = picture.convert("L")
        width, height = image.size
        # The right margin, but for a few points beside the content (anti-aliasing).
        strip = image.crop((width - margin_px + 6, 0, width, height))
        assert strip.getextrema()[0] >= 250, f"page {number} draws into its right margin"
