"""A partner snapshot stored by the views before contacts existed reads as a partner without
contacts (issue 12 item 3), so an upgraded ledger's pages answer before any rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from projections.folds import PartnerSnapshot, no_contacts
from projections.snapshots import snapshot_from_json, snapshot_to_json


def test_a_snapshot_from_before_contacts_has_none() -> None:
    snap = PartnerSnapshot("p-1", profile={"name": "Eastside", "kind": "organization"})
    snap.registered_at = datetime(2025, 1, 6, tzinfo=UTC)
    stored = orjson.loads(snapshot_to_json(snap))
    assert "contacts" not in stored["profile"]

    again = snapshot_from_json("p-1", orjson.dumps(stored))

    assert again.profile == {"name": "Eastside", "kind": "organization", "contacts": no_contacts()}


def test_a_snapshot_keeps_the_contacts_it_holds() -> None:
    contacts = {"emails": ["a@example.org"], "phones": [], "address": None, "people": []}
    snap = PartnerSnapshot("p-1", profile={"name": "Eastside", "contacts": contacts})

    assert snapshot_from_json("p-1", snapshot_to_json(snap)).profile["contacts"] == contacts
