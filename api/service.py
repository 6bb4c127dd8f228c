"""The write use cases, shared by every entrypoint (JSON routes, HTML forms, file imports).

An entrypoint parses what it was sent into a payload model and an :class:`Ask`, calls one
method of :class:`LedgerService`, and maps what it gets back (a :class:`Recorded`) or what is
raised (a ``LedgerError``) to its own medium. Group commit, idempotency (one event per
Idempotency-Key, SPEC §4) and read-your-writes all live here, behind the call, so a form and a
JSON request to the same use case behave the same (cosmicpython ch. 4, "service layer").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError
from starlette.concurrency import run_in_threadpool

from api.importing import Plan, Table, plan_events, plan_partners, save_plan
from api.recorders import RequestMark
from api.scrub import scrub_stores
from api.writer import GroupWriter, WriteJob
from domain.application import Partnerships, Recorded, SaveOptions
from domain.chained import Stamp
from domain.coalition import Coalition
from domain.dates import DateOrder
from domain.errors import Conflict, Problem, ValidationFailed
from domain.partner import Partner
from domain.values import (
    CoalitionFormed,
    ErasureReason,
    EventData,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
)
from projections.runner import ViewKeeper

__all__ = ["Ask", "LedgerService"]

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Ask:
    """Who asks for a write and on what terms.

    ``recorded_by`` is the credential's name (SPEC §2); ``occurred_at`` when it happened in the
    world (``None``: now); ``expected_version`` the stream version the asker last saw (a
    different current version is a 409, SPEC §4); ``idempotency_key`` makes a retry return the
    first answer; ``sent`` is what was sent, as plain JSON values, which a reused key must match.
    """

    recorded_by: str
    occurred_at: datetime | None = None
    expected_version: int | None = None
    idempotency_key: str | None = None
    sent: Mapping[str, Any] = field(default_factory=dict)

    def stamp(self) -> Stamp:
        if self.occurred_at is None:
            return Stamp.now(self.recorded_by)
        return Stamp(self.occurred_at, self.recorded_by)


class _Replayed(Exception):
    """The same request was recorded while this one waited: answer with the first one."""

    def __init__(self, recorded: Recorded) -> None:
        super().__init__("replayed")
        self.recorded = recorded


class LedgerService:
    """Every write the ledger takes: register, record, form, join, leave.

    Each method returns the :class:`Recorded` event (on a replayed Idempotency-Key, the one
    recorded the first time) once the views show it. Raises the domain's errors:
    ``ValidationFailed`` (422), ``NotFound`` (404), ``Conflict``/``VersionConflict`` (409).
    """

    def __init__(
        self, ledger: Partnerships, keeper: ViewKeeper, writer: GroupWriter, zone: tzinfo = UTC
    ) -> None:
        self.ledger = ledger
        self.keeper = keeper
        self.writer = writer
        self.zone = zone  # the ledger's time zone (PLEDGER_TIMEZONE): an import's dates

    async def register_partner(self, data: PartnerRegistered, ask: Ask) -> Recorded:
        stamp = ask.stamp()
        job = WriteJob(
            alone=lambda options: self.ledger.register_partner(data, stamp, with_save=options),
            create=lambda: self.ledger.new_partner(data, stamp),
        )
        return await self._write(job, ask, "register_partner")

    async def record_event(self, partner_id: UUID, data: EventData, ask: Ask) -> Recorded:
        stamp = ask.stamp()
        ledger = self.ledger
        job = WriteJob(
            check=lambda: ledger.check_references(partner_id, data),
            alone=lambda options: ledger.record(
                partner_id, data, stamp, expected_version=ask.expected_version, with_save=options
            ),
            stream_id=partner_id,
            load=lambda: ledger.get_partner(partner_id),
            kind=Partner,
            command=lambda partner: ledger.execute(partner, data, stamp),
            expected_version=ask.expected_version,
        )
        return await self._write(job, ask, f"append_event:{partner_id}")

    async def import_table(
        self,
        kind: Literal["partners", "events"],
        table: Table,
        *,
        recorded_by: str,
        date_order: DateOrder | None = None,
        allow_duplicate_names: bool = False,
    ) -> tuple[Plan, list[Recorded]]:
        """Check every row of a partners or events file (SPEC §6) and, only when none has a
        problem, record them all in one transaction with their fingerprints (rows an earlier
        import recorded are left out). Returns the plan (its ``problems``, when any, and
        nothing recorded) and what was recorded, once the views show it. Raises Conflict
        (409) when another writer changed one of the partners meanwhile, Busy (503)."""
        planner = plan_partners if kind == "partners" else plan_events

        def check_and_record() -> tuple[Plan, list[Recorded]]:
            plan = planner(
                self.ledger,
                table,
                recorded_by=recorded_by,
                now=datetime.now(UTC),
                allow_duplicate_names=allow_duplicate_names,
                date_order=date_order,
                zone=self.zone,
            )
            if plan.problems:
                return plan, []
            plan.earlier = plan.history_before_registration()  # saving empties the pending
            try:
                recorded = save_plan(self.ledger, plan)
            except IntegrityError:
                raise Conflict(
                    "Someone recorded something for these partners while the file was being "
                    "checked, so nothing was recorded. Upload the file again."
                ) from None
            if recorded:
                self.keeper.wait_for(recorded[-1].position)
            return plan, recorded

        return await run_in_threadpool(check_and_record)

    async def form_coalition(self, data: CoalitionFormed, ask: Ask) -> Recorded:
        stamp = ask.stamp()
        job = WriteJob(
            alone=lambda options: self.ledger.form_coalition(data, stamp, with_save=options),
            create=lambda: Coalition.form(data, stamp),
        )
        return await self._write(job, ask, "form_coalition")

    async def join_coalition(self, coalition_id: UUID, data: MemberJoined, ask: Ask) -> Recorded:
        ledger, stamp = self.ledger, ask.stamp()
        return await self._change_coalition(
            coalition_id,
            ask,
            f"join_coalition:{coalition_id}",
            alone=lambda options: ledger.join_coalition(
                coalition_id, data, stamp, expected_version=ask.expected_version, with_save=options
            ),
            command=lambda coalition: coalition.admit(data, stamp),
            check=lambda: ledger.check_joining(coalition_id, data),
        )

    async def leave_coalition(self, coalition_id: UUID, data: MemberLeft, ask: Ask) -> Recorded:
        ledger, stamp = self.ledger, ask.stamp()
        return await self._change_coalition(
            coalition_id,
            ask,
            f"leave_coalition:{coalition_id}",
            alone=lambda options: ledger.leave_coalition(
                coalition_id, data, stamp, expected_version=ask.expected_version, with_save=options
            ),
            command=lambda coalition: coalition.release(data, stamp),
        )

    async def _change_coalition(
        self,
        coalition_id: UUID,
        ask: Ask,
        route: str,
        *,
        alone: Callable[[SaveOptions | None], Recorded],
        command: Callable[[Coalition], None],
        check: Callable[[], None] = lambda: None,
    ) -> Recorded:
        """One change to a coalition's stream: alone, or batched by the group-commit writer."""
        job = WriteJob(
            check=check,
            alone=alone,
            stream_id=coalition_id,
            load=lambda: self.ledger.get_coalition(coalition_id),
            kind=Coalition,
            command=command,
            expected_version=ask.expected_version,
        )
        return await self._write(job, ask, route)

    async def erase_personal_data(
        self, partner_id: UUID, reason: ErasureReason, ask: Ask, *, contact: str | None = None
    ) -> Recorded:
        """Shred a partner's personal data (or, with ``contact``, one contact person's),
        recording ``personal_data_erased`` (issue 16), and then make the stores' files keep no
        readable copy (``api.scrub``). Raises PartnerNotFound (404); ValidationFailed (422)
        for a ``contact`` not on record (``Partnerships.erase_personal_data``)."""
        stamp = ask.stamp()
        ledger = self.ledger
        job = WriteJob(
            alone=lambda options: ledger.erase_personal_data(
                partner_id, reason, stamp, contact=contact, with_save=options
            ),
            stream_id=partner_id,
            solo=True,
        )
        recorded = await self._write(job, ask, f"erase:{partner_id}")
        await run_in_threadpool(scrub_stores, ledger, self.keeper.view, partner_id)
        return recorded

    # ---- once per Idempotency-Key ----------------------------------------------------------

    async def _write(self, job: WriteJob, ask: Ask, route: str) -> Recorded:
        """Run a write once per Idempotency-Key, through the group-commit writer."""
        key = ask.idempotency_key
        if key is not None:
            if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
                raise ValidationFailed([Problem("Idempotency-Key", "must be 1 to 255 characters")])
            key_hash = hashlib.sha256(f"{ask.recorded_by}\n{key}".encode()).hexdigest()
            canonical = orjson.dumps(dict(ask.sent), option=orjson.OPT_SORT_KEYS)
            fingerprint = hashlib.sha256(f"{route}\n".encode() + canonical).hexdigest()
            replay = await run_in_threadpool(self._replay, key_hash, fingerprint)
            if replay is not None:
                return replay

            def on_conflict() -> None:
                again = self._replay(key_hash, fingerprint)
                if again is not None:
                    raise _Replayed(again)

            job.mark = RequestMark(key_hash, fingerprint, route)
            job.on_conflict = on_conflict
        try:
            return await self.writer.record(job)
        except _Replayed as replayed:
            return replayed.recorded

    def _replay(self, key_hash: str, fingerprint: str) -> Recorded | None:
        stored = self.ledger.recorder.find_request(key_hash)  # type: ignore[attr-defined]
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise ValidationFailed(
                [
                    Problem(
                        "Idempotency-Key",
                        "was already used with a different request; use a new key",
                    )
                ]
            )
        entry = next(
            e for e in self.keeper.log.stream(stored.stream_id) if e.version == stored.version
        )
        return Recorded(
            stream_id=UUID(entry.stream_id),
            version=entry.version,
            position=entry.position,
            hash=entry.hash,
            type=entry.type,
            data=entry.data,
        )
