"""``pledger demo``: a living example ledger drawn from the partnership guidance in the seeds.

Organizations and individuals across communities, roles and regions; coalitions with a shared
vision; agreed check-in cadences; commitments both ways — most kept, some late, some overdue,
renegotiated or cancelled; stipends and grants paid against them; thanks and outcome follow-ups
(some missing); a few breaches of trust and their repairs; a few retracted mistakes.

The same seed and the same ``until`` day give the same partners, ids and events (only
``recorded_at``, and so the hashes, differ between runs). Every entry goes through the
aggregates' own commands, so the demo obeys every rule a live write obeys, and is saved in
batches, one transaction per batch.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache

from domain.application import Partnerships
from domain.chained import ChainedAggregate, Stamp
from domain.coalition import Coalition
from domain.errors import LedgerError
from domain.partner import Partner
from domain.values import (
    AgreementSigned,
    CheckinCadenceAgreed,
    CoalitionFormed,
    CommitmentCancelled,
    CommitmentFulfilled,
    CommitmentMade,
    CommitmentRenegotiated,
    ContactMade,
    EntryRetracted,
    EventData,
    FeedbackReceived,
    MeetingHeld,
    MemberJoined,
    OutcomeShared,
    PartnerRegistered,
    PaymentMade,
    Preferences,
    ProfileUpdated,
    StageChanged,
    ThanksExpressed,
    TrustBreachRecorded,
    TrustRepaired,
)

__all__ = ["DemoPlan", "build_demo", "load_demo"]

RECORDED_BY = "demo"
_NAMESPACE = uuid.UUID("5b1d7e0c-3f7a-4e57-9a55-2f0c1f6d2b10")

_ORG_NAMES = [
    "Eastside Tenants Union",
    "Casa de la Comunidad",
    "Northside Youth Collective",
    "Riverbend Disability Advocates",
    "Unidos Health Promoters",
    "Harbor Food Network",
    "Asociación Vecinal Ñandú",
    "First Nations Wellness Circle",
    "Valley Farmworker Alliance",
    "Lakeshore Senior Center",
    "Hmong Family Association",
    "Black Parents United",
    "Pride Community Clinic",
    "Refugee Welcome Coalition",
    "Southside Faith Leaders",
    "Mountain Rural Health Network",
    "Deaf Access Project",
    "Veterans Peer Support",
]
_FIRST = [
    "Rosa",
    "Dev",
    "Amara",
    "Tomás",
    "Li",
    "Fatima",
    "Jordan",
    "Keisha",
    "Mateo",
    "Aiyana",
    "Nguyen",
    "Samira",
    "Elena",
    "Kwame",
    "Priya",
    "Owen",
    "Zainab",
    "Marisol",
]
_LAST = [
    "Alvarez",
    "Okafor",
    "Chen",
    "Begay",
    "Haddad",
    "Johnson",
    "Patel",
    "Nakamura",
    "Rivera",
    "Mensah",
    "Kowalski",
    "Yazzie",
    "Ibrahim",
    "Santos",
    "Lee",
    "Morales",
]
_COMMUNITIES = [
    "tenants",
    "youth",
    "immigrants",
    "disability",
    "farmworkers",
    "seniors",
    "veterans",
    "faith",
    "lgbtq",
    "tribal",
    "rural",
    "deaf",
    "parents",
    "refugees",
]
_REGIONS = ["North", "South", "East", "West", "Central", "Valley", "Coast"]
_ROLES = [
    "grant_reviewer",
    "speaker",
    "advisory_member",
    "technical_expert",
    "consultant",
    "community_leader",
    "researcher",
]
_LANGUAGES = ["en", "es", "vi", "hmn", "ar", "so", "nv"]
_ACCESS = [
    "evening meetings",
    "ASL interpreter",
    "large print",
    "childcare",
    "transit fare",
    "plain language",
    "wheelchair access",
]
_GRATITUDE = ["public_acknowledgment", "handwritten note", "call", "gift card", "shout-out"]
_US_PROMISES = [
    ("Stipend for the advisory panel", "financial"),
    ("Share the listening-session summary", "deliverable"),
    ("Letter of support for their grant", "deliverable"),
    ("Interpreter for the town hall", "in_kind"),
    ("Staff time for their data walk", "personnel"),
    ("Report back on what changed after their feedback", "deliverable"),
    ("Honorarium for speaking at the summit", "financial"),
]
_PARTNER_PROMISES = [
    ("Host a listening session at their hall", "time"),
    ("Review the draft outreach plan", "deliverable"),
    ("Recruit residents for the focus group", "time"),
    ("Co-present findings at the council meeting", "time"),
    ("Translate the flyer", "in_kind"),
]
_FEEDBACK = [
    "Meetings at 9am exclude working parents.",
    "The survey was too long and only in English.",
    "People want to see what happened with last year's input.",
    "Use text messages, not email, to reach members.",
]


@dataclass(frozen=True)
class DemoPlan:
    partners: int = 60
    months: int = 18
    seed: int = 7
    until: date = field(default_factory=lambda: datetime.now(UTC).date())
    events_per_partner: int | None = None  # a target for benchmarks; None = as the story goes


_PLACES = [
    "Eastside",
    "Riverbend",
    "Northgate",
    "Lakeshore",
    "Southside",
    "Harbor",
    "Valley",
    "Mountain",
    "Westfield",
    "Central",
    "Greenway",
    "Old Town",
]
_FOCUS = [
    "Tenants",
    "Youth",
    "Disability",
    "Health",
    "Food",
    "Farmworker",
    "Senior",
    "Veterans",
    "Refugee",
    "Parents",
    "Faith",
    "Arts",
    "Immigrant",
    "Deaf",
    "Recovery",
]
_FORMS = [
    "Union",
    "Collective",
    "Alliance",
    "Network",
    "Association",
    "Council",
    "Project",
    "Circle",
    "Center",
    "Cooperative",
]


@cache
def _combined_names() -> tuple[str, ...]:
    names = [f"{place} {focus} {form}" for form in _FORMS for focus in _FOCUS for place in _PLACES]
    return tuple(name for name in names if name not in _ORG_NAMES)


def _organization_name(index: int) -> str:
    """The well-known names first, then place + focus + form; a number after every round."""
    if index < len(_ORG_NAMES):
        return _ORG_NAMES[index]
    combined = _combined_names()
    n = index - len(_ORG_NAMES)
    cycle = n // len(combined)
    return combined[n % len(combined)] + (f" {cycle + 1}" if cycle else "")


def _stable_id(rng: random.Random) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{rng.getrandbits(64):016x}")


@dataclass
class _Story:
    """One partner's events, planned in world order before any is recorded."""

    rng: random.Random
    until: datetime
    steps: list[tuple[datetime, EventData]] = field(default_factory=list)

    def add(self, moment: datetime, data: EventData) -> None:
        if moment <= self.until:
            self.steps.append((moment, data))


