"""The coalition report and the agenda as files: JSON, CSV, Markdown, HTML and iCalendar.

Pure functions from the plain dicts ``LedgerQueries.report()`` and ``LedgerQueries.agenda()``
return to bytes. The same dict always gives the same bytes (no clock, no randomness, no
environment), so a report re-run at the same (``as_of``, ``position``) can be compared to the
byte with one handed out earlier. All four report formats carry the same numbers.

CSV layout (``report_csv``), one table a spreadsheet can sort, filter and sum without cleanup:

- one header row, then one row per member, then one ``TOTAL`` row (``name`` = ``TOTAL``,
  ``partner_id`` and the health columns empty), and nothing else;
- the report's facts lead every row: ``coalition``, ``coalition_id``, ``period_from``,
  ``period_to`` (empty = open-ended), ``as_of``, ``time_zone`` (the zone its days are counted
  in), ``position``, ``digest``, ``generated_by``.
  Repeating them costs a few bytes and keeps every row self-describing when rows of several
  reports are pasted into one sheet (a second section below the table would break sorting
  and filtering);
- then ``partner_id``, ``name``, ``health_score``, ``health_band``; the fulfilment figures of
  each side as ``us_<figure>`` and ``partner_<figure>`` (made, open, overdue,
  fulfilled_on_time, fulfilled_late, fulfilled, cancelled, renegotiated_after_due,
  fulfilment_rate, on_time_rate); ``payments_<CURRENCY>`` for every currency paid to any
  member, in alphabetical order (``0`` where a member was paid none of it); ``thanks``,
  ``breaches_open``, ``breaches_repaired``;
- rates are fractions (``0.6667``; format the column as a percentage), empty when nothing was
  due yet; money is the exact decimal string of the JSON report;
- UTF-8 without a byte-order mark, CRLF line ends (RFC 4180). A name that starts with
  ``= + - @`` or a tab is written with a leading ``'`` so that a spreadsheet shows it as text
  instead of running it as a formula (OWASP "CSV injection").

Markdown and HTML show the same figures for people: rates as percentages with two decimals
(exactly the four-place fraction times 100), ``—`` when nothing was due; money with its
currency sign and grouping in a CLDR locale through Babel (``$12,750.50`` under en_US, never
rounded); days, not instants, in the ledger's time zone (one function, ``date_for_people``),
the exact ``as_of`` kept in the facts; no partner ids. They also carry what the query gives
only for them (``LedgerQueries.report(for_people=True)``): the coalition's shared vision and
agreed measures at the top, and a Promises section per member (overdue first), bounded by
PROMISES_PER_MEMBER and PROMISES_IN_ALL with a note naming what was left out. The HTML page is
standalone (inline CSS and SVG, no scripts, nothing fetched) and prints cleanly; its charts are
drawn by matplotlib's SVG backend, made byte-for-byte reproducible by a fixed hash salt, no
date or creator metadata, the font file that ships with matplotlib, and ids made unique per
chart so that two charts can share one page. A chart shows a name on up to two lines and
lists under itself, in full, any name it had to shorten; table cells wrap names anywhere, so
that printed on Letter or A4 nothing is cut at the page's edge (tests/ui/test_printed_report.py).
"""

from __future__ import annotations

import csv
import functools
import html
import io
import re
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import icalendar
import orjson
from babel.dates import format_date
from babel.numbers import format_currency

from domain.values import show_controls
from projections.cancellation import cancellation_point

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.typing import RcKeyType

__all__ = [
    "DEFAULT_LOCALE",
    "LEDGER_ZONE",
    "agenda_ics",
    "date_for_people",
    "money_for_people",
    "promise_sections",
    "report_csv",
    "report_html",
    "report_json",
    "report_markdown",
]

DEFAULT_LOCALE = "en_US"
LEDGER_ZONE: tzinfo = UTC  # the default zone (PLEDGER_TIMEZONE); a report states its own

FIGURES: tuple[tuple[str, str], ...] = (
    ("made", "Made"),
    ("open", "Open"),
    ("overdue", "Overdue"),
    ("fulfilled_on_time", "On time"),
    ("fulfilled_late", "Late"),
    ("fulfilled", "Fulfilled"),
    ("cancelled", "Cancelled"),
    ("renegotiated_after_due", "Renegotiated after due"),
    ("fulfilment_rate", "Fulfilment rate"),
    ("on_time_rate", "On-time rate"),
)
RATES = frozenset({"fulfilment_rate", "on_time_rate"})
SIDES = ("us", "partner")

