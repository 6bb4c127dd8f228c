"""Benchmark the ledger against the physical floor of this machine.

    python bench/run.py                 # 10,000 partners x 100 events (about 1M events)
    python bench/run.py --quick         # 1,000 partners x 100 events
    python bench/run.py --quick --json out.json
    python bench/run.py --store postgres   # against $PLEDGER_DATABASE_URL (a database it may fill)
    python bench/run.py --store postgres --workers 2 --projection-process

Prints a table of figures and ratios; see bench/README.md for what each one means.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.demo import DemoPlan, build_demo  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.wiring import open_services  # noqa: E402
from domain.chained import ChainedAggregate, Stamp  # noqa: E402
from domain.coalition import Coalition  # noqa: E402
from domain.values import (  # noqa: E402
    CoalitionFormed,
    ContactMade,
    MemberJoined,
    PartnerRegistered,
)

CLIENTS = 8


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- building the ledger ------------------------------------------------------------------


def build_ledger(settings: Settings, partners: int, per_partner: int) -> dict[str, Any]:
    """Record the demo story at the requested size, plus a 50-member coalition and one
    partner with 1,000 events; returns ids the measurements use."""
    services = open_services(settings)
    ledger = services.ledger
    # 200 months: long enough that the quieter relationships reach ~100 events too (the story
    # caps each partner at the target), so the ledger holds about partners x per_partner events.
    plan = DemoPlan(partners=partners, months=200, seed=11, events_per_partner=per_partner)
    partner_ids: list[str] = []
    started = time.perf_counter()
    total = 0
    for batch in build_demo(plan):
        for aggregate in batch:
            if aggregate.__class__.__name__ == "Partner":
                partner_ids.append(str(aggregate.id))
        total += len(ledger.save_batch(batch))
        print(f"\r  recorded {total:,} events", end="", flush=True)
    # One long relationship: 1,000 events on a single partner, for the as_of health figure.
    heavy = ledger.get_partner(__import__("uuid").UUID(partner_ids[0]))
    start = datetime.now(UTC) - timedelta(days=1000)
    for day in range(1000 - heavy.version):
        heavy.execute(
            ContactMade(channel="phone", direction="inbound" if day % 3 else "outbound"),
            Stamp(start + timedelta(days=day, minutes=day % 60), "bench"),
        )
    total += len(ledger.save_batch([heavy]))
    coalition = Coalition.form(
        CoalitionFormed(name="Benchmark Coalition of Fifty"), Stamp(start, "bench")
    )
    for member in partner_ids[1:51]:
        coalition.admit(
            MemberJoined(partner_id=__import__("uuid").UUID(member)), Stamp(start, "bench")
        )
    total += len(ledger.save_batch([coalition]))
    print(f"\r  recorded {total:,} events in {time.perf_counter() - started:.1f} s")
    services.close()
    return {
        "events": total,
        "partners": partner_ids,
        "heavy": partner_ids[0],
        "coalition": str(coalition.id),
        "as_of_past": (start + timedelta(days=700)).strftime("%Y-%m-%d"),
    }


def kept_ledger(settings: Settings) -> dict[str, Any]:
    """What the rebuild's figures need of a ledger built before (``--ledger``): its events,
    and its partners' ids."""
    services = open_services(settings)
    try:
        rows = services.view.select("SELECT partner_id FROM {p}partners")
        events = services.ledger.last_position()
    finally:
        services.close()
    return {"events": events, "partners": [row["partner_id"] for row in rows]}


# ---- floors -------------------------------------------------------------------------------


def _floor_log(path: Path) -> sqlite3.Connection:
    """A new SQLite file with a table shaped as the library's log, WAL as the ledger uses."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
        "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )
    return db


def floor_commit_per_row(directory: Path, row_size: int, rows: int = 2000) -> float:
    """Raw sqlite3: one INSERT and one COMMIT per row, WAL as the ledger uses, same disk."""
    db = _floor_log(directory / "floor.db")
    state = b"x" * row_size
    started = time.perf_counter()
    for i in range(rows):
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO stored_events VALUES (?, ?, ?, ?)",
            (f"{i % 1000:032x}", i, "domain.partner:Partner.ContactMade", state),
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return rows / elapsed


def floor_executemany(directory: Path, row_size: int, rows: int) -> float:
    """Raw sqlite3: ``rows`` rows of ``row_size`` bytes by one executemany in one transaction,
    WAL, same disk: what an import of that many events could reach at best (rows a second)."""
    path = directory / "floor_import.db"
    db = _floor_log(path)
    state = b"x" * row_size
    started = time.perf_counter()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO stored_events VALUES (?, ?, ?, ?)",
        ((f"{i % 1000:032x}", i, "domain.partner:Partner.ContactMade", state) for i in range(rows)),
    )
    db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    path.unlink()
    return rows / elapsed


def floor_read_decode(db_path: Path) -> tuple[float, int]:
    """Raw SELECT of every stored event plus orjson.loads of each."""
    db = sqlite3.connect(db_path)
    started = time.perf_counter()
    count = 0
    for (state,) in db.execute("SELECT state FROM stored_events ORDER BY rowid"):
        orjson.loads(state)
        count += 1
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed, count


def average_stored_size(settings: Settings) -> int:
    """The average stored event's size in bytes, on either store."""
    if not settings.database_url:
        return average_row_size(settings.db_path)
    import psycopg

    with psycopg.connect(settings.database_url) as db:
        row = db.execute("SELECT AVG(LENGTH(state)) FROM pledger_events").fetchone()
    return int(row[0]) if row and row[0] else 0


