"""The pure folds (SPEC §3): commitment status, fulfilment figures and relationship health.

No database: each test writes a partner's history by hand as the views would hand it over
(entries that count, in world order) and checks one rule at its boundaries. Days are calendar
days in UTC; an ``as_of`` given as a date means the end of that UTC day, as the API reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from domain.serialization import DATA_MODELS
from projections.folds import (
    CommitmentView,
    Component,
    Entry,
    Health,
    PartnerSnapshot,
    band_of,
    figures_of,
    fold_partner,
    health_of,
    round_half_up,
)
from projections.queries import end_of_day

PARTNER_ID = "5b1c7e0a-2f4d-4c1e-9a3b-6d8e0f1a2b3c"
REGISTERED = date(2025, 1, 6)
DAY0 = date(2025, 1, 10)


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


def days(n: int) -> date:
    """The calendar day ``n`` days after DAY0."""
    return DAY0 + timedelta(days=n)


@dataclass
class Story:
    """One partner's history, written event by event; versions and positions follow the pen."""

    entries: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.add(
            "partner_registered",
            REGISTERED,
            name="Eastside Promotoras Collective",
            kind="organization",
            communities=["Latino families"],
        )

    def add(self, type_: str, when: date | datetime, **fields: Any) -> Story:
        moment = noon(when) if not isinstance(when, datetime) else when
        data = DATA_MODELS[type_].model_validate(fields).model_dump(mode="json")
        number = len(self.entries) + 1
        self.entries.append(Entry(number, PARTNER_ID, number, type_, moment.astimezone(UTC), data))
        return self

    # The few event shapes the tests keep writing:

    def touch(self, when: date | datetime) -> Story:
        return self.add("meeting_held", when, kind="check_in", location="theirs")

    def cadence(self, every_days: int, when: date = REGISTERED) -> Story:
        return self.add("checkin_cadence_agreed", when, every_days=every_days)

    def promise(
        self, commitment_id: str, when: date, due: date, owed_by: str = "us", **extra: Any
    ) -> Story:
        return self.add(
            "commitment_made",
            when,
            commitment_id=commitment_id,
            owed_by=owed_by,
            description=f"Commitment {commitment_id}",
            due_on=due.isoformat(),
            **{"resource": "deliverable", **extra},
        )

    def fulfil(self, commitment_id: str, when: date | datetime) -> Story:
        return self.add("commitment_fulfilled", when, commitment_id=commitment_id)

    def renegotiate(self, commitment_id: str, when: date, due: date) -> Story:
        return self.add(
            "commitment_renegotiated", when, commitment_id=commitment_id, due_on=due.isoformat()
        )

    def cancel(self, commitment_id: str, when: date) -> Story:
        return self.add("commitment_cancelled", when, commitment_id=commitment_id, reason="moot")

    def thank(self, when: date | datetime) -> Story:
        return self.add("thanks_expressed", when, form="note")

    def outcome(self, when: date | datetime) -> Story:
        return self.add("outcome_shared", when, summary="What we changed")

    def feedback(self, when: date | datetime) -> Story:
        return self.add("feedback_received", when, summary="Their view")

    def pay(self, when: date) -> Story:
        return self.add("payment_made", when, amount="100.00", currency="USD", purpose="stipend")

    def breach(self, breach_id: str, severity: str, when: date, caused_by: str = "us") -> Story:
        return self.add(
            "trust_breach_recorded",
            when,
            breach_id=breach_id,
            severity=severity,
            caused_by=caused_by,
            description="A promise broken",
        )

    def repair(self, breach_id: str, when: date) -> Story:
        return self.add("trust_repaired", when, breach_id=breach_id, summary="Apologised")

    # Reading it, by the counting rule on as_of:

    def snapshot(self, as_of: date | datetime) -> PartnerSnapshot:
        moment = end_of_day(as_of) if not isinstance(as_of, datetime) else as_of
        counting = [e for e in self.entries if e.occurred_at <= moment]
        return fold_partner(PARTNER_ID, sorted(counting, key=lambda e: (e.occurred_at, e.version)))

    def health(self, as_of: date | datetime) -> Health:
        moment = end_of_day(as_of) if not isinstance(as_of, datetime) else as_of
        return health_of(self.snapshot(moment), moment)

    def component(self, name: str, as_of: date | datetime) -> Component:
        (found,) = [c for c in self.health(as_of).components if c.name == name]
        return found

    def score(self, name: str, as_of: date | datetime) -> Fraction:
        return self.component(name, as_of).score

    def commitment(self, commitment_id: str, as_of: date) -> CommitmentView:
        return self.snapshot(as_of).commitments[commitment_id]