def _moment(rng: random.Random, day: date) -> datetime:
    return datetime.combine(day, time(rng.randint(8, 18), rng.randint(0, 59)), tzinfo=UTC)


def _partner_story(
    rng: random.Random, index: int, start: date, until: datetime, target: int | None
) -> tuple[PartnerRegistered, datetime, _Story]:
    story = _Story(rng, until)
    individual = rng.random() < 0.4
    if individual:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        roles = tuple(rng.sample(_ROLES, rng.randint(1, 2)))
    else:
        name = _organization_name(index)
        roles = tuple(
            rng.sample(["advisory_member", "community_leader", "speaker"], rng.randint(1, 2))
        )
    registration = PartnerRegistered(
        name=name,
        kind="individual" if individual else "organization",
        roles=roles,
        communities=tuple(rng.sample(_COMMUNITIES, rng.randint(1, 3))),
        region=rng.choice(_REGIONS),
        preferences=Preferences(
            channels=tuple(rng.sample(["email", "phone", "text", "in_person", "video"], 2)),
            language=rng.choice(_LANGUAGES),
            accessibility=tuple(rng.sample(_ACCESS, rng.randint(0, 2))),
            gratitude=tuple(rng.sample(_GRATITUDE, rng.randint(1, 2))),
        ),
    )
    registered = _moment(rng, start + timedelta(days=rng.randint(0, 40)))
    cadence = rng.choice([30, 30, 45, 60, 60, 90])
    story.add(registered + timedelta(hours=1), CheckinCadenceAgreed(every_days=cadence))
    neglected = rng.random() < 0.15
    stage_path = ["exploring", "partnership", rng.choice(["coordination", "collaboration"])]
    day = registered.date()
    counter = 0
    stage_index = 0
    end = until.date()
    while day < end:
        gap = cadence * (rng.uniform(2.2, 3.5) if neglected else rng.uniform(0.5, 1.2))
        day = day + timedelta(days=max(3, int(gap)))
        if day >= end:
            break
        when = _moment(rng, day)
        roll = rng.random()
        if roll < 0.45:
            story.add(
                when,
                MeetingHeld(
                    kind=rng.choice(
                        ["listening_session", "check_in", "planning", "informal", "event"]
                    ),
                    location=rng.choice(["theirs", "theirs", "neutral", "virtual", "ours"]),
                    summary="Met to talk through priorities and next steps.",
                    attendees=tuple(rng.sample(_FIRST, rng.randint(1, 3))),
                ),
            )
        else:
            story.add(
                when,
                ContactMade(
                    channel=rng.choice(["email", "phone", "text", "video", "in_person"]),
                    direction="inbound" if rng.random() < 0.5 else "outbound",
                    summary="Caught up on the project and upcoming dates.",
                ),
            )
        if stage_index < len(stage_path) and rng.random() < 0.25:
            story.add(
                when + timedelta(minutes=30),
                StageChanged(stage=stage_path[stage_index], reason="Agreed together."),
            )
            if stage_path[stage_index] == "partnership":
                story.add(
                    when + timedelta(minutes=40),
                    AgreementSigned(
                        title="Memorandum of understanding",
                        kind="mou",
                        effective_on=when.date(),
                        ends_on=when.date() + timedelta(days=365),
                    ),
                )
            stage_index += 1
        if rng.random() < 0.45:
            counter += 1
            _commitment(story, rng, when + timedelta(hours=1), f"C-{index:05d}-{counter:03d}")
        if rng.random() < 0.15:
            feedback_id = f"F-{index:05d}-{counter:03d}-{rng.randint(0, 999):03d}"
            story.add(
                when + timedelta(hours=2),
                FeedbackReceived(feedback_id=feedback_id, summary=rng.choice(_FEEDBACK)),
            )
            if rng.random() < 0.7:
                later = when + timedelta(days=rng.randint(5, 45))
                story.add(
                    later,
                    OutcomeShared(
                        summary="Here is what we changed after your feedback.",
                        feedback_id=feedback_id,
                    ),
                )
        if rng.random() < 0.02:
            breach_id = f"B-{index:05d}-{counter:03d}"
            story.add(
                when + timedelta(hours=3),
                TrustBreachRecorded(
                    breach_id=breach_id,
                    severity=rng.choice(["minor", "minor", "moderate", "severe"]),
                    caused_by="us" if rng.random() < 0.7 else "partner",
                    description=(
                        "A promised follow-up did not happen and they heard about a decision "
                        "second-hand."
                    ),
                ),
            )
            if rng.random() < 0.75:
                story.add(
                    when + timedelta(days=rng.randint(7, 60)),
                    TrustRepaired(
                        breach_id=breach_id,
                        summary="Apologised in person and agreed how to share decisions first.",
                    ),
                )
        if target is not None and len(story.steps) >= target:
            break
    if rng.random() < 0.06:
        story.add(
            until - timedelta(days=rng.randint(10, 200)),
            StageChanged(stage="paused", reason="Their capacity is stretched this season."),
        )
    if rng.random() < 0.2:
        story.add(
            registered + timedelta(days=rng.randint(30, 200)),
            ProfileUpdated(region=rng.choice(_REGIONS)),
        )
    return registration, registered, story


