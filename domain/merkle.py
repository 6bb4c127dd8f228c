"""The Merkle tree beside the hash chain (RFC 9162 §2.1), over SHA-256.

Leaves are the events' stored hashes in position order; a leaf's data is the event hash as
its 64 lowercase hex characters (ASCII), as the ledger digest takes it in (SPEC §5):

    leaf hash = SHA-256(0x00 || utf8(event hash))                RFC 9162 §2.1.1
    node hash = SHA-256(0x01 || left || right)                   RFC 9162 §2.1.1
    MTH({})   = SHA-256()   (the empty tree)

Proof generation (RFC 9162 §2.1.3.1 PATH, §2.1.4.1 SUBPROOF) reads the hashes of *perfect*
subtrees only: ``nodes(level, index)`` is the root of the 2**level leaves starting at
``index * 2**level``. That is what the views store as events are recorded (``MerkleAppender``:
O(log n) new nodes an event, amortised O(1)); a subtree at the tree's right edge is folded from
the perfect subtrees it splits into. Verification (§2.1.3.2, §2.1.4.2) needs no store.

No maintained Python library keeps the perfect subtrees in a store of ours and proves from
them in O(log n) reads (pymerkle recomputes subtrees from its leaves): so the RFC's
algorithms are written out here and tested against Certificate Transparency's vectors
(tests/domain/data/ct_merkle_vectors.json).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "MerkleAppender",
    "NodeLookup",
    "consistency_proof",
    "event_leaf_hash",
    "inclusion_proof",
    "leaf_hash",
    "needed_nodes",
    "node_hash",
    "root_from_leaves",
    "subtree_hash",
    "tree_head",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32

# (level, index) -> the 32-byte root of the perfect subtree of 2**level leaves at index*2**level
NodeLookup = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || data), 32 bytes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || left || right), 32 bytes."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def event_leaf_hash(event_hash_hex: str) -> bytes:
    """The leaf hash of one event: its stored hash (hex text) as the leaf's data."""
    return leaf_hash(event_hash_hex.encode("ascii", "backslashreplace"))


def _largest_power_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(nodes: NodeLookup, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range as RFC 9162's recursion reaches it: ``start`` a multiple
    of the largest power of two not above ``end - start``. Folded from the perfect subtrees
    the range splits into, largest first. Raises ValueError for an empty range."""
    if end <= start:
        msg = f"empty range [{start}, {end})"
        raise ValueError(msg)
    blocks: list[bytes] = []
    size, at = end - start, start
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            blocks.append(nodes(level, at >> level))
            at += 1 << level
    root = blocks.pop()
    while blocks:
        root = node_hash(blocks.pop(), root)
    return root


def tree_head(nodes: NodeLookup, size: int) -> bytes:
    """The root hash of the first ``size`` leaves (RFC 9162 §2.1.1 MTH); EMPTY_ROOT for 0."""
    return subtree_hash(nodes, 0, size) if size else EMPTY_ROOT


def inclusion_proof(nodes: NodeLookup, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), bottom first. ``index`` is 0-based; raises
    ValueError unless 0 <= index < size."""
    if not 0 <= index < size:
        msg = f"leaf {index} is not in a tree of {size} leaves"
        raise ValueError(msg)
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_below(end - start)
        if index < start + k:
            path.append(subtree_hash(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(nodes, start, start + k))
            start += k
    return path[::-1]


def consistency_proof(nodes: NodeLookup, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) (RFC 9162 §2.1.4.1), bottom first: empty when the sizes are
    equal. Raises ValueError unless 0 < first <= second."""
    if not 0 < first <= second:
        msg = f"no consistency proof from {first} to {second} leaves (need 0 < first <= second)"
        raise ValueError(msg)
    path: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                path.append(subtree_hash(nodes, start, end))
            break
        k = _largest_power_below(n)
        if m <= k:
            path.append(subtree_hash(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(nodes, start, start + k))
            start, m, whole = start + k, m - k, False
    return path[::-1]


def needed_nodes(compute: Callable[[NodeLookup], object]) -> set[tuple[int, int]]:
    """The perfect subtrees ``compute`` reads (run once on stand-in hashes), so that a store
    can fetch them all in one query before computing for real."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return EMPTY_ROOT

    compute(record)
    return wanted


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: whether ``path`` proves leaf hash ``leaf`` at 0-based ``index`` in
    the tree of ``size`` leaves whose root is ``root``."""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in path):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether ``path`` proves the tree of ``first`` leaves (root
    ``first_root``) a prefix of the tree of ``second`` leaves (root ``second_root``)."""
    if first > second or first < 0 or any(len(p) != HASH_SIZE for p in path):
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path
    if not path:
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # an exact power of two: its root is the proof's start
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


class MerkleAppender:
    """Appends leaves to a tree of ``size`` leaves whose perfect subtrees along its right edge
    (the roots at each set bit of ``size``, largest first: ``frontier``) are known; gives the
    perfect-subtree nodes each append completes, ``(level, index, hash)``."""

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if len(frontier) != size.bit_count():
            msg = f"a tree of {size} leaves has {size.bit_count()} frontier roots"
            raise ValueError(msg)
        self.size = size
        self.frontier = list(frontier)

    @staticmethod
    def frontier_nodes(size: int) -> list[tuple[int, int]]:
        """The (level, index) of the perfect subtrees a tree of ``size`` leaves ends in."""
        found, at = [], 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                found.append((level, at >> level))
                at += 1 << level
        return found

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the nodes it completes, the leaf itself first."""
        index, level, root = self.size, 0, leaf
        made = [(0, index, leaf)]
        while index & 1:
            root = node_hash(self.frontier.pop(), root)
            index, level = index >> 1, level + 1
            made.append((level, index, root))
        self.frontier.append(root)
        self.size += 1
        return made

    def extend(self, event_hashes: Sequence[str]) -> list[tuple[int, int, bytes]]:
        """``append(event_leaf_hash(h))`` for each event hash in turn, in one loop (a rebuild
        appends every event: the calls were half its time); returns every node completed."""
        sha256 = hashlib.sha256
        frontier, size = self.frontier, self.size
        made: list[tuple[int, int, bytes]] = []
        for event_hash in event_hashes:
            root = sha256(b"\x00" + event_hash.encode("ascii", "backslashreplace")).digest()
            index, level = size, 0
            made.append((0, index, root))
            while index & 1:
                root = sha256(b"\x01" + frontier.pop() + root).digest()
                index, level = index >> 1, level + 1
                made.append((level, index, root))
            frontier.append(root)
            size += 1
        self.size = size
        return made

    def root(self) -> bytes:
        """The current tree head (RFC 9162 MTH of every leaf so far)."""
        if not self.frontier:
            return EMPTY_ROOT
        root = self.frontier[-1]
        for left in reversed(self.frontier[:-1]):
            root = node_hash(left, root)
        return root


def root_from_leaves(leaves: Iterable[bytes]) -> tuple[int, bytes]:
    """(size, tree head) of the leaf hashes, streamed: O(log n) memory."""
    tree = MerkleAppender()
    for leaf in leaves:
        tree.append(leaf)
    return tree.size, tree.root()
