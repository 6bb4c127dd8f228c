"""The partners list at a past ``as_of`` (issue 17 item 6), against the full fold, on both stores.

Lists at a reference the stored snapshots do not answer are folded once and kept
(``queries._PastList``), and kept lists answer again at later positions while nothing recorded
since counts at their ``as_of``. Random histories (backdated events, retractions, renames,
commitments kept late) in a non-UTC zone, asked at day edges there, must give exactly what a
fold of every partner's whole stream gives at that reference: every sort, both directions,
filters, and every page of a cursor walk; before and after more is recorded; and an erasure
recorded later leaves no erased name in a list kept before it.
"""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from api.settings import Settings
from api.wiring import Services
from domain.chained import Stamp
from domain.dates import start_of_day
from domain.errors import Conflict, InvalidCommand, PartnerNotFound
from domain.serialization import DATA_MODELS
from domain.values import ErasureReason, PartnerRegistered, search_key
from projections.folds import health_of
from projections.queries import At, _fold, _profile, _sort_key, end_of_day
from tests.projections.test_time_zone import opened

ZONE = "America/Los_Angeles"
STEWARD = "steward:past-lists"
START = datetime(2025, 1, 1, 17, tzinfo=UTC)
NAMES = ["Valley Promotoras", "Youth Arts Collective", "Río Verde Youth", "Casa Norte", "Ålands"]
SORTS = (("health", None), ("name", None), ("last_touch", None), ("health", "asc"))
FILTERS: tuple[dict[str, Any], ...] = ({}, {"q": "youth"}, {"stage": "partnership"}, {"q": "zzz"})


class History:
    """A random history: partners registered over time, events mostly in order, some
    backdated by up to 60 days, some retracted, names changed."""

    def __init__(self, services: Services, rng: random.Random) -> None:
        self.services = services
        self.rng = rng
        self.clock = START
        self.partners: list[UUID] = []
        self.versions: dict[UUID, list[int]] = {}
        self.serial = 0

    def record(self, partner: UUID, type_: str, when: datetime, **fields: Any) -> None:
        data = DATA_MODELS[type_].model_validate(fields)
        recorded = self.services.ledger.record(partner, data, Stamp(when, STEWARD))
        self.versions[partner].append(recorded.version)

    def register(self) -> None:
        name = f"{self.rng.choice(NAMES)} {len(self.partners)}"
        recorded = self.services.ledger.register_partner(
            PartnerRegistered(name=name, kind="organization"), Stamp(self.when(), STEWARD)
        )
        partner = UUID(str(recorded.stream_id))
        self.partners.append(partner)
        self.versions[partner] = []

    def when(self) -> datetime:
        self.clock += timedelta(minutes=self.rng.randint(0, 6 * 24 * 60))
        if self.rng.random() < 0.2:  # history recorded late
            return self.clock - timedelta(minutes=self.rng.randint(0, 120 * 24 * 60))
        return self.clock

    def step(self) -> None:
        if len(self.partners) < 2 or self.rng.random() < 0.1:
            self.register()
            return
        # A command the partner's state refuses (a due date before it was made...) is skipped.
        with contextlib.suppress(InvalidCommand, Conflict):
            self.change()
        self.services.keeper.catch_up()

    def change(self) -> None:
        partner = self.rng.choice(self.partners)
        choice = self.rng.random()
        when = self.when()
        if choice < 0.35:
            direction = self.rng.choice(["inbound", "outbound"])
            self.record(partner, "contact_made", when, channel="email", direction=direction)
        elif choice < 0.5:
            self.serial += 1
            due = (when + timedelta(days=self.rng.randint(-5, 20))).date().isoformat()
            self.record(
                partner,
                "commitment_made",
                when,
                commitment_id=f"C-{self.serial}",
                owed_by=self.rng.choice(["us", "partner"]),
                description="Share the room",
                due_on=due,
                resource="time",
            )
            if self.rng.random() < 0.6:
                kept = when + timedelta(days=self.rng.randint(0, 25))
                self.record(partner, "commitment_fulfilled", kept, commitment_id=f"C-{self.serial}")
        elif choice < 0.6:
            self.record(partner, "checkin_cadence_agreed", when, every_days=self.rng.randint(7, 60))
        elif choice < 0.7:
            stage = self.rng.choice(["exploring", "partnership", "paused"])
            self.record(partner, "stage_changed", when, stage=stage)
        elif choice < 0.8:
            name = f"{self.rng.choice(NAMES)} renamed {self.rng.randint(0, 99)}"
            self.record(partner, "profile_updated", when, name=name)
        elif self.versions[partner]:
            version = self.rng.choice(self.versions[partner])
            self.record(partner, "entry_retracted", when, version=version, reason="mistaken")


