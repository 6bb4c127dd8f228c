"""Properties of the views over random, valid ledgers (SQLite).

Hypothesis writes a ledger of one to three partners and a coalition, command by command, each
chosen among those the partner's current state allows (commitments to keep, move or cancel
while open, breaches to repair, entries that may be retracted), at times that mostly move
forward and sometimes reach back. The views then take the log in pages of random sizes, and
must agree with:

* a rebuild from position 0, table for table and answer for answer;
* the fold computed straight from the event store, by the counting rule (an entry counts at
  (as_of, position) iff its position <= position, its occurred_at <= as_of, and no retraction
  at a position <= position cancels it), at several positions and as_of values;
* themselves: a page processed twice changes nothing, and what was answered at an earlier
  position is answered again, byte for byte, once more has been recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.settings import Settings
from api.wiring import Services, open_services
from domain.chained import ChainedAggregate, Stamp
from domain.errors import CoalitionNotFound, PartnerNotFound
from domain.partner import Partner
from domain.serialization import DATA_MODELS
from domain.values import (
    CoalitionFormed,
    EntryRetracted,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
)
from projections.folds import Entry, figures_of, fold_partner, health_of
from projections.queries import At, end_of_day
from projections.store import VIEW_TABLES

T = TypeVar("T")
START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
RECORDER = "steward:hypothesis"
MAX_PARTNERS = 3

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- writing a random, valid ledger ---------------------------------------------------------


class Writer:
    """Draws commands one at a time from what the ledger's current state allows."""

    def __init__(self, services: Services, data: st.DataObject) -> None:
        self.services = services
        self.data = data
        self.clock = START
        self.serial = 0
        self.partners: list[UUID] = []
        self.coalition_changed = START
        self.coalition = services.ledger.form_coalition(
            CoalitionFormed(name="Valley Health Equity Coalition"), Stamp(START, RECORDER)
        ).stream_id

    def draw(self, strategy: st.SearchStrategy[T]) -> T:
        return self.data.draw(strategy)

    def pick(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(list(options)))

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def tick(self) -> datetime:
        """Move the clock on by up to two weeks."""
        self.clock += timedelta(minutes=self.draw(st.integers(0, 14 * 24 * 60)))
        return self.clock

    def when(self, floor: datetime) -> datetime:
        """Now on the clock, or sometimes a moment already past, never before ``floor``."""
        moment = self.tick()
        if self.draw(st.integers(0, 3)) == 0:
            moment -= timedelta(minutes=self.draw(st.integers(0, 40 * 24 * 60)))
        return max(moment, floor)

    def record(self, partner_id: UUID, type_: str, when: datetime, **fields: Any) -> None:
        data = DATA_MODELS[type_].model_validate(fields)
        self.services.ledger.record(partner_id, data, Stamp(when, RECORDER))

    def step(self) -> None:
        if not self.partners or (
            len(self.partners) < MAX_PARTNERS and self.draw(st.integers(0, 7)) == 0
        ):
            self.register()
            return
        partner_id = self.pick(self.partners)
        partner = self.services.ledger.get_partner(partner_id)
        assert partner.registered_at is not None
        actions = self.actions(partner)
        getattr(self, self.pick(actions))(partner_id, partner, partner.registered_at)

    def actions(self, partner: Partner) -> list[str]:
        found = [
            "contact",
            "meeting",
            "cadence",
            "commit",
            "pay",
            "thank",
            "feedback",
            "outcome",
            "breach",
            "stage",
            "profile",
            "membership",
        ]
        # Commitments and their outcomes, repairs and retractions are what the views fold with
        # most care: offer them more often than the rest.
        found += ["commit", "commit"]
        if any(c.closed is None for c in partner.commitments.values()):
            found += ["fulfil", "renegotiate", "cancel"] * 2
        if any(not b.repaired for b in partner.breaches.values()):
            found += ["repair"] * 2
        if retractable(partner):
            found += ["retract"] * 2
        return found

    # ---- the commands ---------------------------------------------------------------------

    def register(self) -> None:
        number = len(self.partners) + 1
        data = PartnerRegistered.model_validate(
            {
                "name": self.pick(["Eastside Promotoras", "Luz Marquez", "Valley Institute"])
                + f" {number}",
                "kind": self.pick(["organization", "individual"]),
                "roles": self.draw(
                    st.lists(st.sampled_from(["speaker", "consultant"]), max_size=2)
                ),
                "communities": self.draw(
                    st.lists(st.sampled_from(["rural", "youth", "Latino families"]), max_size=2)
                ),
                "region": self.pick([None, "Central Valley", "Fresno"]),
            }
        )
        recorded = self.services.ledger.register_partner(data, Stamp(self.tick(), RECORDER))
        self.partners.append(recorded.stream_id)

    def contact(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "contact_made",
            self.when(floor),
            channel=self.pick(["email", "phone", "in_person"]),
            direction=self.pick(["inbound", "outbound"]),
        )

    def meeting(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        kind = self.pick(["check_in", "listening_session"])
        self.record(pid, "meeting_held", self.when(floor), kind=kind, location="theirs")

    def cadence(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        every = self.draw(st.integers(1, 120))
        self.record(pid, "checkin_cadence_agreed", self.when(floor), every_days=every)

    def commit(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        at = self.when(floor)
        money = self.draw(st.booleans())
        self.record(
            pid,
            "commitment_made",
            at,
            commitment_id=self.next_id("C"),
            owed_by=self.pick(["us", "partner"]),
            description="A promise",
            due_on=(at.date() + timedelta(days=self.draw(st.integers(0, 60)))).isoformat(),
            resource="financial" if money else self.pick(["time", "deliverable"]),
            amount=f"{self.draw(st.integers(1, 900))}.50" if money else None,
            currency="USD" if money else None,
            coalition_id=str(self.coalition) if self.draw(st.booleans()) else None,
        )

    def _open(self, partner: Partner) -> tuple[str, datetime]:
        commitment_id = self.pick(
            sorted(k for k, c in partner.commitments.items() if c.closed is None)
        )
        return commitment_id, partner.commitments[commitment_id].made_at

    def fulfil(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        commitment_id, made_at = self._open(partner)
        at = self.when(max(floor, made_at))
        self.record(pid, "commitment_fulfilled", at, commitment_id=commitment_id)

    def renegotiate(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        commitment_id, made_at = self._open(partner)
        at = self.when(max(floor, made_at))
        due = max(made_at.date(), at.date() + timedelta(days=self.draw(st.integers(-10, 40))))
        self.record(
            pid, "commitment_renegotiated", at, commitment_id=commitment_id, due_on=due.isoformat()
        )

    def cancel(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        commitment_id, made_at = self._open(partner)
        at = self.when(max(floor, made_at))
        self.record(pid, "commitment_cancelled", at, commitment_id=commitment_id, reason="moot")

    def pay(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "payment_made",
            self.when(floor),
            amount=f"{self.draw(st.integers(1, 500))}.{self.draw(st.integers(0, 99)):02d}",
            currency=self.pick(["USD", "EUR"]),
            purpose=self.pick(["stipend", "compensation", "reimbursement"]),
            commitment_id=self.pick([None, *sorted(partner.commitments)]),
        )

    def thank(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "thanks_expressed",
            self.when(floor),
            form=self.pick(["note", "call", "gift"]),
            for_commitment_id=self.pick([None, *sorted(partner.commitments)]),
        )

    def feedback(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(pid, "feedback_received", self.when(floor), feedback_id=self.next_id("F"))

    def outcome(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        feedback_id = self.pick([None, *sorted(partner.feedback)])
        self.record(pid, "outcome_shared", self.when(floor), feedback_id=feedback_id)

    def breach(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "trust_breach_recorded",
            self.when(floor),
            breach_id=self.next_id("B"),
            severity=self.pick(["minor", "moderate", "severe"]),
            caused_by=self.pick(["us", "partner"]),
            description="A promise broken",
        )

    def repair(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        breach_id = self.pick(sorted(k for k, b in partner.breaches.items() if not b.repaired))
        at = self.when(max(floor, partner.breaches[breach_id].occurred_at))
        self.record(pid, "trust_repaired", at, breach_id=breach_id)

    def stage(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        stage = self.pick(["exploring", "partnership", "paused", "ended"])
        self.record(pid, "stage_changed", self.when(floor), stage=stage)

    def profile(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "profile_updated",
            self.when(floor),
            name=f"{partner.name} (renamed)",
            communities=self.draw(st.lists(st.sampled_from(["rural", "youth"]), max_size=2)),
        )

    def retract(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        version = self.pick(retractable(partner))
        self.record(pid, "entry_retracted", self.when(floor), version=version, reason="mistake")

    def membership(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        # Coalition changes are recorded in the order they happened: on the clock, no going back.
        ledger = self.services.ledger
        self.coalition_changed = max(self.tick(), self.coalition_changed)
        stamp = Stamp(self.coalition_changed, RECORDER)
        if pid in ledger.get_coalition(self.coalition).members:
            ledger.leave_coalition(self.coalition, MemberLeft(partner_id=pid), stamp)
        else:
            ledger.join_coalition(self.coalition, MemberJoined(partner_id=pid), stamp)


def retractable(partner: Partner) -> list[int]:
    """Versions the partner would let us retract: not the registration, not a retraction, not
    already retracted, and nothing still counting that refers to it."""
    return [
        version
        for version in range(2, partner.version + 1)
        if version not in partner.retractions
        and version not in partner.retracted
        and not partner._dependents_of(version)
    ]


# ---- reading it straight from the event store -----------------------------------------------

Log = list[tuple[ChainedAggregate.Event, int]]


def log(services: Services) -> Log:
    ledger = services.ledger
    return [(ledger.decode(n), n.id) for n in ledger.notifications()]


def seen(events: Log, stream_id: UUID, at: At) -> list[tuple[ChainedAggregate.Event, int, bool]]:
    """A stream's events recorded by ``position`` that occurred by ``as_of``, in world order,
    each with whether a retraction recorded by ``position`` cancels it."""
    retracted = {
        (event.originator_id, event.data.version)
        for event, position in events
        if isinstance(event.data, EntryRetracted) and position <= at.position
    }
    found = [
        (event, position, (event.originator_id, event.originator_version) in retracted)
        for event, position in events
        if event.originator_id == stream_id
        and position <= at.position
        and event.occurred_at <= at.as_of
    ]
    return sorted(found, key=lambda f: (f[0].occurred_at, f[0].originator_version))


def counting(events: Log, stream_id: UUID, at: At) -> list[Entry]:
    """The counting rule, applied by hand to the decoded log."""
    return [
        Entry(
            position=position,
            stream_id=str(event.originator_id),
            version=event.originator_version,
            type=event.data.TYPE,
            occurred_at=event.occurred_at,
            data=event.data.model_dump(mode="json"),
        )
        for event, position, retracted in seen(events, stream_id, at)
        if not retracted and not isinstance(event.data, EntryRetracted)
    ]


def members_by_hand(events: Log, coalition: UUID, at: At, registered: list[str]) -> list[str]:
    members: set[str] = set()
    for event, _, _ in seen(events, coalition, at):
        if isinstance(event.data, MemberJoined):
            members.add(str(event.data.partner_id))
        elif isinstance(event.data, MemberLeft):
            members.discard(str(event.data.partner_id))
    return sorted(members & set(registered))


def check_against_the_store(services: Services, writer: Writer, at: At) -> None:
    events = log(services)
    queries = services.queries
    today = at.as_of.astimezone(UTC).date()
    registered = []
    for partner_id in writer.partners:
        entries = counting(events, partner_id, at)
        pid = str(partner_id)
        if not any(e.type == "partner_registered" for e in entries):
            with pytest.raises(PartnerNotFound):
                queries.health(pid, at)
            continue
        registered.append(pid)
        snap = fold_partner(pid, entries)
        health = queries.health(pid, at)
        expected = health_of(snap, at.as_of).as_dict()
        assert {k: health[k] for k in expected} == expected
        commitments = queries.commitments(pid, at)
        items = sorted(snap.commitments.values(), key=lambda c: (c.made_at, c.version))
        assert commitments["commitments"] == [c.as_dict(today) for c in items]
        assert commitments["figures"] == {
            side: f.as_dict() for side, f in figures_of(items, today).items()
        }
        timeline = queries.timeline(pid, at, limit=1000)["events"]
        assert [(e["position"], e["type"], e["retracted"]) for e in timeline] == [
            (position, event.data.TYPE, retracted)
            for event, position, retracted in seen(events, partner_id, at)
        ]
    listed = queries.partners(at, limit=1000)["partners"]
    assert sorted(p["id"] for p in listed) == sorted(registered)
    if at.as_of < START:  # the coalition was formed at START
        with pytest.raises(CoalitionNotFound):
            queries.report(str(writer.coalition), at)
        return
    report = queries.report(str(writer.coalition), at)
    assert sorted(m["partner_id"] for m in report["members"]) == members_by_hand(
        events, writer.coalition, at, registered
    )


# ---- the views' own answers -----------------------------------------------------------------


def answers(
    services: Services, writer: Writer, at: At, partners: Sequence[UUID] | None = None
) -> dict[str, bytes]:
    """Every query's answer at ``at``, as bytes; per partner for ``partners`` (default: all)."""
    q = services.queries
    found: dict[str, Any] = {
        "accountability": q.accountability(at),
        "agenda": q.agenda(at, within_days=30),
        "review": q.review(at),
        "partners": q.partners(at, limit=1000),
        "coalitions": q.coalitions(at),
        "digest": q.digest(at),
    }
    try:
        found["report"] = q.report(str(writer.coalition), at)
    except CoalitionNotFound:
        found["report"] = "not formed yet"
    for partner_id in writer.partners if partners is None else partners:
        pid = str(partner_id)
        try:
            found[f"{pid}/health"] = q.health(pid, at)
        except PartnerNotFound:
            found[f"{pid}/health"] = "not on record"
            continue
        found[f"{pid}/commitments"] = q.commitments(pid, at)
        found[f"{pid}/timeline"] = q.timeline(pid, at, limit=1000)
    return {name: orjson.dumps(answer) for name, answer in found.items()}


def tables(services: Services) -> dict[str, list[dict[str, Any]]]:
    view = services.view
    return {
        table: sorted(
            (dict(row) for row in view.select(f"SELECT * FROM {{p}}{table}")), key=_row_key
        )
        for table in VIEW_TABLES
    }


def process_in_pages(services: Services, writer: Writer, items: Log) -> None:
    """Hand the new events to the view in pages of random sizes, redelivering some."""
    done = services.view.processed_position()
    fresh = [item for item in items if item[1] > done]
    while fresh:
        size = writer.draw(st.integers(1, 8))
        page, fresh = fresh[:size], fresh[size:]
        assert services.view.process(page) == len(page)
        if writer.draw(st.integers(0, 3)) == 0:  # redelivered: already tracked, so skipped
            assert services.view.process(page) == 0
    assert services.view.processed_position() == (items[-1][1] if items else done)


def as_ofs(writer: Writer) -> list[datetime]:
    start, end = START - timedelta(days=1), writer.clock + timedelta(days=400)
    instants = st.datetimes(
        min_value=start.replace(tzinfo=None),
        max_value=end.replace(tzinfo=None),
        timezones=st.just(UTC),
    )
    moments = writer.draw(st.lists(instants, min_size=1, max_size=3))
    days = writer.draw(
        st.lists(st.dates(min_value=start.date(), max_value=end.date()), min_size=1, max_size=2)
    )
    return [
        start,
        writer.clock,
        end,
        *moments,
        *(end_of_day(d) for d in days),
    ]


@contextmanager
def fresh_ledger(factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = open_services(Settings(db_path=factory.mktemp("ledger") / "pledger.db"))
    try:
        yield services
    finally:
        services.close()


@SETTINGS
@given(data=st.data())
def test_views_agree_with_the_store_with_a_rebuild_and_with_themselves(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    with fresh_ledger(tmp_path_factory) as services:
        writer = Writer(services, data)
        for _ in range(writer.draw(st.integers(1, 25))):
            writer.step()
        process_in_pages(services, writer, log(services))
        middle = services.view.processed_position()
        references = [At(moment, middle) for moment in as_ofs(writer)]
        partners = list(writer.partners)
        before = [answers(services, writer, at, partners) for at in references]

        for _ in range(writer.draw(st.integers(1, 20))):
            writer.step()
        items = log(services)
        process_in_pages(services, writer, items)
        end = services.view.processed_position()
        assert end == items[-1][1]

        # What was answered at the middle position is answered again, byte for byte.
        assert [answers(services, writer, at, partners) for at in references] == before
        # The views agree with the store, at both positions and every as_of.
        later = [At(moment, end) for moment in as_ofs(writer)]
        for at in [*references, *later]:
            check_against_the_store(services, writer, at)
        # Processing again changes nothing; a rebuild from position 0 gives the same views.
        kept_tables = tables(services)
        kept_answers = [answers(services, writer, at) for at in [*references, *later]]
        assert services.view.process(items) == 0
        assert services.keeper.rebuild() == len(items)
        assert tables(services) == kept_tables
        assert [answers(services, writer, at) for at in [*references, *later]] == kept_answers


@SETTINGS
@given(data=st.data())
def test_health_at_an_old_reference_is_unchanged_by_backdated_entries(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    with fresh_ledger(tmp_path_factory) as services:
        writer = Writer(services, data)
        for _ in range(writer.draw(st.integers(1, 15))):
            writer.step()
        services.keeper.catch_up()
        at = At(end_of_day(writer.clock.date()), services.view.processed_position())
        partners = list(writer.partners)
        first = answers(services, writer, at, partners)

        # Entries about moments before that as_of, recorded afterwards:
        for _ in range(writer.draw(st.integers(1, 10))):
            writer.clock -= timedelta(days=writer.draw(st.integers(0, 5)))
            writer.step()
        services.keeper.catch_up()

        assert answers(services, writer, at, partners) == first
        assert services.queries.at(at.as_of, at.position) == at


def test_the_counting_rule_by_hand_matches_the_views_on_a_retraction(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The hand-written rule above, checked once on a known case, so it cannot pass vacuously."""
    with fresh_ledger(tmp_path_factory) as services:
        ledger = services.ledger
        pid = ledger.register_partner(
            PartnerRegistered(name="Luz Marquez", kind="individual"), Stamp(START, RECORDER)
        ).stream_id
        data = DATA_MODELS["feedback_received"].model_validate({"feedback_id": "F-1"})
        feedback = ledger.record(pid, data, Stamp(START + timedelta(days=1), RECORDER))
        retraction = DATA_MODELS["entry_retracted"].model_validate(
            {"version": feedback.version, "reason": "wrong partner"}
        )
        ledger.record(pid, retraction, Stamp(START + timedelta(days=2), RECORDER))
        services.keeper.catch_up()
        events = log(services)

        late = end_of_day(date(2024, 6, 1))
        before = counting(events, pid, At(late, feedback.position))
        after = counting(events, pid, At(late, feedback.position + 1))

        assert [e.type for e in before] == ["partner_registered", "feedback_received"]
        assert [e.type for e in after] == ["partner_registered"]

        # And the views agree: the feedback is an ask before the retraction, nothing after it.
        def reciprocity(at: At) -> str:
            health = services.queries.health(str(pid), at)
            (found,) = [c for c in health["components"] if c["name"] == "reciprocity"]
            return str(found["explanation"])

        assert reciprocity(At(late, feedback.position)).endswith("1 feedback received).")
        assert reciprocity(At(late, feedback.position + 1)).startswith(
            "Not counted: nothing has been asked"
        )


def _row_key(row: dict[str, object]) -> list[str]:
    """Rows in a stable order whatever order the store returns them in."""
    return [str(value) for value in row.values()]
