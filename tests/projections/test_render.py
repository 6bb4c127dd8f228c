"""The report and agenda as files: same numbers in every format, same bytes for the same input."""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import orjson
import pytest

from api.formats import render_report
from projections.render import (
    PROMISES_IN_ALL,
    PROMISES_PER_MEMBER,
    _chart_label,
    agenda_ics,
    report_csv,
    report_html,
    report_json,
    report_markdown,
)

HOSTILE = "<script>alert('x')</script> & \"Friends\""
FORMULA = "=SUM(A1:A9) | $5 *bold*"
SIDES = ("us", "partner")
FIGURE_KEYS = (
    "made",
    "open",
    "overdue",
    "fulfilled_on_time",
    "fulfilled_late",
    "fulfilled",
    "cancelled",
    "renegotiated_after_due",
    "fulfilment_rate",
    "on_time_rate",
)


def figures(
    *, open_: int = 0, overdue: int = 0, on_time: int = 0, late: int = 0, cancelled: int = 0
) -> dict[str, Any]:
    """Figures shaped like ``Figures.as_dict()``: rates over fulfilled + overdue, None when 0."""
    fulfilled = on_time + late
    due = fulfilled + overdue
    return {
        "made": open_ + overdue + fulfilled + cancelled,
        "open": open_,
        "overdue": overdue,
        "fulfilled_on_time": on_time,
        "fulfilled_late": late,
        "cancelled": cancelled,
        "renegotiated_after_due": late,
        "fulfilled": fulfilled,
        "fulfilment_rate": round(fulfilled / due, 4) if due else None,
        "on_time_rate": round(on_time / due, 4) if due else None,
    }


def a_report() -> dict[str, Any]:
    return {
        "coalition": {"id": "9b7a0c1e-0000-4000-8000-000000000001", "name": "Riverside & Co"},
        "period": {"from": "2026-01-01", "to": "2026-03-31"},
        "as_of": "2026-03-31T23:59:59.999999Z",
        "position": 57,
        "digest": "0f" * 32,
        "generated_by": "Partnership Ledger 0.1.0",
        "members": [
            {
                "partner_id": "11111111-0000-4000-8000-000000000001",
                "name": HOSTILE,
                "health": {"score": 82, "band": "thriving"},
                "us": figures(open_=1, overdue=1, on_time=2, late=0),
                "partner": figures(on_time=1, late=1),
                "payments": {"USD": "1200.00"},
                "thanks": 2,
                "breaches": {"open": 0, "repaired": 1},
            },
            {
                "partner_id": "22222222-0000-4000-8000-000000000002",
                "name": FORMULA,
                "health": {"score": 41, "band": "at_risk"},
                "us": figures(),
                "partner": figures(open_=1, overdue=2, late=1, cancelled=1),
                "payments": {"EUR": "50", "USD": "10.50"},
                "thanks": 0,
                "breaches": {"open": 1, "repaired": 0},
            },
            {
                "partner_id": "33333333-0000-4000-8000-000000000003",
                "name": "Asociación Vecinal",
                "health": {"score": 12, "band": "critical"},
                "us": figures(cancelled=1),
                "partner": figures(),
                "payments": {},
                "thanks": 1,
                "breaches": {"open": 0, "repaired": 0},
            },
        ],
        "totals": {
            "us": figures(open_=1, overdue=1, on_time=2, cancelled=1),
            "partner": figures(open_=1, overdue=2, on_time=1, late=2, cancelled=1),
            "payments": {"EUR": "50", "USD": "1210.50"},
            "thanks": 3,
            "breaches": {"open": 1, "repaired": 1},
        },
    }


def an_agenda() -> dict[str, Any]:
    return {
        "as_of": "2026-03-31T15:00:00.000000Z",
        "position": 57,
        "within_days": 14,
        "checkins": [
            {
                "partner_id": "p-1",
                "name": "Ana; O'Neil, Jr.",
                "due_on": "2026-03-20",
                "overdue_days": 11,
            },
            {
                "partner_id": "p-2",
                "name": "Bee Collective",
                "due_on": "2026-04-02",
                "overdue_days": -2,
            },
        ],
        "commitments": [
            {
                "partner_id": "p-1",
                "name": "Ana; O'Neil, Jr.",
                "commitment_id": "C-2026-001",
                "owed_by": "us",
                "description": "Pay the March stipend",
                "due_on": "2026-03-30",
                "overdue_days": 1,
            },
            {
                "partner_id": "p-2",
                "name": "Bee Collective",
                "commitment_id": "C-7",
                "owed_by": "partner",
                "description": "Send the listening-session notes",
                "due_on": "2026-04-10",
                "overdue_days": -10,
            },
        ],
    }


