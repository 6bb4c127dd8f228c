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
import io
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from uuid import UUID

import typer
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from api.progress import progress_bar
from api.settings import Settings
from api.wiring import cli_user, open_ledger
from domain.application import Partnerships, Recorded
from domain.chained import Stamp
from domain.errors import (
    Busy,
    CoalitionNotFound,
    LedgerError,
    PartnerNotFound,
    ValidationFailed,
)
from domain.partner import Partner, check_not_future
from domain.serialization import DATA_MODELS, EVENT_CLASSES
from domain.values import (
    INSTANT_PATTERN,
    CheckinCadenceAgreed,
    CommitmentMade,
    EntryRetracted,
    EventData,
    PartnerRegistered,
    Preferences,
    ProfileUpdated,
    control_problem,
    name_key,
    show_controls,
)

__all__ = [
    "EVENT_COLUMNS",
    "PARTNER_COLUMNS",
    "PARTNER_EVENT_TYPES",
    "EventRow",
    "ImportFileError",
    "InvalidRow",
    "PartnerRow",
    "Plan",
    "Row",
    "RowProblem",
    "Table",
    "check_columns",
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

PREFERENCE_FIELDS: tuple[str, ...] = tuple(Preferences.model_fields)
PARTNER_COLUMNS: tuple[str, ...] = (
    "name",
    "kind",
    "roles",
    "communities",
    "region",
    *PREFERENCE_FIELDS,
    "checkin_every_days",
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
    - {"preferences"}
    | set(PREFERENCE_FIELDS)
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
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INSTANT = re.compile(INSTANT_PATTERN)


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
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets often start a UTF-8 file with a BOM
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ImportFileError(
            f"{path}: is not UTF-8 text (line {line} has the byte 0x{raw[error.start]:02x}); "
            "save it as 'CSV UTF-8'"
        ) from None
    if not text.strip():
        raise ImportFileError(f"{path}: is empty; its first row must name the columns")
    return parse_table(text, source=str(path))


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
                # Trimmed, but never of a control character (str.strip() takes U+001C-U+001F
                # and U+0085 for spaces): the field's own check must see it and refuse it.
                value = cell if control_problem(cell) is not None else cell.strip()
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


def parse_occurred_at(text: str | None, now: datetime, row: int) -> datetime:
    """An RFC 3339 instant with its timezone, not in the future; ``now`` when the cell is blank."""
    if text is None:
        return now
    example = "write it as RFC 3339, such as 2026-01-05T15:00:00Z"
    try:
        # The grammar first: fromisoformat alone would also read 20270105 or 2027-W01.
        if _INSTANT.fullmatch(text) is None:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRow(
            [RowProblem(row, "occurred_at", f"{text!r} is not a time; {example}")]
        ) from None
    if moment.tzinfo is None:
        message = f"{text!r} has no timezone; add Z for UTC or an offset such as -05:00"
        raise InvalidRow([RowProblem(row, "occurred_at", message)])
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
) -> M:
    """Build ``model`` from cell texts by field name; the preference fields nest themselves."""
    column_of = column_of or {}
    payload: dict[str, Any] = {}
    preferences: dict[str, Any] = {}
    nests = "preferences" in model.model_fields
    for name, text in fields.items():
        if nests and name in PREFERENCE_FIELDS:
            preferences[name] = _cell_value(Preferences, name, text)
        else:
            payload[name] = _cell_value(model, name, text)
    if preferences:
        payload["preferences"] = preferences
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            name = _field_of(detail["loc"], preferences)
            column = column_of.get(name, name)
            problems.append(RowProblem(row, column, _describe(detail, type_name)))
        raise InvalidRow(problems) from None


def _cell_value(model: type[BaseModel], name: str, text: str) -> Any:
    """A cell's text as the field wants it: a list split on ``;``, a whole number, or text.

    Everything else (dates, decimals, ids, enums) pydantic parses from the text itself, so an
    amount goes from the cell's characters straight to ``Decimal``, never through a float.
    """
    info = model.model_fields.get(name)
    if info is None:
        return text  # not a field of this type: validation names the column
    if _is_list(info.annotation):
        return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
    if info.annotation is int and _INTEGER.fullmatch(text):
        return int(text)  # integer fields are strict: a cell's text would not do
    return text


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_list(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return origin in (tuple, list)


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
    if kind == "extra_forbidden":
        return f"does not apply to {type_name}; leave it blank" if type_name else "is not a field"
    if kind == "enum":
        return f"{value!r} is not allowed; use {detail.get('ctx', {}).get('expected', '')}"
    if kind.startswith("date_"):
        return f"{value!r} is not a date; write it as YYYY-MM-DD"
    if kind.startswith("decimal_"):
        return f"{value!r} is not a number; write amounts like 1250.00"
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


def partner_row(row: Row, now: datetime) -> PartnerRow:
    check = _RowCheck(row.number)
    cells = dict(row.cells)
    occurred_at = check.attempt(
        lambda: parse_occurred_at(cells.pop("occurred_at", None), now, row.number)
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


def event_row(row: Row, now: datetime) -> EventRow:
    check = _RowCheck(row.number)
    cells = dict(row.cells)
    partner = cells.pop("partner", None)
    type_name = cells.pop("type", None)
    occurred_at = check.attempt(
        lambda: parse_occurred_at(cells.pop("occurred_at", None), now, row.number)
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
                model, fields, row.number, column_of=column_of, type_name=type_name
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


@dataclass
class _Partners:
    """The partners an import touches: each loaded from the ledger at most once, plus new ones."""

    ledger: Partnerships
    touched: dict[UUID, Partner] = field(default_factory=dict)
    _ids_by_name: dict[str, set[UUID]] | None = None
    _missing: set[UUID] = field(default_factory=set)
    _registered_on: dict[str, int] = field(default_factory=dict)

    @property
    def ids_by_name(self) -> dict[str, set[UUID]]:
        """Partner ids by the :func:`name_key` of their current name (NFD + case folding: one
        name however it was typed), read from the log on first use (only names need it)."""
        if self._ids_by_name is None:
            names = partner_names(self.ledger)
            names.update({partner_id: p.name for partner_id, p in self.touched.items()})
            self._ids_by_name = defaultdict(set)
            for partner_id, name in names.items():
                self._ids_by_name[name_key(name)].add(partner_id)
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
        """The partner a cell names: by id, or by a name that exactly one partner has."""
        try:
            partner_id = UUID(reference)
        except ValueError:
            pass
        else:
            try:
                return self.get(partner_id)
            except PartnerNotFound as missing:
                raise _UnresolvedPartner(missing.detail) from None
        ids = self.ids_by_name.get(name_key(reference), set())
        if not ids:
            raise _UnresolvedPartner(f"no partner named {reference!r} is on record")
        if len(ids) > 1:
            listed = ", ".join(sorted(str(i) for i in ids))
            raise _UnresolvedPartner(
                f"{len(ids)} partners are named {reference!r}; give the id instead ({listed})"
            )
        (partner_id,) = ids
        return self.get(partner_id)

    def duplicate_of(self, name: str) -> str | None:
        """Why a new partner may not take ``name``, or None when no partner has it yet."""
        ids = self.ids_by_name.get(name_key(name))
        if not ids:
            return None
        row = self._registered_on.get(name_key(name))
        if row is not None:
            return f"row {row} already registers a partner named {name!r}"
        return f"a partner named {name!r} is already on record (id {min(str(i) for i in ids)})"

    def add(self, partner: Partner, row: int) -> None:
        self.touched[partner.id] = partner
        self._registered_on.setdefault(name_key(partner.name), row)
        if self._ids_by_name is not None:
            self._ids_by_name[name_key(partner.name)].add(partner.id)

    def renamed(self, partner: Partner, old_name: str) -> None:
        if self._ids_by_name is not None and partner.name != old_name:
            self._ids_by_name[name_key(old_name)].discard(partner.id)
            self._ids_by_name[name_key(partner.name)].add(partner.id)

    def with_new_events(self) -> list[Partner]:
        return [p for p in self.touched.values() if p.pending_events]


# ---- whole files -> the aggregates to save ------------------------------------------------

_DUPLICATE_HINT = "give another name, or pass --allow-duplicate-names"


@dataclass
class Plan:
    """What an import would record (aggregates holding new events), or why it cannot."""

    aggregates: list[Partner] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def _no_progress(_n: int) -> None:
    return None


def plan_partners(
    ledger: Partnerships,
    table: Table,
    *,
    recorded_by: str,
    now: datetime,
    allow_duplicate_names: bool = False,
    advance: Callable[[int], None] = _no_progress,
) -> Plan:
    """Register a partner per row, with its cadence; every row checked, nothing saved."""
    plan = Plan()
    header = check_columns(table.columns, _PARTNER_ALLOWED, _PARTNER_REQUIRED, "a partners")
    plan.problems = [*header, *table.problems]
    if header:
        return plan  # with the columns wrong, every row would only repeat it
    partners = _Partners(ledger)
    column_of = {"every_days": "checkin_every_days"}
    for row in table.rows:
        advance(1)
        try:
            command = partner_row(row, now)
        except InvalidRow as invalid:
            plan.problems.extend(invalid.problems)
            continue
        name = command.registration.name
        duplicate = None if allow_duplicate_names else partners.duplicate_of(name)
        if duplicate is not None:
            plan.problems.append(RowProblem(row.number, "name", f"{duplicate}; {_DUPLICATE_HINT}"))
            continue
        stamp = Stamp(command.occurred_at, recorded_by)
        try:
            partner = Partner.register(command.registration, stamp)
            if command.cadence is not None:
                partner.execute(command.cadence, stamp)
        except LedgerError as refused:
            plan.problems.extend(_refusal(refused, row.number, _PARTNER_ALLOWED, column_of, None))
            continue
        partners.add(partner, row.number)
    plan.aggregates = partners.with_new_events()
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
) -> Plan:
    """Apply each row in file order to its partner, in memory; every row checked, nothing saved."""
    plan = Plan()
    header = check_columns(table.columns, EVENT_COLUMNS, _EVENT_REQUIRED, "an events")
    plan.problems = [*header, *table.problems]
    if header:
        return plan
    partners = _Partners(ledger)
    coalitions: dict[UUID, bool] = {}
    for row in table.rows:
        advance(1)
        try:
            command = event_row(row, now)
        except InvalidRow as invalid:
            plan.problems.extend(invalid.problems)
            continue
        plan.problems.extend(
            _apply_event(command, partners, coalitions, recorded_by, allow_duplicate_names)
        )
    plan.aggregates = partners.with_new_events()
    plan.problems = _in_sheet_order(plan.problems, table.columns)
    return plan


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
) -> list[RowProblem]:
    """Run one row's command on its partner in memory; the problems, or [] once it applied."""
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
            check.add("partner", str(unresolved))
    if check.problems:
        return check.problems
    stamp = Stamp(command.occurred_at, recorded_by)
    try:
        if partner is None:
            assert isinstance(data, PartnerRegistered)
            partners.add(Partner.register(data, stamp), command.number)
        else:
            old_name = partner.name
            partner.execute(_keep_other_preferences(data, partner), stamp)
            partners.renamed(partner, old_name)
    except LedgerError as refused:
        column_of = {"name": "partner"} if partner is None else {}
        fallback = _REFERENCE_COLUMN.get(data.TYPE, "type")
        return _refusal(refused, command.number, EVENT_COLUMNS, column_of, fallback)
    return []


def _keep_other_preferences(data: EventData, partner: Partner) -> EventData:
    """A profile_updated row's preferences, with the cells left blank kept as they were.

    A blank cell means "does not apply" in an events file, so a row that only fills
    ``language`` must not clear the partner's channels, accessibility and gratitude.
    """
    if not isinstance(data, ProfileUpdated) or data.preferences is None:
        return data
    given = {name: getattr(data.preferences, name) for name in data.preferences.model_fields_set}
    merged = partner.preferences.model_copy(update=given)
    return data.model_copy(update={"preferences": merged})


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
            "accessibility, gratitude, checkin_every_days (and optionally occurred_at). "
            "List cells are separated by ';'.",
            show_default=False,
        ),
    ],
    allow_duplicate_names: AllowDuplicateNames = False,
    db: DbOption = None,
) -> None:
    """Register one partner per row, with its agreed check-in cadence when given."""
    recorded = _import(file, db, plan_partners, allow_duplicate_names)
    partners = len({r.stream_id for r in recorded})
    typer.echo(f"Recorded {partners} partners ({len(recorded)} events) from {file.name}.")


