"""RFC 9162 Merkle hashing and proofs against the public known answers, then properties.

The known answers come from tests/vectors/transparency_vectors.json (a copy of
shared/reference/transparency_vectors.json, whose `sources` name the public test suites
each value was taken from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import BadInput, InvalidProof
from node.merkle import (
    CHUNK,
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from tests.vectors import VECTOR_COPY, VECTOR_SHARED, load_transparency_vectors

V = load_transparency_vectors()
TREE = V["tree_8_leaves"]
LEAVES = [bytes.fromhex(h) for h in TREE["leaves_hex"]]
LEAF_HASHES = [bytes.fromhex(h) for h in TREE["leaf_hashes_hex"]]


def _hexes(values: Sequence[str] | None) -> list[bytes]:
    """A proof as the vectors give it; null (a Go nil slice) is the empty proof."""
    return [bytes.fromhex(h) for h in values or []]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]


def _frontier(leaves: Sequence[bytes]) -> CompactRange:
    frontier = CompactRange()
    frontier.extend(leaves)
    return frontier


def test_vector_copy_matches_shared_reference() -> None:
    if not VECTOR_SHARED.exists():
        pytest.skip("shared/reference is not beside this checkout")
    assert VECTOR_COPY.read_bytes() == VECTOR_SHARED.read_bytes()


# --- hasher ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["rfc6962_hasher"]["cases"],
                         ids=[c["desc"] for c in V["rfc6962_hasher"]["cases"]])
def test_hasher_known_answers(case: dict[str, Any]) -> None:
    if case["op"] == "empty_root":
        got = EMPTY_ROOT
    elif case["op"] == "hash_leaf":
        got = leaf_hash(bytes.fromhex(case["input_hex"]))
    else:
        got = node_hash(bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"]))
    assert got.hex() == case["want"]


def test_empty_leaf_is_not_the_empty_tree() -> None:
    assert leaf_hash(b"") != EMPTY_ROOT


# --- the 8-leaf tree ---------------------------------------------------------------------


def test_leaf_hashes_of_the_8_leaf_tree() -> None:
    assert [leaf_hash(leaf) for leaf in LEAVES] == LEAF_HASHES


@pytest.mark.parametrize("size", range(9), ids=[f"size {n}" for n in range(9)])
def test_roots_by_size(size: int) -> None:
    want = TREE["roots_by_size"][str(size)]
    assert root_of(LEAF_HASHES[:size]).hex() == want
    assert _frontier(LEAF_HASHES[:size]).root().hex() == want


@pytest.mark.parametrize("level", range(4), ids=[f"level {n}" for n in range(4)])
def test_complete_subtree_hashes(level: int) -> None:
    width = 1 << level
    want = TREE["node_hashes_by_level"]["levels"][level]
    got = [root_of(LEAF_HASHES[i * width:(i + 1) * width]).hex() for i in range(len(want))]
    assert got == want


# --- inclusion proofs --------------------------------------------------------------------

INCLUSION_KNOWN = V["inclusion_proofs"]["known_answer"]["cases"]
INCLUSION_PROBES = V["inclusion_proofs"]["probe_corpus"]["cases"]


@pytest.mark.parametrize("case", INCLUSION_KNOWN,
                         ids=[f"leaf {c['leaf_index']} of {c['tree_size']}"
                              for c in INCLUSION_KNOWN])
def test_inclusion_known_answers_are_built_and_verified(case: dict[str, Any]) -> None:
    index, size, proof = case["leaf_index"], case["tree_size"], _hexes(case["proof"])
    assert inclusion_proof(index, size, LEAF_HASHES) == proof
    verify_inclusion(bytes.fromhex(case["leaf_hash"]), index, size, proof,
                     bytes.fromhex(case["root"]))


@pytest.mark.parametrize("case", INCLUSION_PROBES, ids=[c["file"] for c in INCLUSION_PROBES])
def test_inclusion_probe_corpus(case: dict[str, Any]) -> None:
    args = (bytes.fromhex(case["leafHash"]), case["leafIdx"], case["treeSize"],
            _hexes(case["proof"]), bytes.fromhex(case["root"]))
    if case["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


PROOF_5_OF_8 = inclusion_proof(5, 8, LEAF_HASHES)
ROOT_8 = root_of(LEAF_HASHES)

INCLUSION_REFUSALS = {
    "index equal to size": (LEAF_HASHES[5], 8, 8, PROOF_5_OF_8, ROOT_8, "0 <= index < tree size"),
    "negative index": (LEAF_HASHES[5], -1, 8, PROOF_5_OF_8, ROOT_8, "0 <= index < tree size"),
    "empty tree": (LEAF_HASHES[0], 0, 0, [], EMPTY_ROOT, "0 <= index < tree size"),
    "leaf hash of 31 bytes": (LEAF_HASHES[5][:31], 5, 8, PROOF_5_OF_8, ROOT_8,
                              "leaf hash must be 32 bytes; found 31"),
    "root of 33 bytes": (LEAF_HASHES[5], 5, 8, PROOF_5_OF_8, ROOT_8 + b"\0",
                         "root hash must be 32 bytes; found 33"),
    "proof hash of 0 bytes": (LEAF_HASHES[5], 5, 8, [*PROOF_5_OF_8[:2], b""], ROOT_8,
                              "proof hash 2 must be 32 bytes; found 0"),
    "one hash too many": (LEAF_HASHES[5], 5, 8, [*PROOF_5_OF_8, ROOT_8], ROOT_8,
                          "has 3 hashes; found 4"),
    "one hash too few": (LEAF_HASHES[5], 5, 8, PROOF_5_OF_8[:2], ROOT_8,
                         "has 3 hashes; found 2"),
    "proof of another leaf": (LEAF_HASHES[4], 5, 8, PROOF_5_OF_8, ROOT_8,
                              "leads to root .*; expected the tree's root"),
    "hashes in the wrong order": (LEAF_HASHES[5], 5, 8, PROOF_5_OF_8[::-1], ROOT_8,
                                  "leads to root"),
    "root of a smaller tree": (LEAF_HASHES[5], 5, 8, PROOF_5_OF_8, root_of(LEAF_HASHES[:7]),
                               "leads to root"),
}


@pytest.mark.parametrize("case", INCLUSION_REFUSALS.values(), ids=INCLUSION_REFUSALS.keys())
def test_inclusion_refusals_say_what_failed(case: tuple[Any, ...]) -> None:
    *args, message = case
    with pytest.raises(InvalidProof, match=message):
        verify_inclusion(*args)


# --- consistency proofs ------------------------------------------------------------------

CONSISTENCY_KNOWN = V["consistency_proofs"]["known_answer"]["cases"]
CONSISTENCY_PROBES = V["consistency_proofs"]["probe_corpus"]["cases"]


@pytest.mark.parametrize("case", CONSISTENCY_KNOWN,
                         ids=[f"{c['size1']} to {c['size2']}" for c in CONSISTENCY_KNOWN])
def test_consistency_known_answers_are_built_and_verified(case: dict[str, Any]) -> None:
    old, new, proof = case["size1"], case["size2"], _hexes(case["proof"])
    assert consistency_proof(old, new, LEAF_HASHES) == proof
    verify_consistency(old, new, bytes.fromhex(case["root1"]), bytes.fromhex(case["root2"]),
                       proof)


@pytest.mark.parametrize("case", CONSISTENCY_PROBES, ids=[c["file"] for c in CONSISTENCY_PROBES])
def test_consistency_probe_corpus(case: dict[str, Any]) -> None:
    args = (case["size1"], case["size2"], bytes.fromhex(case["root1"]),
            bytes.fromhex(case["root2"]), _hexes(case["proof"]))
    if case["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


PROOF_6_TO_8 = consistency_proof(6, 8, LEAF_HASHES)
ROOT_6 = root_of(LEAF_HASHES[:6])

CONSISTENCY_REFUSALS = {
    "from the empty tree": (0, 8, EMPTY_ROOT, ROOT_8, PROOF_6_TO_8, "at least 1; found 0"),
    "from the empty tree to itself": (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], "at least 1; found 0"),
    "the log shrank": (8, 6, ROOT_8, ROOT_6, PROOF_6_TO_8, "new size 6 < old size 8"),
    "equal sizes with a proof": (8, 8, ROOT_8, ROOT_8, [ROOT_8], "between equal sizes is empty"),
    "equal sizes, different roots": (8, 8, ROOT_8, ROOT_6, [], "must have the same root"),
    "old root of 31 bytes": (6, 8, ROOT_6[:31], ROOT_8, PROOF_6_TO_8,
                             "old root hash must be 32 bytes; found 31"),
    "new root of 0 bytes": (6, 8, ROOT_6, b"", PROOF_6_TO_8,
                            "new root hash must be 32 bytes; found 0"),
    "proof hash of 33 bytes": (6, 8, ROOT_6, ROOT_8, [PROOF_6_TO_8[0] + b"\0",
                                                      *PROOF_6_TO_8[1:]],
                               "proof hash 0 must be 32 bytes; found 33"),
    "empty proof": (6, 8, ROOT_6, ROOT_8, [], "has 3 hashes; found 0"),
    "one hash too many": (6, 8, ROOT_6, ROOT_8, [*PROOF_6_TO_8, ROOT_8], "has 3 hashes; found 4"),
    "old root from another log": (6, 8, leaf_hash(b"other"), ROOT_8, PROOF_6_TO_8,
                                  "leads to old root"),
    "new root from another log": (6, 8, ROOT_6, leaf_hash(b"other"), PROOF_6_TO_8,
                                  "leads to new root"),
}


@pytest.mark.parametrize("case", CONSISTENCY_REFUSALS.values(), ids=CONSISTENCY_REFUSALS.keys())
def test_consistency_refusals_say_what_failed(case: tuple[Any, ...]) -> None:
    *args, message = case
    with pytest.raises(InvalidProof, match=message):
        verify_consistency(*args)


# --- building refusals -------------------------------------------------------------------

BUILD_REFUSALS = {
    "inclusion: index equal to size": (lambda: inclusion_proof(8, 8, LEAF_HASHES),
                                       "0 <= index < size"),
    "inclusion: tree larger than the log": (lambda: inclusion_proof(0, 9, LEAF_HASHES),
                                            "size 9 needs that many leaves; the log has 8"),
    "inclusion: leaf hash of 3 bytes": (lambda: inclusion_proof(0, 2, [LEAF_HASHES[0], b"abc"]),
                                        "leaf hash must be 32 bytes; found 3"),
    "consistency: from size 0": (lambda: consistency_proof(0, 8, LEAF_HASHES),
                                 "0 < old size <= new size"),
    "consistency: shrinking": (lambda: consistency_proof(8, 6, LEAF_HASHES),
                               "0 < old size <= new size"),
    "consistency: tree larger than the log": (lambda: consistency_proof(1, 9, LEAF_HASHES),
                                              "the log has 8"),
    "consistency from a range: the empty range": (
        lambda: consistency_proof_from(CompactRange(), 8, LEAF_HASHES), "0 < old size"),
    "consistency from a range: shrinking": (
        lambda: consistency_proof_from(_frontier(LEAF_HASHES), 6, LEAF_HASHES),
        "0 < old size <= new size"),
    "consistency from a range: tree larger than the log": (
        lambda: consistency_proof_from(_frontier(LEAF_HASHES[:3]), 9, LEAF_HASHES),
        "the log has 8"),
    "root: leaf hash of 0 bytes": (lambda: root_of([LEAF_HASHES[0], b""]),
                                   "leaf hash must be 32 bytes; found 0"),
}


@pytest.mark.parametrize("case", BUILD_REFUSALS.values(), ids=BUILD_REFUSALS.keys())
def test_building_refusals(case: tuple[Any, str]) -> None:
    build, message = case
    with pytest.raises(BadInput, match=message):
        build()


def test_equal_sizes_give_an_empty_consistency_proof() -> None:
    assert consistency_proof(5, 5, LEAF_HASHES) == []


# --- reading the log ---------------------------------------------------------------------


class RecordingLeaves:
    """A leaf source with slice access only, as the SQLite-backed one; it records reads."""

    def __init__(self, hashes: list[bytes]) -> None:
        self._hashes = hashes
        self.reads: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._hashes)

    def __getitem__(self, span: slice, /) -> Sequence[bytes]:
        self.reads.append((span.start, span.stop))
        return self._hashes[span]


def _assert_each_leaf_read_at_most_once(reads: list[tuple[int, int]]) -> None:
    assert all(hi - lo <= CHUNK for lo, hi in reads)
    ordered = sorted(reads)
    assert all(a_hi <= b_lo for (_, a_hi), (b_lo, _) in zip(ordered, ordered[1:], strict=False))


LARGE = _leaves(3 * CHUNK + 5)
LARGE_ROOT = _frontier(LARGE).root()


@pytest.mark.parametrize("index", [0, CHUNK - 1, CHUNK, 2 * CHUNK + 1, len(LARGE) - 1],
                         ids=lambda i: f"leaf {i}")
def test_inclusion_beyond_one_chunk_reads_each_leaf_once(index: int) -> None:
    source = RecordingLeaves(LARGE)
    proof = inclusion_proof(index, len(LARGE), source)
    verify_inclusion(LARGE[index], index, len(LARGE), proof, LARGE_ROOT)
    _assert_each_leaf_read_at_most_once(source.reads)


@pytest.mark.parametrize("old", [1, 5, CHUNK, CHUNK + 1, 2 * CHUNK, len(LARGE) - 1],
                         ids=lambda n: f"from {n}")
def test_consistency_beyond_one_chunk_reads_each_leaf_once(old: int) -> None:
    source = RecordingLeaves(LARGE)
    proof = consistency_proof(old, len(LARGE), source)
    old_root = _frontier(LARGE[:old]).root()
    verify_consistency(old, len(LARGE), old_root, LARGE_ROOT, proof)
    _assert_each_leaf_read_at_most_once(source.reads)


@pytest.mark.parametrize("old", [1, 5, CHUNK, CHUNK + 1, 2 * CHUNK, len(LARGE) - 1, len(LARGE)],
                         ids=lambda n: f"from {n}")
def test_consistency_from_a_compact_range_reads_only_the_new_leaves(old: int) -> None:
    source = RecordingLeaves(LARGE)
    proof = consistency_proof_from(_frontier(LARGE[:old]), len(LARGE), source)
    assert proof == consistency_proof(old, len(LARGE), LARGE)
    assert all(lo >= old for lo, _ in source.reads)
    _assert_each_leaf_read_at_most_once(source.reads)


def test_root_of_a_large_log_matches_the_compact_range() -> None:
    assert root_of(RecordingLeaves(LARGE)) == LARGE_ROOT


# --- compact ranges ----------------------------------------------------------------------


def test_compact_range_restored_from_bytes_extends_like_the_original() -> None:
    restored = CompactRange.from_bytes(_frontier(LEAF_HASHES[:5]).to_bytes())
    assert (restored.size, len(restored.hashes)) == (5, 2)
    restored.extend(LEAF_HASHES[5:])
    assert restored.root().hex() == TREE["roots_by_size"]["8"]


def test_appending_changes_the_range_in_place() -> None:
    frontier = CompactRange()
    for leaf in LEAF_HASHES:
        frontier.append(leaf)
    assert frontier == _frontier(LEAF_HASHES)
    assert frontier.root().hex() == TREE["roots_by_size"]["8"]
    assert frontier.hashes == (bytes.fromhex(TREE["roots_by_size"]["8"]),)


VALID_RANGE = _frontier(LEAF_HASHES[:5]).to_bytes()

RANGE_BYTES_REFUSALS = {
    "empty": (b"", "must start with version 1"),
    "unknown version": (b"\x02" + VALID_RANGE[1:], "must start with version 1"),
    "size cut short": (VALID_RANGE[:5], "must start with version 1"),
    "a hash missing": (VALID_RANGE[:-32], "needs 64 bytes of hashes; found 32"),
    "a byte extra": (VALID_RANGE + b"\0", "needs 64 bytes of hashes; found 65"),
}


@pytest.mark.parametrize("case", RANGE_BYTES_REFUSALS.values(), ids=RANGE_BYTES_REFUSALS.keys())
def test_compact_range_from_bytes_refusals(case: tuple[bytes, str]) -> None:
    data, message = case
    with pytest.raises(BadInput, match=message):
        CompactRange.from_bytes(data)


RANGE_REFUSALS = {
    "negative size": (lambda: CompactRange(-1, ()), "between 0 and 2"),
    "size beyond 2^64-1": (lambda: CompactRange(2**64, (ROOT_8,)), "between 0 and 2"),
    "too few hashes for the size": (lambda: CompactRange(3, (ROOT_8,)), "needs 2 hashes"),
    "hash of 31 bytes": (lambda: CompactRange(1, (ROOT_8[:31],)), "must be 32 bytes"),
    "appending a leaf hash of 0 bytes": (lambda: CompactRange().append(b""),
                                         "leaf hash must be 32 bytes; found 0"),
}


@pytest.mark.parametrize("case", RANGE_REFUSALS.values(), ids=RANGE_REFUSALS.keys())
def test_compact_range_refusals(case: tuple[Any, str]) -> None:
    build, message = case
    with pytest.raises(BadInput, match=message):
        build()


# --- properties --------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=600)


@given(size=sizes, data=st.data())
def test_generated_inclusion_proofs_verify(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    root = root_of(leaves)
    proof = inclusion_proof(index, size, leaves)
    verify_inclusion(leaves[index], index, size, proof, root)
    if proof:  # any flipped bit anywhere in the proof is caught
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="hash")
        bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
        bad = list(proof)
        bad[at] = _flip(bad[at], bit)
        with pytest.raises(InvalidProof):
            verify_inclusion(leaves[index], index, size, bad, root)


@given(new=sizes, data=st.data())
def test_generated_consistency_proofs_verify(new: int, data: st.DataObject) -> None:
    leaves = _leaves(new)
    old = data.draw(st.integers(min_value=1, max_value=new), label="old size")
    old_root, new_root = root_of(leaves[:old]), root_of(leaves)
    proof = consistency_proof(old, new, leaves)
    verify_consistency(old, new, old_root, new_root, proof)
    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="hash")
        bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
        bad = list(proof)
        bad[at] = _flip(bad[at], bit)
        with pytest.raises(InvalidProof):
            verify_consistency(old, new, old_root, new_root, bad)


@given(new=st.integers(min_value=1, max_value=2000), data=st.data())
def test_consistency_from_a_compact_range_equals_the_reference(new: int,
                                                              data: st.DataObject) -> None:
    leaves = _leaves(new)
    old = data.draw(st.integers(min_value=1, max_value=new), label="old size")
    source = RecordingLeaves(leaves)
    assert consistency_proof_from(_frontier(leaves[:old]), new, source) \
        == consistency_proof(old, new, leaves)
    assert all(lo >= old for lo, _ in source.reads)


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=16), max_size=300))
def test_compact_range_root_equals_root_of_every_prefix(entries: list[bytes]) -> None:
    leaves = [leaf_hash(e) for e in entries]
    frontier = CompactRange()
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == root_of(leaves[:n])


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=200),
       st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_compact_range_bytes_round_trip(first: list[bytes], more: list[bytes]) -> None:
    frontier = _frontier(first)
    restored = CompactRange.from_bytes(frontier.to_bytes())
    assert restored == frontier
    restored.extend(more)
    assert restored.root() == root_of(first + more)


def _flip(value: bytes, bit: int) -> bytes:
    flipped = bytearray(value)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)
