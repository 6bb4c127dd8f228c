"""``pledger import partners|events FILE.csv``: check every row, then record all of it or nothing.

An import goes in three steps, each testable on its own:

1. :func:`read_table` turns the file into rows of trimmed cells keyed by column, numbered as a
   spreadsheet shows them (the header is row 1, a blank line still counts as a row);
2. :func:`partner_row` and :func:`event_row` turn one row into a validated payload model and
   the moment it happened, or raise :class:`InvalidRow` naming every problem and its column;
3. :func:`plan_partners` and :func:`plan_events` apply those commands in file order to
   in-memory aggregates (each partner loaded from the ledger at most once), so the aggregates'
   own rules check every row exactly as a live write would, and a later row can fulfil a
   commitment an earlier row made.

Only when no row has a problem does the command save every aggregate with one
``save_batch`` call, which is one transaction: an import records all of its rows or none.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from uuid import UUID

import orjson
import typer
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from api.progress import progress_bar
from api.recorders import ImportedRow
from domain.application import Partnerships, Recorded
from domain.chained import Stamp
from domain.dates import DateOrder, day_of, read_day, read_moment
from domain.errors import (
    Busy,
    CoalitionNotFound,
    LedgerError,
    PartnerNotFound,
    ValidationFailed,
)
from domain.hashing import format_instant
from domain.partner import Partner, check_not_future
from domain.serialization import DATA_MODELS, EVENT_CLASSES
from domain.values import (
    CheckinCadenceAgreed,
    CommitmentMade,
    EntryRetracted,
    EventData,
    PartnerRegistered,
    Preferences,
    ProfileUpdated,
    control_problem,
    search_key,
    show_controls,
)

__all__ = [
    "EVENT_COLUMNS",
    "PARTNER_COLUMNS",
    "PARTNER_EVENT_TYPES",
    "EventRow",
    "FileDates",
    "ImportFileError",
    "InvalidRow",
    "PartnerRow",
    "Plan",
    "Row",
    "RowProblem",
    "Table",
    "check_columns",
    "decode_table",
    "event_row",
    "import_app",
    "parse_occurred_at",
    "parse_table",
    "partner_names",
    "partner_row",
    "plan_events",
    "plan_partners",
    "read_table",
    "validate_payload",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

LIST_SEPARATOR = ";"
# Below this many rows an import is over before a bar would be worth drawing.
PROGRESS_MIN_ROWS = 300
MOMENTS_KEPT = 10_000  # distinct occurred_at texts a file's reading remembers

PREFERENCE_FIELDS: tuple[str, ...] = tuple(Preferences.model_fields)
# The columns that fill a partner's ``contacts``: list cells for emails and phones; contact
# people as a list of names with, position by position, a list of their roles.
CONTACT_COLUMNS: tuple[str, ...] = (
    "email",
    "phone",
    "address",
    "contact_name",
    "contact_role",
    "contact_email",
    "contact_phone",
)
PARTNER_COLUMNS: tuple[str, ...] = (
    "name",
    "kind",
    "roles",
    "communities",
    "region",
    *PREFERENCE_FIELDS,
    "checkin_every_days",
    *CONTACT_COLUMNS,
)
_PARTNER_ALLOWED = (*PARTNER_COLUMNS, "occurred_at")
_PARTNER_REQUIRED = ("name", "kind")

# Event types a row of an events file may carry: the partner's own. Coalition events are left
# to the API (a coalition has no partner column to hang a row on).
PARTNER_EVENT_TYPES: dict[str, type[EventData]] = {
    type_name: DATA_MODELS[type_name]
    for type_name, event_class in EVENT_CLASSES.items()
    if issubclass(event_class, Partner.Event) and DATA_MODELS[type_name].ORDINARY
}
_FIELD_COLUMNS = sorted(
    {name for model in PARTNER_EVENT_TYPES.values() for name in model.model_fields}
    - {"preferences", "contacts"}
    | set(PREFERENCE_FIELDS)
    | set(CONTACT_COLUMNS)
)
EVENT_COLUMNS: tuple[str, ...] = ("partner", "type", "occurred_at", *_FIELD_COLUMNS)
_EVENT_REQUIRED = ("partner", "type", "occurred_at")

# Which column a refusal other than a field error points at, by event type.
_REFERENCE_COLUMN = {
    "commitment_made": "commitment_id",
    "commitment_fulfilled": "commitment_id",
    "commitment_renegotiated": "commitment_id",
    "commitment_cancelled": "commitment_id",
    "payment_made": "commitment_id",
    "thanks_expressed": "for_commitment_id",
    "feedback_received": "feedback_id",
    "outcome_shared": "feedback_id",
    "trust_breach_recorded": "breach_id",
    "trust_repaired": "breach_id",
    "entry_retracted": "version",
}
# "Did you mean ...?": at most this many names, each at least this similar (0-100).
SUGGESTIONS = 2
SUGGESTION_SCORE = 75
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FORMULA_CHARACTERS = ("=", "+", "-", "@")
_NOT_A_DIGIT = re.compile(r"[^0-9.,\s]")  # a currency sign or code written into an amount


# ---- problems ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with a file: its row (the header is row 1), its column, and what."""

    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        # Shown on a terminal: a control character from the file must not drive it.
        if self.column is None:
            return show_controls(f"row {self.row}: {self.message}")
        return show_controls(f"row {self.row}, column {self.column}: {self.message}")


