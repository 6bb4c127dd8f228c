"""The views and the queries over them (SPEC §3), on SQLite and on PostgreSQL.

One coalition and three of its partners, written from the seed documents: a community-based
organization with an agreed 60-day check-in cadence, paid a stipend late, thanked for its
feedback, hurt by a breach of trust and repaired; a person with lived experience reviewing
grants for an honorarium, asked a lot lately; a research institute that joined and left.
Every figure below is worked out by hand in the comments, from the events as written.

An ``as_of`` given as a date is the end of that UTC day (``end_of_day``), as the API reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest

from api.settings import Settings
from api.wiring import Services, open_services
from domain.application import Recorded
from domain.chained import Stamp
from domain.errors import PartnerNotFound, ValidationFailed
from domain.serialization import DATA_MODELS
from domain.values import CoalitionFormed, MemberJoined, MemberLeft, PartnerRegistered
from projections.queries import At, end_of_day
from projections.store import VIEW_TABLES

RECORDER = "steward:amara"
AS_OF = end_of_day(date(2025, 7, 10))


def on(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


class Scenario:
    """The ledger being written, and the ids and records the tests come back to."""

    eastside: UUID  # the community-based organization
    luz: UUID  # the person with lived experience
    institute: UUID  # the research institute
    honorarium_kept: Recorded  # the honorarium's fulfilment, which some tests retract

    def __init__(self, services: Services, coalition: UUID) -> None:
        self.services = services
        self.coalition = coalition

    # ---- writing --------------------------------------------------------------------------

    def register(self, when: datetime, **fields: Any) -> UUID:
        data = PartnerRegistered.model_validate(fields)
        return self.services.ledger.register_partner(data, Stamp(when, RECORDER)).stream_id

    def record(self, partner_id: UUID, type_: str, when: datetime, **fields: Any) -> Recorded:
        data = DATA_MODELS[type_].model_validate(fields)
        return self.services.ledger.record(partner_id, data, Stamp(when, RECORDER))

    def join(self, partner_id: UUID, when: datetime) -> None:
        data = MemberJoined(partner_id=partner_id)
        self.services.ledger.join_coalition(self.coalition, data, Stamp(when, RECORDER))

    def leave(self, partner_id: UUID, when: datetime) -> None:
        data = MemberLeft(partner_id=partner_id, reason="the data project ended")
        self.services.ledger.leave_coalition(self.coalition, data, Stamp(when, RECORDER))

    def catch_up(self) -> int:
        return self.services.keeper.catch_up()

    # ---- reading --------------------------------------------------------------------------

    @property
    def end(self) -> int:
        return self.services.view.processed_position()

    def at(self, as_of: datetime = AS_OF, position: int | None = None) -> At:
        return self.services.queries.at(as_of, position)

    def everything(self, at: At) -> dict[str, bytes]:
        """Every query's answer at one reference, as the bytes the API would send."""
        q = self.services.queries
        answers: dict[str, Any] = {
            "accountability": q.accountability(at),
            "accountability/coalition": q.accountability(at, coalition_id=str(self.coalition)),
            "accountability/us": q.accountability(at, owed_by="us"),
            "agenda": q.agenda(at),
            "agenda/60": q.agenda(at, within_days=60),
            "review": q.review(at),
            "partners": q.partners(at),
            "partners/health": q.partners(at, sort="health"),
            "partners/last_touch": q.partners(at, sort="last_touch"),
            "coalitions": q.coalitions(at),
            "coalition": q.coalition(str(self.coalition), at),
            "report": q.report(str(self.coalition), at),
            "report/period": q.report(
                str(self.coalition), at, start=date(2025, 3, 1), end=date(2025, 6, 30)
            ),
            "digest": q.digest(at),
        }
        for partner_id in (self.eastside, self.luz, self.institute):
            pid = str(partner_id)
            try:
                answers[f"{pid}/partner"] = q.partner(pid, at)
            except PartnerNotFound:
                continue
            answers[f"{pid}/health"] = q.health(pid, at)
            answers[f"{pid}/commitments"] = q.commitments(pid, at)
            answers[f"{pid}/timeline"] = q.timeline(pid, at, limit=1000)
            answers[f"{pid}/history"] = q.health_history(
                pid, at, start=date(2025, 1, 1), end=date(2025, 7, 31)
            )
        return {name: orjson.dumps(answer) for name, answer in answers.items()}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        view = self.services.view
        return {
            table: sorted(
                (dict(row) for row in view.select(f"SELECT * FROM {{p}}{table}")), key=_row_key
            )
            for table in VIEW_TABLES
        }


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    yield opened
    opened.close()


