"""Checkpoints and signed notes a peer gives, and the Merkle proofs that come with them.

The parsers (``open_note``, ``Checkpoint.parse``, ``parse_verifier_key``,
``CompactRange.from_bytes``) and the verifiers (inclusion and consistency proofs, and
``accept_checkpoint``, which a counterparty's ExchangeCheckpoints call reaches) take any
text, bytes or numbers and either accept what a good peer sends or refuse with
:class:`BadNote`, :class:`BadSignature`, :class:`InvalidProof` or :class:`BadInput`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from connector.audit_exchange import accept_checkpoint
from node.checkpoints import origin_of
from node.config import Config
from node.errors import BadInput, BadNote, BadSignature, InvalidProof, MalformedMessage
from node.home import Home
from node.identity import NodeCard, NodeKeys, SignedCard
from node.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from node.peers import Peer, add_peer
from node.signednote import (
    Checkpoint,
    add_signature,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from tests.hostile.strategies import HOSTILE_INTS, HOSTILE_TEXTS, examples, outcome
from tests.hostile.world import Served, Watch

EXAMPLES = examples(150)
KEY = SigningKey.generate()
NAME = "n" + "a" * 32
LEAVES = [leaf_hash(str(i).encode()) for i in range(13)]
NOTE = sign_note(Checkpoint(origin_of(NAME), 13, root_of(LEAVES)).to_text(), NAME, KEY)

note_texts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(HOSTILE_TEXTS),
    st.just(NOTE),
)


@st.composite
def changed_notes(draw: st.DrawFn) -> str:
    """The good note with one character inserted, removed or replaced (often a hostile one)."""
    at = draw(st.integers(0, len(NOTE)))
    char = draw(st.one_of(st.sampled_from(["\n", " ", "\u2014", "\x00", "\r", "+", "=", "0",
                                           "\ud800", "\u0661", "\u00b2"]),
                          st.characters()))
    action = draw(st.sampled_from(["insert", "remove", "replace"]))
    if action == "insert":
        return NOTE[:at] + char + NOTE[at:]
    if action == "remove":
        return NOTE[:at] + NOTE[at + 1:]
    return NOTE[:at] + char + NOTE[at + 1:]


# ---- signed notes and checkpoints -----------------------------------------------------------
@EXAMPLES
@given(note=st.one_of(note_texts, changed_notes(), st.binary(max_size=200)))
def test_a_note_is_opened_or_refused(note: str | bytes) -> None:
    result = outcome(open_note, note, {NAME: KEY.verify_key})
    if isinstance(result, (BadNote, BadSignature)):
        return
    assert not isinstance(result, Exception), result
    assert result.signed_by(NAME)
    parsed = outcome(Checkpoint.parse, result.text, origin=origin_of(NAME))
    assert isinstance(parsed, (Checkpoint, BadNote))


@EXAMPLES
@given(lines=st.lists(st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=20),
                                st.sampled_from([str(i) for i in HOSTILE_INTS]),
                                st.just("A" * 43 + "=")), min_size=0, max_size=5))
def test_a_checkpoint_text_is_parsed_or_refused(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    result = outcome(Checkpoint.parse, text)
    if isinstance(result, Checkpoint):
        assert result.to_text() == text and 0 <= result.size < 2**64
    else:
        assert isinstance(result, BadNote)


SIZES = {
    "5000 digits": "9" * 5000,
    "2^64": str(2**64),
    "Arabic-Indic digits": "\u0661\u0662",
    "superscript two": "\u00b2",
    "a minus sign": "-1",
    "a leading zero": "01",
}


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_regression_checkpoint_size_of_5000_digits(size: str) -> None:
    """int() refuses a string of 4300 digits or more with ValueError; Checkpoint.parse let it
    out, so a peer's signed checkpoint of such a size failed the call with INTERNAL."""
    text = f"{origin_of(NAME)}\n{size}\n{'A' * 43}=\n"
    with pytest.raises(BadNote, match="size"):
        Checkpoint.parse(text)


@EXAMPLES
@given(vkey=st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE_TEXTS),
                      st.builds(lambda a, b: f"{a}+{b}", st.text(max_size=10),
                                st.text(max_size=50))))
def test_a_verifier_key_is_parsed_or_refused(vkey: str) -> None:
    result = outcome(parse_verifier_key, vkey)
    if isinstance(result, BadNote):
        return
    name, key = result  # type: ignore[misc]
    assert verifier_key(name, key) == vkey


@EXAMPLES
@given(note=st.one_of(changed_notes(), note_texts))
def test_cosigning_a_hostile_note_refuses_or_adds_one_line(note: str) -> None:
    other = SigningKey.generate()
    result = outcome(add_signature, note, "cosigner", other)
    if isinstance(result, BadNote):
        return
    assert isinstance(result, str) and result.startswith(note.rpartition("\n\n")[0])
    assert open_note(result, {"cosigner": other.verify_key}).signed_by("cosigner")


