"""Fixtures for the browser stories: one Chromium, one served ledger per store, signed-in pages.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright; `playwright install` is never
run. Without it the stories skip, but fail instead when PLEDGER_REQUIRE_CHROMIUM=1, as .ci/run
sets, mirroring PLEDGER_REQUIRE_POSTGRES.

``site`` is one `pledger serve` per store for the whole session (SQLite, then PostgreSQL on a
database of its own); stories make partners and coalitions of their own, with unique names, so
they depend neither on each other nor on their order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Error, sync_playwright

from api.settings import Settings
from tests.conftest import STORES, postgres_database
from tests.e2e.test_serve import serving
from tests.ui.support import Site, Ui, require_chromium_or_skip, steward_link_of, ui_on

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        require_chromium_or_skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        except Error as error:
            require_chromium_or_skip(f"{CHROMIUM} did not start: {error.message}")
            raise
        yield chromium
        chromium.close()


@contextmanager
def served_site(folder: Path, store: str, *options: str) -> Iterator[Site]:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database("pledger_ui")) if store == "postgres" else None
        settings = Settings(db_path=folder / "pledger.db", database_url=url)
        server = stack.enter_context(serving(settings, "ui", "--access-log", *options))
        site = Site(server, settings, steward_link_of(server))
        try:
            yield site
        finally:
            site.api.close()


@pytest.fixture(scope="session", params=STORES)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """`pledger serve` on a fresh store, shared by every story of the session on that store."""
    store: str = request.param
    with served_site(tmp_path_factory.mktemp(f"ui-{store}"), store) as served:
        yield served


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`pledger serve --demo`: the example ledger (60 partners), on SQLite."""
    with served_site(tmp_path_factory.mktemp("ui-demo"), "sqlite", "--demo") as served:
        yield served


@pytest.fixture
def ui(browser: Browser, site: Site) -> Iterator[Ui]:
    """A fresh browser context signed in as the steward, through the printed link."""
    with ui_on(browser, site) as signed_in:
        yield signed_in
