"""Screenshots of the pages a coordinator sees first, taken on the demo ledger (issue 9 item 7).

Off by default; with PLEDGER_SCREENSHOTS=DIR set, full-page PNGs land in DIR:

    PLEDGER_SCREENSHOTS=docs/screenshots .venv/bin/pytest -q tests/ui/test_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.ui.support import Site, Ui, ui_on

pytestmark = pytest.mark.slow

VIEWPORT = {"width": 1280, "height": 800}


def shoot(ui: Ui, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    ui.page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def test_screenshots_of_the_demo_ledger(browser: Browser, request: pytest.FixtureRequest) -> None:
    target = os.environ.get("PLEDGER_SCREENSHOTS")
    if not target:
        pytest.skip("set PLEDGER_SCREENSHOTS=DIR to save screenshots")
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    demo: Site = request.getfixturevalue("demo_site")
    partners = demo.api.get("/v1/partners", sort="health", order="asc", limit=5)["partners"]
    coalitions = demo.api.get("/v1/coalitions")["coalitions"]
    assert partners, "the demo ledger has no partners"
    assert coalitions, "the demo ledger has no coalitions"
    # A partner with a story to tell: the one with the longest timeline among the first few.
    partner = max(partners, key=lambda p: len(demo.timeline(p["id"])))["id"]
    coalition = coalitions[0]["id"]

    with ui_on(browser, demo, viewport=VIEWPORT) as ui:
        ui.goto("/")
        shoot(ui, folder, "home")
        ui.goto("/partners")
        shoot(ui, folder, "partners")
        ui.goto(f"/partners/{partner}")
        shoot(ui, folder, "partner")
        ui.goto(f"/partners/{partner}/record/meeting_held")
        shoot(ui, folder, "record-meeting")
        ui.goto(f"/coalitions/{coalition}")
        shoot(ui, folder, "coalition-report")