def _commitment(story: _Story, rng: random.Random, when: datetime, commitment_id: str) -> None:
    ours = rng.random() < 0.6
    description, resource = rng.choice(_US_PROMISES if ours else _PARTNER_PROMISES)
    due = when.date() + timedelta(days=rng.randint(14, 60))
    money = resource == "financial"
    amount = Decimal(rng.choice([75, 100, 150, 250, 500, 1000])) if money else None
    story.add(
        when,
        CommitmentMade(
            commitment_id=commitment_id,
            owed_by="us" if ours else "partner",
            description=description,
            due_on=due,
            resource=resource,
            amount=amount,
            currency="USD" if money else None,
        ),
    )
    fate = rng.random()
    if fate < 0.62:
        done = _moment(rng, due - timedelta(days=rng.randint(0, 10)))
    elif fate < 0.8:
        done = _moment(rng, due + timedelta(days=rng.randint(1, 40)))
    elif fate < 0.86:
        new_due = due + timedelta(days=rng.randint(7, 30))
        story.add(
            _moment(rng, due - timedelta(days=rng.randint(-10, 5))),
            CommitmentRenegotiated(
                commitment_id=commitment_id,
                due_on=new_due,
                note="Agreed a new date together.",
            ),
        )
        done = _moment(rng, new_due - timedelta(days=rng.randint(-5, 5)))
    elif fate < 0.92:
        story.add(
            _moment(rng, due - timedelta(days=rng.randint(1, 7))),
            CommitmentCancelled(
                commitment_id=commitment_id,
                reason="The event was called off together.",
            ),
        )
        return
    elif due > story.until.date() - timedelta(days=120):
        return  # recent: still open, or overdue
    else:
        # Older promises left hanging get closed out eventually, months late.
        done = _moment(rng, due + timedelta(days=rng.randint(41, 110)))
    done = max(done, when + timedelta(hours=1))
    story.add(done, CommitmentFulfilled(commitment_id=commitment_id, note="Done."))
    if money and amount is not None:
        story.add(
            done + timedelta(minutes=5),
            PaymentMade(
                amount=amount,
                currency="USD",
                purpose=rng.choice(["stipend", "compensation", "grant"]),
                commitment_id=commitment_id,
            ),
        )
    if not ours and rng.random() < 0.8:
        story.add(
            done + timedelta(days=rng.randint(0, 40)),
            ThanksExpressed(
                form=rng.choice(["note", "public_acknowledgment", "call", "email", "gift"]),
                for_commitment_id=commitment_id,
                note="Thank you — it made a real difference.",
            ),
        )


