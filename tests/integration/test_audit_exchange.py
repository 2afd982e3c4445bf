"""Counterparty cosigning between two real nodes (gRPC servers on loopback), and what the
auditor makes of it: a node that rewrites its history after it was cosigned is refused by
its counterparty at the next exchange and caught by ``audit verify``."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connector import audit_exchange
from connector.audit_exchange import (
    accept_checkpoint,
    answer_checkpoints,
    exchange_checkpoints,
    offer_checkpoints,
    take_answer,
)
from connector.client import PeerClient
from connector.pb import trustspace_pb2 as pb
from connector.server import create_server
from node import checkpoints
from node.audit_export import export_log
from node.audit_format import AuditEntry, leaf_hash
from node.auditor.verify import Verification, verify
from node.config import Config
from node.errors import BadSignature, InvalidProof
from node.home import DB_FILE, Change, Home
from node.identity import NodeKeys
from node.peers import add_peer, peer_by_id
from node.signednote import Checkpoint, add_signature, note_text, open_note, sign_note


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pair:
    a: Home
    b: Home
    tmp: Path

    def exchange(self) -> None:
        """Node a calls node b, as the negotiate / fetch / receipt flows do."""
        with PeerClient(self.a, peer_by_id(self.a, self.b.node_id)) as client:
            exchange_checkpoints(self.a, client)

    def verify(self) -> Verification:
        logs, cards = [], []
        for home in (self.a, self.b):
            logs.append(self.tmp / f"{home.config.name}.jsonl")
            export_log(home, logs[-1])
            cards.append(self.tmp / f"{home.config.name}.card")
            cards[-1].write_text(home.signed_card().to_json())
        return verify(logs, cards)


@pytest.fixture(autouse=True)
def every_exchange_shows_a_new_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a checkpoint due at every exchange, as one is once a second in service, so
    these tests need not wait for one; the tests of an unchanged checkpoint undo it."""
    monkeypatch.setattr(checkpoints, "EVERY_MS", 0)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    homes = [Home.init(tmp_path / name, Config(name=name, domain=domain,
                                               listen=f"127.0.0.1:{_free_port()}"))
             for name, domain in (("bank", "finance.qingdao"), ("qingdao-data", "data.qingdao"))]
    a, b = homes
    add_peer(a, b.signed_card())
    add_peer(b, a.signed_card())
    servers = [create_server(home)[0] for home in homes]
    for server in servers:
        server.start()
    try:
        yield Pair(a, b, tmp_path)
    finally:
        for server in servers:
            server.stop(grace=None)


def _rows(home: Home, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in home.conn.execute(sql).fetchall()]


def _cosigned_entries(home: Home) -> list[AuditEntry]:
    return [AuditEntry.decode(bytes(r[0])) for r in home.conn.execute(
        "SELECT entry FROM audit_entries WHERE kind = 'checkpoint.cosigned' ORDER BY seq")]


def test_each_node_keeps_the_others_checkpoint_cosigned(pair: Pair) -> None:
    pair.exchange()
    # The caller also gets its own checkpoint back with the responder's cosignature.
    [(size, note)] = _rows(pair.a, "SELECT size, note FROM audit_cosignatures")
    opened = open_note(str(note), {pair.b.node_id: pair.b.keys.signing.verify_key})
    assert Checkpoint.parse(opened.text).size == size
    for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
        [(peer, held, proof_from)] = _rows(me, "SELECT peer_id, note, proof_from "
                                               "FROM audit_peer_checkpoints")
        assert (peer, proof_from) == (other.node_id, 0)
        assert open_note(str(held), {me.node_id: me.keys.signing.verify_key}).signers \
            == (me.node_id,)
        [entry] = _cosigned_entries(me)
        assert entry.body["peer"] == other.node_id


