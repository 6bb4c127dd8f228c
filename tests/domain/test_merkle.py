"""The Merkle tree (RFC 9162 §2.1) against Certificate Transparency's published vectors, and
every proof of small trees against the RFC's recursive definition."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from domain.merkle import (
    EMPTY_ROOT,
    MerkleAppender,
    consistency_proof,
    event_leaf_hash,
    inclusion_proof,
    leaf_hash,
    needed_nodes,
    node_hash,
    tree_head,
    verify_consistency,
    verify_inclusion,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "ct_merkle_vectors.json").read_text()
)
LEAVES = [leaf_hash(bytes.fromhex(data)) for data in VECTORS["leaves"]]


def _stored(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect-subtree node an appender makes, as the views store them."""
    tree = MerkleAppender()
    nodes: dict[tuple[int, int], bytes] = {}
    for leaf in leaves:
        nodes.update({(level, index): h for level, index, h in tree.append(leaf)})
    return nodes


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH by RFC 9162 §2.1.1's recursion, straight from the text."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _hex(path: list[bytes]) -> list[str]:
    return [p.hex() for p in path]


def test_stored_nodes_are_ct_node_hashes() -> None:
    nodes = _stored(LEAVES)
    for level, row in enumerate(VECTORS["node_hashes"]):
        assert [nodes[(level, i)].hex() for i in range(len(row))] == row


@pytest.mark.parametrize("before", [0, 1, 5, 8])
def test_extending_by_event_hashes_makes_the_nodes_appending_makes(before: int) -> None:
    """The rebuild's one loop (``extend``) against ``append`` a leaf at a time, from a tree of
    ``before`` leaves, in pages of uneven sizes."""
    hashes = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(before + 70)]
    one, many = MerkleAppender(), MerkleAppender()
    for event_hash in hashes[:before]:
        one.append(event_leaf_hash(event_hash))
        many.append(event_leaf_hash(event_hash))
    appended = [node for h in hashes[before:] for node in one.append(event_leaf_hash(h))]
    extended = []
    for start in range(before, len(hashes), 13):
        extended.extend(many.extend(hashes[start : start + 13]))
    assert extended == appended
    assert (many.size, many.frontier, many.root()) == (one.size, one.frontier, one.root())


@pytest.mark.parametrize("size", range(9))
def test_tree_heads_are_ct_roots(size: int) -> None:
    nodes = _stored(LEAVES)
    expected = VECTORS["roots"][size]
    assert tree_head(lambda level, i: nodes[(level, i)], size).hex() == expected
    appender = MerkleAppender()
    for leaf in LEAVES[:size]:
        appender.append(leaf)
    assert appender.root().hex() == expected


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-{c['size']}")
def test_inclusion_proofs_are_ct_vectors(case: dict[str, Any]) -> None:
    nodes = _stored(LEAVES)
    index, size = case["index"], case["size"]
    path = inclusion_proof(lambda level, i: nodes[(level, i)], index, size)
    assert _hex(path) == case["path"]
    root = bytes.fromhex(VECTORS["roots"][size])
    assert verify_inclusion(LEAVES[index], index, size, path, root)


@pytest.mark.parametrize(
    "case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-{c['second']}"
)
def test_consistency_proofs_are_ct_vectors(case: dict[str, Any]) -> None:
    nodes = _stored(LEAVES)
    first, second = case["first"], case["second"]
    path = consistency_proof(lambda level, i: nodes[(level, i)], first, second)
    assert _hex(path) == case["path"]
    roots = VECTORS["roots"]
    assert verify_consistency(
        first, second, bytes.fromhex(roots[first]), bytes.fromhex(roots[second]), path
    )


def _corrupted(path: list[bytes]) -> list[list[bytes]]:
    """As CT's verifier tests corrupt a proof: garbage before or after, a component removed,
    one bit flipped in each component."""
    some = hashlib.sha256(b"some").digest()
    found = [[*path, some], [some, *path], [*path, b""]]
    if path:
        found.append(path[:-1])
    for i in range(len(path)):
        flipped = bytearray(path[i])
        flipped[0] ^= 8
        found.append([*path[:i], bytes(flipped), *path[i + 1 :]])
    return found


def test_corrupted_inclusion_proofs_fail() -> None:
    for case in VECTORS["inclusion"]:
        index, size = case["index"], case["size"]
        path = [bytes.fromhex(p) for p in case["path"]]
        root = bytes.fromhex(VECTORS["roots"][size])
        for wrong in _corrupted(path):
            assert not verify_inclusion(LEAVES[index], index, size, wrong, root)
        for wrong_index, wrong_size in [(index + 1, size), (index ^ 2, size), (index, size * 2)]:
            assert not verify_inclusion(LEAVES[index], wrong_index, wrong_size, path, root)
        assert not verify_inclusion(b"WrongLeaf", index, size, path, root)
        assert not verify_inclusion(LEAVES[index], index, size, path, EMPTY_ROOT)


def test_corrupted_consistency_proofs_fail() -> None:
    roots = [bytes.fromhex(r) for r in VECTORS["roots"]]
    for case in VECTORS["consistency"]:
        first, second = case["first"], case["second"]
        if first == second:
            continue
        path = [bytes.fromhex(p) for p in case["path"]]
        for wrong in [*_corrupted(path), []]:
            assert not verify_consistency(first, second, roots[first], roots[second], wrong)
        assert not verify_consistency(first, second, roots[second], roots[first], path)
        assert not verify_consistency(first + 1, second, roots[first], roots[second], path)
        assert not verify_consistency(first, second * 2, roots[first], roots[second], path)


def test_every_proof_of_small_trees_follows_the_rfc_recursion() -> None:
    leaves = [leaf_hash(str(i).encode()) for i in range(33)]
    nodes = _stored(leaves)

    def lookup(level: int, i: int) -> bytes:
        return nodes[(level, i)]

    roots = [_reference_root(leaves[:n]) for n in range(len(leaves) + 1)]
    for size in range(1, len(leaves) + 1):
        assert tree_head(lookup, size) == roots[size]
        for index in range(size):
            path = inclusion_proof(lookup, index, size)
            assert verify_inclusion(leaves[index], index, size, path, roots[size])
            assert not verify_inclusion(leaf_hash(b"other"), index, size, path, roots[size])
        for first in range(1, size + 1):
            path = consistency_proof(lookup, first, size)
            assert verify_consistency(first, size, roots[first], roots[size], path)
            if first < size:
                assert not verify_consistency(first, size, roots[first - 1], roots[size], path)


def test_needed_nodes_name_what_a_proof_reads() -> None:
    nodes = _stored(LEAVES)
    wanted = needed_nodes(lambda lookup: inclusion_proof(lookup, 5, 7))
    only = {key: nodes[key] for key in wanted}
    assert inclusion_proof(lambda level, i: only[(level, i)], 5, 7) == inclusion_proof(
        lambda level, i: nodes[(level, i)], 5, 7
    )


def test_proofs_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(lambda level, i: EMPTY_ROOT, 3, 3)
    with pytest.raises(ValueError, match="0 < first <= second"):
        consistency_proof(lambda level, i: EMPTY_ROOT, 4, 3)
