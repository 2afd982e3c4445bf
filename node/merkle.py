"""RFC 9162 Merkle trees for the audit log: hashing, proofs and their strict verification.

A Merkle tree lets an auditor check that one entry is in a log (an inclusion proof) and
that a later log still holds every entry of an earlier one, unchanged and in order (a
consistency proof), from signed roots alone. Leaves and interior nodes are hashed with
different prefixes (0x00, 0x01) so that no leaf can pose as a subtree. See
docs/adr/0002-audit-merkle-log.md.

Proofs are built from a :class:`LeafHashes` source that the node backs with SQLite: it is
read by slices, each leaf at most once, at most ``CHUNK`` at a time. Given the compact
range of the old tree (stored with every checkpoint), a consistency proof reads only the
leaves added since.
Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2, and refuses anything that is
not exactly a proof: wrong lengths, surplus or missing hashes, indices out of range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from node.errors import BadInput, InvalidProof

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
CHUNK = 4096
"""Most leaf hashes read from a :class:`LeafHashes` source in one slice."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_SERIAL_VERSION = 1
_MAX_SIZE = 2**64 - 1


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right); children are not length-checked (RFC test vectors)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class LeafHashes(Protocol):
    """Random access to the leaf hashes of a log, by slices (``list[bytes]`` qualifies)."""

    def __len__(self) -> int: ...

    def __getitem__(self, span: slice, /) -> Sequence[bytes]: ...


# --- building ----------------------------------------------------------------------------


def root_of(leaf_hashes: LeafHashes) -> bytes:
    """The root of the tree whose leaves are all of ``leaf_hashes`` (EMPTY_ROOT if none)."""
    size = len(leaf_hashes)
    return EMPTY_ROOT if size == 0 else _range_hash(leaf_hashes, 0, size)


def inclusion_proof(index: int, size: int, leaves: LeafHashes) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    RFC 9162 section 2.1.3.1, walked from the root down: each step records the hash of the
    subtree beside the path. Those subtrees are disjoint, so each leaf is read at most once.
    """
    _check_range(leaves, size)
    if not 0 <= index < size:
        raise BadInput(f"an inclusion proof needs 0 <= index < size; found index {index} "
                       f"and size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_range_hash(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_range_hash(leaves, lo, lo + k))
            lo += k
    path.reverse()  # the RFC lists the path from the leaf up
    return path


def consistency_proof(old_size: int, new_size: int, leaves: LeafHashes) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``.

    RFC 9162 section 2.1.4.1 (SUBPROOF), walked from the root down; the subtrees it hashes
    are disjoint, so each leaf is read at most once. Equal sizes give an empty proof.
    """
    _check_range(leaves, new_size)
    _check_sizes(old_size, new_size)
    return _subproof(old_size, new_size, leaves, lambda lo, hi: _range_hash(leaves, lo, hi))


def consistency_proof_from(old: CompactRange, new_size: int, leaves: LeafHashes) -> list[bytes]:
    """The same proof as :func:`consistency_proof`, given the compact range of the old tree.

    Every subtree the proof takes from the old tree is one of the perfect subtrees of its
    compact range (SUBPROOF only steps right past a whole one), so only leaves from
    ``old.size`` on are read: O(new_size - old.size + log new_size) instead of O(new_size).
    """
    _check_range(leaves, new_size)
    _check_sizes(old.size, new_size)
    nodes, old_size = old.hashes, old.size

    def old_subtree(lo: int, hi: int) -> bytes:
        # [lo, hi) is the range's node for bit (hi - lo) of old_size; larger ones come first
        return nodes[(old_size >> (hi - lo).bit_length()).bit_count()]

    return _subproof(old_size, new_size, leaves, old_subtree)