class InvalidRow(Exception):
    """A row that cannot become a command; ``problems`` says every reason."""

    def __init__(self, problems: Sequence[RowProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class ImportFileError(Exception):
    """The file itself cannot be read as a CSV table (missing, not UTF-8, empty)."""


class _RowCheck:
    """Collects one row's problems, so that a row reports all of them at once."""

    def __init__(self, row: int) -> None:
        self.row = row
        self.problems: list[RowProblem] = []

    def add(self, column: str | None, message: str) -> None:
        self.problems.append(RowProblem(self.row, column, message))

    def attempt(self, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except InvalidRow as invalid:
            self.problems.extend(invalid.problems)
            return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidRow(self.problems)


# ---- reading the file -------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One data row: its spreadsheet number and its non-blank cells, trimmed, by column."""

    number: int
    cells: dict[str, str]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[RowProblem, ...] = ()


def read_table(path: Path) -> Table:
    """Read a UTF-8 CSV file whose first row names the columns (case and spaces ignored)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a CSV file") from None
    except OSError as error:
        raise ImportFileError(f"{path}: cannot be read ({error.strerror})") from None
    return decode_table(raw, source=str(path))


def decode_table(raw: bytes, *, source: str) -> Table:
    """Read a file's bytes (an upload, or a file's) as a UTF-8 CSV table; ``source`` names it
    in messages. Raises ImportFileError when it is not UTF-8 or is empty."""
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets often start a UTF-8 file with a BOM
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ImportFileError(
            f"{source}: is not UTF-8 text (line {line} has the byte 0x{raw[error.start]:02x}); "
            "save it as 'CSV UTF-8'"
        ) from None
    if not text.strip():
        raise ImportFileError(f"{source}: is empty; its first row must name the columns")
    return parse_table(text, source=source)


def parse_table(text: str, *, source: str = "the file") -> Table:
    records = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(records)]
        columns: tuple[str, ...] = tuple(header)
        problems = [
            RowProblem(1, name, "appears more than once in the header")
            for index, name in enumerate(header)
            if name and name in header[:index]
        ]
        problems += [
            RowProblem(1, _column_letter(index), refused)
            for index, name in enumerate(header)
            if (refused := control_problem(name)) is not None
        ]
        rows: list[Row] = []
        # Spreadsheet numbering counts records, not lines: a quoted cell may span several lines.
        for number, record in enumerate(records, start=2):
            cells: dict[str, str] = {}
            for index, cell in enumerate(record):
                if not cell:
                    continue  # most cells of a wide file are empty: nothing to check or keep
                # Trimmed, but never of a control character (str.strip() takes U+001C-U+001F
                # and U+0085 for spaces): the field's own check must see it and refuse it.
                value = cell if control_problem(cell) is not None else cell.strip()
                if value[:1] == "'" and value[1:2] in _FORMULA_CHARACTERS:
                    value = value[1:]  # written so by an export, lest a spreadsheet compute it
                if not value:
                    continue
                name = header[index] if index < len(header) else ""
                if not name:
                    problems.append(
                        RowProblem(
                            number,
                            _column_letter(index),
                            "holds a value, but row 1 gives this column no name",
                        )
                    )
                else:
                    cells[name] = value
            if cells:
                rows.append(Row(number, cells))
    except csv.Error as error:
        raise ImportFileError(f"{source}: is not a valid CSV file ({error})") from None
    if not rows and not problems:
        raise ImportFileError(f"{source}: has a header but no rows to import")
    return Table(columns=columns, rows=tuple(rows), problems=tuple(problems))


def _column_letter(index: int) -> str:
    """A spreadsheet's name for the column at ``index`` (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def check_columns(
    columns: Sequence[str], allowed: Sequence[str], required: Sequence[str], kind: str
) -> list[RowProblem]:
    """Problems with a header: columns the file kind does not have, and required ones missing."""
    problems = [
        RowProblem(1, name, f"is not a column of {kind} file; the columns are {', '.join(allowed)}")
        for name in columns
        if name and name not in allowed
    ]
    problems += [
        RowProblem(1, name, f"is missing; {kind} file needs the columns {', '.join(required)}")
        for name in required
        if name not in columns
    ]
    return problems


# ---- one row -> one validated command -----------------------------------------------------


@dataclass(frozen=True)
class FileDates:
    """How a file's dates are read (``domain.dates``): a date or a time without an offset in
    the ledger's time zone ``zone``; a day-first or month-first date (``3/15/2026``) only in
    the ``order`` the import was told (``--date-order``)."""

    zone: tzinfo = UTC
    order: DateOrder | None = None
    # The moments read so far by text: a file writes the same time (or day) on many rows.
    _moments: dict[str, datetime] = field(default_factory=dict, compare=False, repr=False)

    def moment(self, text: str) -> datetime:
        """Raises ValueError (AmbiguousDate naming ``--date-order``) in plain words."""
        found = self._moments.get(text)
        if found is None:
            found = read_moment(text, self.zone, date_order=self.order, in_file=True)
            if len(self._moments) < MOMENTS_KEPT:
                self._moments[text] = found
        return found

    def day(self, text: str) -> date:
        return read_day(text, date_order=self.order, in_file=True)


def parse_occurred_at(
    text: str | None, now: datetime, row: int, dates: FileDates | None = None
) -> datetime:
    """When a row happened, as people write it (:class:`FileDates`), not in the future;
    ``now`` when the cell is blank. Raises :class:`InvalidRow` naming the cell."""
    if text is None:
        return now
    try:
        moment = (dates or FileDates()).moment(text)
    except ValueError as unread:
        raise InvalidRow([RowProblem(row, "occurred_at", str(unread))]) from None
    try:
        check_not_future(Stamp(moment, ""))
    except ValidationFailed as refused:
        raise InvalidRow(
            [RowProblem(row, "occurred_at", f"{text!r} {p.message}") for p in refused.problems]
        ) from None
    return moment


def validate_payload(
    model: type[M],
    fields: Mapping[str, str],
    row: int,
    *,
    column_of: Mapping[str, str] | None = None,
    type_name: str | None = None,
    dates: FileDates | None = None,
) -> M:
    """Build ``model`` from cell texts by field name; the preference fields nest themselves;
    date cells are read as ``dates`` says (``3/15/2026`` with ``--date-order mdy``)."""
    column_of = column_of or {}
    payload: dict[str, Any] = {}
    preferences: dict[str, Any] = {}
    unread: dict[str, str] = {}  # date cells that could not be read, and why
    contact_cells: dict[str, str] = {}
    nests = "preferences" in model.model_fields
    for name, text in fields.items():
        if nests and name in PREFERENCE_FIELDS:
            preferences[name] = _cell_value(Preferences, name, text)
            continue
        if nests and name in CONTACT_COLUMNS:
            contact_cells[name] = text
            continue
        payload[name] = _cell_value(model, name, text)
        if _is_date(model, name):
            try:
                payload[name] = (dates or FileDates()).day(text)
            except ValueError as refused:
                unread[name] = str(refused)
    if preferences:
        payload["preferences"] = preferences
    if contact_cells:
        payload["contacts"] = contacts_payload(contact_cells)
    problems = [RowProblem(row, column_of.get(n, n), why) for n, why in unread.items()]
    try:
        built = model.model_validate(payload)
    except ValidationError as error:
        for detail in error.errors():
            name = contact_column(detail["loc"]) or _field_of(detail["loc"], preferences)
            if name not in unread:
                column = column_of.get(name, name)
                problems.append(RowProblem(row, column, _describe(detail, type_name)))
        raise InvalidRow(problems) from None
    if problems:
        raise InvalidRow(problems)
    return built


@cache  # asked for every cell of every row; a model's fields never change
def _is_date(model: type[BaseModel], name: str) -> bool:
    """Whether ``name`` is a date field of ``model`` (``due_on``, ``ends_on``)."""
    info = model.model_fields.get(name)
    return info is not None and _any_part(info.annotation, lambda part: part is date)


def _list_cell(text: str) -> list[str]:
    return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]


_PERSON_DETAILS = (("contact_role", "role"), ("contact_email", "email"), ("contact_phone", "phone"))