def average_row_size(db_path: Path) -> int:
    db = sqlite3.connect(db_path)
    (size,) = db.execute("SELECT AVG(LENGTH(state)) FROM stored_events").fetchone()
    db.close()
    return int(size)


# The console script beside this interpreter first (python bench/run.py from the venv works
# without the venv on PATH), then whatever PATH holds.
PLEDGER = (
    shutil.which("pledger", path=str(Path(sys.executable).parent))
    or shutil.which("pledger")
    or "pledger"
)


# ---- the server ---------------------------------------------------------------------------

SIGN_IN_LINK = re.compile(r"/signin\?token=(pl_[A-Za-z0-9_-]+)")


class Target(Protocol):
    """Where the append clients send their requests."""

    port: int
    token: str


class Server:
    def __init__(
        self,
        settings: Settings,
        directory: Path,
        workers: int = 1,
        *,
        projection_process: bool = False,
    ) -> None:
        self.port = free_port()
        env = dict(os.environ)
        args = [PLEDGER, "serve", "--port", str(self.port)]
        args += ["--workers", str(workers)]
        if settings.database_url:
            env["PLEDGER_DATABASE_URL"] = settings.database_url
        else:
            args += ["--db", str(settings.db_path)]
        self.projection: subprocess.Popen[bytes] | None = None
        if projection_process:
            # PostgreSQL: one `pledger project` keeps the views; the workers run no runner.
            self.projection_log = (directory / "project.log").open("wb")
            self.projection = subprocess.Popen(
                [PLEDGER, "project"], env=env, stdout=self.projection_log, stderr=subprocess.STDOUT
            )
            args.append("--no-projection")
        self.log = (directory / "server.log").open("wb")
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self.log)
        assert self.process.stdout is not None
        self.token = ""
        for raw in self.process.stdout:
            link = SIGN_IN_LINK.search(raw.decode())
            if link:
                self.token = link.group(1)
                break
        # Keep reading what the server prints (access log), or it blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = self.get("/healthz")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        msg = "the server did not start"
        raise RuntimeError(msg)

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.log.write(raw)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def sign_in(self) -> str:
        """Open a web session through the printed sign-in link; its cookie, for page figures."""
        conn = self.connection()
        conn.request("GET", f"/signin?token={self.token}")
        response = conn.getresponse()
        response.read()
        conn.close()
        cookies = response.msg.get_all("set-cookie") or []
        return "; ".join(c.split(";", 1)[0] for c in cookies)

    def get(
        self, path: str, conn: http.client.HTTPConnection | None = None, cookie: str = ""
    ) -> tuple[int, bytes]:
        own = conn or self.connection()
        headers = {"Cookie": cookie} if cookie else {"Authorization": f"Bearer {self.token}"}
        own.request("GET", path, headers=headers)
        response = own.getresponse()
        body = response.read()
        if conn is None:
            own.close()
        return response.status, body

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        if self.projection is not None:
            self.projection.terminate()
            self.projection.wait(timeout=30)
            self.projection_log.close()


class FloorServer:
    """``bench/floor_app.py`` under uvicorn: the same framework, body model and clients as the
    append figure, no ledger work (``floor_framework_eps``)."""

    token = "floor"

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = (directory / "floor.log").open("wb")
        command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app"]
        command += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        msg = "the floor app did not start"
        raise RuntimeError(msg)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