def test_later_exchanges_carry_consistency_proofs_and_the_logs_verify(pair: Pair) -> None:
    pair.exchange()
    for number in range(40):
        pair.b.record("node.started", {"address": f"127.0.0.1:{7000 + number}"})
    pair.exchange()
    [(first, _), (second, proof)] = _rows(pair.a, "SELECT proof_from, proof FROM "
                                                  "audit_peer_checkpoints ORDER BY size")
    assert first == 0 and second > 0 and len(bytes(proof)) % 32 == 0 and proof
    result = pair.verify()
    assert result.clean, [f.line() for f in result.findings]


def _exchange_state(pair: Pair) -> list[list[tuple[Any, ...]]]:
    return [_rows(home, f"SELECT * FROM {table}") for home in (pair.a, pair.b)
            for table in ("audit_entries", "audit_checkpoints", "audit_peer_checkpoints",
                          "audit_cosignatures")]


def test_a_checkpoint_shown_again_is_compared_not_signed_or_verified_again(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until its next checkpoint is due a node shows its newest one again; an exchange of
    checkpoints both sides hold already writes nothing and checks no signature."""
    pair.exchange()
    monkeypatch.setattr(checkpoints, "EVERY_MS", 3_600_000)
    pair.exchange()  # the cosigned entries of the first exchange came after its checkpoints
    before = _exchange_state(pair)
    crypto: list[str] = []
    for name in ("open_note", "add_signature"):
        real = getattr(audit_exchange, name)
        monkeypatch.setattr(audit_exchange, name,
                            lambda *a, _real=real, _name=name: crypto.append(_name) or _real(*a))
    pair.exchange()
    assert crypto == [] and _exchange_state(pair) == before
    # Once the next checkpoint is due, the exchange shows it, with its proof, and it is
    # verified, cosigned and kept again.
    monkeypatch.setattr(checkpoints, "EVERY_MS", 0)
    pair.exchange()
    assert "open_note" in crypto and "add_signature" in crypto
    assert len(_rows(pair.a, "SELECT 1 FROM audit_peer_checkpoints")) == \
        len(before[2]) + 1
    result = pair.verify()
    assert result.clean, [f.line() for f in result.findings]


def test_a_held_checkpoint_with_another_signature_is_verified_and_refused(pair: Pair) -> None:
    pair.exchange()
    b = pair.b
    [(note,)] = _rows(b, "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
    [(size, held)] = _rows(pair.a, "SELECT size, note FROM audit_peer_checkpoints")
    assert _size_of(str(note)) == size
    peer = peer_by_id(pair.a, b.node_id)
    # the very note a holds is taken as held, and nothing is written
    before = _exchange_state(pair)
    assert accept_checkpoint(pair.a, peer, str(note), size, []) == held
    assert _exchange_state(pair) == before
    # the same text with b's signature altered is no longer the held note: it is verified
    with pytest.raises(BadSignature):
        accept_checkpoint(pair.a, peer, _flip_line(str(note), b), size, [])
    assert _exchange_state(pair) == before


def test_a_checkpoint_that_contradicts_a_held_one_is_refused_and_recorded(pair: Pair) -> None:
    pair.exchange()
    [(held_size, held_root)] = _rows(pair.a, "SELECT size, root FROM audit_peer_checkpoints")
    size, root = int(held_size), bytes(held_root)
    b = pair.b
    other_root = bytes(32) if root != bytes(32) else bytes([1]) * 32
    forged = sign_note(Checkpoint(f"trustspace/{b.node_id}", size, other_root).to_text(),
                       b.node_id, b.keys.signing)
    before = _rows(pair.a, "SELECT size FROM audit_peer_checkpoints")
    with pytest.raises(InvalidProof):
        accept_checkpoint(pair.a, peer_by_id(pair.a, b.node_id), forged, size, [])
    assert _rows(pair.a, "SELECT size FROM audit_peer_checkpoints") == before
    refused = AuditEntry.decode(bytes(pair.a.conn.execute(
        "SELECT entry FROM audit_entries WHERE kind = 'checkpoint.refused'").fetchone()[0]))
    assert refused.body["offered"] == forged and refused.body["held_size"] == size
    result = pair.verify()
    rules = {(f.rule, f.log) for f in result.findings}
    assert ("checkpoint.refused", str(pair.tmp / "bank.jsonl")) in rules
    assert ("checkpoint.fork", str(pair.tmp / "qingdao-data.jsonl")) in rules


def test_a_checkpoint_signed_by_another_key_is_refused_and_changes_nothing(pair: Pair) -> None:
    pair.exchange()
    before = pair.a.audit.size()
    stranger = NodeKeys.generate()
    note = sign_note(Checkpoint(f"trustspace/{pair.b.node_id}", 99, bytes(32)).to_text(),
                     pair.b.node_id, stranger.signing)
    with pytest.raises(BadSignature):
        accept_checkpoint(pair.a, peer_by_id(pair.a, pair.b.node_id), note, 0, [])
    assert pair.a.audit.size() == before


def test_the_responder_refuses_a_proof_from_a_size_it_does_not_hold(pair: Pair) -> None:
    pair.exchange()
    pair.a.record("node.started", {"address": "127.0.0.1:7999"})
    note = pair.a.checkpointer.checkpoint_now()
    assert note is not None
    with PeerClient(pair.a, peer_by_id(pair.a, pair.b.node_id)) as client:
        request = pb.CheckpointExchangeRequest(checkpoint=note, cosigned_size=1,
                                               consistency=[bytes(32)])
        with pytest.raises(InvalidProof):
            client.call(client.audit.ExchangeCheckpoints, request)


def _rewrite_history(home: Home, seq: int) -> None:
    """What a dishonest node can do with its own database and key: change entry ``seq``,
    re-chain every later entry and re-sign its checkpoints, so its own log is consistent."""
    home.close()
    conn = sqlite3.connect(home.path / DB_FILE, isolation_level=None)
    rows = conn.execute("SELECT seq, entry FROM audit_entries WHERE seq >= ? ORDER BY seq",
                        (seq,)).fetchall()
    prev = bytes(conn.execute("SELECT hash FROM audit_entries WHERE seq = ?",
                              (seq - 1,)).fetchone()[0]).hex()
    for number, data in rows:
        entry = AuditEntry.decode(bytes(data))
        body = {**entry.body, "address": "10.9.9.9:1"} if number == seq else entry.body
        new = AuditEntry(entry.seq, entry.time, entry.node, entry.kind, body, prev).encode()
        conn.execute("UPDATE audit_entries SET entry = ?, hash = ? WHERE seq = ?",
                     (new, leaf_hash(new), number))
        prev = leaf_hash(new).hex()
    conn.execute("DELETE FROM audit_checkpoints WHERE size > ?", (seq,))
    conn.close()
    home.checkpointer.checkpoint_now()


def test_a_node_that_rewrites_its_history_is_refused_and_caught(pair: Pair) -> None:
    pair.b.record("node.started", {"address": "127.0.0.1:7001"})
    pair.exchange()
    seq = int(pair.b.conn.execute("SELECT max(seq) FROM audit_entries WHERE kind = "
                                  "'node.started'").fetchone()[0])
    _rewrite_history(pair.b, seq)
    # b's own log is consistent again, but a holds b's checkpoint of the old history.
    with pytest.raises(InvalidProof):
        pair.exchange()
    result = pair.verify()
    b_log = str(pair.tmp / "qingdao-data.jsonl")
    assert not [f for f in result.findings if f.log == b_log and f.step == 1]
    assert ("checkpoint.fork", b_log) in {(f.rule, f.log) for f in result.findings}
    assert ("checkpoint.refused", str(pair.tmp / "bank.jsonl")) in \
        {(f.rule, f.log) for f in result.findings}


def _flip_line(note: str, signer: Home) -> str:
    """``note`` with one base64 character of ``signer``'s signature line changed."""
    lines = note.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(f"— {signer.node_id} "))
    line = lines[index]
    lines[index] = line[:-3] + ("A" if line[-3] != "A" else "B") + line[-2:]
    return "\n".join(lines)