def contacts_payload(cells: Mapping[str, str]) -> dict[str, Any]:
    """The ``contacts`` object of a row's contact cells (see :data:`CONTACT_COLUMNS`).

    ``contact_name`` lists people (``Ana Ruiz; Ben Lee``) and ``contact_role``,
    ``contact_email`` and ``contact_phone`` their roles, emails and phones in the same order
    (``Director; Treasurer``); a blank item leaves that person's detail unsaid.
    """
    payload: dict[str, Any] = {}
    if "email" in cells:
        payload["emails"] = _list_cell(cells["email"])
    if "phone" in cells:
        payload["phones"] = _list_cell(cells["phone"])
    if "address" in cells:
        payload["address"] = cells["address"]
    names = _list_cell(cells.get("contact_name", ""))
    people: list[dict[str, Any]] = [{"name": name} for name in names]
    for column, detail in _PERSON_DETAILS:
        items = [item.strip() for item in cells.get(column, "").split(LIST_SEPARATOR)]
        for person, item in zip(people, items, strict=False):
            if item:
                person[detail] = item
        if len([item for item in items if item]) > len(people) and detail == "role":
            people.append({"role": cells[column]})  # a role for nobody: its name is missing
    if people:
        payload["people"] = people
    return payload


def contact_column(loc: tuple[int | str, ...]) -> str | None:
    """The column of a problem found in ``contacts`` (``("contacts", "emails", 0)`` ->
    ``email``), or None when the problem is not about contacts."""
    if not loc or loc[0] != "contacts":
        return None
    part = str(loc[1]) if len(loc) > 1 else "emails"
    if part == "people":
        detail = str(loc[-1])
        return f"contact_{detail}" if detail in ("role", "email", "phone") else "contact_name"
    return {"emails": "email", "phones": "phone"}.get(part, part)


def _cell_value(model: type[BaseModel], name: str, text: str) -> Any:
    """A cell's text as the field wants it: a list split on ``;``, a whole number, or text.

    Everything else (dates, decimals, ids, enums) pydantic parses from the text itself, so an
    amount goes from the cell's characters straight to ``Decimal``, never through a float.
    """
    kind = _cell_kind(model, name)
    if kind == "list":
        return _list_cell(text)
    if kind == "int" and _INTEGER.fullmatch(text):
        return int(text)  # integer fields are strict: a cell's text would not do
    return text  # not a field of this type (validation names the column), or text


@cache  # asked for every cell of every row; a model's fields never change
def _cell_kind(model: type[BaseModel], name: str) -> str:
    """How a cell of field ``name`` is read: "list", "int", or "text" (also for a column
    that is not a field of ``model``)."""
    info = model.model_fields.get(name)
    if info is None:
        return "text"
    if _is_list(info.annotation):
        return "list"
    return "int" if info.annotation is int else "text"


def _is_list(annotation: Any) -> bool:
    return _any_part(annotation, lambda part: get_origin(part) in (tuple, list))


def _any_part(annotation: Any, test: Callable[[Any], bool]) -> bool:
    """Whether a field's type, or one of its parts when optional or annotated, passes ``test``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _any_part(get_args(annotation)[0], test)
    if origin in (Union, UnionType):
        return any(_any_part(arg, test) for arg in get_args(annotation))
    return test(annotation)


def _field_of(loc: tuple[int | str, ...], preferences: Mapping[str, Any]) -> str:
    if not loc:
        return "type"
    name = str(loc[0])
    if name == "preferences":
        if len(loc) > 1 and isinstance(loc[1], str):
            return loc[1]
        return next(iter(preferences), "channels")
    return name


def _describe(detail: ErrorDetails, type_name: str | None) -> str:
    """Pydantic's complaint, reworded for someone looking at a spreadsheet cell."""
    kind = detail["type"]
    value = detail.get("input")
    if kind == "missing":
        return f"is required for {type_name}" if type_name else "is required"
    if kind in ("email_format", "phone_format"):
        return detail["msg"]  # already names the value and shows the way
    if kind == "extra_forbidden":
        return f"does not apply to {type_name}; leave it blank" if type_name else "is not a field"
    if kind == "enum":
        return f"{value!r} is not allowed; use {detail.get('ctx', {}).get('expected', '')}"
    if kind.startswith("date_"):
        return f"{value!r} is not a date; write a date like 2026-03-15"
    if kind.startswith("decimal_"):
        message = f"{value!r} is not a number; write amounts like 1250.00"
        if isinstance(value, str) and _NOT_A_DIGIT.search(value):
            message += ", the currency code (such as USD) in the currency column"
        elif isinstance(value, str) and "," in value:
            message += ", without a thousands separator"
        return message
    if kind == "uuid_parsing":
        return f"{value!r} is not an id"
    if kind in ("int_type", "int_parsing"):
        return f"{value!r} is not a whole number"
    if kind == "greater_than_equal":
        return f"must be at least {detail.get('ctx', {}).get('ge')} (got {value!r})"
    if kind == "less_than_equal":
        return f"must be at most {detail.get('ctx', {}).get('le')} (got {value!r})"
    message = detail["msg"].removeprefix("Value error, ")
    return f"{message} (got {value!r})" if isinstance(value, str) else message


@dataclass(frozen=True)
class PartnerRow:
    """A row of a partners file as commands: the registration, then the cadence if any."""

    number: int
    registration: PartnerRegistered
    cadence: CheckinCadenceAgreed | None
    occurred_at: datetime


def partner_row(row: Row, now: datetime, dates: FileDates | None = None) -> PartnerRow:
    check = _RowCheck(row.number)
    cells = dict(row.cells)
    occurred_at = check.attempt(
        lambda: parse_occurred_at(cells.pop("occurred_at", None), now, row.number, dates)
    )
    cadence_text = cells.pop("checkin_every_days", None)
    registration = check.attempt(lambda: validate_payload(PartnerRegistered, cells, row.number))
    cadence = None
    if cadence_text is not None:
        cadence = check.attempt(
            lambda: validate_payload(
                CheckinCadenceAgreed,
                {"every_days": cadence_text},
                row.number,
                column_of={"every_days": "checkin_every_days"},
            )
        )
    check.raise_if_any()
    assert registration is not None
    assert occurred_at is not None
    return PartnerRow(row.number, registration, cadence, occurred_at)


@dataclass(frozen=True)
class EventRow:
    """A row of an events file as a command: whose, what, and when it happened.

    ``partner`` is the partner's id or unique name; for ``partner_registered``, the new name.
    """

    number: int
    partner: str
    data: EventData
    occurred_at: datetime