@import_app.command("events")
def import_events_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="Columns: partner (id or unique name), type, occurred_at, then one per field "
            "name, blank where it does not apply. List cells are separated by ';'.",
            show_default=False,
        ),
    ],
    allow_duplicate_names: AllowDuplicateNames = False,
    db: DbOption = None,
) -> None:
    """Append one event per row to its partner's history, in file order."""
    recorded = _import(file, db, plan_events, allow_duplicate_names)
    partners = len({r.stream_id for r in recorded})
    new = sum(r.type == PartnerRegistered.TYPE for r in recorded)
    registered = f" ({new} of them new)" if new else ""
    typer.echo(
        f"Recorded {len(recorded)} events for {partners} partners{registered} from {file.name}."
    )


def _import(
    file: Path, db: str | None, planner: Callable[..., Plan], allow_duplicate_names: bool
) -> list[Recorded]:
    """Read, check every row, save all in one transaction; or exit 1 having saved nothing."""
    try:
        table = read_table(file)
    except ImportFileError as unreadable:
        typer.echo(f"error: {unreadable}", err=True)
        raise typer.Exit(1) from None
    now = datetime.now(UTC)  # one "now" for every row without occurred_at
    ledger = open_ledger(Settings.from_env(db=db))
    try:
        with _progress("Checking rows", len(table.rows), len(table.rows)) as advance:
            plan = planner(
                ledger,
                table,
                recorded_by=cli_user(),
                now=now,
                allow_duplicate_names=allow_duplicate_names,
                advance=advance,
            )
        if plan.problems:
            _refuse(file, plan)
        events = sum(len(partner.pending_events) for partner in plan.aggregates)
        with _progress("Recording events", len(table.rows), events) as advance:
            try:
                recorded = ledger.save_batch(plan.aggregates)
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
            return recorded
    finally:
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