COSIGNATURE_CASES = {
    "another text, both signing": lambda pair, note, good: add_signature(
        sign_note(Checkpoint(f"trustspace/{pair.a.node_id}", 10**6, bytes(32)).to_text(),
                  pair.a.node_id, pair.a.keys.signing), pair.b.node_id, pair.b.keys.signing),
    "the text signed by the peer alone": lambda pair, note, good: sign_note(
        note_text(note), pair.b.node_id, pair.b.keys.signing),
    "our signature line altered": lambda pair, note, good: _flip_line(good, pair.a),
    "the peer's signature line altered": lambda pair, note, good: _flip_line(good, pair.b),
}


@pytest.mark.parametrize("case", COSIGNATURE_CASES.values(), ids=COSIGNATURE_CASES.keys())
def test_a_returned_cosignature_that_is_not_of_our_checkpoint_is_refused(
        pair: Pair, case: Any) -> None:
    peer_b = peer_by_id(pair.a, pair.b.node_id)
    offered = offer_checkpoints(pair.a, peer_b)
    answer = answer_checkpoints(pair.b, peer_by_id(pair.b, pair.a.node_id), offered)
    tables = "SELECT * FROM audit_cosignatures UNION ALL SELECT peer_id, size, note, 0, 0 " \
             "FROM audit_peer_checkpoints"
    before = _rows(pair.a, tables)
    answer.cosigned = case(pair, offered.checkpoint, answer.cosigned)
    with pytest.raises(BadSignature):
        take_answer(pair.a, peer_b, offered, answer)
    assert _rows(pair.a, tables) == before