def _subproof(old_size: int, new_size: int, leaves: LeafHashes,
              old_subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """RFC 9162 SUBPROOF; ``old_subtree(lo, hi)`` hashes a subtree lying inside the old tree."""
    proof: list[bytes] = []
    lo, hi = 0, new_size
    whole_old_tree = True  # SUBPROOF's flag b: the current subtree is the old tree itself
    while old_size != hi:
        k = _split(hi - lo)
        if old_size - lo <= k:
            proof.append(_range_hash(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(old_subtree(lo, lo + k))
            lo += k
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(old_subtree(lo, hi))
    proof.reverse()
    return proof


class CompactRange:
    """The right frontier of a growing tree: enough to append leaves and compute the root.

    ``hashes`` are the roots of the perfect subtrees that make up the first ``size`` leaves,
    largest (leftmost) first, one per set bit of ``size``. The node persists ``to_bytes()``
    with each checkpoint and extends it from there, instead of rereading the whole log.

    Unlike our value objects it is mutable: ``append`` and ``extend`` change it in place,
    as on a list, because it is an accumulator fed one leaf at a time.
    """

    __slots__ = ("_size", "_hashes")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        stack = list(hashes)
        if not 0 <= size <= _MAX_SIZE:
            raise BadInput(f"a compact range needs a size between 0 and 2^64-1; found {size}")
        if len(stack) != size.bit_count():
            raise BadInput(f"a compact range of size {size} needs {size.bit_count()} hashes; "
                           f"found {len(stack)}")
        _check_hashes(stack, "compact range hash")
        self._size = size
        self._hashes = stack

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the right, merging the perfect subtrees it completes."""
        if len(leaf) != HASH_SIZE:
            raise BadInput(f"a leaf hash must be {HASH_SIZE} bytes; found {len(leaf)}")
        if self._size == _MAX_SIZE:
            raise BadInput("a compact range cannot grow beyond 2^64-1 leaves")
        merged, carry = leaf, self._size
        while carry & 1:
            merged = node_hash(self._hashes.pop(), merged)
            carry >>= 1
        self._hashes.append(merged)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add ``leaves`` (leaf hashes) at the right, in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The RFC 9162 root of the first ``size`` leaves."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root

    def to_bytes(self) -> bytes:
        """Version byte 0x01, size as 8 bytes big-endian, then the hashes in order."""
        return bytes([_SERIAL_VERSION]) + self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """The range ``to_bytes`` wrote; anything else is refused."""
        if len(data) < 9 or data[0] != _SERIAL_VERSION:
            raise BadInput(f"a stored compact range must start with version "
                           f"{_SERIAL_VERSION} and an 8-byte size; found {len(data)} bytes")
        size = int.from_bytes(data[1:9], "big")
        body = data[9:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise BadInput(f"a stored compact range of size {size} needs "
                           f"{HASH_SIZE * size.bit_count()} bytes of hashes; found {len(body)}")
        return cls(size, (body[i:i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._size, self._hashes) == (other._size, other._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"


# --- verifying ---------------------------------------------------------------------------


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Check that ``leaf_hash`` is the hash of entry ``index`` of the tree ``(size, root)``.

    Raises :class:`InvalidProof` naming the first check that failed.
    """
    # 1. The index must name a leaf of the tree (RFC 9162 2.1.3.2 step 1).
    if not 0 <= index < size:
        raise InvalidProof(f"an inclusion proof needs 0 <= index < tree size; found index "
                           f"{index} and tree size {size}")
    # 2. Every hash must be a SHA-256 digest.
    _check_length(leaf_hash, "the leaf hash")
    _check_length(root, "the root hash")
    _check_proof_hashes(proof)
    # 3. The proof must have exactly the hashes this (index, size) needs.
    expected = _inclusion_length(index, size)
    if len(proof) != expected:
        raise InvalidProof(f"an inclusion proof for leaf {index} of a tree of size {size} "
                           f"has {expected} hashes; found {len(proof)}")
    # 4. Recompute the root along the path (RFC 9162 2.1.3.2 steps 2-4).
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise InvalidProof("the inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # 5. The path must end at the root, at the expected root hash (step 5).
    if sn != 0:
        raise InvalidProof("the inclusion proof is shorter than the path to the root")
    if r != root:
        raise InvalidProof(f"the inclusion proof leads to root {_short(r)}; expected the "
                           f"tree's root {_short(root)}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    Raises :class:`InvalidProof` naming the first check that failed.
    """
    # 1. Sizes: a proof from the empty tree proves nothing, and logs never shrink.
    if old_size <= 0:
        raise InvalidProof(f"a consistency proof needs an old tree size of at least 1; found "
                           f"{old_size} (a proof from the empty tree is meaningless)")
    if new_size < old_size:
        raise InvalidProof(f"a consistency proof needs new size >= old size; found new size "
                           f"{new_size} < old size {old_size}")
    # 2. Equal sizes: the proof is empty and the roots are the same (RFC 9162 2.1.4.2).
    if old_size == new_size:
        if proof:
            raise InvalidProof(f"a consistency proof between equal sizes is empty; found "
                               f"{len(proof)} hashes")
        if old_root != new_root:
            raise InvalidProof(f"two trees of size {old_size} must have the same root; found "
                               f"{_short(old_root)} and {_short(new_root)}")
        return
    # 3. Every hash must be a SHA-256 digest.
    _check_length(old_root, "the old root hash")
    _check_length(new_root, "the new root hash")
    _check_proof_hashes(proof)
    # 4. The proof must have exactly the hashes these sizes need (and is never empty).
    expected = _consistency_length(old_size, new_size)
    if len(proof) != expected:
        raise InvalidProof(f"a consistency proof from size {old_size} to {new_size} has "
                           f"{expected} hashes; found {len(proof)}")
    # 5. Rebuild both roots (RFC 9162 2.1.4.2 steps 2-6).
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("the consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # 6. Both rebuilt roots must be the roots we were given (step 7).
    if sn != 0:
        raise InvalidProof("the consistency proof is shorter than the path to the root")
    if fr != old_root:
        raise InvalidProof(f"the consistency proof leads to old root {_short(fr)}; expected "
                           f"{_short(old_root)}")
    if sr != new_root:
        raise InvalidProof(f"the consistency proof leads to new root {_short(sr)}; expected "
                           f"{_short(new_root)}")


# --- helpers -----------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_length(index: int, size: int) -> int:
    """Hashes in the path of ``index``: below where it parts from the last leaf, then above."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(old_size: int, new_size: int) -> int:
    """Hashes in a consistency proof for 0 < old_size < new_size."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    last = old_size - 1
    inner = (last ^ (new_size - 1)).bit_length()
    border = (last >> inner).bit_count()
    seed = 0 if old_size == 1 << shift else 1  # the old subtree root, unless it is the old root
    return seed + inner - shift + border


def _range_hash(leaves: LeafHashes, lo: int, hi: int) -> bytes:
    """The root of the subtree over leaves[lo:hi] (hi > lo), reading each leaf once."""
    if hi - lo <= CHUNK:
        return _chunk_root(_read(leaves, lo, hi))
    k = _split(hi - lo)
    return node_hash(_range_hash(leaves, lo, lo + k), _range_hash(leaves, lo + k, hi))


def _chunk_root(level: list[bytes]) -> bytes:
    """The root of a non-empty list of leaf hashes held in memory.

    Pairing level by level and carrying an odd last node up unchanged gives the same tree
    as RFC 9162's split at the largest power of two.
    """
    sha = hashlib.sha256
    while len(level) > 1:
        even = len(level) & ~1
        lefts, rights = level[0:even:2], level[1:even:2]
        paired = [sha(_NODE_PREFIX + a + b).digest() for a, b in zip(lefts, rights, strict=True)]
        if even < len(level):
            paired.append(level[-1])
        level = paired
    return level[0]


def _read(leaves: LeafHashes, lo: int, hi: int) -> list[bytes]:
    chunk = list(leaves[lo:hi])
    if len(chunk) != hi - lo:
        raise BadInput(f"expected {hi - lo} leaf hashes at [{lo}, {hi}); the log gave "
                       f"{len(chunk)}")
    _check_hashes(chunk, "leaf hash")
    return chunk


def _check_range(leaves: LeafHashes, size: int) -> None:
    if size > len(leaves):
        raise BadInput(f"a proof for a tree of size {size} needs that many leaves; the log "
                       f"has {len(leaves)}")


def _check_sizes(old_size: int, new_size: int) -> None:
    if not 0 < old_size <= new_size:
        raise BadInput(f"a consistency proof needs 0 < old size <= new size; found old size "
                       f"{old_size} and new size {new_size}")


def _check_hashes(hashes: Iterable[bytes], what: str) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise BadInput(f"a {what} must be {HASH_SIZE} bytes; found {len(h)}")


def _check_length(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} must be {HASH_SIZE} bytes; found {len(value)}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise InvalidProof(f"proof hash {i} must be {HASH_SIZE} bytes; found {len(h)}")


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…" if len(h) > 8 else h.hex() or "(empty)"