def event_row(row: Row, now: datetime, dates: FileDates | None = None) -> EventRow:
    check = _RowCheck(row.number)
    cells = dict(row.cells)
    partner = cells.pop("partner", None)
    type_name = cells.pop("type", None)
    occurred_at = check.attempt(
        lambda: parse_occurred_at(cells.pop("occurred_at", None), now, row.number, dates)
    )
    model = PARTNER_EVENT_TYPES.get(type_name or "")
    if type_name is None:
        check.add("type", "is required: name the event type, such as contact_made")
    elif model is None:
        if type_name in DATA_MODELS:
            message = f"{type_name} events cannot be imported from a file; record them with the API"
        else:
            message = (
                f"{type_name!r} is not an event type; use one of {', '.join(PARTNER_EVENT_TYPES)}"
            )
        check.add("type", message)
    column_of: dict[str, str] = {}
    if type_name == PartnerRegistered.TYPE:
        # The partner column names the partner the row is about: here, the one it registers.
        named = cells.get("name")
        if named is not None and partner is not None and named != partner:
            check.add("name", "differs from the partner column, which holds the new partner's name")
        if partner is not None:
            cells["name"] = partner
        column_of["name"] = "partner"
    elif partner is None:
        check.add("partner", "is required: give the partner's id or unique name")
    data = None
    if model is not None:
        fields = cells
        data = check.attempt(
            lambda: validate_payload(
                model, fields, row.number, column_of=column_of, type_name=type_name, dates=dates
            )
        )
    check.raise_if_any()
    assert data is not None
    assert occurred_at is not None
    assert partner is not None
    return EventRow(row.number, partner, data, occurred_at)


# ---- the ledger's partners, by id and by name -------------------------------------------

_NAMING_TOPICS = frozenset(
    get_topic(cls) for cls in (Partner.Registered, Partner.ProfileUpdated, Partner.EntryRetracted)
)


def partner_names(ledger: Partnerships) -> dict[UUID, str]:
    """Every partner's current name, folded from the log; a retracted rename does not count."""
    names: dict[UUID, dict[int, str]] = defaultdict(dict)
    retracted: dict[UUID, set[int]] = defaultdict(set)
    for notification in ledger.notifications():
        if notification.topic not in _NAMING_TOPICS:
            continue  # no need to decode the rest of the log
        event = ledger.decode(notification)
        data = event.data
        if isinstance(data, EntryRetracted):
            retracted[event.originator_id].add(data.version)
        elif isinstance(data, PartnerRegistered | ProfileUpdated) and data.name is not None:
            names[event.originator_id][event.originator_version] = data.name
    return {
        partner_id: by_version[max(set(by_version) - retracted[partner_id])]
        for partner_id, by_version in names.items()
    }


class _UnresolvedPartner(Exception):
    pass


@lru_cache(maxsize=4096)  # a file names the same partners on many rows
def _id_in(reference: str) -> UUID | None:
    """The partner id a partner cell holds, or None when it holds a name."""
    try:
        return UUID(reference)
    except ValueError:
        return None


@dataclass
class _Partners:
    """The partners an import touches: each loaded from the ledger at most once, plus new ones."""

    ledger: Partnerships
    touched: dict[UUID, Partner] = field(default_factory=dict)
    _ids_by_name: dict[str, set[UUID]] | None = None
    _missing: set[UUID] = field(default_factory=set)
    _registered_on: dict[str, int] = field(default_factory=dict)
    _names: dict[UUID, str] = field(default_factory=dict)
    _by_key: dict[str, str] | None = None  # a name on record by its search key, for suggestions

    @property
    def ids_by_name(self) -> dict[str, set[UUID]]:
        """Partner ids by the :func:`search_key` of their current name (case, accents and
        Unicode normal form ignored: "Jose Ramirez" is "José Ramírez"), read from the log on
        first use (only names need it)."""
        if self._ids_by_name is None:
            names = partner_names(self.ledger)
            names.update({partner_id: p.name for partner_id, p in self.touched.items()})
            self._ids_by_name = defaultdict(set)
            self._names = {}
            for partner_id, name in names.items():
                self._ids_by_name[search_key(name)].add(partner_id)
                self._names[partner_id] = name
        return self._ids_by_name

    def get(self, partner_id: UUID) -> Partner:
        partner = self.touched.get(partner_id)
        if partner is None:
            if partner_id in self._missing:
                raise PartnerNotFound(partner_id)
            try:
                partner = self.ledger.get_partner(partner_id)
            except PartnerNotFound:
                self._missing.add(partner_id)
                raise
            self.touched[partner_id] = partner
        return partner

    def exists(self, partner_id: UUID) -> bool:
        try:
            self.get(partner_id)
        except PartnerNotFound:
            return False
        return True

    def resolve(self, reference: str) -> Partner:
        """The partner a cell names: by id, or by a name that exactly one partner has (case,
        accents and Unicode normal form ignored); an unknown name gets the closest ones."""
        partner_id = _id_in(reference)
        if partner_id is not None:
            try:
                return self.get(partner_id)
            except PartnerNotFound as missing:
                raise _UnresolvedPartner(missing.detail) from None
        ids = self.ids_by_name.get(search_key(reference), set())
        if not ids:
            raise _UnresolvedPartner(
                f"no partner named {reference!r} is on record{self._did_you_mean(reference)}"
            )
        if len(ids) > 1:
            listed = ", ".join(sorted(str(i) for i in ids))
            raise _UnresolvedPartner(
                f"{len(ids)} partners are named {reference!r}; give the id instead ({listed})"
            )
        (partner_id,) = ids
        return self.get(partner_id)

    def _did_you_mean(self, reference: str) -> str:
        """``; did you mean 'José Ramírez'?`` from the names on record closest to
        ``reference``, or nothing when none is close. Compared by :func:`search_key` with
        rapidfuzz's ``token_sort_ratio`` (normalized Indel similarity, 0-100, of the words in
        sorted order, punctuation ignored), so "Siobhan O'Brien" finds "O'Brien, Siobhán"."""
        if self._by_key is None:  # built once, and again only after a name changed
            self._by_key = {}
            for name in sorted(self._names.values()):
                self._by_key.setdefault(search_key(name), name)
        by_key = self._by_key
        found = process.extract(
            search_key(reference),
            list(by_key),
            scorer=fuzz.token_sort_ratio,
            processor=default_process,
            limit=SUGGESTIONS,
            score_cutoff=SUGGESTION_SCORE,
        )
        if not found:
            return ""
        names = " or ".join(repr(by_key[key]) for key, _score, _index in found)
        return f"; did you mean {names}?"

    def duplicate_of(self, name: str) -> str | None:
        """Why a new partner may not take ``name`` (the same name as another, matched as
        :meth:`resolve` matches), or None when no partner has it yet."""
        key = search_key(name)
        ids = self.ids_by_name.get(key)
        if not ids:
            return None
        row = self._registered_on.get(key)
        if row is not None:
            return f"row {row} already registers a partner named {name!r}"
        first = min(ids, key=str)
        return f"a partner named {self._names[first]!r} is already on record (id {first})"

    def add(self, partner: Partner, row: int) -> None:
        self.touched[partner.id] = partner
        self._registered_on.setdefault(search_key(partner.name), row)
        if self._ids_by_name is not None:
            self._ids_by_name[search_key(partner.name)].add(partner.id)
            self._names[partner.id] = partner.name
            self._by_key = None

    def renamed(self, partner: Partner, old_name: str) -> None:
        if self._ids_by_name is not None and partner.name != old_name:
            self._ids_by_name[search_key(old_name)].discard(partner.id)
            self._ids_by_name[search_key(partner.name)].add(partner.id)
            self._names[partner.id] = partner.name
            self._by_key = None

    def with_new_events(self) -> list[Partner]:
        return [p for p in self.touched.values() if p.pending_events]