def write_scenario(services: Services) -> Scenario:
    ledger = services.ledger
    coalition = ledger.form_coalition(
        CoalitionFormed(
            name="Valley Health Equity Coalition",
            shared_vision="Every family in the valley can reach care in its own language.",
            agreed_measures=("commitments kept", "stipends paid on time"),
        ),
        Stamp(on(1, 5, 9), RECORDER),
    ).stream_id
    s = Scenario(services, coalition)

    a = s.eastside = s.register(
        on(1, 6, 10),
        name="Eastside Promotoras Collective",
        kind="organization",
        roles=["advisory_member"],
        communities=["Latino families", "farmworkers"],
        region="Central Valley",
        preferences={"channels": ["in_person", "text"], "language": "es"},
    )
    s.record(a, "checkin_cadence_agreed", on(1, 6, 10, 5), every_days=60)
    s.record(a, "meeting_held", on(1, 10, 14), kind="listening_session", location="theirs")
    s.record(
        a,
        "commitment_made",
        on(1, 10, 15),
        commitment_id="C-STIPEND",
        owed_by="us",
        description="Pay listening-session hosts their stipends",
        due_on="2025-02-01",
        resource="financial",
        amount="500.00",
        currency="USD",
        coalition_id=str(coalition),
    )
    s.record(
        a,
        "commitment_made",
        on(1, 10, 15, 5),
        commitment_id="C-REPORT",
        owed_by="partner",
        description="Share the community survey results",
        due_on="2025-03-01",
        resource="deliverable",
    )
    s.join(a, on(1, 15))
    s.record(a, "stage_changed", on(2, 1), stage="partnership", reason="MOU signed")
    s.record(
        a,
        "agreement_signed",
        on(2, 1, 13),
        title="Outreach MOU",
        kind="mou",
        effective_on="2025-02-01",
    )

    b = s.luz = s.register(
        on(2, 3, 10),
        name="Luz Marquez",
        kind="individual",
        roles=["grant_reviewer", "speaker"],
        communities=["survivors of domestic violence", "Latino families"],
        region="Fresno",
        preferences={"gratitude": ["public_acknowledgment"], "accessibility": ["captions"]},
    )
    s.record(b, "meeting_held", on(2, 3, 11), kind="informal", location="virtual")
    s.record(
        b,
        "commitment_made",
        on(2, 3, 11, 30),
        commitment_id="C-REVIEW",
        owed_by="partner",
        description="Review twelve grant applications",
        due_on="2025-03-03",
        resource="time",
    )
    s.record(
        b,
        "commitment_made",
        on(2, 3, 11, 35),
        commitment_id="C-HONORARIUM",
        owed_by="us",
        description="Honorarium for the grant review",
        due_on="2025-03-15",
        resource="financial",
        amount="300.00",
        currency="USD",
    )
    s.join(b, on(2, 5))

    # The stipend was due on 1 February and paid on the 10th: kept 9 days late.
    s.record(
        a,
        "payment_made",
        on(2, 10, 9),
        amount="500.00",
        currency="USD",
        purpose="stipend",
        commitment_id="C-STIPEND",
    )
    s.record(a, "commitment_fulfilled", on(2, 10, 9, 5), commitment_id="C-STIPEND")
    s.record(a, "contact_made", on(2, 20, 10), channel="email", direction="inbound")
    s.record(a, "feedback_received", on(2, 20, 10, 5), feedback_id="F-OUTREACH", summary="Plan")

    c = s.institute = s.register(
        on(2, 25, 9),
        name="Central Valley Health Research Institute",
        kind="organization",
        roles=["technical_expert"],
        communities=["rural"],
        region="Central Valley",
    )
    s.record(a, "thanks_expressed", on(2, 25), form="note", note="Gracias for the outreach plan")
    s.record(c, "contact_made", on(2, 26), channel="email", direction="outbound")
    s.join(c, on(2, 27))
    s.record(a, "commitment_fulfilled", on(2, 28, 16), commitment_id="C-REPORT")
    s.record(b, "commitment_fulfilled", on(2, 28, 16, 30), commitment_id="C-REVIEW")
    s.record(
        a,
        "trust_breach_recorded",
        on(3, 5),
        breach_id="B-QUOTES",
        severity="moderate",
        caused_by="us",
        description="Published survey quotes without consent",
    )
    s.record(
        c,
        "commitment_made",
        on(3, 10, 10),
        commitment_id="C-DATA",
        owed_by="partner",
        description="Share the county health data extract",
        due_on="2025-04-15",
        resource="deliverable",
        coalition_id=str(coalition),
    )
    s.record(
        c,
        "commitment_made",
        on(3, 10, 10, 5),
        commitment_id="C-ANALYST",
        owed_by="us",
        description="Fund analyst hours for the extract",
        due_on="2025-04-30",
        resource="financial",
        amount="1200.00",
        currency="USD",
    )
    # Renegotiated the day before it fell due: not "after due".
    s.record(
        b,
        "commitment_renegotiated",
        on(3, 14, 9),
        commitment_id="C-HONORARIUM",
        due_on="2025-03-31",
        note="next finance cycle",
    )
    s.record(a, "trust_repaired", on(3, 20, 10), breach_id="B-QUOTES", summary="Apologised")
    s.record(
        b,
        "payment_made",
        on(3, 28, 12),
        amount="300.00",
        currency="USD",
        purpose="compensation",
        commitment_id="C-HONORARIUM",
    )
    s.honorarium_kept = s.record(
        b, "commitment_fulfilled", on(3, 28, 12, 5), commitment_id="C-HONORARIUM"
    )
    # Thirty calendar days after her review came in (28 February, 16:30): still in the window.
    s.record(b, "thanks_expressed", on(3, 30, 10), form="gift", for_commitment_id="C-REVIEW")
    s.record(
        a,
        "commitment_made",
        on(4, 1, 9),
        commitment_id="C-SPACE",
        owed_by="us",
        description="Provide meeting space for the health fair",
        due_on="2025-05-15",
        resource="in_kind",
    )
    # 32 days after their survey results: too late to acknowledge them.
    s.record(a, "outcome_shared", on(4, 1, 10), summary="How the survey changed our outreach")
    # Written down late: the repair meeting of 20 March, recorded after April's entries.
    s.record(a, "meeting_held", on(3, 20, 11), kind="check_in", location="theirs")
    s.record(b, "feedback_received", on(4, 11, 15), feedback_id="F-1", summary="Criteria")
    s.record(b, "feedback_received", on(4, 20), feedback_id="F-2", summary="Scoring rubric")
    s.record(b, "contact_made", on(5, 5, 9), channel="phone", direction="inbound")
    s.record(
        b,
        "commitment_made",
        on(5, 5, 9, 30),
        commitment_id="C-PANEL",
        owed_by="partner",
        description="Speak at the community health forum",
        due_on="2025-06-01",
        resource="time",
    )
    s.record(b, "feedback_received", on(5, 6), feedback_id="F-3", summary="Forum format")
    # Already overdue (due 15 May) when moved to 15 June: renegotiated after due.
    s.record(
        a,
        "commitment_renegotiated",
        on(5, 20),
        commitment_id="C-SPACE",
        due_on="2025-06-15",
        note="hall booked",
    )
    s.record(c, "commitment_cancelled", on(6, 1, 9), commitment_id="C-ANALYST", reason="no grant")
    s.leave(c, on(6, 1, 10))
    s.record(b, "commitment_fulfilled", on(6, 1, 18), commitment_id="C-PANEL")
    s.record(b, "feedback_received", on(6, 15), feedback_id="F-4", summary="Forum debrief")
    s.record(b, "outcome_shared", on(6, 20), summary="Rubric changed", feedback_id="F-2")
    s.record(b, "payment_made", on(6, 25), amount="45.50", currency="USD", purpose="reimbursement")
    s.record(
        a,
        "commitment_made",
        on(7, 1, 9),
        commitment_id="C-FAIR",
        owed_by="partner",
        description="Staff the outreach table at the fall health fair",
        due_on="2025-07-20",
        resource="personnel",
    )
    s.record(
        a,
        "commitment_made",
        on(7, 1, 9, 5),
        commitment_id="C-ANNUAL",
        owed_by="us",
        description="Annual partnership report",
        due_on="2025-09-30",
        resource="deliverable",
    )
    s.catch_up()
    return s


