"""A server that starts on a large log with empty views (a copied or restored ledger) rebuilds
them at rebuild speed, in the background, saying so in its log (issue 17 item 3).

On both stores: 6,000 imported events, no views yet; `pledger serve` logs the rebuild and its
progress, /healthz turns ok with the views at the end of the log, and the views equal what a
`pledger rebuild` makes.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from api.settings import Settings
from projections.runner import REBUILD_FROM, open_view
from tests.e2e.test_kill_nine import _events_file, view_tables
from tests.e2e.test_serve import pledger, serving

pytestmark = pytest.mark.slow

EVENTS = REBUILD_FROM + 1000


def test_a_server_on_a_large_log_with_empty_views_rebuilds_them(
    settings: Settings, tmp_path: Path
) -> None:
    partners = [f"Large {n}" for n in range(10)]
    roster = tmp_path / "partners.csv"
    roster.write_text("name,kind\n" + "".join(f"{name},organization\n" for name in partners))
    assert pledger(settings, "import", "partners", str(roster)).returncode == 0
    events = _events_file(tmp_path / "events.csv", partners, EVENTS, "large")
    imported = pledger(settings, "import", "events", str(events))
    assert imported.returncode == 0, imported.stderr
    view = open_view(settings.views_env())
    try:
        assert view.processed_position() == 0, "imports leave the views to the next reader"
    finally:
        view.datastore.close()

    with serving(settings, "large") as server:
        health = httpx2.get(f"{server.url}/healthz").json()
        assert health["status"] == "ok"
        assert health["views_position"] == health["log_position"]
        server.stop_cleanly()
    log = server.stderr()
    assert "the views are empty: rebuilding them from the" in log, log
    assert "rebuilding the views: " in log, log  # its progress
    assert f"rebuilt the views from {EVENTS + len(partners)} events" in log, log

    served = view_tables(settings)
    assert pledger(settings, "rebuild").returncode == 0
    assert view_tables(settings) == served