# ---- cadence --------------------------------------------------------------------------------


def test_cadence_is_full_on_the_last_agreed_day() -> None:
    story = Story().cadence(30).touch(DAY0)

    component = story.component("cadence", days(30))

    assert component.score == 100
    assert (
        component.explanation
        == "Last two-way contact 30 days ago; agreed cadence is every 30 days."
    )


def test_cadence_falls_linearly_between_the_cadence_and_three_times_it() -> None:
    story = Story().cadence(30).touch(DAY0)

    assert story.score("cadence", days(31)) == Fraction(100 * (90 - 31), 60)
    assert story.score("cadence", days(45)) == 75  # 100 * (90 - 45) / 60
    assert story.score("cadence", days(60)) == 50
    assert story.score("cadence", days(89)) == Fraction(5, 3)


def test_cadence_is_zero_at_three_times_the_cadence_and_after() -> None:
    story = Story().cadence(30).touch(DAY0)

    assert story.score("cadence", days(90)) == 0
    assert story.score("cadence", days(400)) == 0


def test_without_a_two_way_touch_cadence_runs_from_the_relationships_start() -> None:
    # Registered 4 days before DAY0; an outbound email is no two-way touch.
    story = Story().add("contact_made", DAY0, channel="email", direction="outbound", summary="Hi")

    fresh = story.component("cadence", DAY0)

    assert fresh.counts
    assert fresh.score == 100  # 4 days since the relationship began
    assert fresh.explanation.startswith("No two-way contact")
    assert "4 days since the relationship began" in fresh.explanation
    assert "every 30 days" in fresh.explanation  # the default cadence
    assert story.score("cadence", days(56)) == 50  # 60 days since the start
    assert story.score("cadence", days(86)) == 0  # 90 days: three times the cadence


def test_an_inbound_contact_is_a_two_way_touch_and_an_outbound_one_is_not() -> None:
    story = (
        Story()
        .add("contact_made", DAY0, channel="phone", direction="inbound", summary="They called")
        .add("contact_made", days(20), channel="email", direction="outbound", summary="We wrote")
    )

    assert story.snapshot(days(40)).last_touch_at == noon(DAY0)
    assert story.score("cadence", days(40)) == Fraction(100 * (90 - 40), 60)


def test_cadence_explanation_states_the_days_and_the_agreed_cadence() -> None:
    story = Story().cadence(60).touch(date(2025, 3, 20))

    component = story.component("cadence", date(2025, 7, 10))

    assert component.score == Fraction(100 * (180 - 112), 120)
    assert (
        component.explanation
        == "Last two-way contact 112 days ago; agreed cadence is every 60 days."
    )


def test_cadence_counts_calendar_days_in_utc_not_elapsed_hours() -> None:
    # 23:30 UTC on DAY0 to 00:30 UTC 31 days later: 30 days and an hour elapsed, 31 calendar days.
    story = Story().touch(datetime.combine(DAY0, time(23, 30), tzinfo=UTC))
    as_of = datetime.combine(days(31), time(0, 30), tzinfo=UTC)

    assert story.score("cadence", as_of) == Fraction(100 * (90 - 31), 60)