def test_a_returned_cosignature_of_our_checkpoint_is_kept(pair: Pair) -> None:
    peer_b = peer_by_id(pair.a, pair.b.node_id)
    offered = offer_checkpoints(pair.a, peer_b)
    answer = answer_checkpoints(pair.b, peer_by_id(pair.b, pair.a.node_id), offered)
    take_answer(pair.a, peer_b, offered, answer)
    [(note,)] = _rows(pair.a, "SELECT note FROM audit_cosignatures")
    assert note == answer.cosigned


def test_a_valid_cosignature_is_kept_when_the_peers_own_checkpoint_is_refused(
        pair: Pair) -> None:
    peer_b = peer_by_id(pair.a, pair.b.node_id)
    offered = offer_checkpoints(pair.a, peer_b)
    answer = answer_checkpoints(pair.b, peer_by_id(pair.b, pair.a.node_id), offered)
    answer.checkpoint = sign_note(note_text(answer.checkpoint), pair.b.node_id,
                                  NodeKeys.generate().signing)  # b's checkpoint, another key
    held = _rows(pair.a, "SELECT size FROM audit_peer_checkpoints")
    with pytest.raises(BadSignature):
        take_answer(pair.a, peer_b, offered, answer)
    [(note,)] = _rows(pair.a, "SELECT note FROM audit_cosignatures")
    assert note == answer.cosigned
    assert _rows(pair.a, "SELECT size FROM audit_peer_checkpoints") == held


def _size_of(note: str) -> int:
    return Checkpoint.parse(note_text(note)).size


@pytest.mark.parametrize("cosigned_before", [False, True],
                         ids=["lost on the first exchange", "lost after one cosigned"])
