"""Crash safety, proven by killing (issue 17 item 2), on SQLite and on PostgreSQL.

1. Clients write over HTTP, each write with an Idempotency-Key of its own, retried with the
   same key until it is answered 201. Meanwhile the server (and, on PostgreSQL, the separate
   projection process, `pledger project`) is killed with SIGKILL at random moments, several
   times, and started again. Afterwards every write answered 201 is in the log, no key recorded
   two events, `pledger verify` passes, and the views catch up to the log and equal a fresh
   rebuild.
2. `pledger rebuild` and a large `pledger import events` killed with SIGKILL in the middle
   leave nothing partial (the views as before the rebuild, the log as before the import); run
   again, each succeeds.
"""

from __future__ import annotations

import csv
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import orjson
import psycopg
import pytest

from api.settings import Settings
from api.wiring import open_ledger
from projections.runner import open_view
from projections.store import LOG_TABLE_POSTGRES, VIEW_TABLES, VIEWS_LOCK_KEY
from tests.e2e.test_serve import (
    START_TIMEOUT_SECONDS,
    _environment,
    _pledger_executable,
    _store_args,
    eventually,
    free_port,
    issue_token,
    pledger,
)

pytestmark = pytest.mark.slow

KILLS = 3
CLIENTS = 3
IMPORT_ROWS = 3000
CATCH_UP_SECONDS = 20.0
BODY = {"type": "contact_made", "channel": "phone", "direction": "inbound"}


# ---- the processes under test -----------------------------------------------------------


class Ledger:
    """`pledger serve` on one port (on PostgreSQL with --no-projection beside `pledger
    project`), started, killed with SIGKILL and started again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.projection: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def separate_projection(self) -> bool:
        return self.settings.store == "postgres"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = self.settings.db_path.parent / f"{args[0]}-{self.starts}.log"
        with log.open("wb") as out:
            return subprocess.Popen(
                [_pledger_executable(), *args, *_store_args(self.settings)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_environment(self.settings),
                cwd=self.settings.db_path.parent,
            )

    def start(self) -> None:
        if self.separate_projection and not _running(self.projection):
            self.projection = self._spawn("project")
        if not _running(self.server):
            options = ["--no-projection"] if self.separate_projection else []
            self.server = self._spawn(
                "serve", "--host", "127.0.0.1", "--port", str(self.port), *options
            )
        self.wait_until_healthy()

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for process in (self.server, self.projection):
                assert process is None or process.poll() is None, self.logs()
            try:
                health = httpx2.get(f"{self.url}/healthz", timeout=2.0).json()
            except (httpx2.TransportError, ValueError):
                health = {}
            if health.get("status") == "ok":
                return
            time.sleep(0.05)
        pytest.fail(f"/healthz did not answer ok in time\n{self.logs()}")

    def kill(self, *, projection: bool) -> None:
        """SIGKILL the server (and the projection process when asked and there is one)."""
        victims = [self.server, self.projection if projection else None]
        random.shuffle(victims)
        for process in victims:
            if _running(process):
                assert process is not None
                process.send_signal(signal.SIGKILL)
                process.wait()
                time.sleep(random.uniform(0, 0.2))

    def health(self) -> dict[str, Any]:
        response = httpx2.get(f"{self.url}/healthz", timeout=5.0)
        result: dict[str, Any] = response.json()
        return result

    def logs(self) -> str:
        folder = self.settings.db_path.parent
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in folder.glob("*.log")
        )


def _running(process: subprocess.Popen[bytes] | None) -> bool:
    return process is not None and process.poll() is None


@contextmanager
def running(settings: Settings) -> Iterator[Ledger]:
    ledger = Ledger(settings)
    try:
        ledger.start()
        yield ledger
    finally:
        ledger.kill(projection=True)


# ---- what the store holds -----------------------------------------------------------------


def logged_events(settings: Settings) -> list[dict[str, Any]]:
    exported = pledger(settings, "export", "events")
    assert exported.returncode == 0, exported.stderr
    return [orjson.loads(line) for line in exported.stdout.splitlines()]


def event_count(settings: Settings) -> int:
    """How many events the log holds (read in this process: cheaper than a command)."""
    ledger = open_ledger(settings)
    try:
        return len(ledger.recorder.select_notifications(None, 10**9))
    finally:
        ledger.close()


def view_tables(settings: Settings) -> dict[str, Any]:
    """Every row of every view table, sorted, and the views' tracked position."""
    view = open_view(settings.views_env())
    try:
        tables: dict[str, Any] = {"position": view.processed_position()}
        for table in VIEW_TABLES:
            rows = view.select(f"SELECT * FROM {view.prefix}{table}")
            tables[table] = sorted(
                repr(tuple(row.values()) if isinstance(row, dict) else tuple(row)) for row in rows
            )
        return tables
    finally:
        view.datastore.close()