def csv_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    text = report_csv(report).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def csv_rate(rate: float | None) -> str:
    return "" if rate is None else repr(rate)


# ---- every format -----------------------------------------------------------------------------

RENDERERS: list[Callable[[dict[str, Any]], bytes]] = [
    report_json,
    report_csv,
    report_markdown,
    report_html,
]


@pytest.mark.parametrize("render", RENDERERS, ids=lambda r: r.__name__)
def test_the_same_report_renders_to_the_same_bytes(
    render: Callable[[dict[str, Any]], bytes],
) -> None:
    first = render(a_report())
    render({**a_report(), "members": a_report()["members"][:1]})  # another report in between
    assert render(a_report()) == first


@pytest.mark.parametrize("render", RENDERERS, ids=lambda r: r.__name__)
def test_every_format_states_the_reference_and_digest(
    render: Callable[[dict[str, Any]], bytes],
) -> None:
    text = render(a_report()).decode("utf-8")
    for fact in ("2026-03-31T23:59:59.999999Z", "0f" * 32, "Partnership Ledger 0.1.0", "57"):
        assert fact in text
    # The period's first day: exact in json and csv, for people in md and html.
    assert ("Jan 1, 2026" if render in (report_markdown, report_html) else "2026-01-01") in text
    assert "Riverside" in text


# ---- JSON -------------------------------------------------------------------------------------


def test_json_reads_back_as_the_report() -> None:
    report = a_report()
    assert orjson.loads(report_json(report)) == report
    assert json.loads(report_json(report)) == report


# ---- CSV --------------------------------------------------------------------------------------


def test_csv_has_a_row_per_member_then_a_total_row() -> None:
    rows = csv_rows(a_report())
    assert [r["partner_id"] for r in rows[:-1]] == [m["partner_id"] for m in a_report()["members"]]
    assert rows[-1]["name"] == "TOTAL"
    assert rows[-1]["partner_id"] == ""
    assert rows[-1]["health_score"] == ""


def test_csv_carries_the_reports_numbers() -> None:
    report = a_report()
    rows = csv_rows(report)
    for row, source in zip(rows, [*report["members"], report["totals"]], strict=True):
        for side in SIDES:
            for key in FIGURE_KEYS:
                value = source[side][key]
                expected = csv_rate(value) if key.endswith("_rate") else str(value)
                assert row[f"{side}_{key}"] == expected, (side, key)
        for currency in ("EUR", "USD"):
            assert row[f"payments_{currency}"] == source["payments"].get(currency, "0")
        assert row["thanks"] == str(source["thanks"])
        assert row["breaches_open"] == str(source["breaches"]["open"])
        assert row["breaches_repaired"] == str(source["breaches"]["repaired"])
    for row, member in zip(rows[:-1], report["members"], strict=True):
        assert row["health_score"] == str(member["health"]["score"])
        assert row["health_band"] == member["health"]["band"]


def test_csv_repeats_the_reports_facts_on_every_row() -> None:
    for row in csv_rows(a_report()):
        assert row["coalition"] == "Riverside & Co"
        assert row["coalition_id"] == "9b7a0c1e-0000-4000-8000-000000000001"
        assert (row["period_from"], row["period_to"]) == ("2026-01-01", "2026-03-31")
        assert row["as_of"] == "2026-03-31T23:59:59.999999Z"
        assert row["time_zone"] == "UTC"  # a report that states none counted UTC days
        assert row["position"] == "57"
        assert row["digest"] == "0f" * 32
        assert row["generated_by"] == "Partnership Ledger 0.1.0"