def test_an_answer_that_never_came_back_does_not_wedge_the_next_exchange(
        pair: Pair, cosigned_before: bool) -> None:
    """The next offer proves from the newest checkpoint the peer cosigned, or, when none
    came back, from the newest one offered, which the peer may hold."""
    if cosigned_before:
        pair.exchange()
    peer_b, peer_a = peer_by_id(pair.a, pair.b.node_id), peer_by_id(pair.b, pair.a.node_id)
    lost = offer_checkpoints(pair.a, peer_b)
    answer_checkpoints(pair.b, peer_a, lost)  # b keeps a's checkpoint; a never hears back
    pair.a.record("node.started", {"address": "127.0.0.1:7010"})
    again = offer_checkpoints(pair.a, peer_b)
    cosigned = _rows(pair.a, "SELECT size FROM audit_cosignatures WHERE note IS NOT NULL")
    assert again.cosigned_size == (cosigned[0][0] if cosigned_before
                                   else _size_of(lost.checkpoint))
    take_answer(pair.a, peer_b, again, answer_checkpoints(pair.b, peer_a, again))
    result = pair.verify()
    assert result.clean, [f.line() for f in result.findings]


def _spoil_signature(pair: Pair, offered: pb.CheckpointExchangeRequest,
                     answer: pb.CheckpointExchangeResponse) -> None:
    answer.checkpoint = sign_note(note_text(answer.checkpoint), pair.b.node_id,
                                  NodeKeys.generate().signing)


def _spoil_proof_size(pair: Pair, offered: pb.CheckpointExchangeRequest,
                      answer: pb.CheckpointExchangeResponse) -> None:
    offered.known_size = 7777  # no checkpoint of b this node holds has that size


def _spoil_cosignature(pair: Pair, offered: pb.CheckpointExchangeRequest,
                       answer: pb.CheckpointExchangeResponse) -> None:
    answer.cosigned = answer.checkpoint  # signed by b, but not over a's checkpoint


ANSWERS: dict[str, tuple[Callable[..., None] | None, type[Exception] | None]] = {
    "a good answer": (None, None),
    "the peer's checkpoint signed by another key": (_spoil_signature, BadSignature),
    "a proof from a size this node does not hold": (_spoil_proof_size, InvalidProof),
    "a cosignature of another checkpoint": (_spoil_cosignature, BadSignature),
}


@pytest.mark.parametrize("spoil, error", ANSWERS.values(), ids=ANSWERS.keys())
def test_what_the_caller_commits_with_an_answer_commits_whatever_the_answer(
        pair: Pair, spoil: Callable[..., None] | None, error: type[Exception] | None) -> None:
    """``also`` (the outbox leaving a countersignature) commits whether or not the answer
    is kept, and a valid cosignature is kept even when the peer's checkpoint is not."""
    pair.exchange()  # a holds b's first checkpoint: the next one needs a proof from it
    pair.b.record("node.started", {"address": "127.0.0.1:7011"})
    peer_b, peer_a = peer_by_id(pair.a, pair.b.node_id), peer_by_id(pair.b, pair.a.node_id)
    offered = offer_checkpoints(pair.a, peer_b)
    answer = answer_checkpoints(pair.b, peer_a, offered)
    if spoil is not None:
        spoil(pair, offered, answer)
    held = _rows(pair.a, "SELECT size FROM audit_peer_checkpoints")

    def also(change: Change) -> None:
        change.conn.execute("INSERT INTO node_meta (key, value) VALUES ('test.also', 'ran')")

    if error is None:
        take_answer(pair.a, peer_b, offered, answer, also=also)
    else:
        with pytest.raises(error):
            take_answer(pair.a, peer_b, offered, answer, also=also)
    assert _rows(pair.a, "SELECT value FROM node_meta WHERE key = 'test.also'") == [("ran",)]
    kept = _rows(pair.a, "SELECT note FROM audit_cosignatures WHERE size = "
                         f"{_size_of(offered.checkpoint)}")
    # offered, and cosigned unless the cosignature itself was refused
    assert kept == [(None if spoil is _spoil_cosignature else answer.cosigned,)]
    now_held = _rows(pair.a, "SELECT size FROM audit_peer_checkpoints")
    assert now_held == (held + [(_size_of(answer.checkpoint),)] if error is None else held)
