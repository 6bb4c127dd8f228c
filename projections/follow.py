"""The views kept by a separate projection process (PostgreSQL; SPEC §7, issue 17).

With ``pledger serve --no-projection``, the API workers leave keeping the views to one
``pledger project`` process. Two things cross between them, both through PostgreSQL itself:

* every transaction that moves the views' tracked position also sends
  ``NOTIFY pledger_views, '<position>'`` (``PostgresLedgerView``): delivered on commit, to
  every connection that listens. A worker's :class:`PositionListener` hands each position to
  its ``ViewKeeper``, which wakes the requests waiting for their write to show (read-your-
  writes), with no polling;
* the projection process holds a session-level advisory lock (:class:`ProjectionClaim`) while
  it runs: a second one refuses to start, and ``/healthz`` of every worker can tell whether one
  runs (:func:`projection_process_running`). PostgreSQL releases the lock when the process's
  connection ends, also when it was killed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

__all__ = [
    "PROJECTION_LOCK_KEY",
    "VIEWS_CHANNEL",
    "PositionListener",
    "ProjectionClaim",
    "projection_process_running",
]

logger = logging.getLogger("pledger.views")

VIEWS_CHANNEL = "pledger_views"
# pg_advisory_lock(bigint) key of the projection process; below 2**32, so that pg_locks shows
# it as classid 0, objid PROJECTION_LOCK_KEY, objsubid 1.
PROJECTION_LOCK_KEY = 0x706C6467  # "pldg"
STOP_CHECK_SECONDS = 0.5  # how soon a listener notices it was asked to stop
RECONNECT_SECONDS = 1.0


def _connect(env: Mapping[str, str], application_name: str) -> psycopg.Connection[Any]:
    """A connection of its own to the database the eventsourcing settings ``env`` name
    (``POSTGRES_DBNAME``, ``_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``), in autocommit."""
    return psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD", ""),
        application_name=application_name,
        autocommit=True,
        connect_timeout=10,
    )


class PositionListener:
    """Hands ``on_position`` every position the views reach, in whichever process keeps them,
    from a thread that LISTENs on :data:`VIEWS_CHANNEL`.

    After each (re)connection it first hands over ``current()`` (the tracked position read
    after LISTEN took effect), so nothing committed while it was not listening is missed. A
    lost connection is opened again after :data:`RECONNECT_SECONDS`; ``error`` holds the
    failure meanwhile (None while listening).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        on_position: Callable[[int], None],
        current: Callable[[], int],
    ) -> None:
        self.env = env
        self.on_position = on_position
        self.current = current
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="pledger-views-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with _connect(self.env, "pledger serve (views listener)") as conn:
                    conn.execute(f"LISTEN {VIEWS_CHANNEL}")
                    self.on_position(self.current())
                    self.error = None
                    while not self._stop.is_set():
                        # The timeout only lets stop() be noticed; a notification wakes it at once.
                        for notice in conn.notifies(timeout=STOP_CHECK_SECONDS):
                            self.on_position(int(notice.payload))
            except Exception as error:  # the database went away: listen again when it is back
                if self.error is None:
                    logger.warning("views listener lost its connection: %s", error)
                self.error = error
                self._stop.wait(RECONNECT_SECONDS)


class ProjectionClaim:
    """The projection process's claim on the views: a session advisory lock on a connection of
    its own, held until :meth:`release` (or until the process ends, however it ends)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> bool:
        """Take the claim; False when another projection process holds it."""
        conn = _connect(self.env, "pledger project")
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (PROJECTION_LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # ending the session releases the lock


def projection_process_running(cursor: Any) -> bool:
    """Whether a ``pledger project`` process holds its claim on this database (``cursor``: any
    cursor on it)."""
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = 0 AND objid = %s AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) "
        "AS running",
        (PROJECTION_LOCK_KEY,),
    )
    row = cursor.fetchone()
    return bool(row["running"] if isinstance(row, Mapping) else row[0])
