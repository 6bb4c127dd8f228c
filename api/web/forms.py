"""Forms drawn from the payload models: one field list per event type, no rule of their own.

A form's fields come from the event's pydantic model (its annotations say which control fits:
a choice, a date, a number, one item per line); what a person submits is turned back into the
same body the JSON API takes and validated by the same models, so a refused form shows the
API's own words beside each field. A new event type needs no new page, only its model.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from domain.serialization import DATA_MODELS
from domain.values import EventData

__all__ = [
    "CHOSEN_IDS",
    "EVENT_LABELS",
    "FieldSpec",
    "body_from_form",
    "event_models",
    "field_of_problem",
    "field_specs",
    "readable",
]

Control = Literal[
    "text", "textarea", "lines", "records", "select", "checkboxes", "date", "number", "money"
]

# What each event type is called on buttons and in the timeline.
EVENT_LABELS: dict[str, str] = {
    "partner_registered": "Registered",
    "profile_updated": "Profile updated",
    "contact_made": "Contact",
    "meeting_held": "Meeting",
    "checkin_cadence_agreed": "Check-in cadence agreed",
    "commitment_made": "Commitment made",
    "commitment_fulfilled": "Commitment fulfilled",
    "commitment_renegotiated": "Commitment renegotiated",
    "commitment_cancelled": "Commitment cancelled",
    "payment_made": "Payment",
    "thanks_expressed": "Thanks",
    "feedback_received": "Feedback received",
    "outcome_shared": "Outcome shared",
    "trust_breach_recorded": "Trust breach",
    "trust_repaired": "Trust repaired",
    "stage_changed": "Stage changed",
    "agreement_signed": "Agreement signed",
    "entry_retracted": "Retraction",
    "coalition_formed": "Coalition formed",
    "member_joined": "Member joined",
    "member_left": "Member left",
}

_LONG_TEXT = {"summary", "description", "note", "reason", "shared_vision"}
_HINTS = {
    "lines": "One per line.",
    "money": "A decimal amount such as 150.00, without thousands separators.",
    "currency": "Three letters (ISO 4217), such as USD.",
    "commitment_id": "Leave blank and the ledger makes one.",
    "breach_id": "Leave blank and the ledger makes one.",
    "feedback_id": "Leave blank and the ledger makes one.",
    "every_days": "Between 1 and 366 days.",
}
# Ids a form chooses among the partner's own (open commitments, open breaches, feedback).
CHOSEN_IDS = ("commitment_id", "for_commitment_id", "breach_id", "feedback_id", "version")
_CHOSEN_LABELS = {"version": "Entry to retract", "for_commitment_id": "For the commitment"}
CREATING_TYPES = {
    "commitment_made": "commitment_id",
    "trust_breach_recorded": "breach_id",
    "feedback_received": "feedback_id",
}


_SPOKEN = {"mou": "MOU", "in_kind": "In kind", "us": "Us"}


def readable(value: str) -> str:
    """``fulfilled_on_time`` -> ``Fulfilled on time``: how a stored value reads to people."""
    if value in _SPOKEN:
        return _SPOKEN[value]
    text = value.replace("_", " ")
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class FieldSpec:
    """One control of a form: its ``name`` (dotted for nested models, as the API's error
    locations are), label, kind, whether it must be filled, and its choices."""

    name: str
    label: str
    control: Control
    required: bool
    options: tuple[tuple[str, str], ...] = ()
    hint: str = ""
    many: bool = False
    whole_number: bool = False  # read as an integer, whatever the control (a chosen version)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The core type of an annotation and whether ``None`` is allowed."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            annotation = args[0]
        else:
            return annotation, optional


def _control(name: str, core: Any) -> tuple[Control, tuple[tuple[str, str], ...], bool]:
    origin = typing.get_origin(core)
    if origin is tuple:
        item, _ = _unwrap(typing.get_args(core)[0])
        if isinstance(item, type) and issubclass(item, Enum):
            return "checkboxes", tuple((m.value, readable(m.value)) for m in item), True
        if isinstance(item, type) and issubclass(item, BaseModel):
            # One item a line, its fields in order separated by ";" (contact people).
            return "records", tuple((name, readable(name)) for name in item.model_fields), True
        return "lines", (), True
    if isinstance(core, type):
        if issubclass(core, Enum):
            return "select", tuple((m.value, readable(m.value)) for m in core), False
        if issubclass(core, bool):
            return "select", (("true", "Yes"), ("false", "No")), False
        if issubclass(core, int):
            return "number", (), False
        if issubclass(core, Decimal):
            return "money", (), False
        if issubclass(core, date) and not issubclass(core, datetime):
            return "date", (), False
        if issubclass(core, UUID):
            return "select", (), False
    if name in _LONG_TEXT:
        return "textarea", (), False
    return "text", (), False


def field_specs(
    model: type[BaseModel],
    *,
    event_type: str | None = None,
    choices: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    prefix: str = "",
    all_optional: bool = False,
) -> list[FieldSpec]:
    """The form fields of a payload model, in its declared order.

    ``choices`` fills the selects whose values come from the ledger (partners, coalitions,
    a partner's open commitments), keyed by field name. ``all_optional`` is for updates, where
    a blank field means "leave as it is".
    """
    choices = choices or {}
    specs: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        core, optional = _unwrap(info.annotation)
        dotted = f"{prefix}{name}"
        if isinstance(core, type) and issubclass(core, BaseModel):
            specs += field_specs(
                core,
                event_type=event_type,
                choices=choices,
                prefix=f"{dotted}.",
                all_optional=True,
            )
            continue
        control, options, many = _control(name, core)
        whole_number = (
            isinstance(core, type) and issubclass(core, int) and not issubclass(core, bool)
        )
        label = readable(name).replace(" id", " ID")
        if name in choices and not (event_type and CREATING_TYPES.get(event_type) == name):
            control, options = "select", tuple(choices[name])
            label = _CHOSEN_LABELS.get(name, readable(name.removesuffix("_id")))
        required = info.is_required() and not optional and not all_optional
        hint = _HINTS.get(name) or _HINTS.get(control, "")
        if control == "records":
            parts = "; ".join(label.lower() for _value, label in options)
            hint = f"One per line: {parts} (leave a part out with nothing between the ;)."
        if name in CREATING_TYPES.values() and CREATING_TYPES.get(event_type or "") != name:
            hint = ""
        if all_optional and not prefix:
            hint = f"{hint} Leave blank to keep it as it is.".strip()
        specs.append(
            FieldSpec(
                name=dotted,
                label=label,
                control=control,
                required=required,
                options=options,
                hint=hint,
                many=many,
                whole_number=whole_number,
            )
        )
    return specs


def body_from_form(specs: Sequence[FieldSpec], form: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body a form stands for: a blank field is a field not sent, lists are one item
    per line (or every box ticked), numbers are read as numbers; nothing else is changed, so
    the payload model refuses exactly what the API would.

    ``form`` maps each field name to its submitted value (a list for ticked boxes).
    """
    body: dict[str, Any] = {}
    for spec in specs:
        raw = form.get(spec.name)
        value: Any
        if spec.control == "checkboxes":
            ticked = [str(v) for v in (raw or [])]
            if not ticked and not spec.required:
                continue
            value = ticked
        elif raw is None or str(raw).strip() == "":
            continue
        elif spec.control == "lines":
            value = [line.strip() for line in str(raw).splitlines() if line.strip()]
        elif spec.control == "records":
            names = [name for name, _label in spec.options]
            value = [
                {
                    name: part.strip()
                    for name, part in zip(names, line.split(";"), strict=False)
                    if part.strip()
                }
                for line in str(raw).splitlines()
                if line.strip()
            ]
        elif spec.whole_number:
            text = str(raw).strip()
            value = int(text) if text.lstrip("-").isdigit() else text
        else:
            value = str(raw)
        _place(body, spec.name.split("."), value)
    return body


def field_of_problem(field: str, specs: Sequence[FieldSpec]) -> tuple[str, str]:
    """The form field a problem's dotted location belongs to, and where in it:
    ``contacts.emails.1`` -> (``contacts.emails``, ``line 2``), ``contacts.people.0.email`` ->
    (``contacts.people``, ``line 1, email``); a location that is a field itself -> (it, "")."""
    for spec in specs:
        if field.startswith(spec.name + "."):
            first, *rest = field[len(spec.name) + 1 :].split(".")
            where = f"line {int(first) + 1}" if first.isdigit() else first
            return spec.name, ", ".join([where, *rest])
    return field, ""


def _place(body: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        body = body.setdefault(part, {})
    body[path[-1]] = value


def event_models() -> dict[str, type[EventData]]:
    """The partner event types a record form exists for (registration has its own page)."""
    coalition_types = ("coalition_formed", "member_joined", "member_left", "partner_registered")
    return {t: m for t, m in DATA_MODELS.items() if m.ORDINARY and t not in coalition_types}