# Okabe-Ito colours: told apart by readers with colour-blindness, and labelled in text anyway.
STATUS_COLOURS: tuple[tuple[str, str, str], ...] = (
    ("fulfilled_on_time", "fulfilled on time", "#009E73"),
    ("fulfilled_late", "fulfilled late", "#E69F00"),
    ("open", "open", "#56B4E9"),
    ("overdue", "overdue", "#D55E00"),
    ("cancelled", "cancelled", "#999999"),
)
BAND_COLOURS: dict[str, str] = {
    "thriving": "#009E73",
    "steady": "#56B4E9",
    "at_risk": "#E69F00",
    "critical": "#D55E00",
}
CALENDAR_PRODID = "-//Partnership Ledger//pledger agenda//EN"
UID_DOMAIN = "pledger"
CHART_MEMBERS = 30  # members a chart draws at most (see _charted_members)
# A chart label is a name on at most two lines of this many characters; a longer name is
# shortened there and written in full in the list under the chart (and in every table).
_CHART_LABEL_WIDTH = 26
# The Promises section lists at most this many promises a member (overdue first) and this many
# in all, so that a 2,500-member report stays bounded (issue 10 item 11); a note says so.
PROMISES_PER_MEMBER = 25
PROMISES_IN_ALL = 2000
# Columns of the Markdown and HTML tables that hold words; the others hold numbers.
_TEXT_COLUMNS = frozenset({"Partner", "Band", "Owed by", "Members", "Promise", "Status", "Due"})
_WRAPPING_COLUMNS = frozenset({"Partner", "Members", "Promise"})


# ---- JSON -----------------------------------------------------------------------------------


def report_json(report: dict[str, Any]) -> bytes:
    """The report as indented JSON, keys in the order the query gives them, one final newline."""
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