@pytest.fixture
def scenario(services: Services) -> Scenario:
    return write_scenario(services)


def figures(**counts: Any) -> dict[str, Any]:
    """Fulfilment figures: zeros unless given; fulfilled and the rates as the SPEC defines them."""
    shown = {
        "made": 0,
        "open": 0,
        "overdue": 0,
        "fulfilled_on_time": 0,
        "fulfilled_late": 0,
        "cancelled": 0,
        "renegotiated_after_due": 0,
        **counts,
    }
    fulfilled = shown["fulfilled_on_time"] + shown["fulfilled_late"]
    due = fulfilled + shown["overdue"]
    rates = {}
    for name, numerator in (
        ("fulfilment_rate", fulfilled),
        ("on_time_rate", shown["fulfilled_on_time"]),
    ):
        rates[name] = round(numerator / due, 4) if due else None
    return {**shown, "fulfilled": fulfilled, **rates}


def scores(health: dict[str, Any]) -> dict[str, float]:
    return {c["name"]: c["score"] for c in health["components"]}


# ---- health ---------------------------------------------------------------------------------


def test_health_of_the_community_organization(scenario: Scenario) -> None:
    health = scenario.services.queries.health(str(scenario.eastside), scenario.at())

    # cadence: last two-way touch 20 March (the late-recorded meeting), 112 days before 10 July;
    #   C = 60: 100 * (180 - 112) / 120 = 56.67
    # our_reliability: stipend kept late, meeting space overdue (due 15 June), annual report
    #   open: (0 + 0.5) / 2 = 25
    # reciprocity: gives 4 (stipend kept, 1 payment, 1 thanks, 1 outcome) for asks 3 (survey
    #   results, fall fair, 1 feedback): capped at 100
    # acknowledgment: the feedback of 20 Feb was thanked on the 25th; the survey results of
    #   28 Feb were followed only by the outcome of 1 April, 32 days later: 1 of 2 = 50
    # trust: moderate breach repaired 20 March, 112 days ago (< 180): 100 - 35/4 = 91.25
    # score: 25*.5667 + 25*.25 + 15 + 15*.5 + 20*.9125 = 14.17 + 6.25 + 15 + 7.5 + 18.25 = 61.17
    assert scores(health) == {
        "cadence": 56.67,
        "our_reliability": 25.0,
        "reciprocity": 100.0,
        "acknowledgment": 50.0,
        "trust": 91.25,
    }
    assert (health["score"], health["band"]) == (61, "steady")
    assert health["name"] == "Eastside Promotoras Collective"
    assert (health["as_of"], health["position"]) == ("2025-07-10T23:59:59.999999Z", scenario.end)
    explained = {c["name"]: c["explanation"] for c in health["components"]}
    assert (
        explained["cadence"]
        == "Last two-way contact 112 days ago; agreed cadence is every 60 days."
    )
    assert explained["trust"] == "1 breach repaired in the last 180 days (moderate -8.75)."


def test_health_of_the_person_with_lived_experience(scenario: Scenario) -> None:
    health = scenario.services.queries.health(str(scenario.luz), scenario.at())

    # cadence: last touch her call of 5 May, 66 days; C = 30: 100 * (90 - 66) / 60 = 40
    # our_reliability: the honorarium, renegotiated before due to 31 March, paid 28 March: 100
    # reciprocity: gives 5 (honorarium kept, 2 payments, 1 thanks, 1 outcome) for asks 6
    #   (review, panel, 4 feedbacks): 83.33
    # acknowledgment: review (28 Feb) thanked 30 March, day 30: yes; F-1 (11 Apr), F-2 (20 Apr),
    #   F-3 (6 May): the outcome of 20 June is 70, 61, 45 days later: no; panel (1 June) and
    #   F-4 (15 June, 25 days old but acknowledged, so counted): yes. 3 of 6 = 50
    # trust: no breach ever, so it does not count (SPEC §3)
    # score: (25*40 + 25*100 + 15*83.33 + 15*50) / 80 = (1000 + 2500 + 1250 + 750) / 80 = 68.75
    assert scores(health) == {
        "cadence": 40.0,
        "our_reliability": 100.0,
        "reciprocity": 83.33,
        "acknowledgment": 50.0,
        "trust": None,
    }
    assert (health["score"], health["band"]) == (69, "steady")
    explained = {c["name"]: c["explanation"] for c in health["components"]}
    assert explained["reciprocity"] == (
        "We gave 5 (1 commitment kept, 2 payments, 1 thanks, 1 outcome shared) for 6 asks "
        "(2 commitments of theirs, 4 feedback received)."
    )
    assert explained["acknowledgment"] == (
        "3 of 6 contributions of theirs (commitments kept, feedback) thanked or followed by an "
        "outcome within 30 days."
    )