def test_a_touch_late_in_the_evening_west_of_utc_falls_on_the_next_utc_day() -> None:
    pacific = timezone(timedelta(hours=-8))
    # 20:00 at UTC-8 on DAY0 is 04:00 UTC the day after.
    story = Story().touch(datetime.combine(DAY0, time(20, 0), tzinfo=pacific))

    assert story.score("cadence", days(31)) == 100  # 30 UTC days since the touch


def test_cadence_uses_the_latest_touch_even_when_it_was_written_down_first() -> None:
    story = Story().touch(days(10)).touch(DAY0)  # the older meeting was recorded afterwards

    assert story.snapshot(days(50)).last_touch_at == noon(days(10))
    assert story.score("cadence", days(50)) == Fraction(100 * (90 - 40), 60)


# ---- our reliability ------------------------------------------------------------------------


def test_reliability_does_not_count_until_one_of_our_commitments_comes_due() -> None:
    story = Story().promise("OPEN", DAY0, days(30)).promise("THEIRS", DAY0, days(5), "partner")

    component = story.component("our_reliability", days(10))

    assert not component.counts
    assert component.explanation == "Not counted: none of our commitments has come due yet."
    assert component.as_dict()["score"] is None


def test_reliability_gives_full_credit_on_time_half_late_and_none_overdue() -> None:
    story = (
        Story()
        .promise("ON-TIME", DAY0, days(10))
        .fulfil("ON-TIME", days(10))
        .promise("LATE", DAY0, days(10))
        .fulfil("LATE", days(11))
        .promise("OVERDUE", DAY0, days(10))
    )

    component = story.component("our_reliability", days(20))

    assert component.score == 50  # (1 + 0.5 + 0) / 3 * 100
    assert component.explanation == (
        "Of 3 commitments of ours that came due, 1 kept on time, 1 kept late, 1 overdue."
    )


def test_reliability_leaves_out_cancelled_open_and_partner_commitments() -> None:
    story = (
        Story()
        .promise("LATE", DAY0, days(10))
        .fulfil("LATE", days(12))
        .promise("CANCELLED", DAY0, days(5))
        .cancel("CANCELLED", days(8))
        .promise("OPEN", DAY0, days(90))
        .promise("THEIRS", DAY0, days(5), owed_by="partner")
    )

    assert story.score("our_reliability", days(20)) == 50  # only LATE: 0.5 / 1


def test_a_commitment_due_today_is_still_open_and_overdue_the_day_after() -> None:
    story = Story().promise("C-1", DAY0, days(10))

    assert story.commitment("C-1", days(10)).status(days(10)) == "open"
    assert not story.component("our_reliability", days(10)).counts
    assert story.commitment("C-1", days(11)).status(days(11)) == "overdue"
    assert story.component("our_reliability", days(11)).counts
    assert story.score("our_reliability", days(11)) == 0


# ---- reciprocity ----------------------------------------------------------------------------


def test_reciprocity_does_not_count_when_nothing_was_asked() -> None:
    story = Story().promise("OURS", DAY0, days(10))

    component = story.component("reciprocity", days(20))

    assert not component.counts
    assert component.explanation.startswith("Not counted: nothing has been asked of this partner")


def test_reciprocity_is_gives_over_asks() -> None:
    story = (
        Story()
        .promise("THEIRS-1", DAY0, days(10), owed_by="partner")
        .promise("THEIRS-2", DAY0, days(10), owed_by="partner")
        .fulfil("THEIRS-1", days(5))  # their fulfilment is not one of our gives
        .feedback(days(6))
        .thank(days(7))
    )

    component = story.component("reciprocity", days(20))

    assert component.score == Fraction(100, 3)  # 1 give for 3 asks
    assert component.explanation == (
        "We gave 1 (0 commitments kept, 0 payments, 1 thanks, 0 outcomes shared) for 3 asks "
        "(2 commitments of theirs, 1 feedback received)."
    )


