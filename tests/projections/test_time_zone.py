"""The ledger's time zone decides calendar days (SPEC §3, issue 12), on both stores.

A California county keeps a commitment due 31 March at 20:00 that evening, which is 04:00Z
on 1 April: on time under America/Los_Angeles, late under UTC. The same log gives both
answers; only the zone the views count days in changes, and the stored events, their hashes
and the ledger digest stay exactly as they were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from typer.testing import CliRunner

from api.cli import app
from api.params import parse_as_of
from api.settings import Settings
from api.wiring import Services, open_services
from domain.chained import Stamp
from domain.serialization import DATA_MODELS
from domain.values import CoalitionFormed, MemberJoined, PartnerRegistered
from projections.render import report_markdown

LA = "America/Los_Angeles"
STEWARD = "steward:ana"
DUE = "2026-03-31"
KEPT = datetime(2026, 4, 1, 4, 0, tzinfo=UTC)  # 20:00 on 31 March in California (PDT)


@contextmanager
def opened(settings: Settings, zone: str) -> Iterator[Services]:
    services = open_services(dataclasses.replace(settings, time_zone=zone))
    try:
        services.keeper.catch_up()
        yield services
    finally:
        services.close()


def record(services: Services, partner_id: Any, type_: str, when: datetime, **fields: Any) -> None:
    data = DATA_MODELS[type_].model_validate(fields)
    services.ledger.record(UUID(str(partner_id)), data, Stamp(when, STEWARD))


def write_california(settings: Settings) -> tuple[str, str]:
    """A coalition with one member whose stipend, due 31 March, was paid at 20:00 local time."""
    with opened(settings, "UTC") as services:
        ledger = services.ledger
        start = Stamp(datetime(2026, 3, 1, 17, tzinfo=UTC), STEWARD)
        coalition = ledger.form_coalition(
            CoalitionFormed(name="Valley Health Coalition", shared_vision="Care nearby."), start
        ).stream_id
        partner = ledger.register_partner(
            PartnerRegistered(name="Valley Promotoras", kind="organization"), start
        ).stream_id
        ledger.join_coalition(coalition, MemberJoined(partner_id=partner), start)
        record(
            services,
            partner,
            "commitment_made",
            datetime(2026, 3, 2, 17, tzinfo=UTC),
            commitment_id="C-1",
            owed_by="us",
            description="Pay the interpreter's stipend",
            due_on=DUE,
            resource="financial",
            amount="250.00",
            currency="USD",
        )
        record(services, partner, "commitment_fulfilled", KEPT, commitment_id="C-1")
        return str(coalition), str(partner)


def kept(services: Services, partner_id: str, as_of: str = "2026-04-30") -> dict[str, Any]:
    at = services.queries.at(parse_as_of(as_of, services.settings.zone))
    commitment: dict[str, Any] = services.queries.commitments(partner_id, at)["commitments"][0]
    return commitment


def test_kept_at_8_pm_in_california_on_the_due_day_is_on_time_there_and_late_in_utc(
    settings: Settings,
) -> None:
    _, partner = write_california(settings)

    with opened(settings, LA) as services:
        there = kept(services, partner)
        digest_there = services.queries.digest(services.queries.at())["digest"]
    with opened(settings, "UTC") as services:
        in_utc = kept(services, partner)
        digest_in_utc = services.queries.digest(services.queries.at())["digest"]

    assert (there["status"], there["fulfilled_on"], there["days_late"]) == (
        "fulfilled_on_time",
        "2026-03-31",
        0,
    )
    assert (in_utc["status"], in_utc["fulfilled_on"], in_utc["days_late"]) == (
        "fulfilled_late",
        "2026-04-01",
        1,
    )
    assert digest_there == digest_in_utc  # instants are stored and hashed in UTC


def test_the_views_fold_again_when_the_zone_changes_and_say_which_they_count_in(
    settings: Settings,
) -> None:
    coalition, _ = write_california(settings)

    with opened(settings, LA) as services:
        assert services.view.built_zone() == LA
        at = services.queries.at(parse_as_of("2026-04-30", services.settings.zone))
        # Figures from the stored tables (commitment_totals) agree with the fold.
        figures = services.queries.accountability(at)["us"]
        report = services.queries.report(coalition, at)
    assert (figures["fulfilled_on_time"], figures["fulfilled_late"]) == (1, 0)
    assert report["time_zone"] == LA
    assert report["totals"]["us"]["fulfilled_on_time"] == 1
    assert "- **Time zone:** America/Los\\_Angeles" in report_markdown(report).decode()

    with opened(settings, "UTC") as services:
        assert services.view.built_zone() == "UTC"
        at = services.queries.at(parse_as_of("2026-04-30", services.settings.zone))
        figures = services.queries.accountability(at)["us"]
        assert services.queries.agenda(at)["time_zone"] == "UTC"
    assert (figures["fulfilled_on_time"], figures["fulfilled_late"]) == (0, 1)


def test_an_as_of_date_ends_at_the_zones_midnight(settings: Settings) -> None:
    # Paid at 04:00Z on 1 April: still 31 March in California, already 1 April in UTC.
    _, partner = write_california(settings)

    with opened(settings, LA) as services:
        at = services.queries.at(parse_as_of("2026-03-31", services.settings.zone))
        there = services.queries.commitments(partner, at)
    with opened(settings, "UTC") as services:
        at_utc = services.queries.at(parse_as_of("2026-03-31", services.settings.zone))
        in_utc = services.queries.commitments(partner, at_utc)

    assert there["as_of"] == "2026-04-01T06:59:59.999999Z"
    assert there["commitments"][0]["status"] == "fulfilled_on_time"
    assert in_utc["as_of"] == "2026-03-31T23:59:59.999999Z"
    assert in_utc["commitments"][0]["status"] == "open"  # due that day, not kept yet in UTC


def test_the_same_reference_and_zone_give_the_same_report_to_the_byte(
    settings: Settings,
) -> None:
    coalition, partner = write_california(settings)

    with opened(settings, LA) as services:
        at = services.queries.at(parse_as_of("2026-04-30", services.settings.zone))
        first = orjson.dumps(services.queries.report(coalition, at))
        # Later entries, some dated before that as_of, recorded after the report was made:
        record(services, partner, "thanks_expressed", KEPT, form="email")
        record(services, partner, "thanks_expressed", datetime(2026, 5, 2, tzinfo=UTC), form="note")
        services.keeper.catch_up()
        again = orjson.dumps(
            services.queries.report(coalition, services.queries.at(at.as_of, at.position))
        )
    with opened(settings, LA) as services:  # another process, the views folded again
        later = orjson.dumps(
            services.queries.report(coalition, services.queries.at(at.as_of, at.position))
        )

    assert again == first
    assert later == first


def pledger(settings: Settings, zone: str, *args: str) -> Any:
    argv = list(args)
    if settings.database_url is None:
        argv += ["--db", str(settings.db_path)]
    env = {"PLEDGER_DATABASE_URL": settings.database_url or "", "PLEDGER_TIMEZONE": zone}
    return CliRunner().invoke(app, argv, env=env)


def test_report_like_makes_a_report_again_in_the_zone_it_states(
    settings: Settings, tmp_path: Path
) -> None:
    coalition, _ = write_california(settings)
    made = pledger(settings, LA, "report", coalition, "--as-of", "2026-04-30")
    assert made.exit_code == 0, made.output
    stated = orjson.loads(made.stdout)
    assert stated["time_zone"] == LA
    assert stated["totals"]["us"]["fulfilled_on_time"] == 1
    saved = tmp_path / "report.json"
    saved.write_bytes(made.stdout_bytes)

    # The ledger now counts UTC days, yet --like makes the California report again.
    again = pledger(settings, "UTC", "report", "--like", str(saved))
    utc = pledger(settings, "UTC", "report", coalition, "--as-of", "2026-04-30")

    assert again.exit_code == 0, again.output
    assert again.stdout_bytes == made.stdout_bytes
    assert orjson.loads(utc.stdout)["totals"]["us"]["fulfilled_late"] == 1


def test_a_time_zone_the_database_lacks_stops_a_command_naming_the_setting(
    settings: Settings,
) -> None:
    result = pledger(settings, "Mars/Olympus", "agenda")

    assert result.exit_code == 2
    assert "PLEDGER_TIMEZONE='Mars/Olympus' is not a time zone name" in result.stderr
    with pytest.raises(ValueError, match="PLEDGER_TIMEZONE"):
        dataclasses.replace(settings, time_zone="Mars/Olympus")


def test_month_ends_of_the_health_history_are_the_zones(settings: Settings) -> None:
    _, partner = write_california(settings)

    with opened(settings, LA) as services:
        at = services.queries.at(parse_as_of("2026-04-30", services.settings.zone))
        history = services.queries.health_history(partner, at, start=None, end=None)

    assert history["time_zone"] == LA
    assert [p["as_of"] for p in history["points"]] == ["2026-03-31", "2026-04-30"]
    # The stipend counted as kept on time at the end of 31 March, California time.
    assert date.fromisoformat(history["from"]) == date(2026, 3, 1)


def test_every_answer_at_a_reference_states_the_zone_it_counted_days_in(
    settings: Settings,
) -> None:
    """SPEC §3: "Answers and reports that depend on it state the zone" — health, commitments,
    the partner lists, accountability, review, coalitions, the agenda and the report."""
    coalition, partner = write_california(settings)

    with opened(settings, LA) as services:
        queries = services.queries
        at = queries.at(parse_as_of("2026-04-30", services.settings.zone))
        answers = {
            "partner": queries.partner(partner, at),
            "health": queries.health(partner, at),
            "commitments": queries.commitments(partner, at),
            "partners": queries.partners(at),
            "partners by health": queries.partners(at, sort="health"),
            "accountability": queries.accountability(at),
            "review": queries.review(at),
            "coalitions": queries.coalitions(at),
            "coalition": queries.coalition(coalition, at),
            "agenda": queries.agenda(at, within_days=14),
            "report": queries.report(coalition, at),
            "timeline": queries.timeline(partner, at),
            "partner view": queries.partner_view(partner, at),
        }

    for name, answer in answers.items():
        assert answer["time_zone"] == LA, name