def test_csv_lists_payment_currencies_in_order_and_nothing_after_the_total() -> None:
    text = report_csv(a_report()).decode("utf-8")
    header = next(csv.reader(io.StringIO(text, newline="")))
    assert [h for h in header if h.startswith("payments_")] == ["payments_EUR", "payments_USD"]
    assert text.endswith("\r\n")
    assert text.rstrip("\r\n").rsplit("\r\n", 1)[-1].split(",")[10] == "TOTAL"


def test_csv_keeps_a_formula_looking_name_as_text() -> None:
    rows = csv_rows(a_report())
    assert rows[1]["name"] == "'" + FORMULA
    assert rows[0]["name"] == HOSTILE  # other names are written as they are


def test_csv_of_an_open_period_leaves_its_ends_empty() -> None:
    report = {**a_report(), "period": {"from": None, "to": None}}
    row = csv_rows(report)[0]
    assert (row["period_from"], row["period_to"]) == ("", "")


# ---- Markdown ---------------------------------------------------------------------------------


def test_markdown_has_a_title_facts_and_tables() -> None:
    text = report_markdown(a_report()).decode("utf-8")
    assert text.startswith("# Accountability report: Riverside \\& Co\n")
    assert "- **Ledger digest:** " + "0f" * 32 in text
    assert "- **Period:** Jan 1, 2026 to Mar 31, 2026" in text
    for heading in ("## Members", "## Commitments by member", "## Totals"):
        assert f"\n{heading}\n" in text
    assert "| Asociación Vecinal | 12 | critical | €0.00 | \\$0.00 | 1 | 0 | 0 |" in text
    assert "| Asociación Vecinal | us | 1 | 0 | 0 | 0 | 0 | 0 | 1 | 0 | — | — |" in text
    assert "| All members | us | 5 | 1 | 1 | 2 | 0 | 2 | 1 | 0 | 66.67% | 66.67% |" in text
    assert "| All members | partner | 7 | 1 | 2 | 1 | 2 | 3 | 1 | 2 | 60.00% | 20.00% |" in text
    assert "| €50.00 | \\$1,210.50 | 3 | 1 | 1 |" in text
    assert "| 41 | at risk |" in text  # a band as people read it, not "at\\_risk"
    assert "at\\_risk" not in text


def test_markdown_escapes_names_that_look_like_markup() -> None:
    text = report_markdown(a_report()).decode("utf-8")
    assert "<script>" not in text
    assert "\\<script\\>alert('x')\\</script\\> \\& \"Friends\"" in text
    assert "=SUM(A1:A9) \\| \\$5 \\*bold\\*" in text
    # Every table row still has as many cells as its header.
    for table in re.findall(r"((?:^\|.*\|\n)+)", text, re.MULTILINE):
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(widths) == 1, table


# ---- HTML -------------------------------------------------------------------------------------

SVG_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def html() -> str:
    """One rendering shared by the tests that only read it: drawing charts takes a while."""
    return report_html(a_report()).decode("utf-8")


def test_html_is_a_standalone_page_with_inline_svg_charts(html: str) -> None:
    text = html
    assert text.startswith("<!DOCTYPE html>\n")
    assert text.rstrip().endswith("</html>")
    assert text.count("<svg ") == 2
    assert "@media print" in text
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= SVG_NAMESPACES
    for fetching in ("<script", "<link", "src=", "@import", "<iframe"):
        assert fetching not in text.lower()


def test_html_escapes_a_hostile_name(html: str) -> None:
    text = html
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Friends&quot;" in text


def test_html_ids_are_unique_and_every_reference_resolves(html: str) -> None:
    text = html
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'(?:href="#|url\(#)([^")]+)', text))
    assert references
    assert references <= set(ids)


def test_html_tables_carry_the_reports_numbers(html: str) -> None:
    text = html
    partner_totals = ["7", "1", "2", "1", "2", "3", "1", "2", "60.00%", "20.00%"]
    cells = "".join(f'<td class="num">{value}</td>' for value in partner_totals)
    assert f'<tr><td class="wrap">All members</td><td class="word">partner</td>{cells}</tr>' in text
    assert '<td class="num">$1,210.50</td>' in text
    assert '<span class="band band-at_risk">at risk</span>' in text


def test_html_without_members_says_so_and_draws_no_chart() -> None:
    report = a_report()
    report["members"] = []
    text = report_html(report).decode("utf-8")
    assert "No members at this reference." in text
    assert "<svg" not in text