def test_every_kind_of_give_counts_and_reciprocity_is_capped_at_full() -> None:
    story = (
        Story()
        .promise("THEIRS", DAY0, days(10), owed_by="partner")
        .feedback(days(1))
        .promise("OURS", DAY0, days(10))
        .fulfil("OURS", days(3))
        .pay(days(3))
        .thank(days(4))
        .outcome(days(5))
    )

    component = story.component("reciprocity", days(20))

    assert component.score == 100  # min(1, 4 / 2)
    assert "We gave 4 (1 commitment kept, 1 payment, 1 thanks, 1 outcome shared)" in (
        component.explanation
    )


def test_reciprocity_counts_our_late_fulfilment_but_not_our_overdue_commitment() -> None:
    story = (
        Story()
        .promise("THEIRS-1", DAY0, days(10), owed_by="partner")
        .promise("THEIRS-2", DAY0, days(10), owed_by="partner")
        .promise("LATE", DAY0, days(5))
        .fulfil("LATE", days(9))
        .promise("OVERDUE", DAY0, days(5))
    )

    assert story.score("reciprocity", days(20)) == 50  # 1 / 2


# ---- acknowledgment -------------------------------------------------------------------------


def test_thanks_on_the_thirtieth_day_acknowledges_a_contribution() -> None:
    story = Story().feedback(DAY0).thank(days(30))

    component = story.component("acknowledgment", days(100))

    assert component.score == 100
    assert component.explanation.startswith("1 of 1 contribution of theirs")


def test_thanks_on_the_thirty_first_day_is_too_late() -> None:
    story = Story().feedback(DAY0).thank(days(31))

    component = story.component("acknowledgment", days(100))

    assert component.score == 0
    assert component.explanation.startswith("0 of 1 contribution of theirs")


def test_thanks_before_the_contribution_does_not_acknowledge_it() -> None:
    morning = datetime.combine(DAY0, time(9, 0), tzinfo=UTC)
    story = Story().thank(days(-3)).thank(morning).feedback(noon(DAY0))

    assert story.score("acknowledgment", days(100)) == 0


def test_an_outcome_shared_or_thanks_at_the_same_instant_acknowledges() -> None:
    story = Story().feedback(noon(DAY0)).outcome(noon(DAY0))

    assert story.score("acknowledgment", days(100)) == 100


def test_a_young_unacknowledged_contribution_is_left_out() -> None:
    story = Story().feedback(DAY0)

    young = story.component("acknowledgment", days(29))  # 29 days old: may still be thanked
    due = story.component("acknowledgment", days(30))  # 30 days old: counted, unthanked

    assert not young.counts
    assert young.explanation == (
        "Not counted: no contribution of theirs has been acknowledged or is old enough to judge "
        "(1 newer contribution still within 30 days)."
    )
    assert due.counts
    assert due.score == 0


def test_a_young_acknowledged_contribution_is_counted() -> None:
    story = Story().feedback(DAY0).feedback(days(50)).thank(days(52))

    component = story.component("acknowledgment", days(55))

    # The old one went unthanked; the 5-day-old one was thanked and counts: 1 of 2.
    assert component.score == 50
    assert component.explanation.startswith("1 of 2 contributions of theirs")


def test_a_partner_fulfilment_is_a_contribution_and_ours_is_not() -> None:
    story = (
        Story()
        .promise("THEIRS", DAY0, days(10), owed_by="partner")
        .fulfil("THEIRS", days(5))
        .promise("OURS", DAY0, days(10))
        .fulfil("OURS", days(5))
        .outcome(days(40))  # 35 days after their fulfilment: too late
    )

    component = story.component("acknowledgment", days(100))

    assert component.score == 0
    assert component.explanation.startswith("0 of 1 contribution of theirs")