def test_health_of_the_institute(scenario: Scenario) -> None:
    health = scenario.services.queries.health(str(scenario.institute), scenario.at())

    # cadence: only an outbound email, never a two-way touch, so counted from its registration
    #   on 25 February: 135 days, three times the 30 days and more: 0
    # our_reliability: the analyst hours were cancelled, nothing came due: not counted
    # reciprocity: nothing given for the data extract asked: 0
    # acknowledgment: the extract never came, nothing to acknowledge: not counted
    # trust: no breach: not counted
    # score: (25*0 + 15*0) / 40 = 0: a silent relationship no longer looks healthy (issue 13)
    assert scores(health) == {
        "cadence": 0.0,
        "our_reliability": None,
        "reciprocity": 0.0,
        "acknowledgment": None,
        "trust": None,
    }
    assert (health["score"], health["band"]) == (0, "critical")
    explained = {c["name"]: c["explanation"] for c in health["components"]}
    assert explained["our_reliability"] == (
        "Not counted: none of our commitments has come due yet."
    )


# ---- commitments and accountability ---------------------------------------------------------


def test_commitments_of_the_community_organization(scenario: Scenario) -> None:
    answer = scenario.services.queries.commitments(str(scenario.eastside), scenario.at())
    shown = {
        c["commitment_id"]: (c["status"], c["due_on"], c["fulfilled_on"], c["days_late"])
        for c in answer["commitments"]
    }

    assert [c["commitment_id"] for c in answer["commitments"]] == [
        "C-STIPEND",
        "C-REPORT",
        "C-SPACE",
        "C-FAIR",
        "C-ANNUAL",
    ]
    assert shown == {
        "C-STIPEND": ("fulfilled_late", "2025-02-01", "2025-02-10", 9),
        "C-REPORT": ("fulfilled_on_time", "2025-03-01", "2025-02-28", 0),
        "C-SPACE": ("overdue", "2025-06-15", None, None),
        "C-FAIR": ("open", "2025-07-20", None, None),
        "C-ANNUAL": ("open", "2025-09-30", None, None),
    }
    space = answer["commitments"][2]
    assert (space["original_due_on"], space["renegotiations"]) == ("2025-05-15", 1)
    assert space["renegotiated_after_due"] is True
    assert answer["figures"] == {
        "us": figures(made=3, open=1, overdue=1, fulfilled_late=1, renegotiated_after_due=1),
        "partner": figures(made=2, open=1, fulfilled_on_time=1),
    }


def test_a_renegotiation_before_due_keeps_the_honorarium_on_time(scenario: Scenario) -> None:
    answer = scenario.services.queries.commitments(str(scenario.luz), scenario.at())
    honorarium = next(c for c in answer["commitments"] if c["commitment_id"] == "C-HONORARIUM")

    assert honorarium["status"] == "fulfilled_on_time"  # 28 March against 31 March, not 15
    assert (honorarium["original_due_on"], honorarium["due_on"]) == ("2025-03-15", "2025-03-31")
    assert honorarium["days_late"] == 0
    assert honorarium["renegotiated_after_due"] is False


def test_accountability_across_all_partners(scenario: Scenario) -> None:
    answer = scenario.services.queries.accountability(scenario.at())

    # us: stipend late, space overdue (renegotiated after due), annual open, honorarium on
    #   time, analyst cancelled: rates 2/3 and 1/3
    # partner: survey results, review, panel on time; fair open; data extract overdue: 3/4
    assert answer["us"] == figures(
        made=5,
        open=1,
        overdue=1,
        fulfilled_on_time=1,
        fulfilled_late=1,
        cancelled=1,
        renegotiated_after_due=1,
    )
    assert answer["us"]["fulfilment_rate"] == 0.6667
    assert answer["us"]["on_time_rate"] == 0.3333
    assert answer["partner"] == figures(made=5, open=1, overdue=1, fulfilled_on_time=3)
    assert answer["partner"]["fulfilment_rate"] == 0.75
    assert answer["overdue"] == [
        {
            "partner_id": str(scenario.institute),
            "name": "Central Valley Health Research Institute",
            "commitment_id": "C-DATA",
            "owed_by": "partner",
            "description": "Share the county health data extract",
            "due_on": "2025-04-15",
            "overdue_days": 86,  # 15 April to 10 July
        },
        {
            "partner_id": str(scenario.eastside),
            "name": "Eastside Promotoras Collective",
            "commitment_id": "C-SPACE",
            "owed_by": "us",
            "description": "Provide meeting space for the health fair",
            "due_on": "2025-06-15",
            "overdue_days": 25,
        },
    ]


def test_accountability_for_one_coalition_and_one_side(scenario: Scenario) -> None:
    queries = scenario.services.queries
    coalition = queries.accountability(scenario.at(), coalition_id=str(scenario.coalition))
    ours = queries.accountability(scenario.at(), owed_by="us")

    # Only the stipend and the data extract were made for the coalition.
    assert coalition["us"] == figures(made=1, fulfilled_late=1)
    assert coalition["partner"] == figures(made=1, overdue=1)
    assert [c["commitment_id"] for c in coalition["overdue"]] == ["C-DATA"]
    assert "partner" not in ours
    assert ours["us"]["made"] == 5
    assert [c["commitment_id"] for c in ours["overdue"]] == ["C-SPACE"]


