"""Builds the ledger's objects from settings; the CLI and the server both start here."""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

import orjson

from api.auth import TokenBook
from api.formats import REPORT_FORMATS
from api.service import LedgerService
from api.settings import Settings
from api.verifying import IN_PROCESS_EVENTS, Verifications, now_text, verify_in_child
from api.writer import GroupWriter
from domain.application import Partnerships
from domain.chained import ChainedAggregate
from domain.merkle import inclusion_proof
from domain.serialization import public_event
from projections.audit import AuditReport, ViewsSeen, verify_log
from projections.checkpoints import Checkpoint, Checkpoints, SigningKey, report_signature
from projections.evidence import canonical, make_bundle
from projections.locking import WriteLock
from projections.queries import At, LedgerQueries
from projections.runner import ViewKeeper, open_view
from projections.store import LedgerView

__all__ = ["Services", "cli_settings", "cli_user", "open_ledger", "open_services"]

CHECKPOINT_AGE = timedelta(days=1)
CHECKPOINT_POLL_SECONDS = 3600.0


def open_ledger(settings: Settings) -> Partnerships:
    """The write side on the configured store (creating the SQLite file and tables if new)."""
    if settings.store == "sqlite":
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    return Partnerships(env=settings.event_store_env())


@dataclass
class Services:
    """Everything a request or a command needs: the write side, the views, the queries."""

    settings: Settings
    ledger: Partnerships
    view: LedgerView
    keeper: ViewKeeper
    queries: LedgerQueries
    tokens: TokenBook
    writer: GroupWriter
    service: LedgerService

    @cached_property
    def checkpoints(self) -> Checkpoints:
        """The signed checkpoints, with the ledger's signing key (made on first use, see
        ``Settings.signing_key_path``)."""
        return Checkpoints(self.view, SigningKey.open(self.settings.signing_key_path))

    def checkpoint_covering(self, position: int) -> Checkpoint:
        """The latest checkpoint at or after ``position`` (made now when none is)."""
        self.keeper.wait_for(position)
        return self.checkpoints.covering(position)

    def report_headers(self, body: bytes, position: int) -> dict[str, str]:
        """What every report carries beside its bytes (which stay as they are, so a report made
        again is the same to the byte): the SHA-256 of the bytes and the ledger's Ed25519
        signature over those 32 bytes, the latest checkpoint covering the report's position
        (canonical JSON), and the public key."""
        checkpoint = self.checkpoint_covering(position)
        key = self.checkpoints.key
        digest, signature = report_signature(key, body)
        return {
            "Pledger-Report-SHA256": digest,
            "Pledger-Report-Signature": signature,
            "Pledger-Checkpoint": canonical(checkpoint.as_dict(key.public_key)).decode(),
            "Pledger-Public-Key": key.public_key,
        }

    def report_evidence(
        self, coalition_id: str, at: At, start: date | None, end: date | None
    ) -> bytes:
        """The evidence bundle of a coalition's report (``projections.evidence``): the json
        report, the coalition's and its members' events up to its position with their
        inclusion proofs in the checkpoint covering it, the checkpoint and the public key.
        Raises what the report raises (UnvouchedContent: 409)."""
        report = self.queries.report(coalition_id, at, start=start, end=end)
        body = REPORT_FORMATS["json"](report)
        position = int(report["position"])
        checkpoint = self.checkpoint_covering(position)
        streams = [coalition_id, *(m["partner_id"] for m in report["members"])]
        events = self._public_events(streams, position)
        leaves = self.view.leaves_at([e["position"] for e in events])
        indices = [leaves[e["position"]][0] for e in events]
        size = checkpoint.tree_size
        paths = self.view.tree_computed(
            lambda nodes: [inclusion_proof(nodes, index, size) for index in indices]
        )
        return make_bundle(
            self.checkpoints.key, body, events, list(zip(indices, paths, strict=True)), checkpoint
        )

    def _public_events(self, stream_ids: list[str], upto: int) -> list[dict[str, Any]]:
        """Every event of the streams up to position ``upto``, in the /v1/events shape without
        ``disclosed``, in position order. A bundle goes to coalition members, who may not read
        the partners' personal data (names, notes, summaries: SPEC §4): a format 2 event's
        ``data`` holds only salted commitments to them, so its hash checks without them."""
        positions = {
            (sid, entry.version): entry.position
            for sid, entries in self.keeper.log.streams(stream_ids).items()
            for entry in entries
        }
        found = []
        for sid in stream_ids:
            for stored in self.ledger.recorder.select_events(UUID(sid)):
                position = positions.get((sid, stored.originator_version))
                if position is not None and position <= upto:
                    event = self.ledger.mapper.to_domain_event(stored)
                    assert isinstance(event, ChainedAggregate.Event)
                    shown = public_event(event, position)
                    shown.pop("disclosed", None)  # personal values stay home (SPEC §4, §5)
                    found.append(shown)
        return sorted(found, key=lambda e: int(e["position"]))

    def verify(
        self,
        advance: Callable[[int], None] = lambda _: None,
        *,
        run_id: str | None = None,
        started_at: str | None = None,
        run_by: str = "pledger verify",
    ) -> AuditReport:
        """Verify the whole log (projections.audit) now and keep the result as the latest run
        (api.verifying), with when it started and finished and how long it took (ms).
        ``run_id``: the claim a background run holds, dropped with the result."""
        started_at = started_at or now_text()
        clock = time.perf_counter()
        report = verify_log(self.ledger, seen=self.views_seen(), advance=advance)
        stored = {
            **report.as_dict(),
            "started_at": started_at,
            "verified_at": now_text(),
            "duration_ms": round((time.perf_counter() - clock) * 1000),
            "run_by": run_by,
        }
        self.ledger.recorder.record_verification(  # type: ignore[attr-defined]
            run_id or uuid.uuid4().hex,
            started_at,
            stored["verified_at"],
            orjson.dumps(stored).decode(),
        )
        return report

    @cached_property
    def verifications(self) -> Verifications:
        """The ledger's verification runs, shared by its server processes (api.verifying)."""
        return Verifications(
            self._verify_in_background,
            self.ledger.recorder,  # type: ignore[arg-type]
            self.ledger.last_position,
            every_seconds=self.settings.verify_every_seconds,
            after_events=self.settings.verify_after_events,
            wait_events=self.settings.verify_wait_events,
            ready=lambda: self.keeper.rebuilding is None,
            run_by=f"pledger serve (pid {os.getpid()} on {socket.gethostname()})",
        )

    def views_seen(self) -> ViewsSeen:
        """What the views have taken in, for verify to compare the log with (issue 15)."""
        head_position, head_digest, head_events = self.view.chain_head()
        digests = {p: (d, n) for p, d, n in self.view.checkpoints()}
        if head_position:
            digests[head_position] = (head_digest, head_events)
        return ViewsSeen(self.view.processed_position(), digests, self.view.heads_by_position())

    def _verify_in_background(self, advance: Callable[[int], None], **run: str) -> None:
        """A server's run: in this process on a small log, else in a child (api.verifying)."""
        if self.ledger.last_position() <= IN_PROCESS_EVENTS:
            self.verify(advance, **run)
        else:
            verify_in_child(self.settings, advance, **run)

    def last_verification(self) -> dict[str, Any] | None:
        """The latest verification as ``GET /v1/audit/verify`` shows it (``verified_at``,
        ``current``, ``running`` added), or ``None`` before the first one completes."""
        state = self.verifications.state()
        return state.answer() if state.latest is not None else None

    def start_daily_checkpoints(self) -> None:
        """The server's daily checkpoint (issue 15 item 2): a thread that, every hour, signs
        a checkpoint when the latest is a day old and the log has grown since."""
        stop = self._checkpoints_stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    self.keeper.catch_up()
                    self.checkpoints.make_if_older(CHECKPOINT_AGE)
                except Exception:  # keep trying next hour; the server keeps serving
                    logging.getLogger(__name__).exception("the daily checkpoint failed")
                stop.wait(CHECKPOINT_POLL_SECONDS)

        self._checkpoints_thread = threading.Thread(
            target=run, name="pledger-checkpoints", daemon=True
        )
        self._checkpoints_thread.start()

    def close(self) -> None:
        if "verifications" in self.__dict__:  # made (and maybe started) by this process
            self.verifications.stop()
        stopping = getattr(self, "_checkpoints_stop", None)
        if stopping is not None:
            stopping.set()
            self._checkpoints_thread.join(timeout=5)
        self.writer.stop()
        self.keeper.stop()
        self.ledger.close()
        self.view.datastore.close()
        self.keeper.lock.close()


def open_services(settings: Settings) -> Services:
    ledger = open_ledger(settings)
    view = open_view(settings.views_env())
    view.zone = settings.zone
    # SQLite: one lock file orders the writing transactions of every server process.
    lock = WriteLock(
        settings.db_path.with_name(settings.db_path.name + ".lock")
        if settings.store == "sqlite"
        else None
    )
    keeper = ViewKeeper(ledger, view, settings.views_env(), lock)
    keeper.follow_zone()  # PLEDGER_TIMEZONE changed since the views were kept: fold them again
    writer = GroupWriter(ledger, keeper)
    return Services(
        settings,
        ledger,
        view,
        keeper,
        LedgerQueries(view, keeper.log),
        TokenBook(ledger.recorder),
        writer,
        LedgerService(ledger, keeper, writer, settings.zone),
    )


def cli_settings(db: str | None) -> Settings:
    """The settings a command runs with (``--db`` beside the environment); a bad value such as
    an unknown PLEDGER_TIMEZONE stops the command with its message and exit status 2."""
    try:
        return Settings.from_env(db=db)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cli_user() -> str:
    """``recorded_by`` for events written from the command line (SPEC §2)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"
