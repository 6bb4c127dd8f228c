"""Questions the ledger answers, each at a reference (``as_of``, ``position``).

Every answer states the ``as_of`` and ``position`` it was computed at; the same pair always
gives the same answer, byte for byte, however many events are recorded afterwards.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import functools
import operator
import sys
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

import orjson

from domain.dates import day_of, end_of_day, start_of_day, zone_name
from domain.errors import (
    CoalitionNotFound,
    PartnerNotFound,
    Problem,
    UnvouchedContent,
    UnvouchedEvent,
    ValidationFailed,
)
from domain.hashing import format_instant, parse_instant
from domain.values import search_key
from projections.cancellation import cancellation_point
from projections.folds import (
    CommitmentView,
    Entry,
    Figures,
    Health,
    PartnerSnapshot,
    counting,
    figures_of,
    fold_partner,
    health_of,
)
from projections.log import LogReader
from projections.rows import column_text
from projections.snapshots import snapshot_from_json
from projections.store import LedgerView
from projections.vouching import EventVouching

__all__ = [
    "GENERATED_BY",
    "MAX_HISTORY_POINTS",
    "At",
    "LedgerQueries",
    "end_of_day",
    "on_record",
]

GENERATED_BY = "Partnership Ledger 0.1.0"
OVER_ENGAGED_ASKS = 4
OVER_ENGAGED_DAYS = 90
MAX_PAGE = 1000
MAX_HISTORY_POINTS = 520  # ten years of weeks, 43 of month-ends
# Each sort's own direction: names A to Z, the strongest health first, the longest untouched first.
_NATURAL_ORDER = {"name": "asc", "health": "desc", "last_touch": "asc"}

_CONTACT_TYPES = ("meeting_held", "contact_made")
_PROFILE_TYPES = (
    "partner_registered",
    "profile_updated",
    "stage_changed",
    "checkin_cadence_agreed",
)
_COMMITMENT_TYPES = (
    "commitment_made",
    "commitment_fulfilled",
    "commitment_renegotiated",
    "commitment_cancelled",
)


@dataclass(frozen=True)
class At:
    """The reference of a question: the world up to ``as_of``, the log up to ``position``;
    ``zone``, the ledger's time zone, decides which calendar day ``as_of`` falls on."""

    as_of: datetime
    position: int
    zone: tzinfo = UTC

    @cached_property
    def today(self) -> date:
        return day_of(self.as_of, self.zone)

    @cached_property
    def time_zone(self) -> str:
        """The zone's IANA name, as answers that count calendar days state it."""
        return zone_name(self.zone)

    @cached_property
    def as_of_text(self) -> str:
        """``as_of`` as stored instants are written (they compare as text in the views)."""
        return format_instant(self.as_of)

    def stamp(self) -> dict[str, Any]:
        """What every answer at a reference states (SPEC §3: answers that count calendar
        days state the zone): ``{as_of, position, time_zone}``."""
        return {
            "as_of": format_instant(self.as_of),
            "position": self.position,
            "time_zone": self.time_zone,
        }


_NOT_OURS = "is not a cursor this ledger gave out"


def _encode_cursor(at: At, kind: str, after: Sequence[Any]) -> str:
    """A cursor: the reference of the walk's first page (which every later page keeps), what
    kind of list it walks (``timeline``, or the partners' sort), and the last key given out."""
    document = {"as_of": format_instant(at.as_of), "position": at.position, "kind": kind}
    return (
        base64.urlsafe_b64encode(orjson.dumps({**document, "after": list(after)}))
        .decode()
        .rstrip("=")
    )


@dataclass(frozen=True)
class _Cursor:
    as_of: datetime
    position: int
    kind: str
    after: list[Any]


def _decode_cursor(cursor: str) -> _Cursor:
    try:
        document = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        as_of = parse_instant(document["as_of"])
        position, kind, after = document["position"], document["kind"], document["after"]
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise ValidationFailed([Problem("cursor", _NOT_OURS)]) from None
    if not (isinstance(position, int) and isinstance(kind, str) and isinstance(after, list)):
        raise ValidationFailed([Problem("cursor", _NOT_OURS)])
    return _Cursor(as_of, position, kind, after)


def _walk_from(cursor: str, at: At, kind: str) -> list[Any]:
    """The last key a cursor gave out, once it is sure to continue the same walk: the same
    reference (as_of and position of its first page) and the same kind of list."""
    found = _decode_cursor(cursor)
    if (found.as_of, found.position) != (at.as_of, at.position):
        raise ValidationFailed(
            [
                Problem(
                    "cursor",
                    f"belongs to a walk at as_of {format_instant(found.as_of)} and position "
                    f"{found.position}; leave as_of and position out to go on with it, or start "
                    "again without the cursor",
                )
            ]
        )
    if found.kind != kind:
        raise ValidationFailed(
            [Problem("cursor", f"walks a list of another kind ({found.kind}), not {kind}")]
        )
    return found.after


