"""Verification of the whole log in the background (issue 17 item 6).

Recomputing every hash, chain link and the digest (projections.audit) reads the whole log:
5.7 s on 113,000 events. ``GET /v1/audit/verify`` therefore answers at once from the latest
completed run, saying when it ran (``verified_at``, ``duration_ms``), how far it read
(``position``) against the log now (``log_position``, ``current``) and whether a run is under
way (``running``). Runs happen:

* after start-up (someone may have changed the store while no server ran),
* once ``PLEDGER_VERIFY_AFTER_EVENTS`` events were added since the latest run,
* at least every ``PLEDGER_VERIFY_EVERY`` seconds (stored content can change without the log
  growing),
* when a steward asks for a fresh one (``POST /v1/audit/verify``, the audit page's button),
* when someone asks and no run has ever completed.

Automatic runs (not asked-for ones) leave the machine idle at least ``IDLE_FACTOR`` times as
long as the latest run took, so that on a large log they cost at most a tenth of one core.

A run over more than ``IN_PROCESS_EVENTS`` events reads the log in a child process of the
server (``python -m api.verifying``) at a lower CPU priority (``nice`` +10), so that the
server's own threads keep the interpreter lock and the requests go on at their usual speed;
the child reports its progress on stdout and exits when the server goes (its stdin closes). A
smaller log is verified in the server's own process, sooner than a child would start.

One run at a time per ledger, whichever server process runs it: a run claims the
``running`` row of the ``api_verification`` table (api.recorders) beside the log, touches it
every ``TOUCH_SECONDS`` while it reads, and on finishing writes the ``latest`` row and drops
its claim in one transaction. Every process answers from those rows, so on PostgreSQL several
API workers share one run's result. A claim not touched for ``CLAIM_STALE_SECONDS`` (its
process was killed) is taken over. On shutdown a run stops at its next event and drops its
claim.

``pledger verify`` stays a full, synchronous check (and its result becomes the latest too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from api.settings import Settings
from domain.hashing import format_instant, parse_instant

__all__ = [
    "CLAIM_STALE_SECONDS",
    "IDLE_FACTOR",
    "RETRY_AFTER_SECONDS",
    "VerificationState",
    "VerificationStopped",
    "Verifications",
    "now_text",
    "verify_in_child",
]

logger = logging.getLogger("pledger.verify")

CLAIM_STALE_SECONDS = 30.0
TOUCH_SECONDS = 2.0  # how often a run says it is alive (and how far it got)
POLL_SECONDS = 5.0  # how often a server looks whether a run is due
ERROR_RETRY_SECONDS = 60.0  # after a run that could not run (a store down, a child failing)
IDLE_FACTOR = 10
WAIT_LIMIT_SECONDS = 60.0  # the longest a request waits for a run on a small log
RETRY_AFTER_SECONDS = 5
IN_PROCESS_EVENTS = 5_000  # a log this small is verified in the server's own process
PROGRESS_EVERY = 1_000  # events between two progress lines of a child


class VerificationStopped(Exception):
    """Raised inside a run when its server is shutting down."""


class VerificationStore(Protocol):
    """The ``api_verification`` rows (api.recorders)."""

    def claim_verification(
        self, run_id: str, at: str, stale_before: str, progress: str
    ) -> bool: ...
    def touch_verification(self, run_id: str, at: str, progress: str) -> None: ...
    def release_verification(self, run_id: str) -> None: ...
    def verification_rows(self) -> dict[str, dict[str, str]]: ...


# verify(advance, run_id=..., started_at=..., run_by=...): a whole run, its result kept as the
# latest (Services.verify, or verify_in_child).
Verify = Callable[..., object]


def now_text() -> str:
    """Now, as every stored time is written (RFC 3339 UTC, six fraction digits: sorts as text)."""
    return format_instant(datetime.now(UTC))


@dataclass(frozen=True)
class VerificationState:
    """What the store says now: ``latest`` (the latest completed run's result: SPEC's keys,
    ``unchecked``, ``started_at``, ``verified_at``, ``duration_ms``, ``run_by``) or None;
    ``running`` (``{started_at, events_checked, events, run_by}`` of a live run) or None; the
    log's last position now."""

    latest: dict[str, Any] | None
    running: dict[str, Any] | None
    log_position: int

    def answer(self) -> dict[str, Any]:
        """The latest run as ``GET /v1/audit/verify`` shows it (needs ``latest``)."""
        assert self.latest is not None
        return {
            **self.latest,
            "log_position": self.log_position,
            "current": self.latest["position"] == self.log_position,
            "running": self.running,
        }

    def health(self) -> dict[str, Any]:
        """For /healthz (no token: counts and positions, no stream ids)."""
        if self.latest is None:
            return {"ok": None, "verified_at": None, "running": self.running is not None}
        return {
            "ok": self.latest["ok"],
            "problems": len(self.latest["problems"]),
            "verified_at": self.latest["verified_at"],
            "position": self.latest["position"],
            "current": self.latest["position"] == self.log_position,
            "running": self.running is not None,
        }


