"""The grammar every payload model checks at the door (issue 10), and history read back as is.

Every text field and list item refuses control characters; names refuse bidirectional
controls; amounts and dates have one grammar. A stored event is read back with
``FROM_STORE``, which skips those checks: an event recorded before them still decodes
exactly as it was recorded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast
from uuid import uuid4

import pydantic
import pytest

from api.schemas import EXAMPLES
from domain.chained import ChainedAggregate, Stamp
from domain.partner import Partner
from domain.serialization import DATA_MODELS, TypedMapper
from domain.values import (
    FROM_STORE,
    CommitmentMade,
    PartnerRegistered,
    PaymentMade,
    control_problem,
    show_controls,
)

# A valid payload of every event type, with every text field and list filled in.
FULL_EXAMPLES: dict[str, dict[str, Any]] = {
    **EXAMPLES,
    "partner_registered": {
        "name": "Eastside Tenants Union",
        "kind": "organization",
        "roles": ["speaker"],
        "communities": ["tenants"],
        "region": "East",
        "preferences": {
            "channels": ["email"],
            "language": "es",
            "accessibility": ["captions"],
            "gratitude": ["public_acknowledgment"],
        },
    },
    "profile_updated": {
        "name": "Eastside Union",
        "roles": ["speaker"],
        "communities": ["tenants"],
        "region": "East",
        "preferences": {"language": "es", "accessibility": ["captions"], "gratitude": ["card"]},
    },
    "coalition_formed": {"name": "Valley", "shared_vision": "Homes", "agreed_measures": ["rent"]},
    "member_joined": {"partner_id": str(uuid4())},
    "member_left": {"partner_id": str(uuid4()), "reason": "Moved away."},
    "personal_data_erased": {
        "reason": "request",
        "fields": [{"stream_id": str(uuid4()), "version": 1, "fields": ["name"]}],
    },
}


def _string_places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a JSON-like value holds a string: every field and list item, at any depth."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _string_places(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _string_places(v, (*path, i))]
    return []


def _with(value: Any, path: tuple[Any, ...], text: str) -> Any:
    if not path:
        return text
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [_with(v, rest, text) if i == head else v for i, v in enumerate(value)]
    return {k: _with(v, rest, text) if k == head else v for k, v in value.items()}


CASES = [
    pytest.param(type_name, path, id=f"{type_name}:{'.'.join(map(str, path))}")
    for type_name, example in sorted(FULL_EXAMPLES.items())
    for path in _string_places(example)
]


def test_every_event_type_has_a_full_example() -> None:
    assert set(FULL_EXAMPLES) == set(DATA_MODELS)


@pytest.mark.parametrize(("type_name", "path"), CASES)
def test_every_string_field_and_item_refuses_a_nul(type_name: str, path: tuple[Any, ...]) -> None:
    model = DATA_MODELS[type_name]
    model.model_validate(FULL_EXAMPLES[type_name])  # the example itself is fine
    original = FULL_EXAMPLES[type_name]
    for place in path[:-1]:
        original = original[place]
    poisoned = _with(FULL_EXAMPLES[type_name], path, original[path[-1]][:1] + "\x00")

    with pytest.raises(pydantic.ValidationError) as refused:
        model.model_validate(poisoned)

    assert tuple(refused.value.errors()[0]["loc"]) == path


@pytest.mark.parametrize("char", ["\t", "\n", "\r", " ", "\u00a0", "\u200b", "\u2028"])
def test_tab_line_feed_carriage_return_and_other_characters_are_not_controls(char: str) -> None:
    assert control_problem(f"a{char}b") is None


@pytest.mark.parametrize(
    "code", [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]
)
def test_every_c0_c1_and_del_control_is_refused(code: int) -> None:
    problem = control_problem(f"ab{chr(code)}")

    assert problem is not None
    assert f"U+{code:04X} at character 3" in problem


def test_controls_are_shown_visibly() -> None:
    assert show_controls("A\x00B\x1b[2J\x7f\x85\tC\n") == "A\u2400B\u241b[2J\u2421\ufffd\tC\n"


# ---- money and dates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        "1__0",
        "_1",
        "1_",
        "1_000.5_0",
        " 10",
        "10\n",
        "1e3",
        "-1",
        "+1",
        ".5",
        "5.",
        "\u0665",
        "NaN",
        "",
    ],
)
def test_an_amount_is_ascii_digits_with_an_optional_fraction(amount: str) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        PaymentMade.model_validate({"amount": amount, "currency": "USD", "purpose": "grant"})

    assert refused.value.errors()[0]["loc"] == ("amount",)


@pytest.mark.parametrize("amount", [10, 10.5, True])
def test_an_amount_is_never_a_json_number(amount: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        PaymentMade.model_validate({"amount": amount, "currency": "USD", "purpose": "grant"})


def test_an_amount_is_recorded_exactly_as_sent_never_rounded() -> None:
    partner = Partner.register(
        PartnerRegistered(name="P", kind="organization"),
        Stamp(datetime(2026, 1, 1, tzinfo=UTC), "t"),
    )
    payment = PaymentMade.model_validate(
        {"amount": "1.000000000000000000000000000001", "currency": "USD", "purpose": "grant"}
    )

    with pytest.raises(Exception, match="at most 2 decimal places"):
        partner.execute(payment, Stamp(datetime(2026, 1, 2, tzinfo=UTC), "t"))
    assert partner.version == 1


@pytest.mark.parametrize(
    "due_on", ["1798761600", 1798761600, "20270105", "2027-01-05T00:00:00", "2027-1-5"]
)
def test_a_date_is_yyyy_mm_dd_only(due_on: Any) -> None:
    body = {"owed_by": "us", "description": "x", "due_on": due_on, "resource": "time"}

    with pytest.raises(pydantic.ValidationError) as refused:
        CommitmentMade.model_validate(body)

    assert refused.value.errors()[0]["loc"] == ("due_on",)
    assert "write a date" in refused.value.errors()[0]["msg"]
    assert "2026-03-15" in refused.value.errors()[0]["msg"]


def test_a_date_in_its_form_is_read() -> None:
    body = {"owed_by": "us", "description": "x", "due_on": "2027-01-05", "resource": "time"}

    assert CommitmentMade.model_validate(body).due_on == date(2027, 1, 5)


# ---- history is read back as it was recorded ------------------------------------------------


def test_an_event_recorded_before_the_checks_still_decodes_unchanged() -> None:
    partner = Partner.register(
        PartnerRegistered.model_validate(
            {"name": "A\x00B\u202e", "kind": "organization", "roles": ["\x1b"]}, context=FROM_STORE
        ),
        Stamp(datetime(2026, 1, 1, tzinfo=UTC), "t"),
    )
    partner.execute(
        CommitmentMade.model_validate(
            {"owed_by": "us", "description": "\x07", "due_on": "2026-02-01", "resource": "time"},
            context=FROM_STORE,
        ),
        Stamp(datetime(2026, 1, 2, tzinfo=UTC), "t"),
    )
    mapper = TypedMapper()

    for event in cast(list[ChainedAggregate.Event], partner.collect_events()):
        restored = mapper.to_domain_event(mapper.to_stored_event(event))
        assert restored.data == event.data
        assert restored.hash == event.hash
    assert partner.name == "A\x00B\u202e"