class LedgerQueries:
    """Read-side use cases over the views; returns plain data ready for JSON."""

    def __init__(self, view: LedgerView, log: LogReader) -> None:
        self.view = view
        self.log = log
        self.vouching = EventVouching(view, log)
        # Stored snapshots decoded, and health computed from them: both are pure functions of
        # (partner, stored position) and of the as_of day, so they are kept for the next ask.
        self._lock = threading.Lock()
        self._snaps: OrderedDict[tuple[str, int], PartnerSnapshot] = OrderedDict()
        self._healths: OrderedDict[tuple[str, int, date], Health] = OrderedDict()
        # Sorted partner lists (sort=health or last_touch), kept per position, day and filters
        # while every snapshot answers at the reference: paging through them is then cheap.
        self._lists: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()
        # Every partner at a past reference, for lists at that as_of (see _PastList).
        self._past: OrderedDict[int, _PastList] = OrderedDict()

    def _decoded(self, partner_id: str, row: Any) -> PartnerSnapshot:
        key = (partner_id, int(row["position"]))
        with self._lock:
            snap = self._snaps.get(key)
        if snap is None:
            snap = snapshot_from_json(partner_id, row["snapshot"], self.view.zone)
            with self._lock:
                _keep(self._snaps, key, snap)
        return snap

    def _health(self, snap: PartnerSnapshot, at: At) -> Health:
        """Health reads the reference only through its day, so the health of a stored snapshot
        is kept per day; a snapshot folded for a past reference is computed afresh."""
        key = (snap.partner_id, snap.position, at.today)
        with self._lock:
            stored = self._snaps.get((snap.partner_id, snap.position)) is snap
            health = self._healths.get(key) if stored else None
        if health is None:
            health = health_of(snap, at.as_of)
            if stored:
                with self._lock:
                    _keep(self._healths, key, health)
        return health

    def _answers(self, row: Any, at: At) -> bool:
        """Whether a stored snapshot answers at the reference: valid there, and folded in
        the reference's time zone."""
        return _valid(row, at) and zone_name(at.zone) == zone_name(self.view.zone)

    # ---- the reference ------------------------------------------------------------------

    def at(
        self,
        as_of: datetime | None = None,
        position: int | None = None,
        *,
        cursor: str | None = None,
        zone: tzinfo | None = None,
    ) -> At:
        """Resolve a query's reference: ``as_of`` defaults to now, ``position`` to the end.

        With a ``cursor``, the reference is the one its walk started at (SPEC §4: a cursor
        pins the ``as_of`` and ``position`` of its first page), so that every page of a walk
        comes from one consistent state; an ``as_of`` or ``position`` given beside it must be
        that one. Raises ``ValidationFailed`` (422) otherwise, or for a cursor not ours.
        ``zone``: the time zone to count days in, when not the ledger's (a report made again
        as it states, ``pledger report --like``); the stored views then do not answer.
        """
        if cursor:
            pinned = _decode_cursor(cursor)
            if as_of is not None and as_of.astimezone(UTC) != pinned.as_of:
                raise ValidationFailed(
                    [Problem("as_of", "differs from the as_of the cursor's walk started at")]
                )
            if position is not None and position != pinned.position:
                raise ValidationFailed(
                    [Problem("position", "differs from the position the cursor's walk started at")]
                )
            as_of, position = pinned.as_of, pinned.position
        end = self.view.processed_position()
        if position is None:
            position = end
        elif position < 0:
            raise ValidationFailed([Problem("position", "must be 0 or more")])
        elif position > end:
            raise ValidationFailed(
                [Problem("position", f"{position} is beyond the end of the log ({end})")]
            )
        if as_of is None:
            as_of = datetime.now(UTC)
        elif as_of.tzinfo is None:
            raise ValidationFailed([Problem("as_of", "give a timezone, such as Z for UTC")])
        return At(as_of.astimezone(UTC), position, zone or self.view.zone)

    # ---- one partner --------------------------------------------------------------------

    def snapshot(self, partner_id: str, at: At) -> PartnerSnapshot:
        """A partner as it stood at the reference: the stored snapshot when it is valid
        there, otherwise the fold of its stream from the log."""
        rows = self.view.select(
            "SELECT snapshot, latest_occurred_at, position FROM {p}partners WHERE partner_id = ?",
            (partner_id,),
        )
        if rows and self._answers(rows[0], at):
            return self._decoded(partner_id, rows[0])
        return _fold(partner_id, self.log.stream(partner_id), at)

    def partner(self, partner_id: str, at: At) -> dict[str, Any]:
        snap = self.snapshot(partner_id, at)
        return {"id": partner_id, **_profile(snap), **at.stamp()}

    def health(self, partner_id: str, at: At) -> dict[str, Any]:
        snap = self.snapshot(partner_id, at)
        return {
            "partner_id": partner_id,
            "name": snap.name,
            **at.stamp(),
            **self._health(snap, at).as_dict(),
        }

    def health_history(
        self,
        partner_id: str,
        at: At,
        *,
        start: date | None,
        end: date | None,
        interval: Literal["month", "week"] = "month",
    ) -> dict[str, Any]:
        """The score at each month-end (or each Sunday) from ``start`` to ``end``, inclusive.

        At most MAX_HISTORY_POINTS points: each is a fold of the partner's history, so a wider
        range is refused (``ValidationFailed`` on ``from``, 422) rather than computed.
        """
        snap = self.snapshot(partner_id, at)
        assert snap.began_at is not None
        end = min(end or at.today, at.today)
        start = start or day_of(snap.began_at, at.zone)
        if start > end:
            raise ValidationFailed([Problem("from", "is after to")])
        points_asked = (
            (end - start).days // 7 + 1
            if interval == "week"
            else (end.year - start.year) * 12 + end.month - start.month + 1
        )
        if points_asked > MAX_HISTORY_POINTS:
            raise ValidationFailed(
                [
                    Problem(
                        "from",
                        f"{start.isoformat()} to {end.isoformat()} by {interval} is about "
                        f"{points_asked} points; at most {MAX_HISTORY_POINTS} are given at once: "
                        "ask for a narrower range (from and to)",
                    )
                ]
            )
        stream = self.log.stream(partner_id)
        points = []
        for day in _period_ends(start, end, interval):
            cancellation_point()  # a heavy request stops here once its client has gone
            moment = end_of_day(day, at.zone)
            upto = on_record(stream, min(moment, at.as_of), at.position)
            if upto is None:
                continue
            health = health_of(fold_partner(partner_id, upto, at.zone), moment)
            points.append({"as_of": day.isoformat(), "score": health.score, "band": health.band})
        return {
            "partner_id": partner_id,
            "interval": interval,
            "from": start.isoformat(),
            "to": end.isoformat(),
            **at.stamp(),
            "time_zone": at.time_zone,
            "points": points,
        }

    def commitments(self, partner_id: str, at: At) -> dict[str, Any]:
        snap = self.snapshot(partner_id, at)
        items = sorted(snap.commitments.values(), key=lambda c: (c.made_at, c.version))
        return {
            "partner_id": partner_id,
            **at.stamp(),
            "figures": {side: f.as_dict() for side, f in figures_of(items, at.today).items()},
            "commitments": [c.as_dict(at.today) for c in items],
        }

    def partner_view(self, partner_id: str, at: At) -> dict[str, Any]:
        """What a partner sees of its own relationship (SPEC §4, issue 14): the commitments both
        ways with their status, the payments made to it, the thanks and outcomes shared with
        it, and the agreed cadence. Never our internal notes (meeting and contact summaries,
        breach descriptions, the notes on thanks or fulfilments), health, or anyone else.

        Shape: ``{partner_id, name, language, cadence_days, as_of, position, commitments: [{
        commitment_id, owed_by, description, resource, amount, currency, made_on, due_on,
        original_due_on, status, fulfilled_on, days_late}], payments: [{paid_on, amount,
        currency, purpose, commitment_id}], thanks: [{on, form}], outcomes: [{on, summary}]}``.
        Raises ``PartnerNotFound``.
        """
        snap = self.snapshot(partner_id, at)
        shared = ("commitment_id", "owed_by", "description", "resource", "amount", "currency")
        commitments = []
        for c in sorted(snap.commitments.values(), key=lambda c: (c.made_at, c.version)):
            shown = c.as_dict(at.today)
            commitments.append(
                {
                    **{k: shown[k] for k in shared},
                    "made_on": shown["made_on"],
                    "due_on": shown["due_on"],
                    "original_due_on": shown["original_due_on"],
                    "status": shown["status"],
                    "fulfilled_on": shown["fulfilled_on"],
                    "days_late": shown["days_late"],
                }
            )
        payments, thanks, outcomes = [], [], []
        for entry in counting(self.log.stream(partner_id), at.as_of, at.position):
            day = day_of(entry.occurred_at, at.zone).isoformat()
            if entry.type == "payment_made":
                payments.append(
                    {
                        "paid_on": day,
                        "amount": entry.data["amount"],
                        "currency": entry.data["currency"],
                        "purpose": entry.data["purpose"],
                        "commitment_id": entry.data.get("commitment_id"),
                    }
                )
            elif entry.type == "thanks_expressed":
                thanks.append({"on": day, "form": entry.data["form"]})
            elif entry.type == "outcome_shared":
                outcomes.append({"on": day, "summary": entry.data.get("summary", "")})
        preferences = snap.profile.get("preferences") or {}
        return {
            "partner_id": partner_id,
            "name": snap.name,
            "language": preferences.get("language"),
            "cadence_days": snap.cadence_days,
            **at.stamp(),
            "commitments": commitments,
            "payments": payments,
            "thanks": thanks,
            "outcomes": outcomes,
        }

    def timeline(
        self,
        partner_id: str,
        at: At,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        stream = self.log.stream(partner_id)
        _fold(partner_id, stream, at)  # 404 for a partner not on record at this reference
        after = None
        if cursor:
            values = _walk_from(cursor, at, "timeline")
            if len(values) != 2 or not isinstance(values[0], str) or not isinstance(values[1], int):
                raise ValidationFailed([Problem("cursor", _NOT_OURS)])
            after = (values[0], values[1])
        limit = _check_limit(limit)
        retracted = {
            e.data["version"]
            for e in stream
            if e.type == "entry_retracted" and e.position <= at.position
        }
        entries = sorted(
            (
                replace(e, retracted=e.version in retracted)
                for e in stream
                if e.position <= at.position
                and e.occurred_at <= at.as_of
                and (start is None or e.occurred_at >= start)
                and (end is None or e.occurred_at <= end)
                and (not types or e.type in types)
                and (after is None or (format_instant(e.occurred_at), e.version) > after)
            ),
            key=lambda e: (e.occurred_at, e.version),
        )[: limit + 1]
        more = len(entries) > limit
        entries = entries[:limit]
        last = entries[-1] if entries else None
        return {
            "partner_id": partner_id,
            **at.stamp(),
            "events": [_timeline_item(e) for e in entries],
            "next_cursor": (
                _encode_cursor(at, "timeline", [format_instant(last.occurred_at), last.version])
                if more and last
                else None
            ),
        }

    # ---- many partners ------------------------------------------------------------------

    def _snapshots(
        self,
        at: At,
        *,
        partner_ids: Sequence[str] | None = None,
        joined: Mapping[str, datetime] | None = None,
    ) -> dict[str, PartnerSnapshot]:
        """Every partner on record at the reference (or those named), as it stood then;
        ``joined``: coalition members with the moment they joined, on record from then."""
        statement = (
            "SELECT partner_id, snapshot, latest_occurred_at, position FROM {p}partners "
            "WHERE registered_pos <= ?"
        )
        params: list[Any] = [at.position]
        rows: list[Any] = []
        if partner_ids is None:
            rows = self.view.select(statement, params)
        else:
            for start in range(0, len(partner_ids), 500):
                chunk = list(partner_ids[start : start + 500])
                rows += self.view.select(
                    statement + f" AND partner_id IN ({', '.join('?' * len(chunk))})",
                    [*params, *chunk],
                )
        found: dict[str, PartnerSnapshot] = {}
        stale = []
        for row in rows:
            if self._answers(row, at):
                found[row["partner_id"]] = self._decoded(row["partner_id"], row)
            else:
                stale.append(row["partner_id"])
        for partner_id, stream in self.log.streams(stale).items():
            try:
                found[partner_id] = _fold(
                    partner_id, stream, at, known_since=(joined or {}).get(partner_id)
                )
            except PartnerNotFound:
                continue  # registered after as_of
        return found

    def _figures_from_totals(
        self, sides: dict[str, Figures], today: str, coalition_id: str | None, owed_by: str | None
    ) -> None:
        """Fulfilment figures when every stored row answers: the closed groups from
        ``commitment_totals``, open against overdue from the open commitments' due dates."""
        filters, params = _narrowed("1 = 1", [], "", coalition_id, owed_by)
        for row in self.view.select(
            "SELECT owed_by, closed, on_time, SUM(made) AS made, SUM(after_due) AS after_due "
            f"FROM {{p}}commitment_totals WHERE {filters} GROUP BY owed_by, closed, on_time",
            params,
        ):
            figures = sides[row["owed_by"]]
            made = int(row["made"])
            figures.made += made
            figures.renegotiated_after_due += int(row["after_due"])
            if row["closed"] == "cancelled":
                figures.cancelled += made
            elif row["closed"] == "fulfilled" and int(row["on_time"]) == 1:
                figures.fulfilled_on_time += made
            elif row["closed"] == "fulfilled":
                figures.fulfilled_late += made
        for row in self.view.select(
            "SELECT owed_by, SUM(CASE WHEN due_on >= ? THEN 1 ELSE 0 END) AS still_open, "
            "SUM(CASE WHEN due_on < ? THEN 1 ELSE 0 END) AS overdue FROM {p}commitments "
            f"WHERE closed IS NULL AND {filters} GROUP BY owed_by",
            [today, today, *params],
        ):
            sides[row["owed_by"]].open += int(row["still_open"])
            sides[row["owed_by"]].overdue += int(row["overdue"])

    def _stale_partners(self, at: At) -> list[str]:
        """Partners on record at the reference whose stored snapshot does not answer there."""
        # Two indexed range queries (each usually empty) rather than one scan with an OR.
        rows = self.view.select(
            "SELECT partner_id, registered_pos FROM {p}partners WHERE latest_occurred_at > ?",
            (at.as_of_text,),
        ) + self.view.select(
            "SELECT partner_id, registered_pos FROM {p}partners WHERE position > ?",
            (at.position,),
        )
        return sorted({row["partner_id"] for row in rows if row["registered_pos"] <= at.position})

    def accountability(
        self, at: At, *, coalition_id: str | None = None, owed_by: str | None = None
    ) -> dict[str, Any]:
        """Fulfilment figures and the overdue list: SQL over the commitments of partners
        whose snapshot answers at the reference, a fold of the log for the others."""
        if coalition_id is not None:
            self._coalition_entries(coalition_id, at)  # 404 for an unknown coalition
        today = at.today.isoformat()
        stale = self._stale_partners(at)
        registered_later = self.view.select(
            "SELECT partner_id FROM {p}partners WHERE registered_pos > ? LIMIT 1", (at.position,)
        )
        current = not stale and not registered_later
        if not current:
            source = "{p}commitments c JOIN {p}partners p ON p.partner_id = c.partner_id"
            filters, params = _valid_sql(at)
        else:  # every stored row answers at this reference: no join needed
            source, filters, params = "{p}commitments c", "1 = 1", []
        filters, params = _narrowed(filters, params, "c.", coalition_id, owed_by)
        sides = {"us": Figures(), "partner": Figures()}
        if current:
            self._figures_from_totals(sides, today, coalition_id, owed_by)
        else:
            for row in self.view.select(
                "SELECT c.owed_by AS owed_by, COUNT(*) AS made, "
                "SUM(CASE WHEN c.closed = 'cancelled' THEN 1 ELSE 0 END) AS cancelled, "
                "SUM(CASE WHEN c.closed = 'fulfilled' AND c.on_time = 1 THEN 1 ELSE 0 END) "
                "AS on_time, "
                "SUM(CASE WHEN c.closed = 'fulfilled' AND c.on_time = 0 THEN 1 ELSE 0 END) "
                "AS late, "
                "SUM(CASE WHEN c.closed IS NULL AND c.due_on >= ? THEN 1 ELSE 0 END) "
                "AS still_open, "
                "SUM(CASE WHEN c.closed IS NULL AND c.due_on < ? THEN 1 ELSE 0 END) AS overdue, "
                "SUM(c.after_due) AS after_due "
                f"FROM {source} WHERE {filters} GROUP BY c.owed_by",
                [today, today, *params],
            ):
                figures = sides[row["owed_by"]]
                figures.made += int(row["made"])
                figures.cancelled += int(row["cancelled"])
                figures.fulfilled_on_time += int(row["on_time"])
                figures.fulfilled_late += int(row["late"])
                figures.open += int(row["still_open"])
                figures.overdue += int(row["overdue"])
                figures.renegotiated_after_due += int(row["after_due"])
        overdue = [
            {
                "partner_id": row["partner_id"],
                "name": row["name"],
                "commitment_id": row["commitment_id"],
                "owed_by": row["owed_by"],
                "description": row["description"],
                "due_on": row["due_on"],
                "overdue_days": (at.today - date.fromisoformat(row["due_on"])).days,
            }
            for row in self.view.select(
                "SELECT c.partner_id AS partner_id, p.name AS name, c.commitment_id AS "
                "commitment_id, c.owed_by AS owed_by, c.description AS description, "
                "c.due_on AS due_on FROM {p}commitments c "
                "JOIN {p}partners p ON p.partner_id = c.partner_id "
                f"WHERE {filters} "
                "AND c.closed IS NULL AND c.due_on < ?",
                [*params, today],
            )
        ]
        for snap in self._snapshots(at, partner_ids=stale).values():
            for commitment in snap.commitments.values():
                if coalition_id is not None and commitment.coalition_id != coalition_id:
                    continue
                if owed_by is not None and commitment.owed_by != owed_by:
                    continue
                sides[commitment.owed_by].add(commitment, at.today)
                if commitment.status(at.today) == "overdue":
                    overdue.append(_agenda_commitment(snap, commitment, at.today))
        overdue.sort(key=lambda c: (c["due_on"], c["name"], c["partner_id"], c["commitment_id"]))
        return {
            **at.stamp(),
            "coalition_id": coalition_id,
            "owed_by": owed_by,
            **{side: f.as_dict() for side, f in sides.items() if owed_by in (None, side)},
            "overdue": overdue,
        }

    def partners(
        self,
        at: At,
        *,
        stage: str | None = None,
        community: str | None = None,
        role: str | None = None,
        q: str | None = None,
        region: str | None = None,
        sort: Literal["health", "name", "last_touch"] = "name",
        order: Literal["asc", "desc"] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """Partners with their health, filtered and sorted, one page at a time.

        ``sort=health`` lists the strongest first and ``sort=last_touch`` the longest without a
        two-way touch first; ``order`` says which way explicitly (``health`` with ``asc`` is
        weakest first). Raises ``ValidationFailed`` for a bad ``limit`` or ``cursor``.
        """
        limit = _check_limit(limit)
        reverse = order is not None and order != _NATURAL_ORDER[sort]
        settled = self.settled(at)
        if sort == "name" and not reverse and not region and settled:
            return self._partners_by_name(
                at, stage=stage, community=community, role=role, q=q, cursor=cursor, limit=limit
            )
        if not settled:
            kept = self._past_list(at)
            match = _Filter(stage, community, role, q, region)
            return kept.page(at, match, sort, reverse, order, cursor, limit)
        key = (at.position, at.today, stage, community, role, q, region, sort, reverse)
        with self._lock:
            rows = self._lists.get(key)
        if rows is None:
            rows = self._partner_rows(
                at, stage=stage, community=community, role=role, q=q, region=region
            )
            rows.sort(key=lambda r: _sort_key(r, sort), reverse=reverse)
            with self._lock:
                _keep(self._lists, key, rows, size=16)
        kind = f"partners:{sort}" + (":reversed" if reverse else "")
        if cursor:
            after = tuple(_walk_from(cursor, at, kind))
            if not _same_shape(list(after), _sort_key(rows[0], sort) if rows else list(after)):
                raise ValidationFailed([Problem("cursor", _NOT_OURS)])
            rows = [
                r
                for r in rows
                if (_sort_key(r, sort) < after if reverse else _sort_key(r, sort) > after)
            ]
        page = rows[:limit]
        more = len(rows) > limit
        return {
            **at.stamp(),
            "sort": sort,
            "order": order or _NATURAL_ORDER[sort],
            "partners": page,
            "next_cursor": (
                _encode_cursor(at, kind, _sort_key(page[-1], sort)) if more and page else None
            ),
        }

    def _past_list(self, at: At) -> _PastList:
        """Every partner on record at a reference some stored snapshot does not answer (a
        past ``as_of``), folded once and kept: a later ask at the same ``as_of`` reuses it
        while nothing recorded since changes the answer there (see ``_PastList.answers``)."""
        zone = zone_name(at.zone)
        with self._lock:
            candidates = [
                kept
                for kept in reversed(self._past.values())
                if kept.as_of == at.as_of and kept.zone == zone and kept.position <= at.position
            ]
        for kept in candidates:
            if kept.answers(at, self.log, self.view.processed_position()):
                with self._lock:
                    if id(kept) in self._past:
                        self._past.move_to_end(id(kept))
                return kept
            if kept.erased:
                with self._lock:
                    self._past.pop(id(kept), None)
        read_at = self.view.processed_position()  # erasures up to here are in what is read
        kept = _PastList(self._snapshots(at).values(), at, read_at)
        with self._lock:
            self._past[id(kept)] = kept
            held = sum(len(k.snaps) for k in self._past.values())
            while held > PAST_PARTNERS_KEPT and len(self._past) > 1:
                _, dropped = self._past.popitem(last=False)
                held -= len(dropped.snaps)
        return kept

    def settled(self, at: At) -> bool:
        """Whether every partner's stored snapshot answers at the reference (then answers
        that read the reference only through its day may be kept for the rest of the day)."""
        # Whether any is stale, not which: at a past as_of most are, and listing them costs.
        # Each query walks its column's index (``+`` keeps SQLite off registered_pos's index,
        # which would visit every partner registered by the position: all of them, usually).
        for column, value in (("latest_occurred_at", at.as_of_text), ("position", at.position)):
            if self.view.select(
                f"SELECT 1 AS stale FROM {{p}}partners WHERE {column} > ? "
                "AND +registered_pos <= ? LIMIT 1",
                (value, at.position),
            ):
                return False
        return True

    def _partner_rows(
        self,
        at: At,
        *,
        stage: str | None,
        community: str | None,
        role: str | None,
        q: str | None,
        region: str | None,
    ) -> list[dict[str, Any]]:
        snaps = self._snapshots(at)
        match = _Filter(stage, community, role, q, region)
        rows = []
        for snap in snaps.values():
            profile = _profile(snap)
            if not match(profile, search_key(snap.name) if q else ""):
                continue
            health = self._health(snap, at)
            rows.append(
                {
                    "id": snap.partner_id,
                    **profile,
                    "health": {"score": health.score, "band": health.band},
                }
            )
        return rows

    def _partners_by_name(
        self,
        at: At,
        *,
        stage: str | None,
        community: str | None,
        role: str | None,
        q: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """``sort=name`` when every snapshot answers at the reference: one indexed query."""
        filters, params = _valid_sql(at)
        if stage:
            filters += " AND p.stage = ?"
            params.append(stage)
        for column, value in (("communities", community), ("roles", role)):
            if value:
                filters += f" AND p.{column} LIKE ? ESCAPE '!'"
                params.append("%" + _like(orjson.dumps(value).decode()) + "%")
        if q:
            filters += " AND p.name_key LIKE ? ESCAPE '!'"
            params.append("%" + _like(search_key(q)) + "%")
        if cursor:
            after = _walk_from(cursor, at, "partners:name")
            if len(after) != 3 or not all(isinstance(v, str) for v in after):
                raise ValidationFailed([Problem("cursor", _NOT_OURS)])
            filters += (
                " AND (p.name_key > ? OR (p.name_key = ? AND (p.name > ? OR "
                "(p.name = ? AND p.partner_id > ?))))"
            )
            params += [after[0], after[0], after[1], after[1], after[2]]
        rows = self.view.select(
            "SELECT p.partner_id AS partner_id, p.snapshot AS snapshot, p.position AS position "
            "FROM {p}partners p "
            f"WHERE {filters} ORDER BY p.name_key, p.name, p.partner_id LIMIT {limit + 1}",
            params,
        )
        page = []
        for row in rows[:limit]:
            snap = self._decoded(row["partner_id"], row)
            health = self._health(snap, at)
            page.append(
                {
                    "id": snap.partner_id,
                    **_profile(snap),
                    "health": {"score": health.score, "band": health.band},
                }
            )
        more = len(rows) > limit
        return {
            **at.stamp(),
            "sort": "name",
            "order": "asc",
            "partners": page,
            "next_cursor": (
                _encode_cursor(at, "partners:name", _sort_key(page[-1], "name"))
                if more and page
                else None
            ),
        }

    # ---- coalitions ---------------------------------------------------------------------

    def _coalition_entries(self, coalition_id: str, at: At) -> list[Entry]:
        """The coalition's counting entries, its formation first (a membership may be dated
        before the formation was recorded as happening)."""
        entries = counting(self.log.stream(coalition_id), at.as_of, at.position)
        if not any(e.type == "coalition_formed" for e in entries):
            raise CoalitionNotFound(coalition_id)
        return sorted(entries, key=lambda e: e.type != "coalition_formed")

    def coalition(self, coalition_id: str, at: At) -> dict[str, Any]:
        entries = self._coalition_entries(coalition_id, at)
        formed = entries[0]
        members: dict[str, Entry] = {}
        for entry in entries[1:]:
            partner_id = entry.data["partner_id"]
            if entry.type == "member_joined":
                members[partner_id] = entry
            else:
                members.pop(partner_id, None)
        joined = {pid: entry.occurred_at for pid, entry in members.items()}
        names = {
            sid: snap.name
            for sid, snap in self._snapshots(at, partner_ids=list(members), joined=joined).items()
        }
        return {
            "id": coalition_id,
            "name": formed.data["name"],
            "shared_vision": formed.data["shared_vision"],
            "agreed_measures": formed.data["agreed_measures"],
            "formed_at": format_instant(formed.occurred_at),
            "version": max(e.version for e in entries),
            **at.stamp(),
            "members": sorted(
                (
                    {
                        "partner_id": pid,
                        "name": names[pid],
                        "joined_at": format_instant(entry.occurred_at),
                    }
                    for pid, entry in members.items()
                    # A join may be dated before the partner's registration (history recorded
                    # after it): a member from its join, with its registration's profile.
                    if pid in names
                ),
                key=lambda m: (m["name"], m["partner_id"]),
            ),
        }

    def coalitions(self, at: At) -> dict[str, Any]:
        rows = self.view.select(
            "SELECT coalition_id FROM {p}coalitions ORDER BY name, coalition_id"
        )
        listed = []
        for row in rows:
            try:
                listed.append(self.coalition(row["coalition_id"], at))
            except CoalitionNotFound:
                continue  # formed after this reference
        return {**at.stamp(), "coalitions": listed}

    def report(
        self,
        coalition_id: str,
        at: At,
        *,
        start: date | None = None,
        end: date | None = None,
        for_people: bool = False,
    ) -> dict[str, Any]:
        """The accountability report to a coalition (SPEC §4), reproducible to the byte.

        ``for_people`` (the md and html reports, issue 13) adds what a board reads beside the
        figures: ``coalition.shared_vision`` and ``coalition.agreed_measures``, and each
        member's ``promises``: every commitment between us and that member made in the
        period, as ``{owed_by, description, due_on, status, days_late}``, overdue first
        (most days late first), then by due date. ``days_late`` is the days past due of an
        overdue promise, or those a fulfilled one came late; ``None`` otherwise. Without it
        the report is the json/csv shape, unchanged.
        """
        if start is not None and end is not None and start > end:
            raise ValidationFailed([Problem("from", "is after to")])
        coalition = self.coalition(coalition_id, at)
        member_ids = [m["partner_id"] for m in coalition["members"]]
        joined = {m["partner_id"]: parse_instant(m["joined_at"]) for m in coalition["members"]}
        snaps = self._snapshots(at, partner_ids=member_ids, joined=joined)

        def in_period(moment: datetime) -> bool:
            day = day_of(moment, at.zone)
            return (start is None or day >= start) and (end is None or day <= end)

        members = []
        totals: dict[str, Any] = {
            "us": Figures(),
            "partner": Figures(),
            "payments": defaultdict(Decimal),
            "thanks": 0,
            "breaches": Counter({"open": 0, "repaired": 0}),
        }
        for member in coalition["members"]:
            cancellation_point()  # a heavy request stops here once its client has gone
            snap = snaps[member["partner_id"]]
            made = [c for c in snap.commitments.values() if in_period(c.made_at)]
            sides = figures_of(made, at.today)
            payments: dict[str, Decimal] = defaultdict(Decimal)
            for moment, amount, currency, _ in snap.payments:
                if in_period(moment):
                    payments[currency] += amount
            thanks = sum(1 for moment in snap.thanks if in_period(moment))
            breaches = Counter({"open": 0, "repaired": 0})
            for breach in snap.breaches.values():
                if in_period(breach.occurred_at):
                    breaches["repaired" if breach.repaired_at else "open"] += 1
            health = self._health(snap, at)
            row: dict[str, Any] = {
                "partner_id": snap.partner_id,
                "name": snap.name,
                "health": {"score": health.score, "band": health.band},
                "us": sides["us"].as_dict(),
                "partner": sides["partner"].as_dict(),
                "payments": _money(payments),
                "thanks": thanks,
                "breaches": dict(breaches),
            }
            if for_people:
                row["promises"] = _promises(made, at.today)
            members.append(row)
            totals["us"] += sides["us"]
            totals["partner"] += sides["partner"]
            for currency, amount in payments.items():
                totals["payments"][currency] += amount
            totals["thanks"] += thanks
            totals["breaches"].update(breaches)
        # Vouch before stating the digest (SPEC §5): every counted event against its hash,
        # its chain and the hash the digest took in; raises UnvouchedContent (409).
        self.vouching.check([coalition_id, *member_ids])
        digest = self._vouched_digest(at.position)
        stated: dict[str, Any] = {"id": coalition_id, "name": coalition["name"]}
        if for_people:
            stated["shared_vision"] = coalition["shared_vision"]
            stated["agreed_measures"] = coalition["agreed_measures"]
        return {
            "coalition": stated,
            "period": {
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
            },
            **at.stamp(),
            "time_zone": at.time_zone,
            "digest": digest,
            "generated_by": GENERATED_BY,
            "members": members,
            "totals": {
                "us": totals["us"].as_dict(),
                "partner": totals["partner"].as_dict(),
                "payments": _money(totals["payments"]),
                "thanks": totals["thanks"],
                "breaches": dict(totals["breaches"]),
            },
        }

    # ---- the portfolio ------------------------------------------------------------------

    def agenda(self, at: At, *, within_days: int = 14) -> dict[str, Any]:
        if within_days < 0 or within_days > 3660:
            raise ValidationFailed([Problem("within_days", "must be between 0 and 3660")])
        horizon = at.today + timedelta(days=within_days)
        snaps = self._snapshots(at)
        checkins, commitments = [], []
        for snap in snaps.values():
            if snap.stage == "ended":
                continue
            due = _checkin_due(snap)
            if due <= horizon:
                checkins.append(
                    {
                        "partner_id": snap.partner_id,
                        "name": snap.name,
                        "due_on": due.isoformat(),
                        "overdue_days": (at.today - due).days,
                    }
                )
            for commitment in snap.commitments.values():
                if (
                    commitment.status(at.today) in ("open", "overdue")
                    and commitment.due_on <= horizon
                ):
                    commitments.append(_agenda_commitment(snap, commitment, at.today))
        checkins.sort(key=lambda c: (c["due_on"], c["name"], c["partner_id"]))
        commitments.sort(
            key=lambda c: (c["due_on"], c["name"], c["partner_id"], c["commitment_id"])
        )
        return {
            "as_of": format_instant(at.as_of),
            "position": at.position,
            "time_zone": at.time_zone,
            "within_days": within_days,
            "checkins": checkins,
            "commitments": commitments,
        }

    def review(self, at: At) -> dict[str, Any]:
        snaps = self._snapshots(at)
        by: dict[str, Counter[str]] = {
            k: Counter() for k in ("community", "role", "region", "stage")
        }
        over_engaged, neglected = [], []

        # Within the last 90 calendar days (in the ledger's time zone): on or after the start
        # of the 89th day before.
        since = start_of_day(at.today - timedelta(days=OVER_ENGAGED_DAYS - 1), at.zone)

        def recent(moment: datetime) -> bool:
            return moment >= since

        for snap in sorted(snaps.values(), key=lambda s: (s.name, s.partner_id)):
            profile = snap.profile
            by["community"].update(profile.get("communities") or [])
            by["role"].update(profile.get("roles") or [])
            by["region"][profile.get("region") or "(none)"] += 1
            by["stage"][snap.stage] += 1
            asks = sum(
                1 for c in snap.commitments.values() if c.owed_by == "partner" and recent(c.made_at)
            ) + sum(1 for moment in snap.feedback if recent(moment))
            if asks >= OVER_ENGAGED_ASKS:
                over_engaged.append(
                    {"partner_id": snap.partner_id, "name": snap.name, "asks_90_days": asks}
                )
            touched = snap.last_touch_at or snap.began_at
            assert touched is not None
            days = (at.today - day_of(touched, at.zone)).days
            if days > 2 * snap.cadence_days:
                neglected.append(
                    {
                        "partner_id": snap.partner_id,
                        "name": snap.name,
                        "last_touch_on": (
                            day_of(snap.last_touch_at, at.zone).isoformat()
                            if snap.last_touch_at
                            else None
                        ),
                        "days_since": days,
                        "cadence_days": snap.cadence_days,
                    }
                )
        return {
            **at.stamp(),
            "partners": len(snaps),
            "by_community": _counts(by["community"]),
            "by_role": _counts(by["role"]),
            "by_region": _counts(by["region"]),
            "by_stage": _counts(by["stage"]),
            "over_engaged": over_engaged,
            "neglected": neglected,
        }

    def _vouched_digest(self, position: int) -> str:
        """The digest at ``position``; at the views' chain head, also checked against the
        digest the views chained as they took the events in (a mismatch means the log's
        hashes changed since: ``UnvouchedContent``)."""
        digest, _ = self.view.digest_at(position)
        head_position, head_digest, _ = self.view.chain_head()
        if position == head_position and digest != head_digest:
            raise UnvouchedContent(
                [
                    UnvouchedEvent(
                        position,
                        "",
                        0,
                        f"the log's hashes give digest {digest}, not the {head_digest} the "
                        "views chained when they took these events in",
                    )
                ]
            )
        return digest

    def digest(self, at: At) -> dict[str, Any]:
        digest, events = self.view.digest_at(at.position)
        return {"position": at.position, "events": events, "digest": digest}


# ---- helpers ------------------------------------------------------------------------------


def _check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_PAGE:
        raise ValidationFailed([Problem("limit", f"must be between 1 and {MAX_PAGE}")])
    return limit


CACHE_SIZE = 20_000


def _keep(cache: OrderedDict[Any, Any], key: Any, value: Any, *, size: int = CACHE_SIZE) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


PAST_PARTNERS_KEPT = 30_000  # partners held by all kept past lists (~3 MB a 1,000: 31 MB at 10k)
PAST_SCAN_LIMIT = 20_000  # events recorded since a kept past list, looked through to reuse it
# Recorded after a reference, these change what counts there whatever their date.
_CHANGE_THE_PAST = frozenset({"entry_retracted", "personal_data_erased"})


@dataclass(frozen=True)
class _Filter:
    """The filters of a partners list (``None`` or empty: not filtered on)."""

    stage: str | None = None
    community: str | None = None
    role: str | None = None
    q: str | None = None
    region: str | None = None

    @cached_property
    def q_key(self) -> str:
        return search_key(self.q or "")

    def __call__(self, profile: Mapping[str, Any], name_key: str) -> bool:
        """Whether a partner (its ``_profile``, and the ``search_key`` of its name, which
        only ``q`` reads) is in the list."""
        if self.stage and profile["stage"] != self.stage:
            return False
        if self.community and self.community not in (profile["communities"] or ()):
            return False
        if self.role and self.role not in (profile["roles"] or ()):
            return False
        if self.q and self.q_key not in name_key:
            return False
        return not (self.region and (profile["region"] or "").casefold() != self.region.casefold())


class _PastList:
    """Every partner on record at one reference the stored snapshots do not answer (a past
    ``as_of``), in name order, with each sort's keys made when first asked for and each
    health computed when first needed (only ``sort=health`` needs them all).

    An answer at a reference is a pure function of (as_of, position, zone, filters, sort),
    so the list is kept and answers again at the same ``as_of`` and zone: at its own
    position, and at a later one when every event recorded in between happened after
    ``as_of`` and neither retracts nor erases anything (those count at ``as_of`` whatever
    their date). An erasure recorded after the list was read drops it: the log now reads
    placeholders where the list holds the personal values it read.
    """

    def __init__(self, snaps: Iterable[PartnerSnapshot], at: At, read_at: int) -> None:
        self.as_of = at.as_of
        self.zone = zone_name(at.zone)
        self.position = at.position
        self.valid_upto = at.position  # the same answer at every position up to here
        self.stops_at = sys.maxsize  # and another from here on (found when first asked)
        self.read_at = read_at  # erasures recorded up to here are in what was read
        self.erased = False
        self._lock = threading.Lock()
        ordered = sorted(
            ((_name_order(s.name, s.partner_id), s) for s in snaps), key=operator.itemgetter(0)
        )
        self.by_name = [key for key, _ in ordered]
        self.snaps = [snap for _, snap in ordered]
        self.profiles = [_profile(snap) for snap in self.snaps]
        self._name_keys: dict[int, str] = {}
        self._healths: dict[int, Health] = {}
        self._orders: dict[str, tuple[list[tuple[Any, ...]], list[int]]] = {}

    def answers(self, at: At, log: LogReader, end: int) -> bool:
        """Whether this list answers at ``at`` (same as_of and zone, position at or after its
        own), the log's end being ``end``; marks the list ``erased`` when an erasure was
        recorded since it was read."""
        with self._lock:
            if self.erased or log.erased_after(self.read_at, end):
                self.erased = True
                return False
            self.read_at = max(self.read_at, end)
            if at.position <= self.valid_upto:
                return True
            if at.position >= self.stops_at:
                return False
            since = log.moments(self.valid_upto, at.position, PAST_SCAN_LIMIT)
            if since is None:
                return False
            for position, kind, occurred in since:
                if kind in _CHANGE_THE_PAST or occurred <= self.as_of:
                    self.stops_at = position  # no later position is answered either
                    return False
            self.valid_upto = at.position
            return True

    def _name_key(self, i: int) -> str:
        found = self._name_keys.get(i)
        if found is None:
            found = self._name_keys[i] = search_key(self.snaps[i].name)
        return found

    def _health(self, i: int) -> Health:
        found = self._healths.get(i)
        if found is None:
            found = self._healths[i] = health_of(self.snaps[i], self.as_of)
        return found

    def _score(self, i: int) -> int:
        return self._health(i).score

    def _order(self, sort: str) -> tuple[list[tuple[Any, ...]], list[int]]:
        """The keys of ``sort`` in ascending order, and which partner each is."""
        found = self._orders.get(sort)
        if found is not None:
            return found
        count = len(self.snaps)
        if sort == "name":
            found = (self.by_name, list(range(count)))
        else:
            keys = [
                _ranked_by(
                    sort,
                    self.by_name[i],
                    self.profiles[i]["last_touch_at"],
                    functools.partial(self._score, i),
                )
                for i in range(count)
            ]
            ranked = sorted(range(count), key=keys.__getitem__)
            found = ([keys[i] for i in ranked], ranked)
        self._orders[sort] = found
        return found

    def page(
        self,
        at: At,
        match: _Filter,
        sort: str,
        reverse: bool,
        order: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """One page of the list, as ``LedgerQueries.partners`` answers it."""
        keys, ranked = self._order(sort)
        kind = f"partners:{sort}" + (":reversed" if reverse else "")
        walk = range(len(keys) - 1, -1, -1) if reverse else range(len(keys))
        if cursor:
            after = tuple(_walk_from(cursor, at, kind))
            if keys and not _same_shape(after, keys[0]):
                raise ValidationFailed([Problem("cursor", _NOT_OURS)])
            walk = (
                range(bisect.bisect_left(keys, after) - 1, -1, -1)
                if reverse
                else range(bisect.bisect_right(keys, after), len(keys))
            )
        chosen: list[int] = []
        for j in walk:
            i = ranked[j]
            if match(self.profiles[i], self._name_key(i) if match.q else ""):
                chosen.append(j)
                if len(chosen) > limit:
                    break
        more = len(chosen) > limit
        chosen = chosen[:limit]
        rows = []
        for j in chosen:
            i = ranked[j]
            health = self._health(i)
            rows.append(
                {
                    "id": self.snaps[i].partner_id,
                    **self.profiles[i],
                    "health": {"score": health.score, "band": health.band},
                }
            )
        return {
            **at.stamp(),
            "sort": sort,
            "order": order or _NATURAL_ORDER[sort],
            "partners": rows,
            "next_cursor": (
                _encode_cursor(at, kind, keys[chosen[-1]]) if more and chosen else None
            ),
        }


def _valid(row: Any, at: At) -> bool:
    """Whether a stored snapshot answers at the reference (see ``projections.store``)."""
    return bool(row["latest_occurred_at"] <= at.as_of_text and row["position"] <= at.position)


def _narrowed(
    filters: str, params: list[Any], table: str, coalition_id: str | None, owed_by: str | None
) -> tuple[str, list[Any]]:
    """``filters`` narrowed to one coalition and one side, when asked (columns of ``table``,
    a prefix such as ``"c."``, or ``""``)."""
    if coalition_id is not None:
        filters += f" AND {table}coalition_id = ?"
        params = [*params, coalition_id]
    if owed_by is not None:
        filters += f" AND {table}owed_by = ?"
        params = [*params, owed_by]
    return filters, params


def _valid_sql(at: At) -> tuple[str, list[Any]]:
    return (
        "p.registered_pos <= ? AND p.latest_occurred_at <= ? AND p.position <= ?",
        [at.position, at.as_of_text, at.position],
    )


def on_record(
    stream: Sequence[Entry],
    as_of: datetime,
    position: int,
    *,
    known_since: datetime | None = None,
) -> list[Entry] | None:
    """A partner's entries that count at the reference, its registration among them; None
    when the partner is not on record there.

    A relationship begins at its earliest counted entry, the registration or history dated
    before it (issue 12): between that entry and the registration, the partner answers with
    its registration's profile. Not on record: its registration is not in the log by
    ``position``, or nothing of the relationship had happened by ``as_of`` (nor, when given,
    by ``known_since``: a coalition member counts from its join).
    """
    kept = counting(stream, as_of, position)
    if not kept and (known_since is None or known_since > as_of):
        return None
    if any(e.type == "partner_registered" for e in kept):
        return kept
    registration = next(
        (e for e in stream if e.type == "partner_registered" and e.position <= position), None
    )
    return None if registration is None else [registration, *kept]


def _fold(
    partner_id: str, stream: Sequence[Entry], at: At, *, known_since: datetime | None = None
) -> PartnerSnapshot:
    """A partner folded from its stream at the reference; 404 if not on record by then."""
    kept = on_record(stream, at.as_of, at.position, known_since=known_since)
    if kept is None:
        raise PartnerNotFound(partner_id)
    snap = fold_partner(partner_id, kept, at.zone)
    snap.version = max(
        (e.version for e in stream if e.position <= at.position and e.occurred_at <= at.as_of),
        default=1,  # a member from its join, before any entry of its own: its registration
    )
    return snap


def _like(text: str) -> str:
    """Text matched literally inside a LIKE pattern (escape character '!')."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _profile(snap: PartnerSnapshot) -> dict[str, Any]:
    return {
        **snap.profile,
        "stage": snap.stage,
        "cadence_days": snap.cadence_days,
        "registered_at": format_instant(snap.registered_at) if snap.registered_at else None,
        "last_touch_at": format_instant(snap.last_touch_at) if snap.last_touch_at else None,
        "version": snap.version,
    }


def _timeline_item(entry: Entry) -> dict[str, Any]:
    return {
        "position": entry.position,
        "version": entry.version,
        "type": entry.type,
        "occurred_at": format_instant(entry.occurred_at),
        "recorded_at": entry.recorded_at,
        "recorded_by": entry.recorded_by,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "retracted": entry.retracted,
    }


def _sort_key(row: dict[str, Any], sort: str) -> tuple[Any, ...]:
    return _ranked_by(
        sort,
        _name_order(row["name"], row["id"]),
        row["last_touch_at"],
        lambda: int(row["health"]["score"]),
    )


def _ranked_by(
    sort: str, by_name: tuple[Any, ...], last_touch_at: str | None, score: Callable[[], int]
) -> tuple[Any, ...]:
    """A partner's key in a list sorted by ``sort`` (ascending: strongest first for health,
    longest without a two-way touch first for last_touch), ties in name order; ``score`` is
    called only for ``health``. One rule for every list and cursor (kept lists included)."""
    if sort == "health":
        return (-score(), *by_name)
    if sort == "last_touch":
        return (last_touch_at or "", *by_name)
    return by_name


def _name_order(name: str, partner_id: str) -> tuple[Any, ...]:
    """The order of sort=name (the views' name_key, then the name, then the id); every other
    sort falls back to it on ties."""
    return (column_text(search_key(name)), column_text(name), partner_id)


def _same_shape(after: Sequence[Any], key: Sequence[Any]) -> bool:
    """Whether a cursor's key compares with this list's keys (a tampered one might not)."""
    return len(after) == len(key) and all(
        type(a) is type(k) for a, k in zip(after, key, strict=True)
    )


def _checkin_due(snap: PartnerSnapshot) -> date:
    """The last two-way touch plus the cadence; the relationship's start when there was none."""
    base = snap.last_touch_at or snap.began_at
    assert base is not None
    return day_of(base, snap.zone) + timedelta(days=snap.cadence_days)


def _agenda_commitment(
    snap: PartnerSnapshot, commitment: CommitmentView, today: date
) -> dict[str, Any]:
    return {
        "partner_id": snap.partner_id,
        "name": snap.name,
        "commitment_id": commitment.commitment_id,
        "owed_by": commitment.owed_by,
        "description": commitment.description,
        "due_on": commitment.due_on.isoformat(),
        "overdue_days": commitment.overdue_days(today),
    }


def _promises(made: Iterable[CommitmentView], today: date) -> list[dict[str, Any]]:
    """A member's promises for the report (shape in ``LedgerQueries.report``)."""

    def late(commitment: CommitmentView) -> int | None:
        if commitment.status(today) == "overdue":
            return commitment.overdue_days(today)
        return commitment.days_late

    def order(commitment: CommitmentView) -> tuple[bool, int, date, str]:
        overdue = commitment.status(today) == "overdue"
        most_late_first = -(late(commitment) or 0) if overdue else 0
        return (not overdue, most_late_first, commitment.due_on, commitment.commitment_id)

    return [
        {
            "owed_by": c.owed_by,
            "description": c.description,
            "due_on": c.due_on.isoformat(),
            "status": c.status(today),
            "days_late": late(c),
        }
        for c in sorted(made, key=order)
    ]


def _money(totals: dict[str, Decimal]) -> dict[str, str]:
    return {currency: str(totals[currency]) for currency in sorted(totals)}


def _counts(counter: Counter[str]) -> dict[str, int]:
    return {key: counter[key] for key in sorted(counter)}


def _period_ends(start: date, end: date, interval: str) -> Iterable[date]:
    if interval == "week":
        day = start + timedelta(days=(6 - start.weekday()) % 7)  # the first Sunday on or after
        while day <= end:
            yield day
            day += timedelta(days=7)
        return
    year, month = start.year, start.month
    while True:
        day = date(year, month, calendar.monthrange(year, month)[1])
        if day > end:
            return
        yield day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