def build_demo(plan: DemoPlan) -> Iterator[list[ChainedAggregate]]:
    """Yield batches of aggregates with pending events, partners first, coalitions last."""
    rng = random.Random(plan.seed)
    until = datetime.combine(plan.until, time(0), tzinfo=UTC)  # the start of that day: past
    start = plan.until - timedelta(days=30 * plan.months)
    partner_ids: list[uuid.UUID] = []
    batch: list[ChainedAggregate] = []
    for index in range(plan.partners):
        story_rng = random.Random(rng.getrandbits(64))
        registration, registered, story = _partner_story(
            story_rng, index, start, until, plan.events_per_partner
        )
        partner = Partner.register(registration, Stamp(registered, RECORDED_BY), _stable_id(rng))
        for moment, data in sorted(story.steps, key=lambda step: step[0]):
            with contextlib.suppress(LedgerError):
                # A planned step the rules refuse (thanks for a cancelled commitment) is dropped.
                partner.execute(data, Stamp(moment, RECORDED_BY))
        if story_rng.random() < 0.08 and partner.version > 2:
            mistaken = ContactMade(
                channel="email", direction="outbound", summary="Logged on the wrong partner."
            )
            moment = min(until, registered + timedelta(days=20))
            partner.execute(mistaken, Stamp(moment, RECORDED_BY))
            partner.execute(
                EntryRetracted(version=partner.version, reason="Recorded on the wrong partner."),
                Stamp(moment + timedelta(hours=1), RECORDED_BY),
            )
        partner_ids.append(partner.id)
        batch.append(partner)
        if len(batch) >= 100:
            yield batch
            batch = []
    if batch:
        yield batch
    yield list(_coalitions(rng, partner_ids, start, until))


def _coalitions(
    rng: random.Random, partner_ids: list[uuid.UUID], start: date, until: datetime
) -> Iterator[Coalition]:
    visions = [
        ("Housing Justice Coalition", "Every family in the county has a safe, affordable home."),
        (
            "Health Equity Partnership",
            "Care that is close, affordable and in people's own language.",
        ),
        ("Youth Futures Network", "Young people shape the programmes meant for them."),
    ]
    formed = datetime.combine(start + timedelta(days=5), time(10), tzinfo=UTC)
    for position, (name, vision) in enumerate(visions):
        coalition = Coalition.form(
            CoalitionFormed(
                name=name,
                shared_vision=vision,
                agreed_measures=(
                    "commitments kept on time",
                    "stipends paid within 30 days",
                    "outcomes shared after every listening session",
                ),
            ),
            Stamp(formed, RECORDED_BY),
            _stable_id(rng),
        )
        members = partner_ids[position :: len(visions)][: max(2, len(partner_ids) // 4)]
        for member in members:
            coalition.admit(
                MemberJoined(partner_id=member),
                Stamp(min(until, formed + timedelta(days=45)), RECORDED_BY),
            )
        yield coalition


def load_demo(
    ledger: Partnerships, plan: DemoPlan, *, advance: Callable[[int], None] = lambda _: None
) -> int:
    """Record the demo ledger in batches; returns how many events were recorded."""
    recorded = 0
    for batch in build_demo(plan):
        recorded += len(ledger.save_batch(batch))
        advance(sum(1 for aggregate in batch if isinstance(aggregate, Partner)))
    return recorded