# ---- the coalition report -------------------------------------------------------------------


def test_coalition_report_lists_current_members_with_their_figures(scenario: Scenario) -> None:
    at = scenario.at()
    report = scenario.services.queries.report(str(scenario.coalition), at)

    assert report["coalition"] == {
        "id": str(scenario.coalition),
        "name": "Valley Health Equity Coalition",
    }
    assert report["period"] == {"from": None, "to": None}
    assert (report["as_of"], report["position"]) == ("2025-07-10T23:59:59.999999Z", scenario.end)
    assert report["digest"] == scenario.services.queries.digest(at)["digest"]
    # The institute left on 1 June: not listed. Every commitment counts, whatever its coalition.
    assert report["members"] == [
        {
            "partner_id": str(scenario.eastside),
            "name": "Eastside Promotoras Collective",
            "health": {"score": 61, "band": "steady"},
            "us": figures(made=3, open=1, overdue=1, fulfilled_late=1, renegotiated_after_due=1),
            "partner": figures(made=2, open=1, fulfilled_on_time=1),
            "payments": {"USD": "500.00"},
            "thanks": 1,
            "breaches": {"open": 0, "repaired": 1},
        },
        {
            "partner_id": str(scenario.luz),
            "name": "Luz Marquez",
            "health": {
                "score": 69,
                "band": "steady",
            },  # see test_health_of_the_person_with_lived_experience
            "us": figures(made=1, fulfilled_on_time=1),
            "partner": figures(made=2, fulfilled_on_time=2),
            "payments": {"USD": "345.50"},  # 300.00 + 45.50
            "thanks": 1,
            "breaches": {"open": 0, "repaired": 0},
        },
    ]
    assert report["totals"] == {
        "us": figures(
            made=4,
            open=1,
            overdue=1,
            fulfilled_on_time=1,
            fulfilled_late=1,
            renegotiated_after_due=1,
        ),
        "partner": figures(made=4, open=1, fulfilled_on_time=3),
        "payments": {"USD": "845.50"},
        "thanks": 2,
        "breaches": {"open": 0, "repaired": 1},
    }


def test_coalition_report_for_a_period_counts_what_was_made_in_it(scenario: Scenario) -> None:
    report = scenario.services.queries.report(
        str(scenario.coalition), scenario.at(), start=date(2025, 3, 1), end=date(2025, 6, 30)
    )
    eastside, luz = report["members"]

    assert report["period"] == {"from": "2025-03-01", "to": "2025-06-30"}
    # Eastside: only the meeting space (1 April) was promised in the period; the stipend was
    # paid and the thanks given in February; the breach of 5 March was repaired.
    assert eastside["us"] == figures(made=1, overdue=1, renegotiated_after_due=1)
    assert eastside["partner"] == figures()
    assert (eastside["payments"], eastside["thanks"]) == ({}, 0)
    assert eastside["breaches"] == {"open": 0, "repaired": 1}
    # Luz: the panel (5 May); the honorarium (28 March) and the reimbursement (25 June).
    assert luz["us"] == figures()
    assert luz["partner"] == figures(made=1, fulfilled_on_time=1)
    assert (luz["payments"], luz["thanks"]) == ({"USD": "345.50"}, 1)
    assert report["totals"]["payments"] == {"USD": "345.50"}


# ---- agenda and review ----------------------------------------------------------------------


def test_agenda_lists_checkins_and_commitments_due_or_overdue(scenario: Scenario) -> None:
    agenda = scenario.services.queries.agenda(scenario.at(), within_days=14)

    assert agenda["as_of"] == "2025-07-10T23:59:59.999999Z"
    # Check-ins fall due at the last two-way touch plus the cadence (registration without one):
    # institute 25 Feb + 30 = 27 March; Eastside 20 March + 60 = 19 May; Luz 5 May + 30 = 4 June.
    assert agenda["checkins"] == [
        {
            "partner_id": str(scenario.institute),
            "name": "Central Valley Health Research Institute",
            "due_on": "2025-03-27",
            "overdue_days": 105,
        },
        {
            "partner_id": str(scenario.eastside),
            "name": "Eastside Promotoras Collective",
            "due_on": "2025-05-19",
            "overdue_days": 52,
        },
        {
            "partner_id": str(scenario.luz),
            "name": "Luz Marquez",
            "due_on": "2025-06-04",
            "overdue_days": 36,
        },
    ]
    # Both sides; the fair (20 July) is still 10 days ahead; the annual report (30 Sept) is
    # beyond the 14 days.
    assert [
        (c["commitment_id"], c["owed_by"], c["due_on"], c["overdue_days"])
        for c in agenda["commitments"]
    ] == [
        ("C-DATA", "partner", "2025-04-15", 86),
        ("C-SPACE", "us", "2025-06-15", 25),
        ("C-FAIR", "partner", "2025-07-20", -10),
    ]
    assert agenda["commitments"][2] == {
        "partner_id": str(scenario.eastside),
        "name": "Eastside Promotoras Collective",
        "commitment_id": "C-FAIR",
        "owed_by": "partner",
        "description": "Staff the outreach table at the fall health fair",
        "due_on": "2025-07-20",
        "overdue_days": -10,
    }


def test_agenda_within_zero_days_lists_only_what_is_due_today_or_overdue(
    scenario: Scenario,
) -> None:
    agenda = scenario.services.queries.agenda(scenario.at(), within_days=0)

    assert [c["commitment_id"] for c in agenda["commitments"]] == ["C-DATA", "C-SPACE"]
    assert len(agenda["checkins"]) == 3