def verify_ok(settings: Settings) -> str:
    verified = pledger(settings, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return verified.stdout


# ---- 1: writers over HTTP, the server killed under them -----------------------------------


class Writers:
    """Clients that each write events, every one with its own Idempotency-Key, retrying a key
    until it is answered 201 (a refused connection or a 5xx is what a killed server gives)."""

    def __init__(self, url: str, token: str, partners: list[str]) -> None:
        self.url = url
        self.token = token
        self.partners = partners
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self.retried: set[str] = set()
        self.failures: list[str] = []
        self.writing = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Writers:
        self.writing.set()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.writing.clear()
        for thread in self._threads:
            thread.join()

    def _write(self, who: int) -> None:
        http = httpx2.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0
        )
        try:
            step = 0
            while self.writing.is_set():
                key = f"kill-{who}-{step}"
                body = {**BODY, "summary": key}
                path = f"/v1/partners/{self.partners[(who + step) % len(self.partners)]}/events"
                self._until_recorded(http, path, key, body)
                step += 1
        except Exception as error:
            self.failures.append(repr(error))
        finally:
            http.close()

    def _until_recorded(
        self, http: httpx2.Client, path: str, key: str, body: dict[str, Any]
    ) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS * 2
        while time.monotonic() < deadline:
            try:
                response = http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx2.TransportError:
                self.retried.add(key)
                time.sleep(0.05)
                continue
            if response.status_code == 201:
                self.acknowledged[key] = response.json()
                return
            assert response.status_code >= 500, f"{key}: {response.status_code} {response.text}"
            self.retried.add(key)
            time.sleep(0.05)
        self.failures.append(f"{key} was never answered 201")


def _summary(event: dict[str, Any]) -> str:
    """An exported event's summary: kept apart from the hashed data as a personal value since
    format 2 (``disclosed``), in ``data`` before."""
    held = event.get("disclosed", {}).get("summary")
    return str(held["value"] if held else event["data"].get("summary") or "")


def test_killing_the_server_loses_no_acknowledged_write(settings: Settings) -> None:
    random.seed()
    with running(settings) as ledger:
        token = issue_token(settings, "--role", "steward", "--name", "kill-nine")
        with httpx2.Client(
            base_url=ledger.url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            partners = [
                http.post("/v1/partners", json={"name": f"Killed {n}", "kind": "organization"})
                .raise_for_status()
                .json()["id"]
                for n in range(4)
            ]
        with Writers(ledger.url, token, partners) as writers:
            for kill in range(KILLS):
                time.sleep(random.uniform(0.3, 1.0))
                ledger.kill(projection=kill != 1)  # once the server alone
                ledger.start()
            time.sleep(0.3)
        assert writers.failures == [], writers.failures
        assert len(writers.acknowledged) > KILLS, "the clients wrote while the server lived"

        events = logged_events(settings)
        ours = Counter(_summary(e) for e in events if _summary(e).startswith("kill-"))
        duplicated = {key: n for key, n in ours.items() if n > 1}
        assert duplicated == {}, f"recorded twice under one Idempotency-Key: {duplicated}"
        lost = sorted(set(writers.acknowledged) - set(ours))
        assert lost == [], f"answered 201, not in the log: {lost}"
        by_key = {_summary(e): e for e in events if _summary(e) in ours}
        for key, answer in writers.acknowledged.items():
            assert answer["position"] == by_key[key]["position"], (key, answer, by_key[key])
        assert writers.retried, "some writes met the killed server and were retried"

        verify_ok(settings)
        log_position = events[-1]["position"]
        assert eventually(
            lambda: ledger.health()["views_position"] == log_position, CATCH_UP_SECONDS
        ), ledger.health()
        caught_up = view_tables(settings)
    assert caught_up["position"] == log_position
    rebuilt = pledger(settings, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert view_tables(settings) == caught_up


# ---- 2: a rebuild and an import killed in the middle -----------------------------------------


def _events_file(path: Path, partners: list[str], rows: int, tag: str) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["partner", "type", "occurred_at", "channel", "direction", "summary"])
        for n in range(rows):
            day = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z"
            writer.writerow(
                [
                    partners[n % len(partners)],
                    "contact_made",
                    day,
                    "email",
                    "outbound",
                    f"{tag} {n}",
                ]
            )
    return path


class Writing:
    """Whether a command is inside its writing transaction: on the views (a rebuild) or on the
    log (an import's save). SQLite: the file's write lock is taken (``BEGIN IMMEDIATE`` fails
    at once); PostgreSQL: the views' advisory lock, or the import's locks on its fingerprints'
    and the log's tables, are granted."""

    def __init__(self, settings: Settings, target: str) -> None:
        self.settings = settings
        self.target = target
        self._pg: psycopg.Connection[Any] | None = None  # one connection, for quick looks

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()

    def __call__(self) -> bool:
        if self.settings.database_url is None:
            path = self.settings.views_path if self.target == "views" else self.settings.db_path
            probe = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError:
                return True
            finally:
                probe.close()
            return False
        if self._pg is None:
            self._pg = psycopg.connect(self.settings.database_url, autocommit=True)
        if self.target == "views":
            row = self._pg.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND classid = %s AND objid = %s AND objsubid = 1)",
                (VIEWS_LOCK_KEY >> 32, VIEWS_LOCK_KEY & 0xFFFFFFFF),
            ).fetchone()
        else:
            # The import's transaction writes its rows' fingerprints first, then seals their
            # personal data, then takes the log's table lock and copies the events in: either
            # lock shows it is inside (the first widens the window well past the copy's).
            row = self._pg.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = "
                "l.relation WHERE l.granted AND ((c.relname = %s AND l.mode = 'ExclusiveLock') "
                "OR (c.relname = 'pledger_import_rows' AND l.mode = 'RowExclusiveLock')))",
                (LOG_TABLE_POSTGRES,),
            ).fetchone()
        return bool(row and row[0])