def test_one_thanks_acknowledges_every_contribution_in_its_window() -> None:
    story = (
        Story()
        .feedback(DAY0)
        .promise("THEIRS", DAY0, days(20), owed_by="partner")
        .fulfil("THEIRS", days(10))
        .thank(days(25))
    )

    assert story.score("acknowledgment", days(100)) == 100


# ---- trust ----------------------------------------------------------------------------------


def test_trust_does_not_count_without_breaches() -> None:
    component = Story().component("trust", DAY0)

    assert not component.counts
    assert component.explanation == "Not counted: no breach of trust recorded."


@pytest.mark.parametrize(
    ("severity", "expected"), [("minor", 85), ("moderate", 65), ("severe", 40)]
)
def test_an_open_breach_costs_by_its_severity(severity: str, expected: int) -> None:
    story = Story().breach("B-1", severity, DAY0)

    assert story.score("trust", days(1)) == expected
    assert story.score("trust", days(1000)) == expected  # an open breach never fades


def test_a_breach_caused_by_the_partner_costs_the_same() -> None:
    story = Story().breach("B-1", "moderate", DAY0, caused_by="partner")

    assert story.score("trust", days(1)) == 65


def test_trust_adds_penalties_and_stops_at_zero() -> None:
    story = Story().breach("B-1", "severe", DAY0).breach("B-2", "severe", days(1))

    component = story.component("trust", days(2))

    assert component.score == 0
    assert component.explanation == "2 open breaches (severe -60, severe -60)."


def test_a_repaired_breach_costs_a_quarter_for_179_days_and_nothing_from_day_180() -> None:
    story = Story().breach("B-1", "moderate", DAY0).repair("B-1", days(10))

    assert story.score("trust", days(9)) == 65  # not yet repaired
    assert story.score("trust", days(10)) == Fraction(365, 4)  # 100 - 35 / 4 = 91.25
    assert story.score("trust", days(10 + 179)) == Fraction(365, 4)
    assert story.component("trust", days(10 + 179)).explanation == (
        "1 breach repaired in the last 180 days (moderate -8.75)."
    )
    settled = story.component("trust", days(10 + 180))
    assert not settled.counts  # nothing left to weigh
    assert settled.explanation == (
        "Not counted: 1 breach of trust, every one repaired over 180 days ago."
    )


def test_trust_explains_open_and_repaired_breaches_together() -> None:
    story = (
        Story()
        .breach("B-1", "minor", DAY0)
        .breach("B-2", "severe", DAY0)
        .repair("B-2", days(5))
        .breach("B-3", "moderate", days(6))
    )

    component = story.component("trust", days(10))

    assert component.score == 100 - 15 - 35 - 15  # the repaired severe costs 60 / 4
    assert component.explanation == (
        "2 open breaches (minor -15, moderate -35); "
        "1 breach repaired in the last 180 days (severe -15)."
    )


# ---- the score and its band -----------------------------------------------------------------


def test_round_half_up_rounds_halves_up() -> None:
    assert round_half_up(Fraction(175, 2)) == 88
    assert round_half_up(Fraction(349, 4)) == 87  # 87.25
    assert round_half_up(Fraction(351, 4)) == 88  # 87.75
    assert round_half_up(Fraction(2, 3), 4) == Decimal("0.6667")
    assert round_half_up(Fraction(1, 8), 2) == Decimal("0.13")


def test_a_score_of_exactly_n_and_a_half_rounds_up() -> None:
    # Cadence 100 (weight 25) and reliability 75 (one of ours on time, one late; weight 25);
    # nothing asked, no contribution, no breach: those three do not count. 175 / 2 = 87.5 -> 88.
    story = (
        Story()
        .touch(days(15))
        .promise("ON-TIME", DAY0, days(10))
        .fulfil("ON-TIME", days(9))
        .promise("LATE", DAY0, days(10))
        .fulfil("LATE", days(12))
    )

    health = story.health(days(20))

    assert [c.counts for c in health.components] == [True, True, False, False, False]
    assert [c.score for c in health.components[:2]] == [100, 75]
    assert health.score == 88
    assert health.band == "thriving"