def test_review_of_the_portfolio(scenario: Scenario) -> None:
    review = scenario.services.queries.review(scenario.at())

    assert review["partners"] == 3
    assert review["by_community"] == {
        "Latino families": 2,
        "farmworkers": 1,
        "rural": 1,
        "survivors of domestic violence": 1,
    }
    assert review["by_role"] == {
        "advisory_member": 1,
        "grant_reviewer": 1,
        "speaker": 1,
        "technical_expert": 1,
    }
    assert review["by_region"] == {"Central Valley": 2, "Fresno": 1}
    assert review["by_stage"] == {"partnership": 1, "prospect": 2}
    # Luz was asked F-2 (20 Apr), the panel (5 May), F-3 (6 May), F-4 (15 June) in the last 90
    # days; F-1 (11 April) is 90 days before 10 July, outside them.
    assert review["over_engaged"] == [
        {"partner_id": str(scenario.luz), "name": "Luz Marquez", "asks_90_days": 4}
    ]
    # Neglected: more than 2 x cadence since the last two-way touch (or registration).
    # Eastside: 112 days, not more than 120. Luz: 66 > 60. Institute: 135 days since 25 Feb.
    assert review["neglected"] == [
        {
            "partner_id": str(scenario.institute),
            "name": "Central Valley Health Research Institute",
            "last_touch_on": None,
            "days_since": 135,
            "cadence_days": 30,
        },
        {
            "partner_id": str(scenario.luz),
            "name": "Luz Marquez",
            "last_touch_on": "2025-05-05",
            "days_since": 66,
            "cadence_days": 30,
        },
    ]


def test_review_counts_the_last_90_days_in_calendar_days(scenario: Scenario) -> None:
    # At noon on 10 July, F-1 (11 April, 15:00) is still 90 calendar days old, not 89.
    review = scenario.services.queries.review(scenario.at(on(7, 10, 12)))

    assert review["over_engaged"][0]["asks_90_days"] == 4


# ---- as_of and position ---------------------------------------------------------------------


def test_an_earlier_as_of_shows_what_had_happened_by_then(scenario: Scenario) -> None:
    queries = scenario.services.queries
    early = scenario.at(end_of_day(date(2025, 2, 5)))

    commitments = queries.commitments(str(scenario.eastside), early)
    health = queries.health(str(scenario.eastside), early)

    assert [(c["commitment_id"], c["status"]) for c in commitments["commitments"]] == [
        ("C-STIPEND", "overdue"),  # due 1 Feb, paid on the 10th
        ("C-REPORT", "open"),
    ]
    # cadence 100 (26 days), reliability 0, reciprocity 0 (nothing given yet for the survey);
    # nothing to acknowledge and no breach yet, so those two do not count:
    # (25*100 + 25*0 + 15*0) / 65 = 38.46.
    assert (health["score"], health["band"]) == (38, "at_risk")
    assert queries.partner(str(scenario.eastside), early)["stage"] == "partnership"
    assert queries.partner(str(scenario.eastside), scenario.at(on(1, 31)))["stage"] == "prospect"
    with pytest.raises(PartnerNotFound):
        queries.health(str(scenario.institute), early)  # registered on 25 February


def test_an_earlier_as_of_sees_the_due_date_before_its_renegotiation(scenario: Scenario) -> None:
    queries = scenario.services.queries

    before = queries.commitments(str(scenario.eastside), scenario.at(end_of_day(date(2025, 5, 18))))
    after = queries.commitments(str(scenario.eastside), scenario.at(end_of_day(date(2025, 5, 25))))
    space_before = next(c for c in before["commitments"] if c["commitment_id"] == "C-SPACE")
    space_after = next(c for c in after["commitments"] if c["commitment_id"] == "C-SPACE")

    assert (space_before["status"], space_before["due_on"]) == ("overdue", "2025-05-15")
    assert space_before["renegotiated_after_due"] is False
    assert (space_after["status"], space_after["due_on"]) == ("open", "2025-06-15")
    assert space_after["renegotiated_after_due"] is True


def test_an_earlier_as_of_lists_the_members_of_that_day(scenario: Scenario) -> None:
    report = scenario.services.queries.report(
        str(scenario.coalition), scenario.at(end_of_day(date(2025, 4, 1)))
    )

    assert [m["name"] for m in report["members"]] == [
        "Central Valley Health Research Institute",
        "Eastside Promotoras Collective",
        "Luz Marquez",
    ]


def test_a_position_beyond_the_end_of_the_log_is_refused(scenario: Scenario) -> None:
    queries = scenario.services.queries

    with pytest.raises(ValidationFailed):
        queries.at(AS_OF, scenario.end + 1)
    with pytest.raises(ValidationFailed):
        queries.at(AS_OF, -1)
    assert queries.at(AS_OF, scenario.end).position == scenario.end


def test_an_earlier_position_leaves_out_what_was_recorded_after_it(scenario: Scenario) -> None:
    queries = scenario.services.queries
    before_late_meeting = scenario.at(position=scenario.honorarium_kept.position)

    # The repair meeting of 20 March had not been written down yet at that position: Eastside's
    # last touch was the inbound email of 20 February, 140 days before 10 July:
    # 100 * (180 - 140) / 120 = 33.33 at C = 60.
    health = queries.health(str(scenario.eastside), before_late_meeting)

    assert scores(health)["cadence"] == 33.33
    assert health["position"] == scenario.honorarium_kept.position


# ---- retraction -----------------------------------------------------------------------------


