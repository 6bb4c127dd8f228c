"""API workers and one projection process on PostgreSQL (SPEC §7, issue 17 item 1).

`pledger serve --workers 2 --no-projection` runs no projection runner; `pledger project` keeps
the views. Each write is readable in the next request to either worker (the workers learn the
projection process's position by LISTEN/NOTIFY); /healthz names each part and the views' lag;
a second projection process is refused; without one /healthz says degraded; on SQLite the
option is refused.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from api.settings import Settings
from tests.e2e.test_serve import (
    _environment,
    _pledger_executable,
    eventually,
    issue_token,
    pledger,
    serving,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture
def projection(
    postgres_url: str, tmp_path: Path
) -> Iterator[tuple[Settings, subprocess.Popen[bytes]]]:
    """A small demo ledger on a database of its own, and `pledger project` running on it."""
    settings = Settings(db_path=tmp_path / "pledger.db", database_url=postgres_url)
    assert pledger(settings, "demo", "--partners", "3", "--months", "2").returncode == 0
    with (tmp_path / "project.log").open("wb") as log:
        process = subprocess.Popen(
            [_pledger_executable(), "project"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(settings),
        )
    try:
        yield settings, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


@pytest.mark.postgres
def test_two_workers_without_a_runner_read_their_writes_from_the_projection_process(
    projection: tuple[Settings, subprocess.Popen[bytes]],
) -> None:
    settings, project = projection
    with serving(settings, "workers", "--workers", "2", "--no-projection") as server:
        token = issue_token(settings, "--role", "steward", "--name", "workers")
        health = httpx2.get(f"{server.url}/healthz").json()
        assert health["parts"]["views_kept_by"] == "projection process"
        assert health["parts"]["projection_process"] == "running"
        assert health["lag"] == {"events": 0, "seconds": 0.0, "late_writes": 0}

        second = pledger(settings, "project")
        assert second.returncode == 1
        assert "another pledger project already keeps the views" in second.stderr

        with httpx2.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            partner = http.post(
                "/v1/partners", json={"name": "Read back", "kind": "organization"}
            ).json()["id"]
            for n in range(20):
                written = http.post(
                    f"/v1/partners/{partner}/events",
                    json={
                        "type": "contact_made",
                        "channel": "phone",
                        "direction": "inbound",
                        "summary": f"read back {n}",
                    },
                )
                assert written.status_code == 201, written.text
                assert "Pledger-Views" not in written.headers  # shown in time, not caught up
                timeline = http.get(f"/v1/partners/{partner}/timeline").json()["events"]
                assert f"read back {n}" in [e["data"].get("summary") for e in timeline]
        # Both workers were told each position by the projection process in time: neither
        # waited out its timeout and caught the views up itself.
        for _ in range(10):
            assert httpx2.get(f"{server.url}/healthz").json()["lag"]["late_writes"] == 0

        project.send_signal(signal.SIGKILL)
        project.wait()
        assert eventually(
            lambda: httpx2.get(f"{server.url}/healthz").json()["status"] == "degraded", 10.0
        )
        parts = httpx2.get(f"{server.url}/healthz").json()["parts"]
        assert parts["projection_process"] == "not running"
        server.stop_cleanly()


def test_no_projection_is_refused_on_sqlite(sqlite_settings: Settings) -> None:
    served = pledger(sqlite_settings, "serve", "--no-projection")
    assert served.returncode == 2
    assert "needs PostgreSQL" in served.stderr
    projected = pledger(sqlite_settings, "project")
    assert projected.returncode == 2
    assert "needs PostgreSQL" in projected.stderr


def test_a_bad_projection_setting_is_named(sqlite_settings: Settings) -> None:
    done = subprocess.run(
        [_pledger_executable(), "verify", "--db", str(sqlite_settings.db_path)],
        capture_output=True,
        encoding="utf-8",
        env=_environment(sqlite_settings, {"PLEDGER_PROJECTION": "elsewhere"}),
        check=False,
    )
    assert done.returncode == 2
    assert "PLEDGER_PROJECTION='elsewhere' must be serve or process" in done.stderr