def test_a_score_of_n_and_a_quarter_rounds_down() -> None:
    # Cadence 100 (weight 25) and reciprocity 50 (one payment for two feedbacks; weight 15):
    # (2500 + 750) / 40 = 81.25 -> 81. The feedback is too young to judge acknowledgment.
    story = Story().touch(days(15)).feedback(days(1)).feedback(days(2)).pay(days(3))

    health = story.health(days(20))

    assert [c.counts for c in health.components] == [True, False, True, False, False]
    assert health.score == 81
    assert health.band == "thriving"


def test_silence_scores_nothing_however_little_else_was_recorded() -> None:
    # Issue 13: a partner never contacted, and one silent for 350 days, once both scored 75.
    never = Story()
    silent = Story().touch(DAY0)

    for story in (never, silent):
        health = story.health(days(350))
        assert [c.counts for c in health.components] == [True, False, False, False, False]
        assert health.score == 0
        assert health.band == "critical"


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (100, "thriving"),
        (75, "thriving"),
        (74, "steady"),
        (50, "steady"),
        (49, "at_risk"),
        (25, "at_risk"),
        (24, "critical"),
        (0, "critical"),
    ],
)
def test_bands_start_at_75_50_and_25(score: int, band: str) -> None:
    assert band_of(score) == band


@pytest.mark.parametrize(
    ("silent_days", "expected", "band"),
    [
        (45, 75, "thriving"),  # 100 * (90 - 45) / 60, cadence alone counting
        (46, 73, "steady"),  # 73.33
        (60, 50, "steady"),
        (61, 48, "at_risk"),  # 48.33
        (75, 25, "at_risk"),
        (76, 23, "critical"),  # 23.33
    ],
)
def test_scores_at_the_band_boundaries(silent_days: int, expected: int, band: str) -> None:
    health = Story().touch(days(100 - silent_days)).health(days(100))

    assert health.score == expected
    assert health.band == band


def test_health_lists_the_five_components_with_their_weights() -> None:
    health = Story().health(DAY0)

    assert [(c.name, c.weight) for c in health.components] == [
        ("cadence", 25),
        ("our_reliability", 25),
        ("reciprocity", 15),
        ("acknowledgment", 15),
        ("trust", 20),
    ]
    assert health.as_dict()["components"][0] == {
        "name": "cadence",
        "counts": True,
        "score": 100.0,
        "weight": 25,
        "explanation": "No two-way contact (a meeting or an inbound contact) in the 4 days "
        "since the relationship began; agreed cadence is every 30 days.",
    }
    assert health.as_dict()["components"][1]["counts"] is False
    assert health.as_dict()["components"][1]["score"] is None


def test_component_scores_are_shown_to_two_places() -> None:
    story = Story().cadence(60).touch(date(2025, 3, 20))

    shown = story.health(date(2025, 7, 10)).as_dict()["components"][0]

    assert shown["score"] == 56.67  # 100 * 68 / 120


# ---- commitment status, renegotiation, days late --------------------------------------------


def test_fulfilled_on_the_due_day_is_on_time_with_no_days_late() -> None:
    story = Story().promise("C-1", DAY0, days(10)).fulfil("C-1", days(10))
    commitment = story.commitment("C-1", days(20))

    assert commitment.status(days(20)) == "fulfilled_on_time"
    assert commitment.days_late == 0
    assert commitment.fulfilled_on == days(10)


def test_fulfilled_after_the_due_day_is_late_by_the_calendar_days() -> None:
    story = Story().promise("C-1", DAY0, days(10)).fulfil("C-1", days(19))
    commitment = story.commitment("C-1", days(20))

    assert commitment.status(days(20)) == "fulfilled_late"
    assert commitment.days_late == 9