def test_html_renders_the_same_from_threads_at_once(html: str) -> None:
    # The API renders from a thread pool; matplotlib's settings are process-wide.
    with ThreadPoolExecutor(max_workers=3) as pool:
        pages = list(pool.map(lambda _: report_html(a_report()), range(3)))
    assert {page.decode("utf-8") for page in pages} == {html}


_RENDER_IN_A_NEW_PROCESS = """
import json, sys
from projections.render import report_html
report = json.loads(open(sys.argv[1], encoding="utf-8").read())
sys.stdout.buffer.write(report_html(report))
"""


def test_html_is_byte_identical_across_processes(tmp_path: Path) -> None:
    source = tmp_path / "report.json"
    source.write_bytes(report_json(a_report()))
    outputs = []
    for seed in ("1", "2"):
        # A different hash seed each time: set/dict ordering must not leak into the SVG.
        env = {**os.environ, "PYTHONHASHSEED": seed, "MPLCONFIGDIR": str(tmp_path / seed)}
        done = subprocess.run(
            [sys.executable, "-c", _RENDER_IN_A_NEW_PROCESS, str(source)],
            capture_output=True,
            check=True,
            env=env,
            timeout=120,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0] == report_html(a_report())


# ---- iCalendar --------------------------------------------------------------------------------


def parsed(agenda: dict[str, Any]) -> icalendar.Calendar:
    calendar = icalendar.Calendar.from_ical(agenda_ics(agenda))
    assert isinstance(calendar, icalendar.Calendar)
    return calendar


def test_ics_has_one_all_day_event_per_checkin_and_commitment_overdue_ones_today() -> None:
    # The agenda is as of 31 March: what is past due shows on that day, where people look.
    events = parsed(an_agenda()).walk("VEVENT")
    assert [(str(e["summary"]), e.decoded("dtstart")) for e in events] == [
        ("Overdue since 2026-03-20: Check in with Ana; O'Neil, Jr.", date(2026, 3, 31)),
        ("Check in with Bee Collective", date(2026, 4, 2)),
        (
            "Overdue since 2026-03-30: We owe Ana; O'Neil, Jr.: Pay the March stipend",
            date(2026, 3, 31),
        ),
        ("Bee Collective owes us: Send the listening-session notes", date(2026, 4, 10)),
    ]
    for event in events:
        assert type(event.decoded("dtstart")) is date  # all day, not a moment
        assert (event.decoded("dtend") - event.decoded("dtstart")).days == 1


def test_ics_stamps_every_event_with_the_agendas_as_of() -> None:
    calendar = parsed(an_agenda())
    assert str(calendar["version"]) == "2.0"
    assert str(calendar["prodid"]).startswith("-//Partnership Ledger//")
    for event in calendar.walk("VEVENT"):
        assert event.decoded("dtstamp") == datetime(2026, 3, 31, 15, 0, tzinfo=UTC)


def test_ics_says_how_many_days_an_item_is_overdue() -> None:
    descriptions = [str(e["description"]) for e in parsed(an_agenda()).walk("VEVENT")]
    assert "Overdue by 11 days." in descriptions[0]
    assert "Due in 2 days." in descriptions[1]
    assert "Overdue by 1 day." in descriptions[2]
    assert "C-2026-001" in descriptions[2]
    assert "Due in 10 days." in descriptions[3]


def test_ics_uids_are_unique_and_stable_for_the_same_item() -> None:
    uids = [str(e["uid"]) for e in parsed(an_agenda()).walk("VEVENT")]
    assert len(set(uids)) == len(uids)
    assert all(uid.endswith("@pledger") for uid in uids)
    later = an_agenda()
    later["as_of"] = "2026-04-01T09:00:00.000000Z"
    later["checkins"] = later["checkins"][1:]
    later_uids = [str(e["uid"]) for e in parsed(later).walk("VEVENT")]
    assert later_uids == uids[1:]


