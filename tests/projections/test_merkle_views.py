"""The Merkle tree the views keep beside the digest (issue 15 item 3), on both stores.

Given events recorded (and taken in by the views a page at a time), the stored tree's head at
every size is the RFC 9162 root of the log's event hashes as stored; a rebuild (in this process
or in worker processes) writes the very same nodes; views made before the tree was kept make it
from the log when they next take an event in.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from api.settings import Settings
from api.wiring import Services, open_services
from domain.merkle import event_leaf_hash, inclusion_proof, root_from_leaves, verify_inclusion
from tests.projections.test_rebuild import record_partners


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    yield opened
    opened.close()


def _log_hashes(services: Services) -> list[str]:
    return [orjson.loads(n.state)["hash"] for n in services.ledger.notifications()]


def _nodes(services: Services) -> list[tuple[int, int, str, int | None]]:
    rows = services.view.select(
        "SELECT level, idx, hash, position FROM {p}merkle_nodes ORDER BY level, idx"
    )
    return [(r["level"], r["idx"], r["hash"], r["position"]) for r in rows]


def test_the_stored_tree_heads_are_the_roots_of_the_logs_hashes(services: Services) -> None:
    for first in range(0, 10, 3):  # several pages, so the tree grows across transactions
        record_partners(services, 3, first=first)
        services.keeper.catch_up()
    hashes = _log_hashes(services)
    leaves = [event_leaf_hash(h) for h in hashes]

    for size in range(len(leaves) + 1):
        assert services.view.tree_head(size) == root_from_leaves(leaves[:size])[1]
    last = services.ledger.last_position()
    assert services.view.tree_size_at(last) == len(hashes)
    index, leaf = services.view.leaves_at([last])[last]
    path = services.view.tree_computed(lambda nodes: inclusion_proof(nodes, index, len(leaves)))
    assert verify_inclusion(leaf, index, len(leaves), path, services.view.tree_head(len(leaves)))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_rebuild_writes_the_same_tree(services: Services, workers: int) -> None:
    for first in range(0, 9, 3):
        record_partners(services, 3, first=first)
        services.keeper.catch_up()
    kept = _nodes(services)

    services.keeper.rebuild(workers=workers)

    assert _nodes(services) == kept
    assert len([n for n in kept if n[0] == 0]) == services.ledger.last_position()


def test_views_made_before_the_tree_make_it_from_the_log(services: Services) -> None:
    record_partners(services, 5)
    services.keeper.catch_up()
    kept = _nodes(services)
    with services.view.datastore.transaction(commit=True) as c:
        c.execute(services.view._q("DELETE FROM {p}merkle_nodes"))

    record_partners(services, 1, first=5)
    services.keeper.catch_up()

    hashes = _log_hashes(services)
    assert len(_nodes(services)) > len(kept)
    assert services.view.tree_head(len(hashes)) == root_from_leaves(map(event_leaf_hash, hashes))[1]
    assert set(kept) <= set(_nodes(services))