def full_fold(
    services: Services, at: At, sort: str, order: str | None, **filters: Any
) -> list[Any]:
    """The list as a fold of every partner's whole stream at ``at`` gives it, sorted."""
    rows = []
    for row in services.view.select("SELECT partner_id FROM {p}partners"):
        partner_id = row["partner_id"]
        try:
            snap = _fold(partner_id, services.queries.log.stream(partner_id), at)
        except PartnerNotFound:
            continue
        profile = _profile(snap)
        if filters.get("stage") and snap.stage != filters["stage"]:
            continue
        if filters.get("q") and search_key(filters["q"]) not in search_key(snap.name):
            continue
        health = health_of(snap, at.as_of)
        rows.append(
            {"id": partner_id, **profile, "health": {"score": health.score, "band": health.band}}
        )
    natural = {"name": "asc", "health": "desc", "last_touch": "asc"}[sort]
    rows.sort(key=lambda r: _sort_key(r, sort), reverse=order is not None and order != natural)
    return rows


def walked(services: Services, at: At, sort: str, order: str | None, **filters: Any) -> list[Any]:
    """Every page of a cursor walk of the list, pages of 2."""
    found: list[Any] = []
    cursor = None
    while True:
        page = services.queries.partners(
            at,
            sort=sort,  # type: ignore[arg-type]
            order=order,  # type: ignore[arg-type]
            cursor=cursor,
            limit=2,
            **filters,
        )
        assert (page["as_of"], page["position"]) == (at.stamp()["as_of"], at.position)
        found += page["partners"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def edges(services: Services, rng: random.Random, history: History) -> list[datetime]:
    """Moments at day edges in the ledger's zone, between the start and the history's clock."""
    zone = services.settings.zone
    days = (history.clock - START).days + 1
    found = []
    for _ in range(3):
        day = START.date() + timedelta(days=rng.randint(days // 2, days))
        found.append(end_of_day(day, zone))
        found.append(start_of_day(day, zone))
        found.append(start_of_day(day, zone) - timedelta(microseconds=1))
    return found


def check(services: Services, at: At) -> dict[tuple[Any, ...], list[Any]]:
    answers = {}
    for sort, order in SORTS:
        for filters in FILTERS:
            expected = full_fold(services, at, sort, order, **filters)
            assert walked(services, at, sort, order, **filters) == expected, (at, sort, filters)
            answers[(sort, order, tuple(filters.items()))] = expected
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_past_lists_equal_the_full_fold(settings: Settings, seed: int) -> None:
    rng = random.Random(seed)
    with opened(settings, ZONE) as services:
        history = History(services, rng)
        for _ in range(40):
            history.step()
        queries = services.queries
        moments = edges(services, rng, history)
        earlier = queries.at(moments[0])
        before = check(services, earlier)
        for as_of in moments[1:]:
            check(services, queries.at(as_of))
        for _ in range(25):  # more recorded: backdated, retractions, later events
            history.step()
            check(services, queries.at(rng.choice(moments)))
        # What was answered at the earlier position is answered again.
        again = queries.at(earlier.as_of, earlier.position)
        assert check(services, again) == before


def test_a_list_kept_before_an_erasure_shows_no_erased_name(settings: Settings) -> None:
    with opened(settings, ZONE) as services:
        history = History(services, random.Random(7))
        for _ in range(20):
            history.step()
        target = history.partners[0]
        at = services.queries.at(end_of_day(date(2025, 1, 10), services.settings.zone))
        name = _fold(str(target), services.queries.log.stream(str(target)), at).name
        first = services.queries.partners(at, sort="name", limit=100)
        assert name in {row["name"] for row in first["partners"]}
        services.ledger.erase_personal_data(
            target, ErasureReason.REQUEST, Stamp(history.clock, STEWARD)
        )
        services.keeper.catch_up()
        same = services.queries.at(at.as_of, at.position)
        answer = services.queries.partners(same, sort="name", limit=100)
        assert name not in {row["name"] for row in answer["partners"]}
        assert answer["partners"] == full_fold(services, same, "name", None)[:100]