def test_an_overdue_item_moves_to_the_next_day_as_the_same_event() -> None:
    today, tomorrow = an_agenda(), an_agenda()
    tomorrow["as_of"] = "2026-04-01T15:00:00.000000Z"
    for item in (*tomorrow["checkins"], *tomorrow["commitments"]):
        item["overdue_days"] += 1
    first = parsed(today).walk("VEVENT")[0]
    moved = parsed(tomorrow).walk("VEVENT")[0]
    assert str(moved["uid"]) == str(first["uid"])
    assert (first.decoded("dtstart"), moved.decoded("dtstart")) == (
        date(2026, 3, 31),
        date(2026, 4, 1),
    )


def test_the_same_agenda_gives_the_same_bytes() -> None:
    assert agenda_ics(an_agenda()) == agenda_ics(an_agenda())
    assert agenda_ics(an_agenda()).endswith(b"END:VCALENDAR\r\n")


def test_an_empty_agenda_is_a_valid_empty_calendar() -> None:
    calendar = parsed({**an_agenda(), "checkins": [], "commitments": []})
    assert calendar.walk("VEVENT") == []


# ---- control characters recorded before the door refused them (issue 10, item 5) -------------

# NUL, BEL, an ESC sequence that clears a terminal, DEL, and C1 NEL and CSI.
CONTROLLED = "A\x00B\x07C\x1b[2JD\x7fE\x85F\x9b0m"
RAW_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def controlled_report() -> dict[str, Any]:
    report = a_report()
    report["coalition"]["name"] = CONTROLLED
    for member in report["members"]:
        member["name"] = CONTROLLED
    return report


def controlled_agenda() -> dict[str, Any]:
    agenda = an_agenda()
    for item in [*agenda["checkins"], *agenda["commitments"]]:
        item["name"] = CONTROLLED
    for item in agenda["commitments"]:
        item["description"] = f"First line\r\nsecond\tline {CONTROLLED}"
    return agenda


@pytest.mark.parametrize(
    "render", [report_csv, report_markdown, report_html], ids=["csv", "md", "html"]
)
def test_a_report_shows_control_characters_visibly(render: Callable[[Any], bytes]) -> None:
    text = render(controlled_report()).decode("utf-8")

    assert not RAW_CONTROLS.search(text)
    assert "A\u2400B\u2407C\u241b" in text  # Markdown then escapes the "[" that follows
    assert "2JD\u2421E\ufffdF\ufffd0m" in text


def test_an_ics_has_no_control_byte_but_cr_lf_and_htab() -> None:
    ics = agenda_ics(controlled_agenda())

    assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", ics.replace(b"\r\n", b""))
    assert not RAW_CONTROLS.search(ics.decode("utf-8"))
    events = list(parsed(controlled_agenda()).walk("VEVENT"))
    assert all("A\u2400B\u2407C\u241b[2J" in str(e["SUMMARY"]) for e in events)
    descriptions = [str(e["DESCRIPTION"]) for e in events if "Commitment" in str(e["DESCRIPTION"])]
    assert descriptions
    assert all("First line\nsecond\tline A\u2400B" in d for d in descriptions)


# ---- charts stay cheap at any membership (issue 10, item 11) ----------------------------------


def many_members(count: int) -> dict[str, Any]:
    report = a_report()
    template = report["members"][0]
    report["members"] = [
        {
            **template,
            "partner_id": f"{index:08d}-0000-4000-8000-000000000000",
            "name": f"Member {index:04d}",
            "health": {"score": (index * 37) % 101, "band": "steady"},
        }
        for index in range(count)
    ]
    return report


def svgs(page: str) -> list[str]:
    """The charts' drawings, without their captions (aria-label)."""
    found = re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)
    return [re.sub(r'aria-label="[^"]*"', "", svg) for svg in found]


def test_html_charts_draw_at_most_thirty_members_those_with_the_lowest_health() -> None:
    report = many_members(2500)
    lowest = sorted(report["members"], key=lambda m: (m["health"]["score"], m["name"]))[:30]

    page = report_html(report).decode("utf-8")
    same_thirty = report_html({**report, "members": lowest}).decode("utf-8")

    assert "the 30 of 2500 members with the lowest health" in page
    assert svgs(page) == svgs(same_thirty)  # the charts cost what thirty members cost
    assert page.count("<tr>") > 2500  # the tables still list every member


# ---- reports people read (issue 13, item 3) ---------------------------------------------------

