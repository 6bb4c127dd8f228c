"""A compact partner (issue 17 item 6), with no database: loaded from a snapshot and the events
after it, it holds no events, obeys exactly the rules a partner folded from all its events
obeys, and reaches the same state.

Random histories, retractions among them: at every step the same command is run on the partner
kept event by event and on one loaded as the application loads it (a snapshot taken at a
random earlier version, through the mapper, then the later events; a retraction among those
makes the loader give it its history, as ``Partnerships._get`` does), and both must refuse it
alike or record the same event and reach the same state.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.chained import ChainedAggregate
from domain.errors import InvalidRetraction, LedgerError
from domain.partner import HistoryNeeded, Partner
from domain.serialization import TypedMapper
from domain.values import EventData, ProfileUpdated, Stage, StageChanged
from tests.domain.test_partner_rules import (
    AT,
    breach,
    cadence,
    cancellation,
    commitment,
    contact,
    feedback,
    fulfilment,
    outcome,
    payment,
    registration,
    renegotiation,
    repair,
    retraction,
    stamp,
    thanks,
)

# What differs between two recordings of the same command (when, and so the hash chain), and
# what says how the partner was loaded rather than what it is.
NOT_STATE = {"entries", "keeps_history", "snapshot_version", "_modified_on", "last_hash"}


def state(partner: Partner) -> dict[str, Any]:
    return {k: v for k, v in vars(partner).items() if k not in NOT_STATE | {"_pending_events"}}


def through_the_mapper(partner: Partner) -> Partner:
    """The partner as a snapshot stored and read back would give it."""
    mapper = TypedMapper()
    stored = mapper.to_stored_event(Partner.Snapshot.take(partner))
    snapshot: Partner.Snapshot = mapper.to_domain_event(stored)
    return snapshot.mutate(None)


def fold(events: list[ChainedAggregate.Event]) -> Partner:
    partner: Any = None
    for event in events:
        partner = event.mutate(partner)
    assert isinstance(partner, Partner)
    return partner


def load(events: list[ChainedAggregate.Event], snapshot_at: int) -> Partner:
    """As the application loads a partner: the snapshot at ``snapshot_at``, then the rest."""
    older = fold(events[:snapshot_at])
    older.forget_history()
    partner: Any = through_the_mapper(older)
    for event in events[snapshot_at:]:
        try:
            partner = event.mutate(partner)
        except HistoryNeeded as needed:
            partner.take_history(events[: needed.upto])
            partner = event.mutate(partner)
    assert isinstance(partner, Partner)
    partner.forget_history()
    return partner


def run(partner: Partner, data: EventData, at: int, events: list[Any]) -> Any:
    """``Partnerships.execute`` without a database: the outcome, an event or the refusal."""
    when = stamp(AT + timedelta(minutes=at))
    try:
        try:
            partner.execute(data, when)
        except HistoryNeeded as needed:
            partner.take_history(events[: needed.upto])
            partner.execute(data, when)
    except LedgerError as refused:
        return (type(refused), str(refused))
    (event,) = partner.collect_events()
    return event


def draw(rng: random.Random, n: int) -> EventData:
    """A command, often one that refers to what may (or may not) be on record."""
    some = rng.randrange(4)
    choices: list[Callable[[], EventData]] = [
        contact,
        lambda: commitment(f"C-{rng.randrange(6)}"),
        lambda: fulfilment(f"C-{some}"),
        lambda: cancellation(f"C-{some}"),
        lambda: renegotiation(f"C-{some}"),
        lambda: payment(commitment_id=f"C-{some}"),
        lambda: thanks(f"C-{some}"),
        lambda: feedback(f"F-{rng.randrange(3)}"),
        lambda: outcome(f"F-{some % 3}"),
        lambda: breach(f"B-{rng.randrange(3)}"),
        lambda: repair(f"B-{some % 3}"),
        lambda: cadence(rng.randrange(1, 90)),
        lambda: StageChanged(stage=rng.choice(list(Stage))),
        lambda: ProfileUpdated.model_validate(
            {"name": f"Renamed {n}", "contacts": {"people": [{"name": f"Person {some}"}]}}
        ),
        lambda: retraction(rng.randrange(1, n + 3)),
        lambda: retraction(rng.randrange(1, n + 3)),
        lambda: retraction(rng.randrange(1, n + 3)),
    ]
    return rng.choice(choices)()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(5, 60))
def test_a_compact_partner_obeys_the_same_rules_and_reaches_the_same_state(
    seed: int, steps: int
) -> None:
    rng = random.Random(seed)
    kept = Partner.register(registration(), stamp())
    events: list[Any] = list(kept.collect_events())
    for n in range(steps):
        data = draw(rng, len(events))
        loaded = load(events, rng.randint(1, len(events)))
        assert not loaded.entries
        assert state(loaded) == state(kept)
        expected = run(kept, data, n, events)
        outcome_ = run(loaded, data, n, events)
        if isinstance(expected, tuple):
            assert outcome_ == expected
            continue
        assert isinstance(outcome_, ChainedAggregate.Event)
        assert (outcome_.type, outcome_.data, outcome_.prev_hash) == (
            expected.type,
            expected.data,
            expected.prev_hash,
        )
        # (New contact people get random person keys: the next load compares the states.)
        events.append(expected)
    assert state(load(events, rng.randint(1, len(events)))) == state(kept)
    # Folded from every event, then compact: the same state again.
    replayed = fold(events)
    replayed.forget_history()
    assert state(replayed) == state(kept)


def test_a_retraction_on_a_compact_partner_asks_for_its_history_and_changes_nothing() -> None:
    kept = Partner.register(registration(), stamp())
    kept.execute(contact(), stamp())
    events: list[Any] = list(kept.collect_events())
    compact = load(events, 2)
    before = state(compact)

    with pytest.raises(HistoryNeeded) as needed:
        compact.execute(retraction(2), stamp())

    assert needed.value.upto == 2
    assert state(compact) == before
    assert compact.collect_events() == []
    # A refusal needs no history: the compact state has what the rules read.
    with pytest.raises(InvalidRetraction):
        compact.execute(retraction(1), stamp())


def test_a_compact_partner_holds_no_events_however_long_its_history() -> None:
    partner = Partner.register(registration(), stamp())
    partner.execute(commitment("C-1"), stamp())
    for _ in range(500):
        partner.execute(contact(), stamp())
    partner.execute(payment(commitment_id="C-1"), stamp())
    assert len(partner.entries) == 503  # kept while built event by event
    partner.collect_events()

    partner.forget_history()

    assert partner.entries == {}
    # The registration, one commitment (its record, its id, one payment referring to it).
    assert partner.held() == 4
    assert through_the_mapper(partner).held() == 4


def test_every_attribute_of_a_partner_is_in_its_snapshot() -> None:
    partner = Partner.register(registration(), stamp())
    snapshot = through_the_mapper(partner)
    assert state(snapshot) == state(partner)
    assert set(vars(snapshot)) == set(vars(partner))