def _kill_in_the_middle(
    settings: Settings, writing: Writing, *args: str, sightings: int = 2, extra: float = 0.01
) -> bool:
    """Start `pledger ARGS` and SIGKILL it at a random moment inside its writing transaction
    (seen ``sightings`` times in a row, then up to ``extra`` seconds more); whether it was
    still inside when killed (False: it had finished, or left the transaction, first)."""
    process = subprocess.Popen(
        [_pledger_executable(), *args, *_store_args(settings)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_environment(settings),
        cwd=settings.db_path.parent,
    )
    seen = 0
    while process.poll() is None and seen < sightings:
        seen = seen + 1 if writing() else 0
        time.sleep(0.005)
    time.sleep(random.uniform(0, extra))
    inside = process.poll() is None and writing()
    process.send_signal(signal.SIGKILL)
    process.wait()
    return inside


def _done(settings: Settings, *args: str) -> None:
    done = pledger(settings, *args)
    assert done.returncode == 0, done.stderr


def test_a_killed_rebuild_or_import_leaves_nothing_partial(settings: Settings) -> None:
    folder = settings.db_path.parent
    partners = [f"Imported {n}" for n in range(20)]
    roster = folder / "partners.csv"
    roster.write_text("name,kind\n" + "".join(f"{name},organization\n" for name in partners))
    assert pledger(settings, "import", "partners", str(roster)).returncode == 0
    first = _events_file(folder / "first.csv", partners, IMPORT_ROWS, "first")
    _done(settings, "import", "events", str(first))
    assert pledger(settings, "agenda").returncode == 0  # the views caught up
    before = view_tables(settings)

    _done(settings, "rebuild")
    assert view_tables(settings) == before
    rebuilding = Writing(settings, "views")
    try:
        caught = any(_kill_in_the_middle(settings, rebuilding, "rebuild") for _ in range(4))
    finally:
        rebuilding.close()
    assert caught, "`pledger rebuild` was never caught inside its transaction"
    assert view_tables(settings) == before, "a killed rebuild left its views as they were"
    assert pledger(settings, "rebuild").returncode == 0
    assert view_tables(settings) == before

    # SIGKILL may land after the commit, before the process ends: then all of the file is in
    # the log (never a part), and a new file is tried.
    importing = Writing(settings, "log")
    try:
        # PostgreSQL's save is short (the copy takes tens of milliseconds): the kill follows
        # the first sighting, and a dozen files may be tried.
        for attempt in range(12):
            logged = event_count(settings)
            second = _events_file(folder / f"second{attempt}.csv", partners, IMPORT_ROWS, "s")
            inside = _kill_in_the_middle(
                settings, importing, "import", "events", str(second), sightings=1, extra=0.002
            )
            after_kill = event_count(settings)
            assert after_kill in (logged, logged + IMPORT_ROWS), "a killed import recorded a part"
            if inside and after_kill == logged:
                break
        else:
            pytest.fail("`pledger import events` was never killed inside its transaction")
    finally:
        importing.close()
    verify_ok(settings)  # the log a killed import left
    again = pledger(settings, "import", "events", str(second))
    assert again.returncode == 0, again.stderr
    assert event_count(settings) == logged + IMPORT_ROWS
    verify_ok(settings)