LONG_NAME = (
    "Consejo Comunitario de Desarrollo Integral de las Comunidades Indígenas del Valle Alto "
    "y la Cuenca Media del Río Grande"
)


def promise(
    owed_by: str, description: str, due_on: str, status: str, days_late: int | None
) -> dict[str, Any]:
    return {
        "owed_by": owed_by,
        "description": description,
        "due_on": due_on,
        "status": status,
        "days_late": days_late,
    }


def readable_report() -> dict[str, Any]:
    """The report as ``LedgerQueries.report(for_people=True)`` gives it: the coalition's vision
    and measures, each member's promises (overdue first), and a long name to wrap."""
    report = a_report()
    report["coalition"]["shared_vision"] = "Every family on the river has clean water by 2030."
    report["coalition"]["agreed_measures"] = ["Wells repaired", "Households reached"]
    report["totals"]["payments"]["USD"] = "12750.50"
    first, second, third = report["members"]
    first["payments"]["USD"] = "12750.50"
    first["promises"] = [
        promise("us", "Pay the March stipend", "2026-03-20", "overdue", 11),
        promise("partner", "Send the well survey", "2026-02-01", "fulfilled_late", 3),
        promise("us", "Share the budget", "2026-04-15", "open", None),
    ]
    second["promises"] = [
        promise("partner", "Host the listening session", "2026-01-10", "cancelled", None)
    ]
    third["name"] = LONG_NAME
    third["promises"] = []
    return report


def people_formats() -> list[Callable[..., bytes]]:
    return [report_markdown, report_html]


@pytest.fixture(scope="module")
def readable_html() -> str:
    return report_html(readable_report()).decode("utf-8")


@pytest.mark.parametrize("render", people_formats(), ids=["md", "html"])
def test_money_is_shown_for_people_in_the_ledgers_locale(render: Callable[..., bytes]) -> None:
    english = render(readable_report()).decode("utf-8")
    german = render(readable_report(), locale="de_DE").decode("utf-8")

    assert "$12,750.50" in english.replace("\\$", "$")
    assert re.search(r"12\.750,50\s\$", german.replace("\\$", "$"))
    assert "12750.50" not in english


def test_json_and_csv_keep_exact_decimal_strings() -> None:
    report = readable_report()

    assert orjson.loads(report_json(report))["totals"]["payments"]["USD"] == "12750.50"
    assert csv_rows(report)[0]["payments_USD"] == "12750.50"


@pytest.mark.parametrize("render", people_formats(), ids=["md", "html"])
def test_no_partner_ids_and_no_microseconds_outside_the_facts(render: Callable[..., bytes]) -> None:
    text = render(readable_report()).decode("utf-8")
    facts, rest = text.split("Generated by", 1)

    for member in a_report()["members"]:
        assert member["partner_id"] not in text
    assert "2026-03-31T23:59:59.999999Z" in facts  # the exact reference stays with the facts
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", rest)
    assert not re.search(r"\b\d{4}-\d\d-\d\d\b", rest)  # days are written for people
    assert "Mar 31, 2026" in facts


@pytest.mark.parametrize("render", people_formats(), ids=["md", "html"])
def test_days_are_taken_in_the_ledgers_time_zone(render: Callable[..., bytes]) -> None:
    # 23:59:59 UTC on 31 March is already 1 April in Auckland; due dates stay the days they are.
    text = render(readable_report(), zone=ZoneInfo("Pacific/Auckland")).decode("utf-8")

    assert "Reference date:** Apr 1, 2026" in text or "<dd>Apr 1, 2026</dd>" in text
    assert "Mar 20, 2026" in text


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_a_report_is_shown_in_the_time_zone_it_states(fmt: str) -> None:
    """The days a report shows people follow the zone it counted in (its ``time_zone``), so
    a report made again with ``--like`` in a ledger now kept in another zone reads the same."""
    stated = {**readable_report(), "time_zone": "Pacific/Auckland"}

    text = render_report(fmt, stated, locale="en_US").decode("utf-8")

    assert "Reference date:** Apr 1, 2026" in text or "<dd>Apr 1, 2026</dd>" in text
    assert "Pacific/Auckland" in text
    utc = render_report(fmt, readable_report(), locale="en_US").decode("utf-8")
    assert "Reference date:** Mar 31, 2026" in utc or "<dd>Mar 31, 2026</dd>" in utc