def test_an_unfulfilled_commitment_has_no_days_late() -> None:
    story = Story().promise("C-1", DAY0, days(10)).promise("C-2", DAY0, days(10))
    story.cancel("C-2", days(3))

    assert story.commitment("C-1", days(20)).days_late is None
    assert story.commitment("C-2", days(20)).days_late is None
    assert story.commitment("C-2", days(20)).status(days(20)) == "cancelled"


def test_renegotiated_before_due_and_fulfilled_by_the_new_date_is_on_time() -> None:
    story = (
        Story()
        .promise("HONORARIUM", date(2025, 2, 3), date(2025, 3, 15))
        .renegotiate("HONORARIUM", date(2025, 3, 14), date(2025, 3, 31))
        .fulfil("HONORARIUM", date(2025, 3, 28))
    )
    before = story.commitment("HONORARIUM", date(2025, 3, 20))
    after = story.commitment("HONORARIUM", date(2025, 4, 1))

    assert before.status(date(2025, 3, 20)) == "open"
    assert before.due_on == date(2025, 3, 31)
    assert after.status(date(2025, 4, 1)) == "fulfilled_on_time"
    assert after.days_late == 0
    assert after.renegotiations == 1
    assert after.renegotiated_after_due is False
    assert after.original_due_on == date(2025, 3, 15)


def test_renegotiated_on_the_due_day_is_not_after_due() -> None:
    story = Story().promise("C-1", DAY0, days(10)).renegotiate("C-1", days(10), days(20))

    assert story.commitment("C-1", days(11)).renegotiated_after_due is False


def test_renegotiated_once_overdue_is_flagged_and_an_earlier_as_of_sees_the_old_date() -> None:
    story = (
        Story()
        .promise("SPACE", date(2025, 4, 1), date(2025, 5, 15))
        .renegotiate("SPACE", date(2025, 5, 20), date(2025, 6, 15))
        .fulfil("SPACE", date(2025, 6, 20))
    )
    before = story.commitment("SPACE", date(2025, 5, 18))
    between = story.commitment("SPACE", date(2025, 5, 25))
    after = story.commitment("SPACE", date(2025, 7, 1))

    assert (before.due_on, before.status(date(2025, 5, 18))) == (date(2025, 5, 15), "overdue")
    assert before.overdue_days(date(2025, 5, 18)) == 3
    assert before.renegotiated_after_due is False
    assert (between.due_on, between.status(date(2025, 5, 25))) == (date(2025, 6, 15), "open")
    assert between.renegotiated_after_due is True
    assert after.status(date(2025, 7, 1)) == "fulfilled_late"
    assert after.days_late == 5  # against the date in force, not the original 36 days


def test_a_renegotiation_after_the_fulfilment_in_the_world_changes_nothing() -> None:
    # Written down in the wrong order: the fulfilment (day 8) was recorded after a renegotiation
    # that happened on day 12; in world order the commitment was already kept.
    story = (
        Story()
        .promise("C-1", DAY0, days(5))
        .renegotiate("C-1", days(12), days(30))
        .fulfil("C-1", days(8))
    )
    commitment = story.commitment("C-1", days(40))

    assert commitment.status(days(40)) == "fulfilled_late"
    assert commitment.days_late == 3
    assert commitment.renegotiations == 0


# ---- fulfilment figures ---------------------------------------------------------------------


def test_figures_without_commitments_have_no_rates() -> None:
    sides = figures_of([], DAY0)

    for side in ("us", "partner"):
        assert sides[side].as_dict() == {
            "made": 0,
            "open": 0,
            "overdue": 0,
            "fulfilled_on_time": 0,
            "fulfilled_late": 0,
            "cancelled": 0,
            "renegotiated_after_due": 0,
            "fulfilled": 0,
            "fulfilment_rate": None,
            "on_time_rate": None,
        }