class RawHttp:
    """A keep-alive HTTP/1.1 connection that sends prepared request bytes and reads the answer
    by its Content-Length: the append clients cost the 2-core machine as little CPU as possible,
    so the figure is the server's (http.client spends about 0.25 ms of CPU a request)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.pending:
            self.pending += self._receive()
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        found = CONTENT_LENGTH.search(head)
        if found is None:
            msg = f"an answer without Content-Length: {head[:200]!r}"
            raise RuntimeError(msg)
        length = int(found.group(1))
        while len(rest) < length:
            rest += self._receive()
        self.pending = rest[length:]
        return int(head[9:12]), rest[:length]

    def _receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            msg = "the server closed the connection"
            raise RuntimeError(msg)
        return chunk

    def close(self) -> None:
        self.sock.close()


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, seconds) used so far by process ``pid`` and its children (the
    worker processes of ``pledger serve --workers N``); 0.0 where there is no /proc."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK") if total else 0.0


def append_over_http(
    server: Target,
    partners: list[str],
    seconds: float,
    cpu_us: list[float] | None = None,
    pid: int | None = None,
) -> tuple[float, float]:
    """8 clients, each recording contacts on 100 partners of its own, for ``seconds``. With
    ``pid`` (the server's process), appends the server's CPU time per timed request, in µs
    (warm-up excluded), to ``cpu_us``: a figure the machine's other load moves less than the
    rate."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    body = orjson.dumps({"type": "contact_made", "channel": "phone", "direction": "inbound"})

    def post(partner: str) -> bytes:
        return (
            f"POST /v1/partners/{partner}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def mine_of(index: int) -> list[bytes]:
        return [post(partners[(index * 100 + k) % len(partners)]) for k in range(100)]

    ready = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        conn = RawHttp(server.port)
        mine = mine_of(index)
        # Warm up on the same connection (so on the same server process): one untimed post to
        # each of its partners, so the figure is the steady state of a working day rather than
        # the first touch after a restart.
        for request in mine:
            conn.exchange(request)
        ready.wait()
        stop_at = time.monotonic() + seconds
        rng = random.Random(index)
        local: list[float] = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            status, answer = conn.exchange(rng.choice(mine))
            local.append(time.perf_counter() - started)
            if status != 201:
                with lock:
                    errors.append(f"{status} {answer[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.wait()
    cpu_before = process_cpu_seconds(pid) if pid is not None else 0.0
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if pid is not None and cpu_us is not None and latencies:
        cpu_us.append((process_cpu_seconds(pid) - cpu_before) / len(latencies) * 1e6)
    if errors:
        msg = f"{len(errors)} appends failed, e.g. HTTP {errors[0]}"
        raise RuntimeError(msg)
    return len(latencies) / elapsed, percentile(latencies, 0.99) * 1000


def p95_ms(
    server: Server, paths: Callable[[int], str], requests: int = 60, cookie: str = ""
) -> float:
    """The 95th percentile of one client's GETs in milliseconds (a page with ``cookie``)."""
    conn = server.connection()
    timings = []
    for i in range(requests):
        started = time.perf_counter()
        status, body = server.get(paths(i), conn, cookie)
        timings.append(time.perf_counter() - started)
        if status != 200:
            msg = f"GET {paths(i)} answered {status}: {body[:200]!r}"
            raise RuntimeError(msg)
    conn.close()
    return percentile(timings[5:], 0.95) * 1000  # the first few warm caches


def p95_beside_heavy(
    server: Server, light: Callable[[int], str], heavy: str, clients: int = 3
) -> tuple[float, int, int]:
    """Issue 10 item 11: the p95 (ms) of light GETs while ``clients`` threads keep asking for
    ``heavy`` (an HTML report); with how many heavy requests were answered 200 and 503 (past
    the server's limit) meanwhile."""
    done = threading.Event()
    answered: Counter[int] = Counter()

    def keep_asking() -> None:
        conn = server.connection()
        while not done.is_set():
            status, _ = server.get(heavy, conn)
            answered[status] += 1
            if status == 503:
                time.sleep(0.2)
        conn.close()

    threads = [threading.Thread(target=keep_asking) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)  # the reports are under way
        p95 = p95_ms(server, light, 60)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    return p95, answered[200], answered[503]


def read_after_write(
    server: Server, partners: list[str], path: str, cookie: str = "", rounds: int = 10
) -> float:
    """The median GET of ``path`` (a page with ``cookie``), in ms, right after a write: answers
    kept per position and day are then computed afresh over every partner."""
    body = orjson.dumps({"type": "contact_made", "channel": "email", "direction": "outbound"})
    conn = server.connection()
    timings = []
    for i in range(rounds):
        conn.request(
            "POST",
            f"/v1/partners/{partners[i]}/events",
            body=body,
            headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        answer.read()
        if answer.status != 201:
            msg = f"a write before the home page answered {answer.status}"
            raise RuntimeError(msg)
        started = time.perf_counter()
        status, _ = server.get(path, conn, cookie)
        timings.append(time.perf_counter() - started)
        if status != 200:
            msg = f"GET {path} answered {status}"
            raise RuntimeError(msg)
    conn.close()
    return statistics.median(timings) * 1000


def startup_verification(server: Server, seconds: float = 900.0) -> int:
    """Wait for the server's start-up verification of the whole log (api.verifying: in the
    background, a child process on a large log), so that it does not run beside the figures
    that follow; returns its duration in ms, as the server measured it (the run alone, on a
    server taking no requests: ``audit_verify_run_ms``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = server.get("/healthz")
        verification = orjson.loads(body)["verification"] if status == 200 else {}
        if verification.get("ok") is not None and not verification["running"]:
            status, body = server.get("/v1/audit/verify")
            if status != 200:
                msg = f"/v1/audit/verify answered {status}: {body[:200]!r}"
                raise RuntimeError(msg)
            latest = orjson.loads(body)
            if not latest["ok"]:
                msg = f"the bench's ledger failed verification: {latest['problems'][:3]}"
                raise RuntimeError(msg)
            return int(latest["duration_ms"])
        time.sleep(0.5)
    msg = f"no start-up verification finished within {seconds} s"
    raise RuntimeError(msg)


def partners_as_of(server: Server, as_of_past: str) -> tuple[float, float]:
    """The partners list sorted by health at past dates (issue 17 item 6): the median first
    ask at each of three dates never asked before (every partner folded at that ``as_of``),
    and the p95 of asks rotating over those dates, three sorts, with a second page by cursor.
    Both in ms."""
    day = datetime.fromisoformat(as_of_past)
    dates = [(day - timedelta(days=n)).strftime("%Y-%m-%d") for n in (0, 45, 200)]
    conn = server.connection()
    firsts = []
    for past in dates:
        started = time.perf_counter()
        status, _ = server.get(f"/v1/partners?sort=health&as_of={past}", conn)
        firsts.append(time.perf_counter() - started)
        if status != 200:
            msg = f"the partners list at {past} answered {status}"
            raise RuntimeError(msg)
    conn.close()
    paths = [
        f"/v1/partners?sort={sort}&as_of={past}&limit=50"
        for past in dates
        for sort in ("health", "name", "last_touch")
    ]
    cursor_of = {}
    for path in paths:
        status, body = server.get(path)
        cursor_of[path] = orjson.loads(body)["next_cursor"] if status == 200 else None
    asks = [*paths, *(f"{path}&cursor={cursor_of[path]}" for path in paths if cursor_of[path])]
    steady = p95_ms(server, lambda i: asks[i % len(asks)], 5 + 3 * len(asks))
    return round(statistics.median(firsts) * 1000, 1), round(steady, 1)


# ---- rebuild ------------------------------------------------------------------------------


REBUILT = re.compile(r"rebuilt views from (\d+) events in [\d.]+ s \(([\d,]+) events/s\)")


def rebuild(settings: Settings) -> tuple[float, int, float]:
    """Run `pledger rebuild`: its wall time as a subprocess (start-up included), the rebuild's
    own events a second (as it prints them: without interpreter start-up and imports), and the
    peak resident memory of it and its worker processes together, in MB."""
    env = dict(os.environ)
    args = [PLEDGER, "rebuild"]
    if settings.database_url:
        env["PLEDGER_DATABASE_URL"] = settings.database_url
    else:
        args += ["--db", str(settings.db_path)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_kb = 0
    while process.poll() is None:
        peak_kb = max(peak_kb, tree_rss_kb(process.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode:
        msg = f"pledger rebuild failed ({process.returncode}): {err.decode()[-2000:]}"
        raise RuntimeError(msg)
    found = REBUILT.search(out.decode())
    if found is None:
        msg = f"pledger rebuild printed no rate: {out.decode()!r}"
        raise RuntimeError(msg)
    if not peak_kb:  # no /proc here: the largest single process
        peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return elapsed, int(found.group(2).replace(",", "")), peak_kb / 1024


# ---- import ----------------------------------------------------------------------------------


def tree_costs(settings: Settings, directory: Path, page: int = 500) -> dict[str, float]:
    """What the Merkle tree (issue 15) adds to keeping the views, over this ledger's own event
    hashes: per event appended (hashing its leaf and the nodes it completes, and writing them;
    the rows ride in the transaction the views write anyway, so no commit of their own), and
    over a whole rebuild. Hashing is timed as DigestChain.extend (pages of ``page`` events, as
    the catch-up takes them) less the digest alone; writing, into a merkle_nodes table like
    the views' in a scratch SQLite file beside the log (the PostgreSQL views COPY the same
    rows)."""
    from domain.hashing import GENESIS, digest_step
    from projections.rows import DigestChain

    services = open_services(settings)
    try:
        hashes = list(enumerate(services.keeper.log.hashes(0, services.ledger.last_position()), 1))
    finally:
        services.close()
    started = time.perf_counter()
    digest = GENESIS
    for _, event_hash in hashes:
        digest = digest_step(digest, event_hash)
    digest_only = time.perf_counter() - started
    chain, rows = DigestChain(), []
    started = time.perf_counter()
    for start in range(0, len(hashes), page):
        chain.extend(hashes[start : start + page])
        rows.append(chain.take_tree())
    with_tree = time.perf_counter() - started
    scratch_path = directory / "tree-scratch.db"
    scratch_path.unlink(missing_ok=True)  # a kept ledger's directory (--keep) has one
    scratch = sqlite3.connect(scratch_path)
    scratch.execute(
        "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash TEXT NOT "
        "NULL, position BIGINT, PRIMARY KEY (level, idx))"
    )
    scratch.execute("CREATE INDEX merkle_nodes_position ON merkle_nodes (position)")
    started = time.perf_counter()
    with scratch:
        for batch in rows:
            scratch.executemany("INSERT INTO merkle_nodes VALUES (?, ?, ?, ?)", batch)
    writes = time.perf_counter() - started
    scratch.close()
    added = max(with_tree - digest_only, 0.0) + writes
    return {
        "tree_append_us": round(added / max(len(hashes), 1) * 1e6, 2),
        "tree_rebuild_seconds": round(added, 2),
    }


def import_events(settings: Settings, directory: Path, partner_ids: list[str], rows: int) -> float:
    """Run `pledger import events` of ``rows`` contact_made rows (on the ledger's partners, by
    id, 100 rows each) as a subprocess; returns its wall time in seconds (start-up, checking
    every row and the one transaction that records them all)."""
    from api.importing import EVENT_COLUMNS

    path = directory / "import.csv"
    owners = partner_ids[: max(1, rows // 100)]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=EVENT_COLUMNS, restval="")
        writer.writeheader()
        for n in range(rows):
            writer.writerow(
                {
                    "partner": owners[n % len(owners)],
                    "type": "contact_made",
                    "occurred_at": f"2026-01-{1 + n % 28:02d}T12:00:00Z",
                    "channel": "email",
                    "direction": "outbound",
                    "summary": f"newsletter {n}",
                }
            )
    env = dict(os.environ)
    args = [PLEDGER, "import", "events", str(path)]
    if settings.database_url:
        env["PLEDGER_DATABASE_URL"] = settings.database_url
    else:
        args += ["--db", str(settings.db_path)]
    started = time.perf_counter()
    done = subprocess.run(args, env=env, check=False, capture_output=True, encoding="utf-8")
    if done.returncode:
        msg = f"pledger import failed ({done.returncode}): {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return time.perf_counter() - started


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's finished subprocesses so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_cpu_figures(rows: int, cpu_seconds: float) -> dict[str, float]:
    """The import's own CPU time (user + system of the `pledger import` subprocess) and the
    rows a second it would reach with a core to itself: on a shared machine the wall time
    also counts the time spent waiting for a core."""
    return {
        "import_cpu_seconds": round(cpu_seconds, 1),
        "import_cpu_us_per_row": round(cpu_seconds / rows * 1e6, 1),
        "import_cpu_eps": round(rows / cpu_seconds),
    }


def personal_append_us(directory: Path, appends: int) -> tuple[float, float]:
    """Microseconds per append, through the write side on its own SQLite file, of a
    ``contact_made`` with a summary: stored as format 1 (the summary hashed as it is) and as
    format 2 (a salted commitment, the value encrypted with AES-GCM under the partner's key and
    inserted beside it, issue 16). The difference is what commitments and encryption cost."""
    from api.wiring import open_ledger

    found = []
    for sealed in (False, True):
        ChainedAggregate.SEAL_PERSONAL_DATA = sealed
        ledger = open_ledger(Settings(db_path=directory / f"personal-{sealed}.db"))
        stamp = Stamp.now("bench")
        ids = [
            ledger.register_partner(
                PartnerRegistered(name=f"Person {n}", kind="individual"), stamp
            ).stream_id
            for n in range(20)
        ]
        summary = "Talked about the stipend, her access needs and the next listening session."
        started = time.perf_counter()
        for n in range(appends):
            data = ContactMade(channel="phone", direction="inbound", summary=f"{summary} {n}")
            ledger.record(ids[n % len(ids)], data, stamp)
        found.append((time.perf_counter() - started) / appends * 1e6)
        ledger.close()
    ChainedAggregate.SEAL_PERSONAL_DATA = True
    return found[0], found[1]


def personal_crypto_us(rounds: int = 20_000) -> tuple[float, float]:
    """Microseconds of the CPU work alone, per event: committing a summary and encrypting it
    (domain.personal.seal, encrypt) when an event is written; decrypting it when it is read."""
    from domain.personal import decrypt, encrypt, new_key, seal

    key, stream = new_key(), "6f1c2d6e-0000-4000-8000-000000000000"
    data = {"channel": "phone", "summary": "Talked about the stipend and her access needs."}
    started = time.perf_counter()
    for n in range(rounds):
        sealed = seal(data, ("summary",))
        assert sealed is not None
        nonce, box = encrypt(key, stream, n, stream, sealed.plaintext())
    written = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        decrypt(key, stream, rounds - 1, stream, nonce, box)
    return written, (time.perf_counter() - started) / rounds * 1e6


def writer_memory(directory: Path, partners: int, history: int, appends: int) -> dict[str, Any]:
    """The write side's memory and cold writes (issue 17 item 6): bench/writer_memory.py, in a
    process of its own (its memory is what is measured), on a SQLite ledger of its own of
    ``partners`` x ``history`` events. Returns its figures (see that file): the writer's
    ``writer_cold_write_ms`` (per write, wall), ``writer_cold_write_cpu_ms``,
    ``writer_cold_write_mb``, ``writer_cold_events_read`` (per write) and
    ``writer_mb_per_1000_appends`` (tracemalloc, MB)."""
    out = directory / "writer_memory.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "writer_memory.py"),
            "--partners",
            str(partners),
            "--history",
            str(history),
            "--appends",
            str(appends),
            "--json",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    found: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return found


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants now, in KB (Linux /proc; 0
    elsewhere). Pages the processes share are counted in each: an upper bound."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # gone meanwhile, or no /proc
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pending.extend(int(child) for child in children)
    return total


# ---- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 partners x 100 events")
    parser.add_argument("--partners", type=int, default=None)
    parser.add_argument("--events", type=int, default=100, help="events per partner")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--append-seconds", type=float, default=20.0)
    parser.add_argument(
        "--import-rows", type=int, default=100_000, help="rows of the timed events import"
    )
    parser.add_argument("--workers", type=int, default=1, help="pledger serve --workers")
    parser.add_argument(
        "--projection-process",
        action="store_true",
        help="PostgreSQL: serve with --no-projection beside one `pledger project` process",
    )
    parser.add_argument(
        "--personal-appends",
        type=int,
        default=2000,
        help="appends timed with and without personal-data commitments and encryption",
    )
    parser.add_argument(
        "--writer-history",
        type=int,
        default=1000,
        help="events of each of the 60 partners the writer's memory is measured on (0: skip)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the built ledger's directory (printed)"
    )
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="stop after the rebuild's figures (with --keep: a ledger to profile rebuilds on)",
    )
    parser.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="a directory kept by --keep: measure its rebuild again, building nothing "
        "(implies --rebuild-only and --keep)",
    )
    args = parser.parse_args()
    if args.ledger:
        args.rebuild_only = args.keep = True
    if args.projection_process and args.store != "postgres":
        parser.error("--projection-process needs --store postgres")
    partners = args.partners or (1000 if args.quick else 10_000)

    directory = args.ledger or Path(tempfile.mkdtemp(prefix="pledger-bench-"))
    if args.store == "postgres":
        url = os.environ.get("PLEDGER_DATABASE_URL")
        if not url:
            parser.error("--store postgres needs PLEDGER_DATABASE_URL")
        settings = Settings(db_path=directory / "unused.db", database_url=url)
    else:
        settings = Settings(db_path=directory / "pledger.db")
    if args.ledger:
        built = kept_ledger(settings)
        partners = len(built["partners"])
    else:
        print(f"Building {partners:,} partners x ~{args.events} events in {directory}")
        built = build_ledger(settings, partners, args.events)

    figures: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "store": args.store,
        "partners": partners,
        "events": built["events"],
        "workers": args.workers,
        "projection_process": args.projection_process,
    }
    print("Rebuilding every view from position 0")
    seconds, rebuild_eps, peak_mb = rebuild(settings)
    figures["rebuild_seconds"] = round(seconds, 2)
    figures["rebuild_eps"] = rebuild_eps
    figures["rebuild_peak_rss_mb"] = round(peak_mb)
    if args.store == "sqlite":
        floor_eps, _ = floor_read_decode(settings.db_path)
        figures["floor_read_decode_eps"] = round(floor_eps)
        figures["rebuild_ratio"] = round(figures["rebuild_eps"] / floor_eps, 3)

    figures.update(tree_costs(settings, directory))
    if figures["rebuild_seconds"]:
        share = figures["tree_rebuild_seconds"] / figures["rebuild_seconds"]
        figures["tree_rebuild_share"] = round(share, 3)
    if args.rebuild_only:
        report(figures, args.json)
        finish(directory, keep=args.keep)
        return

    print("Serving over HTTP")
    server = Server(settings, directory, args.workers, projection_process=args.projection_process)
    try:
        figures["audit_verify_run_ms"] = startup_verification(server)
        partner_ids = built["partners"]
        append_cpu: list[float] = []
        figures["append_http_eps"], p99 = append_over_http(
            server, partner_ids[100:], args.append_seconds, append_cpu, server.process.pid
        )
        if append_cpu:
            figures["append_server_cpu_us"] = round(append_cpu[0])
        figures["append_http_eps"] = round(figures["append_http_eps"])
        figures["append_http_p99_ms"] = round(p99, 1)
        if args.store == "sqlite":
            floor = floor_commit_per_row(directory, average_row_size(settings.db_path))
            figures["floor_commit_per_row_eps"] = round(floor)
            figures["append_http_ratio"] = round(figures["append_http_eps"] / floor, 3)
        rng = random.Random(3)
        sample = [rng.choice(partner_ids) for _ in range(200)]
        figures["p95_ms"] = {
            "health": round(p95_ms(server, lambda i: f"/v1/partners/{sample[i]}/health"), 1),
            "timeline": round(
                p95_ms(server, lambda i: f"/v1/partners/{sample[i]}/timeline?limit=100"), 1
            ),
            "accountability": round(p95_ms(server, lambda _: "/v1/accountability", 30), 1),
            "coalition_report": round(
                p95_ms(server, lambda _: f"/v1/coalitions/{built['coalition']}/report", 30), 1
            ),
            "partners_list": round(p95_ms(server, lambda _: "/v1/partners?limit=50"), 1),
            "as_of_health": round(
                p95_ms(
                    server,
                    lambda _: f"/v1/partners/{built['heavy']}/health?as_of={built['as_of_past']}",
                ),
                1,
            ),
        }
        # The web UI's pages, with a session cookie as a browser sends them (issue 9).
        cookie = server.sign_in()
        figures["p95_ms"]["ui_home"] = round(p95_ms(server, lambda _: "/", 30, cookie), 1)
        figures["p95_ms"]["ui_partners"] = round(
            p95_ms(server, lambda _: "/partners?sort=health&order=asc", 30, cookie), 1
        )
        figures["p95_ms"]["ui_partner"] = round(
            p95_ms(server, lambda i: f"/partners/{sample[i]}", 60, cookie), 1
        )
        figures["ui_home_after_write_ms"] = round(read_after_write(server, sample, "/", cookie), 1)
        # Searching and sorting every partner (issue 17 item 6): steady, and after a write.
        search = "/v1/partners?q=Youth&limit=50&sort="
        for sort in ("health", "last_touch"):
            figures["p95_ms"][f"partners_q_{sort}"] = round(
                p95_ms(server, lambda _, s=sort: search + s, 30), 1
            )
            figures[f"partners_q_{sort}_after_write_ms"] = round(
                read_after_write(server, sample, search + sort), 1
            )
        first, steady = partners_as_of(server, built["as_of_past"])
        figures["partners_as_of_first_ms"] = first
        figures["p95_ms"]["partners_as_of"] = steady
        # What a reader sees: the latest run, answered at once (the run is in the background).
        figures["p95_ms"]["audit_verify"] = round(p95_ms(server, lambda _: "/v1/audit/verify"), 1)
        figures["audit_verify_ms"] = figures["p95_ms"]["audit_verify"]
        beside, reports, refused = p95_beside_heavy(
            server,
            lambda i: f"/v1/partners/{sample[i]}/health",
            f"/v1/coalitions/{built['coalition']}/report?format=html",
        )
        figures["p95_ms"]["health_beside_html_reports"] = round(beside, 1)
        figures["html_reports_answered_meanwhile"] = reports
        figures["html_reports_refused_503_meanwhile"] = refused
    finally:
        server.stop()

    print("Serving the framework floor (bench/floor_app.py) to the same clients")
    floor_server = FloorServer(directory)
    try:
        floor_cpu: list[float] = []
        floor_eps, _ = append_over_http(
            floor_server,
            partner_ids[100:],
            args.append_seconds,
            floor_cpu,
            floor_server.process.pid,
        )
    finally:
        floor_server.stop()
    figures["floor_framework_eps"] = round(floor_eps)
    if floor_cpu:
        figures["floor_framework_cpu_us"] = round(floor_cpu[0])
    figures["append_framework_ratio"] = round(figures["append_http_eps"] / floor_eps, 3)

    if args.import_rows:
        print(f"Importing {args.import_rows:,} events from a CSV file")
        cpu_before = children_cpu_seconds()
        seconds = import_events(settings, directory, built["partners"], args.import_rows)
        figures.update(import_cpu_figures(args.import_rows, children_cpu_seconds() - cpu_before))
        figures["import_rows"] = args.import_rows
        figures["import_seconds"] = round(seconds, 1)
        figures["import_rows_per_s"] = round(args.import_rows / seconds)
        figures["import_eps"] = figures["import_rows_per_s"]
        floor = floor_executemany(directory, average_stored_size(settings), args.import_rows)
        figures["floor_executemany_eps"] = round(floor)
        figures["import_ratio"] = round(figures["import_eps"] / floor, 3)

    if args.personal_appends:
        print(f"Timing {args.personal_appends:,} appends with and without commitments")
        plain, sealed = personal_append_us(directory, args.personal_appends)
        figures["append_format1_us"] = round(plain)
        figures["append_format2_us"] = round(sealed)
        figures["personal_data_cost_us"] = round(sealed - plain)
        written, read = personal_crypto_us()
        figures["personal_seal_encrypt_us"] = round(written, 1)
        figures["personal_decrypt_us"] = round(read, 1)

    if args.writer_history:
        print(f"The writer's memory and cold writes: 60 partners x {args.writer_history} events")
        found = writer_memory(directory, 60, args.writer_history, 3000)
        for key in (
            "writer_cold_write_ms",
            "writer_cold_write_cpu_ms",
            "writer_cold_write_mb",
            "writer_cold_events_read",
            "writer_mb_per_1000_appends",
        ):
            figures[key] = found[key]

    report(figures, args.json)
    finish(directory, keep=args.keep)


def finish(directory: Path, *, keep: bool) -> None:
    """Remove the bench's directory, or say where it is kept."""
    if keep:
        print(f"kept the ledger in {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


def report(figures: dict[str, Any], json_path: Path | None) -> None:
    """Print the figures against their targets; write them to ``json_path`` if given."""
    targets = {
        "append_http_ratio": (">=", 0.5),
        "append_http_p99_ms": ("<=", 50),
        "append_framework_ratio": (">=", 0.5),
        "import_ratio": (">=", 0.25),
        "rebuild_ratio": (">=", 0.33),
        "rebuild_seconds": ("<=", 30),
        "rebuild_peak_rss_mb": ("<=", 600),
        "audit_verify_ms": ("<=", 30),
    }
    latency_targets = {
        "health": 10,
        "timeline": 20,
        "accountability": 50,
        "coalition_report": 100,
        "partners_list": 30,
        "as_of_health": 20,
        "health_beside_html_reports": 100,
        "ui_home": 50,
        "ui_partners": 50,
        "ui_partner": 50,
        "partners_q_health": 30,
        "partners_q_last_touch": 30,
        "partners_as_of": 30,
        "audit_verify": 30,
    }
    print()
    print(f"{'figure':<36}{'value':>14}  target")
    for key, value in figures.items():
        if key in ("machine", "p95_ms"):
            continue
        target = targets.get(key)
        mark = ""
        if target:
            ok = value >= target[1] if target[0] == ">=" else value <= target[1]
            mark = f"{target[0]} {target[1]}  {'met' if ok else 'MISSED'}"
        print(f"{key:<36}{value!s:>14}  {mark}")
    for key, value in figures.get("p95_ms", {}).items():
        limit = latency_targets[key]
        verdict = "met" if value <= limit else "MISSED"
        print(f"{'p95 ' + key + ' (ms)':<36}{value:>14}  <= {limit}  {verdict}")
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nwrote {json_path}")


if __name__ == "__main__":
    main()
