"""PostgreSQL with several processes at once (SPEC §7; issue 11): `pledger serve --workers N`
and CLI commands beside it, as real subprocesses on one database.

1. The views' digest equals the log's at every checkpoint while two server workers and a loop
   of CLI commands all keep the views.
2. A large `pledger import events` finishes beside a serving ledger, and a write that finds the
   log locked longer than the lock timeout gets a 503 with Retry-After, never a hang.
3. Processes that start at once on a fresh database (and workers on an existing one) all start.
4. The same Idempotency-Key from two clients at once: the same 201 for both (422 for a
   different body), one event.
5. Writes without expected_version from many clients on few partners: never a 409.
"""

from __future__ import annotations

import csv
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import psycopg
import pytest

from api.settings import Settings
from projections.rows import CHECKPOINT_EVERY, DigestChain
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_unavailable
from tests.e2e.test_serve import (
    COMMAND_TIMEOUT_SECONDS,
    Api,
    Server,
    _environment,
    _pledger_executable,
    eventually,
    issue_token,
    pledger,
    serving,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CONTACT = {"type": "contact_made", "channel": "phone", "direction": "inbound"}


# ---- one database and one two-worker server for the tests that only write -----------------


def _new_database() -> str:
    name = f"pledger_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        _postgres_unavailable(str(error).strip())
        raise
    return name


def _drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a new, empty database of this test's own."""
    name = _new_database()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield Settings(db_path=tmp_path / "pledger.db", database_url=f"{base}/{name}")
    finally:
        _drop_database(name)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    name = _new_database()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    folder = tmp_path_factory.mktemp("shared")
    try:
        yield Settings(db_path=folder / "pledger.db", database_url=f"{base}/{name}")
    finally:
        _drop_database(name)


@pytest.fixture(scope="module")
def two_workers(shared: Settings) -> Iterator[Server]:
    with serving(shared, "two-workers", "--workers", "2", "--access-log") as server:
        yield server
        server.stop_cleanly()
    assert not re.search(r'HTTP/1\.1" 5\d\d', server.stderr()), server.stderr()


@pytest.fixture(scope="module")
def token(shared: Settings, two_workers: Server) -> str:
    return issue_token(shared, "--role", "steward", "--name", "e2e-processes")


def register(server: Server, token: str, count: int, name: str) -> list[str]:
    api = Api(server.url, token)
    try:
        return [
            api.post("/v1/partners", {"name": f"{name} {n}", "kind": "organization"})["id"]
            for n in range(count)
        ]
    finally:
        api.close()


def fresh_verification(api: Api, seconds: float = 120.0) -> dict[str, Any]:
    """A fresh run's result: POST /v1/audit/verify, and on a log too large for it to wait
    (202), GET until the latest run is one that started after the request."""
    answer = api.call("POST", "/v1/audit/verify", expect=None)
    if answer.status_code == 200:
        done: dict[str, Any] = answer.json()
        return done
    assert answer.status_code == 202, answer.text
    asked = answer.json()["asked_at"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latest: dict[str, Any] = api.call("GET", "/v1/audit/verify").json()
        if latest["started_at"] >= asked:
            return latest
        time.sleep(float(answer.headers["retry-after"]) / 10)
    pytest.fail(f"no verification started after {asked} finished within {seconds} s")


def run_clients(clients: int, work: Any) -> list[str]:
    """Run ``work(client)`` in ``clients`` threads at once; the failures they reported."""
    failures: list[str] = []

    def guarded(client: int) -> None:
        try:
            work(client)
        except Exception as error:
            failures.append(repr(error))

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def client(server: Server, token: str) -> httpx2.Client:
    """A connection of its own: either worker may serve it."""
    return httpx2.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
    )


# ---- 4: one Idempotency-Key, two clients ------------------------------------------------


def test_the_same_idempotency_key_from_two_clients_at_once_records_once(
    two_workers: Server, token: str
) -> None:
    (partner,) = register(two_workers, token, 1, "Idempotent")
    rounds = 40
    answers: dict[tuple[int, int], tuple[int, str, dict[str, Any]]] = {}

    def post_each_round(who: int) -> None:
        with client(two_workers, token) as http:
            for n in range(rounds):
                barrier.wait()
                # Every fourth round the two bodies differ: one 201, one 422.
                summary = f"round {n}" if n % 4 or who == 0 else f"round {n}, other body"
                response = http.post(
                    f"/v1/partners/{partner}/events",
                    json={**CONTACT, "summary": summary},
                    headers={"Idempotency-Key": f"key-{n}"},
                )
                answers[n, who] = (
                    response.status_code,
                    response.headers.get("content-type", ""),
                    response.json() if "json" in response.headers.get("content-type", "") else {},
                )

    barrier = threading.Barrier(2, timeout=60.0)  # one client failing must not hang the other
    assert run_clients(2, post_each_round) == []

    for n in range(rounds):
        first, second = answers[n, 0], answers[n, 1]
        if n % 4:
            assert first[0] == second[0] == 201, (n, first, second)
            assert first[2] == second[2], "a replay answers exactly as the first write"
        else:
            assert sorted([first[0], second[0]]) == [201, 422], (n, first, second)
            refused = first if first[0] == 422 else second
            assert refused[1].startswith("application/problem+json")
            assert "Idempotency-Key" in refused[2]["detail"]
    api = Api(two_workers.url, token)
    try:
        timeline = api.get(f"/v1/partners/{partner}/timeline", limit=500, types="contact_made")
    finally:
        api.close()
    summaries = Counter(e["data"]["summary"] for e in timeline["events"])
    assert len(summaries) == rounds
    assert set(summaries.values()) == {1}, "each key recorded exactly one event"


# ---- 5: contention without expected_version ---------------------------------------------


def test_writes_without_expected_version_are_never_refused_for_contention(
    two_workers: Server, token: str
) -> None:
    partners = register(two_workers, token, 2, "Contended")
    clients, writes = 8, 30
    statuses: Counter[int] = Counter()
    refusals: list[str] = []

    def write(who: int) -> None:
        with client(two_workers, token) as http:
            for step in range(writes):
                partner = partners[(who + step) % 2]
                response = http.post(
                    f"/v1/partners/{partner}/events",
                    json={**CONTACT, "summary": f"client {who} step {step}"},
                )
                statuses[response.status_code] += 1
                if response.status_code != 201:
                    refusals.append(f"{response.status_code} {response.text[:200]}")

    assert run_clients(clients, write) == []

    assert statuses == {201: clients * writes}, refusals[:5]
    api = Api(two_workers.url, token)
    try:
        counts = [
            len(api.get(f"/v1/partners/{p}/timeline", limit=500, types="contact_made")["events"])
            for p in partners
        ]
    finally:
        api.close()
    assert sum(counts) == clients * writes


# ---- 1: the views' digest under two workers and a CLI loop ------------------------------


def digest_chain_of_the_log(settings: Settings) -> DigestChain:
    """The chain recomputed from `pledger export events` (SPEC §5), in position order."""
    exported = pledger(settings, "export", "events", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    events = [orjson.loads(line) for line in exported.stdout.splitlines()]
    chain = DigestChain()
    chain.extend((e["position"], e["hash"]) for e in sorted(events, key=lambda e: e["position"]))
    return chain


def stored_digests(settings: Settings) -> tuple[list[tuple[int, str, int]], tuple[int, str, int]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        checkpoints = conn.execute(
            "SELECT position, digest, events FROM ledger_views_digests ORDER BY position"
        ).fetchall()
        head = conn.execute(
            "SELECT position, digest, events FROM ledger_views_chain_head"
        ).fetchone()
    assert head is not None
    return [tuple(row) for row in checkpoints], tuple(head)


def test_the_views_digest_equals_the_logs_under_two_workers_and_a_cli_loop(
    shared: Settings, two_workers: Server, token: str
) -> None:
    partners = register(two_workers, token, 4, "Digest")
    clients, writes = 6, 2 * CHECKPOINT_EVERY // 6 + 20  # past two checkpoints of their own
    writing = threading.Event()
    writing.set()
    cli_runs: list[int] = []

    def cli_loop() -> None:
        # `pledger agenda` catches the views up before it answers: a third processor.
        while writing.is_set() or len(cli_runs) < 3:
            done = pledger(shared, "agenda", "--format", "json")
            cli_runs.append(done.returncode)

    def write(who: int) -> None:
        with client(two_workers, token) as http:
            for step in range(writes):
                response = http.post(
                    f"/v1/partners/{partners[(who + step) % 4]}/events",
                    json={**CONTACT, "summary": f"digest {who}.{step}"},
                )
                assert response.status_code == 201, response.text

    loop = threading.Thread(target=cli_loop)
    loop.start()
    try:
        failures = run_clients(clients, write)
    finally:
        writing.clear()
        loop.join()
    assert failures == []
    assert set(cli_runs) == {0}, cli_runs
    caught_up = pledger(shared, "agenda")  # the views to the end of the log, once more
    assert caught_up.returncode == 0, caught_up.stderr

    log = digest_chain_of_the_log(shared)
    checkpoints, head = stored_digests(shared)
    assert log.events >= 2 * CHECKPOINT_EVERY
    assert checkpoints == log.checkpoints
    assert head == (log.position, log.digest, log.events)
    api = Api(two_workers.url, token)
    try:
        verified = fresh_verification(api)
    finally:
        api.close()
    assert verified["ok"] is True
    assert (verified["position"], verified["digest"]) == (log.position, log.digest)


# ---- 2: a large import beside a serving ledger; the lock timeout ------------------------


def events_file(path: Path, partners: int, rows: int) -> Path:
    from api.importing import EVENT_COLUMNS

    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=EVENT_COLUMNS, restval="")
        writer.writeheader()
        for n in range(partners):
            name = f"Imported {n}"
            writer.writerow(
                {
                    "partner": name,
                    "type": "partner_registered",
                    "occurred_at": "2025-01-02T10:00:00Z",
                    "name": name,
                    "kind": "organization",
                }
            )
        for n in range(rows - partners):
            writer.writerow(
                {
                    "partner": f"Imported {n % partners}",
                    "type": "contact_made",
                    "occurred_at": f"2025-02-{1 + n % 28:02d}T12:00:00Z",
                    "channel": "email",
                    "direction": "outbound",
                    "summary": f"newsletter {n}",
                }
            )
    return path


IMPORT_ROWS = 20_000


def test_writers_beside_a_large_import_wait_at_most_the_lock_timeout(fresh: Settings) -> None:
    """A write that finds the log's lock held (as a save holds it: here by the test, then by
    a real import of 20,000 rows) waits at most PLEDGER_LOCK_TIMEOUT and is then refused with
    503 and Retry-After, recording nothing; the import finishes; writing goes on after."""
    assert fresh.database_url is not None
    source = events_file(fresh.db_path.parent / "events.csv", 200, IMPORT_ROWS)
    with serving(fresh, "beside-import", env={"PLEDGER_LOCK_TIMEOUT": "1"}) as server:
        token = issue_token(fresh, "--role", "steward", "--name", "e2e-import")
        (partner,) = register(server, token, 1, "Live")
        api = Api(server.url, token)
        try:
            with psycopg.connect(fresh.database_url) as holder:
                holder.execute("LOCK TABLE pledger_events IN EXCLUSIVE MODE")
                refused = api.client.post(f"/v1/partners/{partner}/events", json=CONTACT)
                holder.rollback()
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["retry-after"]) >= 1
            assert "nothing was recorded" in refused.json()["detail"]
            assert api.get(f"/v1/partners/{partner}")["version"] == 1

            importing = subprocess.Popen(
                [_pledger_executable(), "import", "events", str(source)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_environment(fresh),
                cwd=fresh.db_path.parent,
                encoding="utf-8",
            )
            statuses: list[tuple[int, str | None]] = []
            with client(server, token) as http:
                while importing.poll() is None:
                    response = http.post(f"/v1/partners/{partner}/events", json=CONTACT)
                    statuses.append((response.status_code, response.headers.get("retry-after")))
                    time.sleep(0.05)  # a steady trickle, not a flood: the timeline stays a page
            out, err = importing.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
            assert importing.returncode == 0, err
            assert f"Recorded {IMPORT_ROWS} events for 200 partners" in out

            # Each write during the import was recorded, or refused as busy with a retry time.
            assert statuses, "the import ended before any write was tried"
            assert {status for status, _ in statuses} <= {201, 503}, statuses
            assert all(after is not None for status, after in statuses if status == 503)
            api.post(f"/v1/partners/{partner}/events", CONTACT)  # and writing goes on after
            live = api.get(f"/v1/partners/{partner}/timeline", limit=1000, types="contact_made")
            assert len(live["events"]) == 1 + sum(status == 201 for status, _ in statuses)
            verified = fresh_verification(api)
            assert verified["ok"] is True
            assert verified["events_checked"] == IMPORT_ROWS + 1 + len(live["events"])
        finally:
            api.close()
        server.stop_cleanly()


# ---- 3: starting at once ----------------------------------------------------------------


def test_processes_starting_at_once_on_a_fresh_database_all_start(fresh: Settings) -> None:
    commands = [
        ["token", "create", "--role", "steward", "--name", "first"],
        ["token", "create", "--role", "viewer", "--name", "second"],
        ["agenda"],
        ["export", "events"],
    ]
    started = [
        subprocess.Popen(
            [_pledger_executable(), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(fresh),
            cwd=fresh.db_path.parent,
            encoding="utf-8",
        )
        for command in commands
    ]
    with serving(fresh, "workers-3", "--workers", "3") as server:
        outcomes = [p.communicate(timeout=COMMAND_TIMEOUT_SECONDS) for p in started]
        assert [p.returncode for p in started] == [0] * len(commands), outcomes
        assert all_workers_started(server, 3)
        server.stop_cleanly()

    with serving(fresh, "workers-3-again", "--workers", "3") as server:  # on the schema now there
        assert all_workers_started(server, 3)
        server.stop_cleanly()


def all_workers_started(server: Server, workers: int) -> bool:
    return eventually(
        lambda: (
            server.stderr().count("Application startup complete.") == workers
            and "Traceback" not in server.stderr()
        ),
        within=30.0,
    )