def test_a_retracted_fulfilment_stops_counting_everywhere(scenario: Scenario) -> None:
    queries = scenario.services.queries
    kept = scenario.honorarium_kept
    report_before = orjson.dumps(queries.report(str(scenario.coalition), scenario.at()))

    retraction = scenario.record(
        scenario.luz, "entry_retracted", on(7, 1), version=kept.version, reason="wrong partner"
    )
    scenario.catch_up()

    at = scenario.at()
    honorarium = next(
        c
        for c in queries.commitments(str(scenario.luz), at)["commitments"]
        if c["commitment_id"] == "C-HONORARIUM"
    )
    assert (honorarium["status"], honorarium["fulfilled_on"], honorarium["days_late"]) == (
        "overdue",
        None,
        None,
    )
    # Luz: reliability 0; gives 4 for 6 asks: 66.67; no breach, trust does not count:
    # (25*40 + 25*0 + 15*66.67 + 15*50) / 80 = (1000 + 0 + 1000 + 750) / 80 = 34.375 -> 34.
    health = queries.health(str(scenario.luz), at)
    assert scores(health)["our_reliability"] == 0.0
    assert scores(health)["reciprocity"] == 66.67
    assert (health["score"], health["band"]) == (34, "at_risk")
    accountability = queries.accountability(at)
    assert accountability["us"] == figures(
        made=5, open=1, overdue=2, fulfilled_late=1, cancelled=1, renegotiated_after_due=1
    )
    assert accountability["overdue"][0]["commitment_id"] == "C-HONORARIUM"
    assert accountability["overdue"][0]["overdue_days"] == 101  # 31 March to 10 July
    report = queries.report(str(scenario.coalition), at)
    assert report["members"][1]["us"] == figures(made=1, overdue=1)
    assert report["members"][1]["health"] == {"score": 34, "band": "at_risk"}
    # The retraction (recorded 1 July) cancels the entry at every as_of, even before it:
    on_april_1 = queries.commitments(str(scenario.luz), scenario.at(end_of_day(date(2025, 4, 1))))
    assert [c["status"] for c in on_april_1["commitments"]] == ["fulfilled_on_time", "overdue"]
    # ...but not at a position before the retraction was recorded.
    before = scenario.at(position=retraction.position - 1)
    assert orjson.dumps(queries.report(str(scenario.coalition), before)) == report_before


def test_the_timeline_marks_a_retracted_entry_from_the_retraction_on(scenario: Scenario) -> None:
    queries = scenario.services.queries
    kept = scenario.honorarium_kept
    retraction = scenario.record(
        scenario.luz, "entry_retracted", on(7, 1), version=kept.version, reason="wrong partner"
    )
    scenario.catch_up()

    after = queries.timeline(str(scenario.luz), scenario.at(), limit=1000)["events"]
    before = queries.timeline(
        str(scenario.luz), scenario.at(position=retraction.position - 1), limit=1000
    )["events"]

    def flag(events: list[dict[str, Any]], version: int) -> bool:
        (found,) = [e for e in events if e["version"] == version]
        return bool(found["retracted"])

    assert flag(after, kept.version) is True
    assert flag(before, kept.version) is False
    assert [e["type"] for e in after][-1] == "entry_retracted"  # 1 July, after 25 June
    assert "entry_retracted" not in [e["type"] for e in before]
    assert sum(e["retracted"] for e in after) == 1
    kept_entry = next(e for e in after if e["version"] == kept.version)
    assert kept_entry["position"] == kept.position
    assert kept_entry["hash"] == kept.hash
    assert kept_entry["recorded_by"] == RECORDER


def test_the_timeline_is_in_world_order(scenario: Scenario) -> None:
    events = scenario.services.queries.timeline(str(scenario.eastside), scenario.at(), limit=1000)[
        "events"
    ]
    moments = [(e["occurred_at"], e["version"]) for e in events]

    assert moments == sorted(moments)
    # The repair meeting, written down after April's entries, sits on 20 March.
    march_20 = [e["type"] for e in events if e["occurred_at"].startswith("2025-03-20")]
    assert march_20 == ["trust_repaired", "meeting_held"]


# ---- reproducible, exactly once, rebuildable, restartable -----------------------------------


def record_more(scenario: Scenario) -> None:
    """Later entries, several of them about days before AS_OF."""
    a, b = scenario.eastside, scenario.luz
    scenario.record(a, "thanks_expressed", on(3, 2), form="call", for_commitment_id="C-REPORT")
    scenario.record(a, "meeting_held", on(7, 8), kind="planning", location="ours")
    scenario.record(
        b,
        "trust_breach_recorded",
        on(6, 10),
        breach_id="B-2",
        severity="severe",
        caused_by="us",
        description="Her name was misspelt on the programme",
    )
    scenario.record(
        b,
        "entry_retracted",
        on(7, 2),
        version=scenario.honorarium_kept.version,
        reason="entered twice",
    )
    scenario.join(scenario.institute, on(7, 5))
    scenario.catch_up()


def test_answers_at_an_old_position_do_not_change_when_more_is_recorded(
    scenario: Scenario,
) -> None:
    old = scenario.at()
    earlier = scenario.at(end_of_day(date(2025, 4, 1)), scenario.honorarium_kept.position)
    first = scenario.everything(old)
    first_earlier = scenario.everything(earlier)

    record_more(scenario)

    assert scenario.everything(old) == first
    assert scenario.everything(earlier) == first_earlier
    assert scenario.everything(scenario.at())["report"] != first["report"]


def test_processing_the_same_events_twice_changes_nothing(scenario: Scenario) -> None:
    services = scenario.services
    answers = scenario.everything(scenario.at())
    tables = scenario.tables()
    items = [(services.ledger.decode(n), n.id) for n in services.ledger.notifications()]

    assert services.view.process(items) == 0
    assert services.view.process(items[-3:]) == 0
    assert services.keeper.catch_up() == 0

    assert scenario.tables() == tables
    assert scenario.everything(scenario.at()) == answers