# ---- whole files -> the aggregates to save ------------------------------------------------

_DUPLICATE_HINT = "give another name, or pass --allow-duplicate-names"


@dataclass
class Plan:
    """What an import would record (aggregates holding new events), or why it cannot.

    ``rows`` holds each new row's fingerprint with the event it records, saved in the same
    transaction as the events; ``already_recorded`` counts the rows an earlier import of the
    same content recorded, which this one leaves out; ``partners`` the partners it records
    something for, as (id, name).
    """

    aggregates: list[Partner] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: list[ImportedRow] = field(default_factory=list)
    already_recorded: int = 0
    partners: list[tuple[UUID, str]] = field(default_factory=list)
    # History older than its partner's registration (name, events, registered), kept before
    # saving empties the pending events (see history_before_registration).
    earlier: list[tuple[str, int, datetime]] = field(default_factory=list)

    @property
    def new_rows(self) -> int:
        return len(self.rows)

    def history_before_registration(self) -> list[tuple[str, int, datetime]]:
        """The partners this plan records history for that happened before their
        registration: (name, how many such events, when the partner was registered), by name.
        Such history counts from when it happened (issue 12): the relationship begins there."""
        found = []
        for partner in self.aggregates:
            registered = partner.registered_at
            assert registered is not None
            earlier = sum(
                1
                for event in partner.pending_events
                if isinstance(event, Partner.Event)
                and not isinstance(event, Partner.Registered)
                and event.occurred_at < registered
            )
            if earlier:
                found.append((partner.name, earlier, registered))
        return sorted(found)


def _no_progress(_n: int) -> None:
    return None