class Verifications:
    """One server process's part in verifying the ledger (see the module's docstring).

    ``verify(advance, run_id=..., started_at=...)`` runs a whole verification and keeps its
    result (``Services.verify``); ``store`` holds the shared rows; ``log_position()`` is the
    log's last position; ``ready()`` says whether the views may be compared with (not while
    they are rebuilt at start-up).
    """

    def __init__(
        self,
        verify: Verify,
        store: VerificationStore,
        log_position: Callable[[], int],
        *,
        every_seconds: int,
        after_events: int,
        wait_events: int,
        ready: Callable[[], bool] = lambda: True,
        run_by: str = "pledger serve",
    ) -> None:
        self._verify = verify
        self.store = store
        self.log_position = log_position
        self.every_seconds = every_seconds
        self.after_events = after_events
        self.wait_events = wait_events
        self.ready = ready
        self.run_by = run_by
        self.error: Exception | None = None  # what stopped the latest attempt, for /healthz
        self._asked_at: str | None = None  # a run must start after this (start-up, a request)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._finished = threading.Condition()
        self._thread: threading.Thread | None = None

    # ---- reading ----------------------------------------------------------------------------

    def state(self) -> VerificationState:
        """The latest run, the live one, and the log's position now (two small queries)."""
        rows = self.store.verification_rows()
        latest = rows.get("latest")
        running = rows.get("running")
        live = None
        if running is not None and running["touched_at"] >= self._stale_before():
            live = {"started_at": running["started_at"], **orjson.loads(running["value"])}
        return VerificationState(
            orjson.loads(latest["value"]) if latest is not None else None,
            live,
            self.log_position(),
        )

    # ---- asking -----------------------------------------------------------------------------

    def ask(self) -> str:
        """Ask for a run that starts from now; returns when it was asked (``now_text()``), to
        recognise the run's result by its ``started_at``."""
        asked = now_text()
        with self._lock:
            self._asked_at = max(self._asked_at or asked, asked)
        self._wake.set()
        return asked

    def settle(self, asked: str) -> VerificationState:
        """After :meth:`ask`: on a log of at most ``wait_events`` events, wait (up to
        ``WAIT_LIMIT_SECONDS``) for a run that started at or after ``asked``; then the state.
        On a larger log (or with ``wait_events`` 0), the state at once (the run is under way)."""
        if self.wait_events and self.log_position() <= self.wait_events:
            self.wait_for(asked, WAIT_LIMIT_SECONDS)
        return self.state()

    def wait_for(self, asked: str, timeout: float) -> dict[str, Any] | None:
        """The result of a run that started at or after ``asked``, once there is one (None
        after ``timeout`` seconds). Woken at once by a run of this process; a run of another
        process is seen within a quarter of a second."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.store.verification_rows().get("latest")
            if latest is not None and latest["started_at"] >= asked:
                found: dict[str, Any] = orjson.loads(latest["value"])
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with self._finished:
                self._finished.wait(min(left, 0.25))

    # ---- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Verify in a thread of this process: a run after start-up, then whenever one is due."""
        self.ask()  # the start-up run
        self._thread = threading.Thread(target=self._loop, name="pledger-verify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a run under way stops at its next event and drops its claim."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            pause = POLL_SECONDS
            try:
                if self.ready() and self._due():
                    self.run_once()
                self.error = None
            except VerificationStopped:
                return
            except Exception as error:  # shown in /healthz; tried again later (or when asked)
                self.error = error
                pause = ERROR_RETRY_SECONDS
                logger.exception("the background verification failed to run")
            self._wake.wait(pause)

    def _due(self) -> bool:
        """Whether a run should start now (none running anywhere; see the module docstring)."""
        state = self.state()
        if state.running is not None:
            return False
        latest = state.latest
        if latest is None:
            return True
        with self._lock:
            asked = self._asked_at
        if asked is not None and latest["started_at"] < asked:
            return True
        finished = parse_instant(latest["verified_at"])
        now = datetime.now(UTC)
        if now < finished + IDLE_FACTOR * timedelta(milliseconds=latest["duration_ms"]):
            return False
        grown = state.log_position - int(latest["position"])
        if self.after_events and grown >= self.after_events:
            return True
        return bool(self.every_seconds) and now - finished >= timedelta(seconds=self.every_seconds)

    def run_once(self) -> dict[str, Any] | None:
        """Claim the ledger's run and verify the whole log; its result (as kept), or None when
        another run holds the claim. Raises :class:`VerificationStopped` when the server stops
        meanwhile (the claim is dropped), and what the store raises."""
        run_id = uuid.uuid4().hex
        started = now_text()
        progress: dict[str, Any] = {
            "events_checked": 0,
            "events": self.log_position(),
            "run_by": self.run_by,
        }
        if not self.store.claim_verification(
            run_id, started, self._stale_before(), orjson.dumps(progress).decode()
        ):
            return None
        last_touch = time.monotonic()

        def advance(count: int) -> None:
            nonlocal last_touch
            progress["events_checked"] += count
            if self._stop.is_set():
                raise VerificationStopped
            if time.monotonic() - last_touch >= TOUCH_SECONDS:
                last_touch = time.monotonic()
                self.store.touch_verification(run_id, now_text(), orjson.dumps(progress).decode())

        try:
            self._verify(advance, run_id=run_id, started_at=started, run_by=self.run_by)
        except BaseException:
            self.store.release_verification(run_id)
            raise
        with self._finished:
            self._finished.notify_all()
        result = self.state().latest
        if result is not None and not result["ok"]:
            first = result["problems"][0]
            logger.error(
                "VERIFICATION FAILED: %d problem(s) in the log up to position %d; "
                "GET /v1/audit/verify lists them. First: position %d: %s",
                len(result["problems"]),
                result["position"],
                first["position"],
                first["problem"],
            )
        return result

    def _stale_before(self) -> str:
        return format_instant(datetime.now(UTC) - timedelta(seconds=CLAIM_STALE_SECONDS))


# ---- a run in a child process ---------------------------------------------------------------


def verify_in_child(settings: Settings, advance: Callable[[int], None], **run: str) -> None:
    """Verify the whole log in a child process (``python -m api.verifying``, niced) that keeps
    its result as ``Services.verify`` does; ``run``: its ``run_id``, ``started_at`` and
    ``run_by``. ``advance(n)`` is told the child's progress; when it raises (the server
    stops), the child is ended and the error goes on. Raises RuntimeError when the child
    fails (its error is on the server's stderr)."""
    order = {"settings": _settings_as_json(settings), **run}
    child = subprocess.Popen(
        [sys.executable, "-m", "api.verifying"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        # Settings go by stdin, not argv: a PostgreSQL URL may hold a password.
        child.stdin.write(orjson.dumps(order).decode() + "\n")
        child.stdin.flush()
        for line in child.stdout:
            advance(int(line))
    except BaseException:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()  # also what tells a child whose server has gone to stop
        child.stdout.close()
    if child.wait() != 0:
        msg = f"the verification process exited with status {child.returncode}"
        raise RuntimeError(msg)


def _settings_as_json(settings: Settings) -> dict[str, Any]:
    return {
        field.name: str(value) if isinstance(value, Path) else value
        for field in dataclasses.fields(settings)
        if (value := getattr(settings, field.name)) is not None
    }


def _settings_from_json(fields: dict[str, Any]) -> Settings:
    paths = {"db_path", "signing_key_file"}
    given: dict[str, Any] = {k: Path(v) if k in paths else v for k, v in fields.items()}
    return Settings(**given)


def _exit_when_the_server_goes() -> None:
    """In a child: the server holds our stdin open while it waits for us; EOF means it went."""
    sys.stdin.read()
    os._exit(3)


def _child() -> None:
    """``python -m api.verifying``: one run, as ordered on stdin (see ``verify_in_child``)."""
    from api.wiring import open_services  # the server's own modules, once in the child

    os.nice(10)  # the server's requests first
    order = orjson.loads(sys.stdin.readline())
    threading.Thread(target=_exit_when_the_server_goes, daemon=True).start()
    services = open_services(_settings_from_json(order.pop("settings")))
    pending = 0

    def advance(count: int) -> None:
        nonlocal pending
        pending += count
        if pending >= PROGRESS_EVERY:
            print(pending, flush=True)
            pending = 0

    try:
        services.verify(advance, **order)
    finally:
        services.close()
    if pending:
        print(pending, flush=True)


if __name__ == "__main__":
    _child()
