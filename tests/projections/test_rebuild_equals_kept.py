"""A rebuild writes exactly the views that were kept a page at a time, on both stores.

The rebuild reads the log with SQL of its own and decodes only what its folds read (personal
values of the events in ``FOLDED_PERSONAL``, the digest's hashes by SQLite's JSON reader), so
this compares it, table by table, with the views the catch-up kept from the library's pages,
on a seeded random ledger (the demo's story, with format 2 personal data, retractions and one
partner's personal data erased), folded in the calling process and in worker processes; and
the digest and Merkle tree head with what the log's hashes give on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from uuid import UUID

import pytest

from api.demo import DemoPlan, build_demo
from api.settings import Settings
from api.wiring import Services, open_services
from domain.chained import Stamp
from domain.hashing import GENESIS, digest_step
from domain.merkle import event_leaf_hash, root_from_leaves
from domain.values import ErasureReason
from projections.store import VIEW_TABLES
from tests.projections.test_properties import tables

PLAN = DemoPlan(partners=16, months=60, seed=5, until=date(2026, 6, 1))


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    yield opened
    opened.close()


def record_random_ledger(services: Services) -> None:
    """The demo's story in batches, the views caught up after each (pages of the library's
    notifications), then one partner's personal data erased."""
    ledger = services.ledger
    partners: list[UUID] = []
    for batch in build_demo(PLAN):
        ledger.save_batch(batch)
        partners.extend(a.id for a in batch if a.__class__.__name__ == "Partner")
        services.keeper.catch_up()
    ledger.erase_personal_data(
        partners[3], ErasureReason.REQUEST, Stamp(datetime(2026, 6, 2, tzinfo=UTC), "test")
    )
    services.keeper.catch_up()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_rebuild_writes_the_views_kept_page_by_page(services: Services, workers: int) -> None:
    record_random_ledger(services)
    kept = tables(services)
    position = services.ledger.last_position()
    hashes = services.keeper.log.hashes(0, position)
    assert len(hashes) > 500
    assert any(r["name"].startswith("Erased") for r in kept["partners"]), "an erased partner"

    assert services.keeper.rebuild(workers=workers) == len(hashes)

    rebuilt = tables(services)
    for table in VIEW_TABLES:
        assert rebuilt[table] == kept[table], table
    digest = GENESIS
    for event_hash in hashes:
        digest = digest_step(digest, event_hash)
    assert services.view.chain_head() == (position, digest, len(hashes))
    root = root_from_leaves(map(event_leaf_hash, hashes))[1]
    assert services.view.tree_head(len(hashes)) == root