@pytest.mark.parametrize("render", people_formats(), ids=["md", "html"])
def test_the_shared_vision_and_measures_come_before_the_members(
    render: Callable[..., bytes],
) -> None:
    text = render(readable_report()).decode("utf-8")

    vision = text.index("Every family on the river has clean water by 2030.")
    assert vision < text.index("Wells repaired") < text.index("Households reached")
    assert text.index("Households reached") < text.index("Members")


def test_markdown_lists_each_members_promises_overdue_first() -> None:
    text = report_markdown(readable_report()).decode("utf-8")
    section = text.split("\n## Promises\n", 1)[1].split("\n## Totals\n", 1)[0]

    assert "| Owed by | Promise | Due | Status | Days late |" in section
    first = section.split("### ", 2)[1]
    assert first.index("Pay the March stipend") < first.index("Send the well survey")
    assert "| us | Pay the March stipend | Mar 20, 2026 | overdue | 11 |" in first
    assert "| partner | Send the well survey | Feb 1, 2026 | fulfilled late | 3 |" in first
    assert "| us | Share the budget | Apr 15, 2026 | open | — |" in first
    assert "| partner | Host the listening session | Jan 10, 2026 | cancelled | — |" in section
    assert "No promises made in the period." in section.split(LONG_NAME.split()[0], 1)[1]


def test_html_lists_each_members_promises(readable_html: str) -> None:
    section = readable_html.split("<h2>Promises</h2>", 1)[1].split("<h2>Totals</h2>", 1)[0]
    cells = [
        ("word", "us"),
        ("wrap", "Pay the March stipend"),
        ("word", "Mar 20, 2026"),
        ("word", "overdue"),
        ("num", "11"),
    ]
    row = "".join(f'<td class="{kind}">{text}</td>' for kind, text in cells)

    assert f"<tr>{row}</tr>" in section
    assert section.count("<h3>") == 3


def test_the_promises_section_is_bounded_and_says_so() -> None:
    report = many_members(2500)
    for member in report["members"]:
        member["promises"] = [
            promise("us", f"Task {n}", "2026-03-01", "overdue", 30) for n in range(30)
        ]

    text = report_markdown(report).decode("utf-8")
    section = text.split("\n## Promises\n", 1)[1].split("\n## Totals\n", 1)[0]

    assert section.count("| us | Task ") == PROMISES_IN_ALL
    assert section.count("### ") == PROMISES_IN_ALL // PROMISES_PER_MEMBER
    assert f"5 more not listed here (at most {PROMISES_PER_MEMBER} a member" in section
    assert "The promises of 2420 more members are not listed" in section


def test_a_long_name_wraps_in_the_charts_and_is_listed_there_in_full(readable_html: str) -> None:
    figures = re.findall(r"<figure>.*?</figure>", readable_html, flags=re.DOTALL)

    assert len(figures) == 2
    for figure in figures:
        full_names = re.search(r'<ul class="full-names".*?</ul>', figure, flags=re.DOTALL)
        assert full_names is not None
        assert html_lib.escape(LONG_NAME) in full_names.group(0)
    # Table cells wrap a long name rather than widen the page.
    assert "td.wrap { overflow-wrap: anywhere; }" in readable_html
    assert f'<td class="wrap">{html_lib.escape(LONG_NAME)}</td>' in readable_html
    assert html_lib.escape(LONG_NAME) in readable_html.split("<h2>Members</h2>", 1)[1]


def test_a_chart_label_never_cuts_a_name_that_fits_two_lines() -> None:
    assert _chart_label("Bee Collective") == ("Bee Collective", False)
    label, shortened = _chart_label("Asociación Vecinal de San Miguel del Monte")
    assert (label, shortened) == ("Asociación Vecinal de San\nMiguel del Monte", False)
    label, shortened = _chart_label(LONG_NAME)
    assert shortened
    assert label.endswith("…")
    assert label.count("\n") == 1


@pytest.mark.parametrize("render", people_formats(), ids=["md", "html"])
def test_a_readable_report_renders_to_the_same_bytes(render: Callable[..., bytes]) -> None:
    assert render(readable_report()) == render(readable_report())