def row_fingerprint(file_kind: str, partner: str, data: EventData, occurred_at: str) -> str:
    """The SHA-256 (hex) of what a row says: the file kind, the partner it names (by
    :func:`search_key` of the cell: "Jose Ramirez" and "JOSÉ RAMÍREZ" are one), the payload as
    validated (so spacing or a date's spelling do not matter) and when it happened ("" when
    the cell was blank and the import's own time stood in)."""
    document = {
        "file": file_kind,
        "partner": _partner_key(partner),
        "type": data.TYPE,
        "data": data.model_dump(mode="json"),
        "occurred_at": occurred_at,
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


# The search key of a partner cell, which a file repeats on many rows (its cost is in
# Unicode normalization); bounded so that a server's web imports keep little.
_partner_key = lru_cache(maxsize=4096)(search_key)

_Command = TypeVar("_Command", "PartnerRow", "EventRow")


class _Fingerprints:
    """Each row's fingerprint, numbered among identical rows of the same file (two equal
    rows are two entries), and which of them an earlier import recorded."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = defaultdict(int)
        self.of_row: dict[int, str] = {}

    def add(self, row: int, content: str) -> None:
        self._seen[content] += 1
        occurrence = self._seen[content]
        self.of_row[row] = content if occurrence == 1 else f"{content}:{occurrence}"

    def unrecorded(
        self,
        ledger: Partnerships,
        commands: Sequence[_Command],
        plan: Plan,
        advance: Callable[[int], None],
    ) -> Iterator[tuple[_Command, str]]:
        """Each command with its row's fingerprint, in file order, but those an earlier import
        recorded, which ``plan.already_recorded`` counts instead."""
        recorded: set[str] = ledger.recorder.imported_fingerprints(  # type: ignore[attr-defined]
            list(self.of_row.values())
        )
        for command in commands:
            advance(1)
            fingerprint = self.of_row[command.number]
            if fingerprint in recorded:
                plan.already_recorded += 1
                continue
            yield command, fingerprint


def _checked_header(
    plan: Plan, table: Table, allowed: Sequence[str], required: Sequence[str], kind: str
) -> Table | None:
    """The table with only the columns ``allowed`` (an unknown column is a problem, and its
    cells are left out so the rows are still checked), or None when a required one is
    missing (every row would only repeat it)."""
    header = check_columns(table.columns, allowed, required, kind)
    plan.problems = [*header, *table.problems]
    if any(name in required and name not in table.columns for name in required):
        return None
    unknown = set(table.columns) - set(allowed)
    if not unknown:
        return table
    rows = tuple(
        Row(row.number, {k: v for k, v in row.cells.items() if k not in unknown})
        for row in table.rows
    )
    return Table(columns=table.columns, rows=rows, problems=table.problems)


def plan_partners(
    ledger: Partnerships,
    table: Table,
    *,
    recorded_by: str,
    now: datetime,
    allow_duplicate_names: bool = False,
    advance: Callable[[int], None] = _no_progress,
    date_order: DateOrder | None = None,
    zone: tzinfo = UTC,
) -> Plan:
    """Register a partner per row, with its cadence; every row checked, nothing saved.
    Dates are read in ``zone`` (the ledger's time zone), day-first or month-first ones in
    ``date_order`` only (see :class:`FileDates`). Rows an earlier import recorded (same
    fingerprint) are counted, not registered again."""
    dates = FileDates(zone, date_order)
    plan = Plan()
    checked = _checked_header(plan, table, _PARTNER_ALLOWED, _PARTNER_REQUIRED, "a partners")
    if checked is None:
        return plan
    commands: list[PartnerRow] = []
    fingerprints = _Fingerprints()
    for row in checked.rows:
        try:
            command = partner_row(row, now, dates)
        except InvalidRow as invalid:
            plan.problems.extend(invalid.problems)
            continue
        commands.append(command)
        when = "" if "occurred_at" not in row.cells else format_instant(command.occurred_at)
        content = row_fingerprint("partners", command.registration.name, command.registration, when)
        if command.cadence is not None:
            content += row_fingerprint("partners", "", command.cadence, "")
        fingerprints.add(row.number, content)
    partners = _Partners(ledger)
    column_of = {"every_days": "checkin_every_days"}
    for command, fingerprint in fingerprints.unrecorded(ledger, commands, plan, advance):
        name = command.registration.name
        duplicate = None if allow_duplicate_names else partners.duplicate_of(name)
        if duplicate is not None:
            plan.problems.append(
                RowProblem(command.number, "name", f"{duplicate}; {_DUPLICATE_HINT}")
            )
            continue
        stamp = Stamp(command.occurred_at, recorded_by)
        try:
            partner = Partner.register(command.registration, stamp)
            if command.cadence is not None:
                partner.execute(command.cadence, stamp)
        except LedgerError as refused:
            plan.problems.extend(
                _refusal(refused, command.number, _PARTNER_ALLOWED, column_of, None)
            )
            continue
        partners.add(partner, command.number)
        plan.rows.append(ImportedRow(fingerprint, str(partner.id), 1))
    plan.aggregates = partners.with_new_events()
    plan.partners = [(partner.id, partner.name) for partner in plan.aggregates]
    plan.problems = _in_sheet_order(plan.problems, table.columns)
    return plan


def plan_events(
    ledger: Partnerships,
    table: Table,
    *,
    recorded_by: str,
    now: datetime,
    allow_duplicate_names: bool = False,
    advance: Callable[[int], None] = _no_progress,
    date_order: DateOrder | None = None,
    zone: tzinfo = UTC,
) -> Plan:
    """Apply each row in file order to its partner, in memory; every row checked, nothing saved.
    Dates are read as :func:`plan_partners` says.

    Every problem of the file is found in one pass: unknown columns, bad cells and unknown
    partner names (with the closest names on record). Rows an earlier import recorded (same
    fingerprint) are counted, not applied again.
    """
    dates = FileDates(zone, date_order)
    plan = Plan()
    checked = _checked_header(plan, table, EVENT_COLUMNS, _EVENT_REQUIRED, "an events")
    if checked is None:
        return plan
    partners = _Partners(ledger)
    # Names the file itself registers: a later row naming one is not "unknown" even when
    # its registration row has a problem of its own.
    registered_here = {
        search_key(row.cells.get("partner", ""))
        for row in checked.rows
        if row.cells.get("type") == PartnerRegistered.TYPE
    }
    commands: list[EventRow] = []
    fingerprints = _Fingerprints()
    refused_ids: dict[tuple[str, str], int] = {}
    for row in checked.rows:
        try:
            command = event_row(row, now, dates)
        except InvalidRow as invalid:
            plan.problems.extend(invalid.problems)
            plan.problems.extend(_unknown_partner(row, partners, registered_here))
            _note_refused_ids(row, refused_ids)
            continue
        commands.append(command)
        content = row_fingerprint(
            "events", command.partner, command.data, format_instant(command.occurred_at)
        )
        fingerprints.add(row.number, content)
    coalitions: dict[UUID, bool] = {}
    for command, fingerprint in fingerprints.unrecorded(ledger, commands, plan, advance):
        follow_on = _refers_to_refused(command, refused_ids)
        if follow_on is not None:
            plan.problems.append(follow_on)
            continue
        problems, partner = _apply_event(
            command, partners, coalitions, recorded_by, allow_duplicate_names, registered_here
        )
        plan.problems.extend(problems)
        if partner is not None and not problems:  # one row, one event: the partner's last
            plan.rows.append(ImportedRow(fingerprint, str(partner.id), partner.version))
    plan.aggregates = partners.with_new_events()
    plan.partners = [(partner.id, partner.name) for partner in plan.aggregates]
    plan.problems = _in_sheet_order(plan.problems, table.columns)
    return plan


# The id a row creates (commitment_made's commitment_id...), and the fields that refer to one.
_CREATED_ID = {
    "commitment_made": "commitment_id",
    "trust_breach_recorded": "breach_id",
    "feedback_received": "feedback_id",
}
_REFERRING = {"commitment_id": "commitment_id", "for_commitment_id": "commitment_id"}
_REFERRING |= {"breach_id": "breach_id", "feedback_id": "feedback_id"}


def _note_refused_ids(row: Row, refused_ids: dict[tuple[str, str], int]) -> None:
    """Remember the id a refused row would have created, by partner (see
    :func:`_refers_to_refused`)."""
    id_field = _CREATED_ID.get(row.cells.get("type", ""))
    created = row.cells.get(id_field or "")
    if id_field and created:
        key = (search_key(row.cells.get("partner", "")), f"{id_field}:{created}")
        refused_ids.setdefault(key, row.number)


def _refers_to_refused(
    command: EventRow, refused_ids: dict[tuple[str, str], int]
) -> RowProblem | None:
    """A row referring to an id whose creating row was refused: one problem that says so,
    rather than "no such commitment", which a fix of that other row makes untrue."""
    if command.data.TYPE in _CREATED_ID or not refused_ids:
        return None
    for column, id_field in _REFERRING.items():
        referred = getattr(command.data, column, None)
        row = refused_ids.get((search_key(command.partner), f"{id_field}:{referred}"))
        if referred is not None and row is not None:
            return RowProblem(
                command.number,
                column,
                f"refers to {referred}, made in row {row}, which has a problem of its own; "
                "fixing that row fixes this one",
            )
    return None


def _unknown_partner(row: Row, partners: _Partners, registered_here: set[str]) -> list[RowProblem]:
    """A row with other problems is still told when its partner is unknown (same pass)."""
    reference = row.cells.get("partner")
    if reference is None or row.cells.get("type") == PartnerRegistered.TYPE:
        return []
    try:
        partners.resolve(reference)
    except _UnresolvedPartner as unresolved:
        if search_key(reference) in registered_here:
            return []
        return [RowProblem(row.number, "partner", str(unresolved))]
    return []


def _in_sheet_order(problems: list[RowProblem], columns: Sequence[str]) -> list[RowProblem]:
    """Problems by row, and within a row from left to right, as one reads the sheet."""
    position = {name: index for index, name in enumerate(columns)}
    return sorted(problems, key=lambda p: (p.row, position.get(p.column or "", len(columns))))


def _apply_event(
    command: EventRow,
    partners: _Partners,
    coalitions: dict[UUID, bool],
    recorded_by: str,
    allow_duplicate_names: bool,
    registered_here: set[str],
) -> tuple[list[RowProblem], Partner | None]:
    """Run one row's command on its partner in memory: the problems ([] once it applied)
    and the partner it applied to."""
    check = _RowCheck(command.number)
    data = command.data
    # References beyond the partner's own stream, checked against the ledger (the application
    # checks these for a live write; the in-memory aggregates cannot).
    referrer = data.referred_by if isinstance(data, PartnerRegistered | ProfileUpdated) else None
    if referrer is not None and not partners.exists(referrer):
        check.add("referred_by", f"no partner with id {referrer} is on record")
    coalition = data.coalition_id if isinstance(data, CommitmentMade) else None
    if coalition is not None and not _coalition_exists(partners.ledger, coalition, coalitions):
        check.add("coalition_id", f"no coalition with id {coalition} is on record")
    partner = None
    if isinstance(data, PartnerRegistered):
        duplicate = None if allow_duplicate_names else partners.duplicate_of(data.name)
        if duplicate is not None:
            check.add("partner", f"{duplicate}; {_DUPLICATE_HINT}")
    else:
        try:
            partner = partners.resolve(command.partner)
        except _UnresolvedPartner as unresolved:
            if search_key(command.partner) not in registered_here:
                check.add("partner", str(unresolved))
            elif not check.problems:
                return [], None  # its registration row was refused: that is the problem
    if check.problems:
        return check.problems, None
    stamp = Stamp(command.occurred_at, recorded_by)
    try:
        if partner is None:
            assert isinstance(data, PartnerRegistered)
            partner = Partner.register(data, stamp)
            partners.add(partner, command.number)
        else:
            old_name = partner.name
            partners.ledger.execute(partner, _keep_other_preferences(data, partner), stamp)
            partners.renamed(partner, old_name)
    except LedgerError as refused:
        column_of = {"name": "partner"} if partner is None else {}
        fallback = _REFERENCE_COLUMN.get(data.TYPE, "type")
        return _refusal(refused, command.number, EVENT_COLUMNS, column_of, fallback), None
    return [], partner


def _keep_other_preferences(data: EventData, partner: Partner) -> EventData:
    """A profile_updated row's preferences and contacts, with the cells left blank kept as
    they were.

    A blank cell means "does not apply" in an events file, so a row that only fills
    ``language`` must not clear the partner's channels, accessibility and gratitude, and one
    that only gives a ``phone`` must not clear its emails.
    """
    if not isinstance(data, ProfileUpdated):
        return data
    update: dict[str, Any] = {}
    for name, current in (("preferences", partner.preferences), ("contacts", partner.contacts)):
        given_model = getattr(data, name)
        if given_model is not None:
            given = {field: getattr(given_model, field) for field in given_model.model_fields_set}
            update[name] = current.model_copy(update=given)
    return data.model_copy(update=update) if update else data


def _coalition_exists(ledger: Partnerships, coalition_id: UUID, known: dict[UUID, bool]) -> bool:
    if coalition_id not in known:
        try:
            ledger.get_coalition(coalition_id)
        except CoalitionNotFound:
            known[coalition_id] = False
        else:
            known[coalition_id] = True
    return known[coalition_id]


def _refusal(
    refused: LedgerError,
    row: int,
    columns: Sequence[str],
    column_of: Mapping[str, str],
    fallback: str | None,
) -> list[RowProblem]:
    """A domain refusal as row problems, each at the column it concerns."""
    if isinstance(refused, ValidationFailed):
        problems = []
        for problem in refused.problems:
            column = column_of.get(problem.field, problem.field)
            problems.append(
                RowProblem(row, column if column in columns else fallback, problem.message)
            )
        return problems
    return [RowProblem(row, fallback, refused.detail)]


# ---- the commands -----------------------------------------------------------------------

import_app = typer.Typer(
    help="Load partners or events from a CSV file: every row is checked, then all are recorded "
    "or none.",
    no_args_is_help=True,
)

# The same option as the other commands' (api.cli imports this module, so it cannot be shared
# from there without a cycle).
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite event log to use (default: $PLEDGER_DB or ./pledger.db)."),
]
DateOrderOption = Annotated[
    DateOrder | None,
    typer.Option(
        "--date-order",
        help="How the file writes day and month: mdy (3/15/2026) or dmy (15/03/2026, "
        "15.03.2026). Dates like 2026-03-15 are read either way.",
        case_sensitive=False,
    ),
]
AllowDuplicateNames = Annotated[
    bool,
    typer.Option(
        "--allow-duplicate-names",
        help="Register a partner even when another partner has the same name "
        "(events files can then refer to either only by id).",
    ),
]


@import_app.command("partners")
def import_partners_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="Columns: name, kind, roles, communities, region, channels, language, "
            "accessibility, gratitude, checkin_every_days, email, phone, address, "
            "contact_name, contact_role (and optionally occurred_at, the day the "
            "relationship began). List cells are separated by ';'. "
            "`pledger import template partners` prints an example.",
            show_default=False,
        ),
    ],
    allow_duplicate_names: AllowDuplicateNames = False,
    date_order: DateOrderOption = None,
    db: DbOption = None,
) -> None:
    """Register one partner per row, with its agreed check-in cadence when given."""
    plan, recorded, _ = _import(file, db, plan_partners, allow_duplicate_names, date_order)
    partners = len({r.stream_id for r in recorded})
    typer.echo(
        f"{_rerun_note(plan)}Recorded {partners} partners ({len(recorded)} events) "
        f"from {file.name}."
    )


@import_app.command("events")
def import_events_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="Columns: partner (id or unique name), type, occurred_at, then one per field "
            "name, blank where it does not apply. List cells are separated by ';'. "
            "`pledger import template events` prints an example.",
            show_default=False,
        ),
    ],
    allow_duplicate_names: AllowDuplicateNames = False,
    date_order: DateOrderOption = None,
    db: DbOption = None,
) -> None:
    """Append one event per row to its partner's history, in file order."""
    plan, recorded, earlier = _import(file, db, plan_events, allow_duplicate_names, date_order)
    partners = len({r.stream_id for r in recorded})
    new = sum(r.type == PartnerRegistered.TYPE for r in recorded)
    registered = f" ({new} of them new)" if new else ""
    typer.echo(
        f"{_rerun_note(plan)}Recorded {len(recorded)} events for {partners} partners"
        f"{registered} from {file.name}."
    )
    from api.wiring import cli_settings  # here: api.wiring needs this module (see _import)

    _say_history_before_registration(earlier, cli_settings(db).zone)


def _say_history_before_registration(
    earlier: Sequence[tuple[str, int, datetime]], zone: tzinfo, *, listed: int = 10
) -> None:
    """Tell that history older than a partner's registration was recorded, and for whom."""
    if not earlier:
        return
    events = sum(count for _, count, _ in earlier)
    typer.echo(
        f"{events} of these events happened before their partner was registered. They count "
        "from the day they happened: each relationship now begins at its earliest entry, "
        "and questions about past dates include it."
    )
    for name, count, registered in earlier[:listed]:
        day = day_of(registered, zone).isoformat()
        typer.echo(f"  {name}: {count} event{'s' * (count != 1)} before its registration on {day}")
    if len(earlier) > listed:
        more = len(earlier) - listed
        typer.echo(f"  and {more} more partner{'s' * (more != 1)}")


# Two example rows of each file, the events rows about the partners rows' first partner: a
# new user can import both as they are, then replace them with their own.
TEMPLATE_ROWS: dict[str, tuple[dict[str, str], ...]] = {
    "partners": (
        {
            "name": "Eastside Tenants Union",
            "kind": "organization",
            "roles": "advisory_member; speaker",
            "communities": "tenants; youth",
            "region": "Eastside",
            "channels": "email; in_person",
            "language": "es",
            "accessibility": "evening meetings; interpreter",
            "gratitude": "public_acknowledgment",
            "checkin_every_days": "30",
            "email": "office@eastsidetenants.example.org",
            "phone": "(559) 555-0142",
            "address": "412 E Main St, Visalia, CA 93291",
            "contact_name": "Rosa Delgado; Sam Ortiz",
            "contact_role": "Organizer; Treasurer",
            "occurred_at": "2025-09-15",
        },
        {
            "name": "José Ramírez",
            "kind": "individual",
            "roles": "grant_reviewer",
            "communities": "farmworkers",
            "region": "South County",
            "channels": "text; phone",
            "language": "es",
            "checkin_every_days": "60",
            "phone": "+1 559 555 0188",
            "occurred_at": "2026-01-05",
        },
    ),
    "events": (
        {
            "partner": "Eastside Tenants Union",
            "type": "meeting_held",
            "occurred_at": "2026-01-20 18:00",
            "kind": "listening_session",
            "location": "theirs",
            "summary": "Listening session on repairs; 22 residents",
            "attendees": "Rosa Delgado; Sam Ortiz",
        },
        {
            "partner": "Eastside Tenants Union",
            "type": "commitment_made",
            "occurred_at": "2026-01-20 18:30",
            "commitment_id": "C-2026-001",
            "owed_by": "us",
            "description": "Pay a stipend for hosting the listening session",
            "due_on": "2026-02-15",
            "resource": "financial",
            "amount": "500.00",
            "currency": "USD",
        },
    ),
}


def template_csv(kind: str) -> str:
    """A ``kind`` file's header (``partners`` or ``events``) and two example rows, as CSV
    text (RFC 4180, with CRLF line ends as spreadsheets write them). Raises KeyError for
    another kind."""
    columns = (*PARTNER_COLUMNS, "occurred_at") if kind == "partners" else EVENT_COLUMNS
    rows = TEMPLATE_ROWS[kind]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class TemplateKind(StrEnum):
    PARTNERS = "partners"
    EVENTS = "events"


@import_app.command("template")
def import_template_command(
    kind: Annotated[TemplateKind, typer.Argument(help="Which file: partners or events.")],
) -> None:
    """Print a file's header and two example rows (they import as they are; the events rows
    are about the partners rows' first partner). Save it and open it in a spreadsheet."""
    typer.echo(template_csv(kind.value), nl=False)


def rerun_summary(plan: Plan) -> str:
    """``47 rows already recorded, 3 new`` (issue 12), or "" when no row was recorded before."""
    if not plan.already_recorded:
        return ""
    already = plan.already_recorded
    return f"{already} row{'s' * (already != 1)} already recorded, {plan.new_rows} new"


def _rerun_note(plan: Plan) -> str:
    summary = rerun_summary(plan)
    return f"{summary}. " if summary else ""


def save_plan(ledger: Partnerships, plan: Plan) -> list[Recorded]:
    """Record a clean plan's events and each row's fingerprint in one transaction (the
    library's save, with the fingerprints for the recorder); [] when every row was recorded
    before. Raises IntegrityError when another writer changed one of the partners (or
    recorded one of the rows) meanwhile, Busy when PostgreSQL's log stayed locked. Each
    Recorded's ``data`` is left empty (callers count)."""
    if plan.problems:
        msg = "a plan with problems is never saved"
        raise ValueError(msg)
    if not plan.aggregates:
        return []
    # Callers report counts, ids and positions, never each event's data.
    return ledger.save_batch(plan.aggregates, with_data=False, import_rows=plan.rows)


def _import(
    file: Path,
    db: str | None,
    planner: Callable[..., Plan],
    allow_duplicate_names: bool,
    date_order: DateOrder | None,
) -> tuple[Plan, list[Recorded], list[tuple[str, int, datetime]]]:
    """Read, check every row, save all in one transaction; or exit 1 having saved nothing.
    Returns the plan, what was recorded, and the history it holds from before a partner's
    registration (:meth:`Plan.history_before_registration`)."""
    try:
        table = read_table(file)
    except ImportFileError as unreadable:
        typer.echo(f"error: {unreadable}", err=True)
        raise typer.Exit(1) from None
    # Here, not at the top: api.wiring needs api.service, which imports this module.
    from api.wiring import cli_settings, cli_user, open_ledger

    now = datetime.now(UTC)  # one "now" for every row without occurred_at
    settings = cli_settings(db)
    ledger = open_ledger(settings)
    # The cyclic garbage collector would walk every row, aggregate and event built so far
    # again and again while the import keeps them all (a sixth of a 100,000-row import's CPU
    # time); what it builds is freed by reference counting, and the command ends soon after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _progress("Checking rows", len(table.rows), len(table.rows)) as advance:
            plan = planner(
                ledger,
                table,
                recorded_by=cli_user(),
                now=now,
                allow_duplicate_names=allow_duplicate_names,
                advance=advance,
                date_order=date_order,
                zone=settings.zone,
            )
        if plan.problems:
            _refuse(file, plan)
        events = sum(len(partner.pending_events) for partner in plan.aggregates)
        earlier = plan.history_before_registration()  # saving empties the pending events
        with _progress("Recording events", len(table.rows), events) as advance:
            try:
                recorded = save_plan(ledger, plan)
            except IntegrityError:
                typer.echo(
                    "error: another writer changed these partners while the file was being "
                    "checked; nothing was recorded. Run the import again.",
                    err=True,
                )
                raise typer.Exit(1) from None
            except Busy as busy:  # PostgreSQL: another save held the log past the lock timeout
                typer.echo(f"error: {busy.detail}", err=True)
                raise typer.Exit(1) from None
            advance(len(recorded))
            return plan, recorded, earlier
    finally:
        if collecting:
            gc.enable()
        ledger.close()


def _refuse(file: Path, plan: Plan) -> None:
    for problem in plan.problems:
        typer.echo(str(problem), err=True)
    count = len(plan.problems)
    rows = len({p.row for p in plan.problems})
    typer.echo(
        f"{file.name}: {count} problem{'s' * (count != 1)} in {rows} row{'s' * (rows != 1)}; "
        "nothing was recorded.",
        err=True,
    )
    raise typer.Exit(1)


def _progress(
    description: str, rows: int, total: int | None
) -> AbstractContextManager[Callable[[int], None]]:
    if rows < PROGRESS_MIN_ROWS:
        return nullcontext(_no_progress)
    return progress_bar(description, total)