def test_overlapping_pages_apply_each_event_once(scenario: Scenario) -> None:
    expected = scenario.tables()
    ledger = scenario.services.ledger
    items = [(ledger.decode(n), n.id) for n in ledger.notifications()]
    view = scenario.services.view
    view.drop_tables()

    assert view.process(items[:10]) == 10
    assert view.process(items[5:15]) == 5
    assert view.process(items[:15]) == 0
    assert view.process(items[14:]) == len(items) - 15

    assert scenario.tables() == expected


def test_rebuild_gives_the_same_views_and_answers(scenario: Scenario) -> None:
    record_more(scenario)
    references = [
        scenario.at(),
        scenario.at(end_of_day(date(2025, 4, 1))),
        scenario.at(AS_OF, scenario.honorarium_kept.position),
    ]
    answers = [scenario.everything(at) for at in references]
    tables = scenario.tables()
    events = scenario.services.ledger.last_position()

    assert scenario.services.keeper.rebuild() == events

    assert scenario.tables() == tables
    assert [scenario.everything(at) for at in references] == answers


@pytest.mark.parametrize("workers", [1, 3])
def test_a_rebuild_in_worker_processes_gives_the_same_views_and_answers(
    scenario: Scenario, workers: int
) -> None:
    """A large log is folded in worker processes, one per range of stream ids, beside one that
    computes the digest: wherever the ranges fall, the views come out the same."""
    record_more(scenario)
    references = [scenario.at(), scenario.at(AS_OF, scenario.honorarium_kept.position)]
    answers = [scenario.everything(at) for at in references]
    tables = scenario.tables()
    events = scenario.services.ledger.last_position()

    assert scenario.services.keeper.rebuild(workers=workers) == events

    assert scenario.tables() == tables
    assert [scenario.everything(at) for at in references] == answers


def test_a_restart_resumes_where_the_views_stopped(settings: Settings, scenario: Scenario) -> None:
    processed = scenario.end
    tables = scenario.tables()
    answers = scenario.everything(scenario.at())
    scenario.services.close()

    reopened = open_services(settings)
    try:
        scenario.services = reopened
        assert reopened.view.processed_position() == processed
        assert reopened.keeper.catch_up() == 0
        assert scenario.tables() == tables
        assert scenario.everything(scenario.at()) == answers
        # And it carries on from there with what is recorded next.
        scenario.record(scenario.luz, "meeting_held", on(7, 9), kind="check_in", location="virtual")
        assert reopened.keeper.catch_up() == 1
        assert reopened.view.processed_position() == processed + 1
        health = reopened.queries.health(str(scenario.luz), scenario.at())
        assert scores(health)["cadence"] == 100.0
    finally:
        reopened.close()


# ---- entries written out of order -----------------------------------------------------------


def test_a_member_whose_registration_is_dated_after_its_joining(scenario: Scenario) -> None:
    # Registered as of 5 July, but its joining the coalition was written as of 20 June.
    queries = scenario.services.queries
    newcomer = scenario.register(
        on(7, 5), name="Westside Youth Council", kind="organization", communities=["youth"]
    )
    scenario.join(newcomer, on(6, 20))
    scenario.catch_up()
    before = scenario.at(end_of_day(date(2025, 6, 15)))
    between = scenario.at(end_of_day(date(2025, 6, 25)))

    # A member from its join (issue 12): listed on 25 June with its registration's profile,
    # not on 15 June; nothing of its own history had happened yet, so no health of its own.
    assert [m["name"] for m in queries.report(str(scenario.coalition), before)["members"]] == [
        "Eastside Promotoras Collective",
        "Luz Marquez",
    ]
    report = queries.report(str(scenario.coalition), between)
    coalition = queries.coalition(str(scenario.coalition), between)
    assert [m["name"] for m in report["members"]] == [
        "Eastside Promotoras Collective",
        "Luz Marquez",
        "Westside Youth Council",
    ]
    assert [m["name"] for m in coalition["members"]] == [m["name"] for m in report["members"]]
    with pytest.raises(PartnerNotFound):
        queries.health(str(newcomer), between)
    now = queries.report(str(scenario.coalition), scenario.at())
    assert [m["name"] for m in now["members"]] == [
        "Eastside Promotoras Collective",
        "Luz Marquez",
        "Westside Youth Council",
    ]


def _row_key(row: dict[str, object]) -> list[str]:
    """Rows in a stable order whatever order the store returns them in."""
    return [str(value) for value in row.values()]


def test_a_waiting_write_is_told_when_the_views_reach_its_position(services: Services) -> None:
    services.keeper.start()  # SQLite: its catch-up thread; PostgreSQL: the library's runner
    stamp = Stamp(on(2, 1), "steward")
    first = services.ledger.register_partner(
        PartnerRegistered(name="Ana", kind="individual"), stamp
    )
    gone = services.keeper.when_seen(first.position + 1)
    assert gone is not None
    gone.cancel()  # a request that stopped waiting must not upset the views' thread

    waiting = services.keeper.when_seen(first.position + 1)
    assert waiting is not None
    assert not waiting.done()
    second = services.ledger.register_partner(
        PartnerRegistered(name="Bo", kind="individual"), stamp
    )
    services.keeper.notify()

    waiting.result(timeout=5)
    assert services.view.processed_position() >= second.position
    assert services.keeper.healthy
    done = services.keeper.when_seen(first.position)
    assert done is not None
    assert done.done()


def test_without_a_views_thread_a_write_waits_by_catching_up(services: Services) -> None:
    assert services.keeper.when_seen(1) is None