def test_rates_are_null_while_nothing_has_come_due() -> None:
    story = Story().promise("OPEN", DAY0, days(30)).promise("CANCELLED", DAY0, days(5))
    story.cancel("CANCELLED", days(1))

    us = figures_of(story.snapshot(days(10)).commitments.values(), days(10))["us"].as_dict()

    assert (us["made"], us["open"], us["cancelled"]) == (2, 1, 1)
    assert us["fulfilment_rate"] is None
    assert us["on_time_rate"] is None


def test_figures_count_each_status_and_the_rates_leave_out_open_and_cancelled() -> None:
    story = (
        Story()
        .promise("A", DAY0, days(5))
        .fulfil("A", days(4))
        .promise("B", DAY0, days(5))
        .fulfil("B", days(5))
        .promise("C", DAY0, days(5))
        .fulfil("C", days(7))
        .promise("D", DAY0, days(5))
        .promise("E", DAY0, days(5))
        .cancel("E", days(2))
        .promise("F", DAY0, days(60))
        .promise("G", DAY0, days(60), owed_by="partner")
    )

    sides = figures_of(story.snapshot(days(10)).commitments.values(), days(10))

    assert sides["us"].as_dict() == {
        "made": 6,
        "open": 1,
        "overdue": 1,
        "fulfilled_on_time": 2,
        "fulfilled_late": 1,
        "cancelled": 1,
        "renegotiated_after_due": 0,
        "fulfilled": 3,
        "fulfilment_rate": 0.75,  # 3 / (3 + 1)
        "on_time_rate": 0.5,  # 2 / 4
    }
    assert sides["partner"].as_dict()["made"] == 1
    assert sides["partner"].as_dict()["fulfilment_rate"] is None


def test_rates_round_half_up_to_four_places() -> None:
    story = (
        Story()
        .promise("A", DAY0, days(5))
        .fulfil("A", days(5))
        .promise("B", DAY0, days(5))
        .fulfil("B", days(6))
        .promise("C", DAY0, days(5))
    )

    us = figures_of(story.snapshot(days(10)).commitments.values(), days(10))["us"].as_dict()

    assert us["fulfilment_rate"] == 0.6667
    assert us["on_time_rate"] == 0.3333


def test_renegotiated_after_due_counts_once_per_commitment() -> None:
    story = (
        Story()
        .promise("A", DAY0, days(5))
        .renegotiate("A", days(8), days(12))
        .renegotiate("A", days(15), days(20))  # overdue again, renegotiated again
        .promise("B", DAY0, days(5))
        .renegotiate("B", days(3), days(9))  # before due: not counted
    )

    us = figures_of(story.snapshot(days(16)).commitments.values(), days(16))["us"].as_dict()

    assert story.commitment("A", days(16)).renegotiations == 2
    assert us["renegotiated_after_due"] == 1
    assert (us["open"], us["overdue"]) == (1, 1)  # A due day 20, B due day 9


def test_a_commitment_as_dict_shows_what_the_api_returns() -> None:
    story = (
        Story()
        .promise("C-1", DAY0, days(5), resource="financial", amount="300.00", currency="USD")
        .renegotiate("C-1", days(7), days(14))
        .fulfil("C-1", days(16))
    )

    shown = story.commitment("C-1", days(20)).as_dict(days(20))

    assert shown == {
        "commitment_id": "C-1",
        "owed_by": "us",
        "description": "Commitment C-1",
        "resource": "financial",
        "amount": "300.00",
        "currency": "USD",
        "coalition_id": None,
        "made_on": "2025-01-10",
        "original_due_on": "2025-01-15",
        "due_on": "2025-01-24",
        "status": "fulfilled_late",
        "fulfilled_on": "2025-01-26",
        "cancelled_on": None,
        "days_late": 2,
        "renegotiations": 1,
        "renegotiated_after_due": True,
    }
