"""Issue 10, item 13: a stored event that no longer decodes (damaged storage).

The answer is a problem+json naming the event's position, never a bare ``text/plain`` 500;
nothing is recorded by a write that meets it; the rest of the ledger is served. On both stores.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from api.settings import Settings
from domain.chained import Stamp
from domain.values import PartnerRegistered, PaymentMade, PaymentPurpose
from tests.api.test_audit_cli import read_state, write_state

if TYPE_CHECKING:
    from tests.api.conftest import Api

WHEN = Stamp(datetime(2025, 1, 6, 10, 0, tzinfo=UTC), "cli:legacy")
CORRUPTIONS = [
    pytest.param(lambda state: b'{"data": {"amount": "350.50"', id="invalid-json"),
    pytest.param(
        lambda state: state.replace(b'"amount":"350.50"', b'"amount":{"value":"350.50"}'),
        id="amount-of-the-wrong-type",
    ),
    pytest.param(lambda state: state.replace(b'"recorded_by"', b'"recorder"'), id="field-missing"),
]


@pytest.fixture
def damaged(api: Api, settings: Settings, request: pytest.FixtureRequest) -> tuple[str, str, int]:
    """A damaged partner (its payment's stored state corrupted) beside a sound one; the damaged
    one recorded as another process (the CLI) would, so that no cache of this app holds it.
    Yields (damaged id, sound id, position of the damaged event)."""
    ledger = api.app.state.services.ledger
    damaged_id = ledger.register_partner(
        PartnerRegistered(name="Damaged Partner", kind="organization"), WHEN
    ).stream_id
    payment = PaymentMade(amount=Decimal("350.50"), currency="USD", purpose=PaymentPurpose.STIPEND)
    position = ledger.record(damaged_id, payment, WHEN).position
    api.app.state.services.keeper.catch_up()
    sound_id = api.register("Sound Partner")
    corrupt: Callable[[bytes], bytes] = request.param
    state = read_state(settings, position)
    assert corrupt(state) != state
    write_state(settings, position, corrupt(state))
    # These answers are 5xx on purpose: the fixture's "no server errors" hook steps aside.
    api.client.event_hooks = {"request": [], "response": []}
    return str(damaged_id), sound_id, position


def assert_damaged(api: Api, response: Any, position: int, stream_id: str) -> None:
    body = api.assert_problem(response, 500, f"at position {position}", "pledger verify")
    assert body["position"] == position
    assert body["stream_id"] == stream_id
    assert body["version"] == 2


@pytest.mark.parametrize("damaged", CORRUPTIONS, indirect=True)
def test_reads_that_meet_a_damaged_event_name_its_position(
    api: Api, damaged: tuple[str, str, int]
) -> None:
    damaged_id, sound_id, position = damaged

    assert_damaged(api, api.get(f"/v1/partners/{damaged_id}/timeline"), position, damaged_id)
    assert_damaged(api, api.get("/v1/events"), position, damaged_id)

    # The rest of the ledger is served.
    assert api.read(f"/v1/partners/{sound_id}/timeline")["events"]
    after = api.read("/v1/events", after=position)["events"]
    assert [e["stream_id"] for e in after] == [sound_id]
    assert api.read("/v1/partners")["partners"]


@pytest.mark.parametrize("damaged", CORRUPTIONS, indirect=True)
def test_a_write_to_a_partner_with_a_damaged_event_names_it_and_records_nothing(
    api: Api, damaged: tuple[str, str, int]
) -> None:
    damaged_id, sound_id, position = damaged
    before = api.read("/v1/events", after=position)["events"]
    body = {"type": "stage_changed", "stage": "exploring", "occurred_at": "2025-02-01T00:00:00Z"}

    response = api.client.post(f"/v1/partners/{damaged_id}/events", json=body, headers=api.steward)

    assert_damaged(api, response, position, damaged_id)
    assert api.read("/v1/events", after=position)["events"] == before
    api.append(sound_id, "stage_changed", "2025-02-01T00:00:00Z", stage="exploring")