# ---- Merkle proofs ---------------------------------------------------------------------------
sizes = st.one_of(st.integers(-3, 40), st.sampled_from(HOSTILE_INTS))
proofs = st.lists(st.one_of(st.sampled_from(LEAVES), st.binary(max_size=40)), max_size=8)
hashes = st.one_of(st.sampled_from(LEAVES), st.binary(max_size=40))


@EXAMPLES
@given(index=sizes, size=sizes, proof=proofs, leaf=hashes, root=hashes)
def test_an_inclusion_proof_verifies_or_is_refused(index: int, size: int, proof: list[bytes],
                                                   leaf: bytes, root: bytes) -> None:
    result = outcome(verify_inclusion, leaf, index, size, proof, root)
    if result is not None:
        assert isinstance(result, InvalidProof)
        return
    # accepted: then it is the one true proof of a leaf of our tree, or of some other tree
    if 0 < size <= len(LEAVES) and root == root_of(LEAVES[:size]):
        assert proof == inclusion_proof(index, size, LEAVES) and leaf == LEAVES[index]


@EXAMPLES
@given(old=sizes, new=sizes, proof=proofs, old_root=hashes, new_root=hashes)
def test_a_consistency_proof_verifies_or_is_refused(old: int, new: int, proof: list[bytes],
                                                    old_root: bytes, new_root: bytes) -> None:
    result = outcome(verify_consistency, old, new, old_root, new_root, proof)
    if result is not None:
        assert isinstance(result, InvalidProof)
        return
    if 0 < old < new <= len(LEAVES) and old_root == root_of(LEAVES[:old]) \
            and new_root == root_of(LEAVES[:new]):
        assert proof == consistency_proof(old, new, LEAVES)


@EXAMPLES
@given(data=st.one_of(st.binary(max_size=200), st.builds(
    lambda size, body: b"\x01" + size.to_bytes(8, "big") + body,
    st.integers(0, 2**64 - 1), st.binary(max_size=200))))
def test_a_stored_compact_range_is_read_or_refused(data: bytes) -> None:
    result = outcome(CompactRange.from_bytes, data)
    if isinstance(result, CompactRange):
        assert result.to_bytes() == data
    else:
        assert isinstance(result, BadInput)


# ---- accept_checkpoint: what a counterparty's exchange call reaches ---------------------------
class Holder:
    """A node that holds its peer's checkpoints; the peer signs whatever a case needs."""

    def __init__(self, root: Path) -> None:
        self.home = Home.init(root / "holder", Config(name="holder", domain="data.qingdao",
                                                      listen="127.0.0.1:7001"))
        self.peer_keys = NodeKeys.generate()
        card = NodeCard.issue(self.peer_keys, "peer", "finance.qingdao", "127.0.0.1:7002")
        self.peer: Peer = add_peer(self.home, SignedCard.create(self.peer_keys, card))

    def note(self, size: str, root: str = "A" * 43 + "=") -> str:
        text = f"{origin_of(self.peer_keys.node_id)}\n{size}\n{root}\n"
        return sign_note(text, self.peer_keys.node_id, self.peer_keys.signing)


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Holder]:
    made = Holder(tmp_path_factory.mktemp("notes"))
    try:
        yield made
    finally:
        made.home.close()


def _served(home: Home) -> Served:
    return Served(home, None, None)  # type: ignore[arg-type] — only its path is used


def test_regression_checkpoint_size_beyond_sqlite_integer(holder: Holder) -> None:
    """The first checkpoint of a peer is held without a proof; one of size 2^63 (valid in
    C2SP, up to 2^64-1) overflowed SQLite's INTEGER and failed the call with INTERNAL."""
    watch = Watch(_served(holder.home))
    with pytest.raises(BadNote, match="at most 2\\^63-1"):
        accept_checkpoint(holder.home, holder.peer, holder.note(str(2**63)), 0, [])
    assert watch.assert_unchanged() == []


@EXAMPLES
@given(size=sizes.filter(lambda s: s >= 0).map(str), root=st.one_of(
    st.just("A" * 43 + "="), st.binary(min_size=32, max_size=32).map(
        lambda b: base64.b64encode(b).decode()), st.text(max_size=50)),
    from_size=st.integers(0, 2**64 - 1), proof=proofs)
def test_a_peer_checkpoint_is_held_or_refused(holder: Holder, size: str, root: str,
                                              from_size: int, proof: list[bytes]) -> None:
    """Signed by the peer itself, so only its content and proof can be refused."""
    note = outcome(holder.note, size, root)
    if isinstance(note, BadNote):  # e.g. a control character: the peer cannot even sign it
        return
    watch = Watch(_served(holder.home))
    result = outcome(accept_checkpoint, holder.home, holder.peer, note, from_size, proof)
    if isinstance(result, str):
        assert open_note(result, {holder.home.node_id: holder.home.keys.signing.verify_key})
        return
    assert isinstance(result, (BadNote, InvalidProof, MalformedMessage)), result
    watch.assert_unchanged()