# ---- shared formatting ----------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # a report repeats amounts (zeros above all) member after member
def money_for_people(amount: str, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """An exact decimal amount for people: currency sign and grouping of a CLDR ``locale``
    through Babel (``"12750.50", "USD"`` -> ``$12,750.50`` under en_US). Never rounds: an
    amount with more places than the currency shows keeps them."""
    return str(
        format_currency(Decimal(amount), currency, locale=locale, decimal_quantization=False)
    )


def date_for_people(
    value: date | datetime | str, zone: tzinfo = LEDGER_ZONE, locale: str = DEFAULT_LOCALE
) -> str:
    """A day for people in ``locale``'s medium form (``Mar 31, 2026`` under en_US). An
    instant (a ``datetime``, or an RFC 3339 string with a time) is first taken to its day in
    ``zone``, the ledger's time zone; a date (``YYYY-MM-DD``) is that day wherever one is."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(zone).date()
    return str(format_date(value, format="medium", locale=locale))


class _People:
    """How the md and html reports show money and days: one locale, one time zone."""

    def __init__(self, locale: str, zone: tzinfo) -> None:
        self.locale, self.zone = locale, zone

    def money(self, amount: str, currency: str) -> str:
        return money_for_people(amount, currency, self.locale)

    def day(self, value: date | datetime | str) -> str:
        return date_for_people(value, self.zone, self.locale)


def _each_member(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The members, passing a cancellation point before each (a heavy request stops once its client
    has gone; projections.cancellation)."""
    for member in report["members"]:
        cancellation_point()
        yield member


def _currencies(report: dict[str, Any]) -> list[str]:
    found = set(report["totals"]["payments"])
    for member in report["members"]:
        found.update(member["payments"])
    return sorted(found)


def _rate_fraction(rate: float | None) -> str:
    return "" if rate is None else repr(rate)


def _rate_percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    # The rate has four decimal places; times 100 it has two, exactly: no float arithmetic.
    return f"{(Decimal(repr(rate)) * 100).quantize(Decimal('0.01'))}%"


def _figure_cell(figures: dict[str, Any], key: str, *, rate: Callable[[float | None], str]) -> str:
    value = figures[key]
    return rate(value) if key in RATES else str(value)


def _period_text(period: dict[str, Any], people: _People) -> str:
    start, end = period.get("from"), period.get("to")
    if start is None and end is None:
        return "all commitments (no period)"
    first = people.day(start) if start else "the beginning"
    return f"{first} to {people.day(end) if end else 'the reference date'}"


def _facts(report: dict[str, Any], people: _People) -> list[tuple[str, str]]:
    """What the report is of: for people first, then the exact reference that reproduces it
    (``as_of`` to the microsecond, the log position, the digest), as in json and csv."""
    coalition = report["coalition"]
    return [
        ("Coalition", coalition["name"]),
        ("Period", _period_text(report["period"], people)),
        ("Reference date", people.day(report["as_of"])),
        ("Coalition ID", coalition["id"]),
        ("As of (exact)", str(report["as_of"])),
        # The zone its calendar days were counted in (SPEC §3); reports made before it was
        # stated counted UTC days.
        ("Time zone", str(report.get("time_zone", "UTC"))),
        ("Log position", str(report["position"])),
        ("Ledger digest", str(report["digest"])),
        ("Generated by", str(report["generated_by"])),
    ]


_CODE_FACTS = frozenset({"Coalition ID", "As of (exact)", "Ledger digest"})


def _vision(report: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The coalition's shared vision and agreed measures, when the report carries them."""
    coalition = report["coalition"]
    if "shared_vision" not in coalition:
        return None
    return coalition["shared_vision"], list(coalition.get("agreed_measures") or [])


def _title(report: dict[str, Any]) -> str:
    return f"Accountability report: {report['coalition']['name']}"


def _members_table(report: dict[str, Any], people: _People) -> tuple[list[str], list[list[str]]]:
    currencies = _currencies(report)
    headers = [
        "Partner",
        "Health",
        "Band",
        *(f"Paid {c}" for c in currencies),
        "Thanks",
        "Breaches open",
        "Breaches repaired",
    ]
    rows = [
        [
            m["name"],
            str(m["health"]["score"]),
            m["health"]["band"],
            *(people.money(m["payments"].get(c, "0"), c) for c in currencies),
            str(m["thanks"]),
            str(m["breaches"]["open"]),
            str(m["breaches"]["repaired"]),
        ]
        for m in _each_member(report)
    ]
    return headers, rows


def _commitment_headers(first: str) -> list[str]:
    return [first, "Owed by", *(label for _, label in FIGURES)]


def _commitment_row(label: str, side: str, figures: dict[str, Any]) -> list[str]:
    return [label, side, *(_figure_cell(figures, key, rate=_rate_percent) for key, _ in FIGURES)]


def _commitments_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [
        _commitment_row(m["name"], side, m[side]) for m in _each_member(report) for side in SIDES
    ]
    return _commitment_headers("Partner"), rows


def _totals_tables(
    report: dict[str, Any], people: _People
) -> tuple[tuple[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    totals = report["totals"]
    commitments = [_commitment_row("All members", side, totals[side]) for side in SIDES]
    currencies = _currencies(report)
    other_headers = [
        *(f"Paid {c}" for c in currencies),
        "Thanks",
        "Breaches open",
        "Breaches repaired",
    ]
    other = [
        [
            *(people.money(totals["payments"].get(c, "0"), c) for c in currencies),
            str(totals["thanks"]),
            str(totals["breaches"]["open"]),
            str(totals["breaches"]["repaired"]),
        ]
    ]
    return (_commitment_headers("Members"), commitments), (other_headers, other)


_STATUS_TEXT = {
    "overdue": "overdue",
    "open": "open",
    "fulfilled_on_time": "fulfilled on time",
    "fulfilled_late": "fulfilled late",
    "cancelled": "cancelled",
}
_PROMISE_HEADERS = ["Owed by", "Promise", "Due", "Status", "Days late"]


class _MemberPromises:
    """One member's part of the Promises section: its rows, and how many were left out."""

    def __init__(self, name: str, rows: list[list[str]], left_out: int) -> None:
        self.name, self.rows, self.left_out = name, rows, left_out

    @property
    def note(self) -> str:
        if not self.rows:
            return "No promises made in the period."
        if not self.left_out:
            return ""
        return (
            f"{self.left_out} more not listed here (at most {PROMISES_PER_MEMBER} a member, "
            "overdue first); the partner's page lists them all."
        )


def _promises(report: dict[str, Any], people: _People) -> tuple[list[_MemberPromises], str]:
    """The Promises section: each member's commitments in the period (as the query ordered
    them: overdue first), within PROMISES_PER_MEMBER a member and PROMISES_IN_ALL in all (a
    member without any counts as one); and the note naming what the bound left out."""
    sections: list[_MemberPromises] = []
    budget = PROMISES_IN_ALL
    members = [m for m in report["members"] if "promises" in m]
    for member in members:
        cancellation_point()
        if budget <= 0:
            break
        promises = member["promises"]
        shown = promises[: min(PROMISES_PER_MEMBER, budget)]
        rows = [
            [
                p["owed_by"],
                p["description"],
                people.day(p["due_on"]),
                _STATUS_TEXT.get(p["status"], p["status"]),
                "—" if p["days_late"] is None else str(p["days_late"]),
            ]
            for p in shown
        ]
        sections.append(_MemberPromises(member["name"], rows, len(promises) - len(shown)))
        budget -= max(1, len(shown))
    unlisted = len(members) - len(sections)
    note = (
        f"The promises of {unlisted} more members are not listed: this section lists at most "
        f"{PROMISES_IN_ALL:,} promises in all, members in the order of the tables."
        if unlisted
        else ""
    )
    return sections, note


def promise_sections(
    report: dict[str, Any], locale: str, zone: tzinfo
) -> tuple[list[_MemberPromises], str]:
    """The Promises section as the md and html reports list it, for a page to show: each
    member's ``name``, its ``rows`` (``[owed by, promise, due, status, days late]`` as text,
    days in ``zone``) and a ``note`` on what was left out, then a note on members left out.
    ``report``: a report made ``for_people`` (its members carry ``promises``)."""
    return _promises(report, _People(locale, zone))


# ---- CSV ------------------------------------------------------------------------------------


def _spreadsheet_text(value: str) -> str:
    value = show_controls(value)  # recorded before the door refused them: shown, never raw
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def report_csv(report: dict[str, Any]) -> bytes:
    """The report as one CSV table: a row per member and a TOTAL row (layout in the docstring)."""
    currencies = _currencies(report)
    header = [
        "coalition",
        "coalition_id",
        "period_from",
        "period_to",
        "as_of",
        "time_zone",
        "position",
        "digest",
        "generated_by",
        "partner_id",
        "name",
        "health_score",
        "health_band",
        *(f"{side}_{key}" for side in SIDES for key, _ in FIGURES),
        *(f"payments_{c}" for c in currencies),
        "thanks",
        "breaches_open",
        "breaches_repaired",
    ]
    facts = [
        _spreadsheet_text(report["coalition"]["name"]),
        report["coalition"]["id"],
        report["period"].get("from") or "",
        report["period"].get("to") or "",
        report["as_of"],
        str(report.get("time_zone", "UTC")),
        str(report["position"]),
        report["digest"],
        report["generated_by"],
    ]

    def figures_and_more(row: dict[str, Any]) -> list[str]:
        return [
            *(
                _figure_cell(row[side], key, rate=_rate_fraction)
                for side in SIDES
                for key, _ in FIGURES
            ),
            *(row["payments"].get(c, "0") for c in currencies),
            str(row["thanks"]),
            str(row["breaches"]["open"]),
            str(row["breaches"]["repaired"]),
        ]

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for member in _each_member(report):
        writer.writerow(
            [
                *facts,
                member["partner_id"],
                _spreadsheet_text(member["name"]),
                str(member["health"]["score"]),
                member["health"]["band"],
                *figures_and_more(member),
            ]
        )
    writer.writerow([*facts, "", "TOTAL", "", "", *figures_and_more(report["totals"])])
    return out.getvalue().encode("utf-8")


# ---- Markdown -------------------------------------------------------------------------------

# Characters that CommonMark/GFM would read as markup (emphasis, links, raw HTML, table cells,
# entities, strikethrough, math); a backslash before ASCII punctuation always means "literal".
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~$#])")


def _md(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(show_controls(text).split()))


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    align = ["---" if h in _TEXT_COLUMNS else "---:" for h in headers]
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    # A band is written for people, as the html page shows it: "at risk", no escaped "_".
    band = headers.index("Band") if "Band" in headers else -1
    lines.extend(
        "| "
        + " | ".join(
            _md(cell.replace("_", " ") if i == band else cell) for i, cell in enumerate(row)
        )
        + " |"
        for row in rows
    )
    return lines


def report_markdown(
    report: dict[str, Any], *, locale: str = DEFAULT_LOCALE, zone: tzinfo = LEDGER_ZONE
) -> bytes:
    """The report as Markdown: title, facts, vision and measures, members, commitments by
    member, promises, totals. Money in ``locale`` (Babel), days in ``zone``."""
    people = _People(locale, zone)
    lines = [f"# {_md(_title(report))}", ""]
    lines.extend(f"- **{label}:** {_md(value)}" for label, value in _facts(report, people))
    lines.append("")
    vision = _vision(report)
    if vision is not None:
        text, measures = vision
        lines.extend(["## Shared vision", "", _md(text) or "None recorded.", ""])
        lines.extend(["## Agreed measures", ""])
        lines.extend([f"- {_md(m)}" for m in measures] or ["None recorded."])
        lines.append("")
    lines.extend(["## Members", ""])
    if report["members"]:
        lines.extend(_md_table(*_members_table(report, people)))
        lines.extend(["", "## Commitments by member", ""])
        lines.extend(_md_table(*_commitments_table(report)))
        sections, note = _promises(report, people)
        if sections:
            lines.extend(["", "## Promises", ""])
        for section in sections:
            lines.extend([f"### {_md(section.name)}", ""])
            if section.rows:
                lines.extend([*_md_table(_PROMISE_HEADERS, section.rows), ""])
            if section.note:
                lines.extend([_md(section.note), ""])
        if note:
            lines.extend([_md(note), ""])
        if sections:
            lines.pop()
    else:
        lines.append("No members at this reference.")
    commitments, other = _totals_tables(report, people)
    lines.extend(["", "## Totals", ""])
    lines.extend(_md_table(*commitments))
    lines.append("")
    lines.extend(_md_table(*other))
    lines.extend(["", _md(_RATES_NOTE), ""])
    return "\n".join(lines).encode("utf-8")


_RATES_NOTE = (
    "Fulfilment rate = fulfilled / (fulfilled + overdue); on-time rate = fulfilled on time / "
    "(fulfilled + overdue); — when no commitment was due yet."
)


# ---- HTML -----------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: #1a1a1a; background: #fff; line-height: 1.4; max-width: 75rem;
  margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ccc; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .85em; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
td.wrap { overflow-wrap: anywhere; }
td.word, td.num { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
h3 { font-size: 1rem; margin: 1.2rem 0 .3rem; overflow-wrap: anywhere; }
.vision { white-space: pre-line; overflow-wrap: anywhere; }
.band { display: inline-block; padding: 0 .4rem; border-radius: .6rem; color: #000; }
.band-thriving { background: #b9e6d6; }
.band-steady { background: #cde8f7; }
.band-at_risk { background: #f8dfae; }
.band-critical { background: #f2c2a3; }
figure { margin: 1rem 0; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: .9rem; color: #444; margin-bottom: .25rem; }
p.note, footer { font-size: .8rem; color: #555; }
ul.full-names { font-size: .8rem; color: #444; margin: .25rem 0 0; padding-left: 1.2rem; }
@page { margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 9.5pt; }
  table { font-size: 7.5pt; }
  th, td { padding: .15rem .25rem; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  figure, tr { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  th, .band { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
""".strip()


def _h(text: str) -> str:
    # HTML forbids control characters in text (WHATWG "text" content): shown visibly instead.
    return html.escape(show_controls(text), quote=True)


def _html_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str | None = None
) -> list[str]:
    numeric = [h not in _TEXT_COLUMNS for h in headers]

    def cell(tag: str, text: str, is_num: bool, header: str) -> str:
        # Names and promises wrap anywhere (a long word too) so that a table never outgrows
        # the page; short words (band, side, status, day) and numbers stay on one line.
        kind = "num" if is_num else "wrap" if header in _WRAPPING_COLUMNS else "word"
        classes = f' class="{kind}"' if tag == "td" or is_num else ""
        if tag == "td" and header == "Band":
            text_html = f'<span class="band band-{_h(text)}">{_h(text.replace("_", " "))}</span>'
        else:
            text_html = _h(text)
        scope = ' scope="col"' if tag == "th" else ""
        return f"<{tag}{scope}{classes}>{text_html}</{tag}>"

    lines = ["<table>"]
    if caption:
        lines.append(f"<caption>{_h(caption)}</caption>")
    head = "".join(cell("th", h, n, h) for h, n in zip(headers, numeric, strict=True))
    lines.extend(["<thead>", f"<tr>{head}</tr>", "</thead>", "<tbody>"])
    for row in rows:
        body = "".join(cell("td", c, n, h) for c, n, h in zip(row, numeric, headers, strict=True))
        lines.append(f"<tr>{body}</tr>")
    lines.extend(["</tbody>", "</table>"])
    return lines


def report_html(
    report: dict[str, Any], *, locale: str = DEFAULT_LOCALE, zone: tzinfo = LEDGER_ZONE
) -> bytes:
    """The report as one standalone, printable HTML page with inline SVG charts: facts, vision
    and measures, charts, members, commitments by member, promises, totals. Money in
    ``locale`` (Babel), days in ``zone``; tables wrap long names and fit a Letter or A4 page."""
    people = _People(locale, zone)
    title = _title(report)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="{_h(report["generated_by"])}">',
        f"<title>{_h(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_h(title)}</h1>",
        '<dl class="facts">',
    ]
    for label, value in _facts(report, people):
        shown = f"<code>{_h(value)}</code>" if label in _CODE_FACTS else _h(value)
        lines.append(f"<dt>{_h(label)}</dt><dd>{shown}</dd>")
    lines.extend(["</dl>", "</header>", "<main>"])
    vision = _vision(report)
    if vision is not None:
        text, measures = vision
        lines.extend(["<section>", "<h2>Shared vision</h2>"])
        lines.append(f'<p class="vision">{_h(text) or "None recorded."}</p>')
        lines.append("<h2>Agreed measures</h2>")
        if measures:
            lines.extend(["<ul>", *(f"<li>{_h(m)}</li>" for m in measures), "</ul>"])
        else:
            lines.append("<p>None recorded.</p>")
        lines.append("</section>")
    if report["members"]:
        lines.extend(["<section>", "<h2>Charts</h2>"])
        for chart in _charts(report):
            labelled = chart.svg.replace(
                "<svg ", f'<svg role="img" aria-label="{_h(chart.caption)}" ', 1
            )
            lines.extend(["<figure>", f"<figcaption>{_h(chart.caption)}</figcaption>", labelled])
            if chart.shortened:
                lines.append('<ul class="full-names" aria-label="Names shortened in the chart">')
                lines.extend(f"<li>{_h(short)}: {_h(full)}</li>" for short, full in chart.shortened)
                lines.append("</ul>")
            lines.append("</figure>")
        lines.extend(["</section>", "<section>", "<h2>Members</h2>"])
        lines.extend(_html_table(*_members_table(report, people)))
        lines.extend(["</section>", "<section>", "<h2>Commitments by member</h2>"])
        lines.extend(_html_table(*_commitments_table(report)))
        lines.append("</section>")
        sections, note = _promises(report, people)
        if sections:
            lines.extend(["<section>", "<h2>Promises</h2>"])
            for section in sections:
                lines.append(f"<h3>{_h(section.name)}</h3>")
                if section.rows:
                    lines.extend(_html_table(_PROMISE_HEADERS, section.rows))
                if section.note:
                    lines.append(f'<p class="note">{_h(section.note)}</p>')
            if note:
                lines.append(f'<p class="note">{_h(note)}</p>')
            lines.append("</section>")
    else:
        lines.extend(["<section>", "<h2>Members</h2>", "<p>No members at this reference.</p>"])
        lines.append("</section>")
    commitments, other = _totals_tables(report, people)
    lines.extend(["<section>", "<h2>Totals</h2>"])
    lines.extend(_html_table(*commitments))
    lines.extend(_html_table(*other))
    lines.extend([f'<p class="note">{_h(_RATES_NOTE)}</p>', "</section>", "</main>"])
    lines.extend(
        [
            "<footer>",
            f"<p>{_h(report['generated_by'])} &middot; reference date "
            f"{_h(people.day(report['as_of']))} &middot; "
            f"log position {_h(str(report['position']))} &middot; digest "
            f"<code>{_h(report['digest'])}</code></p>",
            "</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )
    return "\n".join(lines).encode("utf-8")


# ---- charts ---------------------------------------------------------------------------------

# matplotlib's rcParams are process-wide, and rc_context restores them on exit: two renders in
# two threads (the API serves sync routes from a pool) must not interleave, or one could render
# with the other's settings restored (random ids). Charts are small; a lock costs nothing here.
_CHART_LOCK = threading.Lock()
_CHART_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "pledger",  # clip-path and marker ids from a fixed salt, not a random one
    "svg.fonttype": "path",  # glyphs as paths: the page looks the same without any font
    "font.size": 9.0,
}
# Creator carries matplotlib's version and a URL; Date the clock: neither belongs in a report.
_SVG_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
_XML_PROLOG = re.compile(r"\A<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?")
_SVG_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)
_SVG_ID = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def _fonts() -> tuple[FontProperties, FontProperties]:
    """The DejaVu files bundled with matplotlib, by path: a system font of the same name could
    otherwise be picked on another machine and change the bytes."""
    import matplotlib
    from matplotlib.font_manager import FontProperties

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return (
        FontProperties(fname=folder / "DejaVuSans.ttf", size=9),
        FontProperties(fname=folder / "DejaVuSans-Bold.ttf", size=10),
    )


def _chart_label(name: str) -> tuple[str, bool]:
    """A name as a chart's axis shows it, and whether it had to be shortened: on up to two
    lines of _CHART_LABEL_WIDTH characters (broken between words where it can), the second
    line ending in "…" when the name does not fit (its full form is listed under the chart)."""
    name = " ".join(show_controls(name).split())
    lines = textwrap.wrap(name, _CHART_LABEL_WIDTH, break_on_hyphens=False) or [""]
    if len(lines) <= 2:
        return "\n".join(lines), False
    second = " ".join(lines[1:])[: _CHART_LABEL_WIDTH - 1].rstrip()
    return f"{lines[0]}\n{second}…", True


def _row_inches(labels: Sequence[str]) -> float:
    """Height of one bar's row: room for a label of two lines when any has them."""
    return 0.42 if any("\n" in label for label in labels) else 0.32


def _integer_ticks(largest: int) -> list[int]:
    step = 1
    for candidate in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        step = candidate
        if largest <= candidate * 8:
            break
    else:
        step = -(-largest // 8)
    top = max(step, -(-largest // step) * step)
    return list(range(0, top + 1, step))


def _svg_of(figure: Figure, prefix: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    svg = buffer.getvalue().decode("utf-8")
    svg = _XML_PROLOG.sub("", svg)  # the DOCTYPE names a DTD URL; inline SVG needs neither
    svg = _SVG_COMMENT.sub("", svg)  # comments repeat the labels' text; the paths draw it
    # Two charts on one page would otherwise both define "figure_1", "DejaVuSans-30", ...
    return _SVG_ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg).strip()


def _style_axes(ax: Axes) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(axis="both", length=3)
    ax.set_axisbelow(True)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)


def _commitments_chart(
    report: dict[str, Any], font: FontProperties, bold: FontProperties
) -> Figure:
    from matplotlib.figure import Figure

    members = report["members"]
    labels = [_chart_label(m["name"])[0] for m in members]
    rows = list(range(len(members)))
    largest = max((m[side]["made"] for m in members for side in SIDES), default=0)
    ticks = _integer_ticks(largest)
    figure = Figure(figsize=(10, 1.4 + _row_inches(labels) * len(members)), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, (side, title) in zip(
        axes, (("us", "Owed by us"), ("partner", "Owed by partners")), strict=True
    ):
        left = [0] * len(members)
        for key, label, colour in STATUS_COLOURS:
            values = [m[side][key] for m in members]
            ax.barh(rows, values, left=left, color=colour, label=label, height=0.66)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_title(title, fontproperties=bold)
        ax.set_xlim(0, ticks[-1])
        ax.set_xticks(ticks, [str(t) for t in ticks], fontproperties=font)
        ax.set_xlabel("commitments made", fontproperties=font)
        _style_axes(ax)
    axes[0].set_yticks(rows, labels, fontproperties=font, parse_math=False)
    axes[0].set_ylim(len(members) - 0.5, -0.5)  # first member on top, as in the tables
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(
        handles,
        names,
        loc="outside lower center",
        ncols=len(STATUS_COLOURS),
        prop=font,
        frameon=False,
    )
    return figure


def _health_chart(report: dict[str, Any], font: FontProperties, bold: FontProperties) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    members = report["members"]
    labels = [_chart_label(m["name"])[0] for m in members]
    rows = list(range(len(members)))
    scores = [m["health"]["score"] for m in members]
    colours = [BAND_COLOURS.get(m["health"]["band"], "#999999") for m in members]
    figure = Figure(figsize=(10, 1.2 + _row_inches(labels) * len(members)), layout="constrained")
    ax = figure.subplots()
    ax.barh(rows, scores, color=colours, height=0.66)
    for threshold in (25, 50, 75):
        ax.axvline(threshold, color="#888888", linewidth=0.6, linestyle=(0, (2, 2)))
    for row, score in zip(rows, scores, strict=True):
        ax.text(score + 1, row, str(score), va="center", fontproperties=font)
    ax.set_xlim(0, 110)  # room for a score of 100 written beside its bar
    ticks = [0, 25, 50, 75, 100]
    ax.set_xticks(ticks, [str(t) for t in ticks], fontproperties=font)
    ax.set_yticks(rows, labels, fontproperties=font, parse_math=False)
    ax.set_ylim(len(members) - 0.5, -0.5)
    ax.set_title("Relationship health (0-100)", fontproperties=bold)
    _style_axes(ax)
    legend = [
        Patch(color=BAND_COLOURS["thriving"], label="thriving (75+)"),
        Patch(color=BAND_COLOURS["steady"], label="steady (50-74)"),
        Patch(color=BAND_COLOURS["at_risk"], label="at risk (25-49)"),
        Patch(color=BAND_COLOURS["critical"], label="critical (<25)"),
    ]
    figure.legend(handles=legend, loc="outside lower center", ncols=4, prop=font, frameon=False)
    return figure


class _Chart:
    """One chart for the page: its caption, its inline SVG, and the names it shortened as
    (label on one line, full name) pairs."""

    def __init__(self, caption: str, svg: str, shortened: list[tuple[str, str]]) -> None:
        self.caption, self.svg, self.shortened = caption, svg, shortened


def _charts(report: dict[str, Any]) -> list[_Chart]:
    """Each chart of the page. matplotlib is imported here, not at module load, so that
    commands which never draw a chart do not pay for it. Figures are built with the object
    API (no pyplot, no GUI backend, no global figure registry)."""
    import matplotlib

    cancellation_point()
    with _CHART_LOCK, matplotlib.rc_context(_CHART_RC), warnings.catch_warnings():
        # A name in a script DejaVu Sans lacks draws boxes in the chart (the tables show it
        # right); matplotlib warns once per glyph, which is noise, not a problem with the report.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        font, bold = _fonts()
        charted, which = _charted_members(report)
        shortened = []
        for member in charted["members"]:
            label, short = _chart_label(member["name"])
            if short:
                full = _one_line(member["name"])
                first = label.split("\n", 1)[0]
                # The label's lines as one: a space where the name had one, none inside a word.
                joiner = " " if full[len(first) : len(first) + 1] == " " else ""
                shortened.append((label.replace("\n", joiner), full))
        return [
            _Chart(
                f"Commitments made in the period, by status, for each side{which}",
                _svg_of(_commitments_chart(charted, font, bold), "status"),
                shortened,
            ),
            _Chart(
                f"Relationship health per member at the reference date, coloured by band{which}",
                _svg_of(_health_chart(charted, font, bold), "health"),
                shortened,
            ),
        ]


def _charted_members(report: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The report as the charts draw it, and what the captions add: at most CHART_MEMBERS
    members, those with the lowest health (the ones needing attention), so that a chart's
    cost and size stay the same at any membership; the tables still list every member."""
    members = report["members"]
    if len(members) <= CHART_MEMBERS:
        return report, ""
    lowest = sorted(members, key=lambda m: (m["health"]["score"], m["name"], m["partner_id"]))
    which = (
        f" (the {CHART_MEMBERS} of {len(members)} members with the lowest health; "
        "the tables list them all)"
    )
    return {**report, "members": lowest[:CHART_MEMBERS]}, which


# ---- iCalendar ------------------------------------------------------------------------------


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _timing(overdue_days: int | None) -> str:
    if overdue_days is None:
        return ""
    if overdue_days > 0:
        return f"Overdue by {_days(overdue_days)}."
    if overdue_days == 0:
        return "Due today."
    return f"Due in {_days(-overdue_days)}."


def _one_line(text: str) -> str:
    return " ".join(show_controls(text).split())


def _ics_text(text: str) -> str:
    """Free text for a TEXT value: RFC 5545 §3.1 allows no control character but HTAB in a
    value (a line break is written escaped, ``\\n``), so controls are shown visibly and CR LF
    or a lone CR become one line break."""
    return show_controls(text).replace("\r\n", "\n").replace("\r", "\n")


def _uid_part(text: str) -> str:
    # Ids are UUIDs or `A-Z a-z 0-9 . _ : -` already; anything else would be a surprise, but a
    # UID must stay one token, so replace rather than trust.
    return re.sub(r"[^A-Za-z0-9._:-]", "_", text)


def _event(
    uid: str, summary: str, item: dict[str, Any], stamp: datetime, description: str
) -> icalendar.Event:
    """An all-day event on the item's due day, or on the agenda's own day once it is overdue
    (work past due belongs where people look: today), named "Overdue since ..." then. The UID
    keeps the due day, so a subscribed calendar moves the event along rather than adding one."""
    due = date.fromisoformat(item["due_on"])
    overdue = item["overdue_days"] > 0
    day = due + timedelta(days=item["overdue_days"]) if overdue else due
    if overdue:
        summary = f"Overdue since {due.isoformat()}: {summary}"
    event = icalendar.Event()
    event.add("uid", f"{uid}-{due.isoformat()}@{UID_DOMAIN}")
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + timedelta(days=1))
    event.add("summary", summary)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")  # a reminder, not time the calendar owner is busy
    return event


def agenda_ics(agenda: dict[str, Any]) -> bytes:
    """The agenda as iCalendar (RFC 5545): one all-day event per check-in and commitment, on
    its due day, or on the agenda's day with "Overdue since ..." once it is past due.

    UIDs come from the partner, commitment and due date, so a calendar that subscribes sees the
    same item as the same event; DTSTAMP is the agenda's ``as_of``, so the same agenda gives the
    same bytes.
    """
    stamp = datetime.fromisoformat(agenda["as_of"]).astimezone(UTC)
    calendar = icalendar.Calendar()
    calendar.add("prodid", CALENDAR_PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "Partnership Ledger agenda")
    for item in agenda["checkins"]:
        lines = ["A check-in is due by the agreed cadence.", _timing(item["overdue_days"])]
        calendar.add_component(
            _event(
                f"checkin-{_uid_part(item['partner_id'])}",
                f"Check in with {_one_line(item['name'])}",
                item,
                stamp,
                "\n".join(line for line in lines if line),
            )
        )
    for item in agenda["commitments"]:
        name, what = _one_line(item["name"]), _one_line(item["description"])
        if item["owed_by"] == "us":
            summary, whose = f"We owe {name}: {what}", "our commitment"
        else:
            summary, whose = f"{name} owes us: {what}", "partner's commitment"
        lines = [
            f"Commitment {item['commitment_id']} ({whose}):",
            _ics_text(item["description"]),
            _timing(item["overdue_days"]),
        ]
        uid = f"commitment-{_uid_part(item['partner_id'])}-{_uid_part(item['commitment_id'])}"
        calendar.add_component(
            _event(uid, summary, item, stamp, "\n".join(line for line in lines if line))
        )
    ical: bytes = calendar.to_ical()
    return ical
