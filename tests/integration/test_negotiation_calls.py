"""What a negotiation costs on the wire: two authenticated calls, the second of which, the
countersignature, carries the audit checkpoint exchange; and a client kept open across
negotiations. The provider runs as ``trustspace serve``; the consumer negotiates in process
through ``connector.consumer.negotiate``, as an application using the Python API does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey

from connector import consumer
from connector.audit_exchange import offer_checkpoints, take_answer
from connector.client import PeerClient
from connector.consumer import negotiate, poll_pending_requests
from connector.convert import doc_from_pb, doc_to_pb
from connector.pb import trustspace_pb2 as pb
from node import negotiation, outbox
from node.agreements import StoredAgreement
from node.documents import SignedDoc
from node.errors import BadInput, TrustspaceError
from node.home import Home
from node.peers import Peer, peer_by_name
from node.signednote import Checkpoint, note_text, open_note
from policies.evaluate import Request
from tests.conftest import Node
from tests.integration.conftest import (
    APP,
    OFFER_ID,
    PURPOSE,
    make_node,
    one,
    publish,
    sql,
    trust,
)

REQUEST = Request(purpose=PURPOSE, app=APP)


@dataclass
class Space:
    provider: Node
    other: Node
    consumer: Home

    @property
    def provider_peer(self) -> Peer:
        return peer_by_name(self.consumer, "prov")

    def calls_seen(self) -> int:
        """Authenticated calls the provider accepted from the consumer (one nonce each)."""
        return int(one(self.provider, "SELECT count(*) FROM seen_nonces WHERE node_id = ?",
                       self.consumer.node_id))

    def client(self, name: str = "prov") -> PeerClient:
        return PeerClient(self.consumer, peer_by_name(self.consumer, name))

    def consumer_tables(self) -> dict[str, list[tuple[object, ...]]]:
        return {t: [tuple(r) for r in self.consumer.conn.execute(f"SELECT * FROM {t}")]
                for t in ("requests", "agreements", "audit_entries", "outbox")}

    def consumer_one(self, query: str, *params: object) -> object:
        return self.consumer.conn.execute(query, params).fetchone()[0]


@pytest.fixture(scope="module")
def space(module_dir: Path) -> Iterator[Space]:
    provider = make_node(module_dir, "prov", "data.qingdao")
    other = make_node(module_dir, "other", "data.laoshan")
    consumer = make_node(module_dir, "cons", "finance.qingdao")
    trust(provider, consumer)
    trust(other, consumer)
    trust(consumer, provider, other)
    publish(provider, module_dir)
    provider.start()
    other.start()
    home = Home.open(consumer.home)
    try:
        yield Space(provider, other, home)
    finally:
        home.close()
        provider.stop()
        other.stop()


def test_a_negotiation_is_two_calls_and_swaps_checkpoints(space: Space) -> None:
    before = space.calls_seen()
    result = negotiate(space.consumer, "prov", OFFER_ID, REQUEST)
    assert result.state == "agreed" and result.agreement is not None
    assert space.calls_seen() - before == 2  # Negotiate, then Countersign with checkpoints
    agreement_id = result.agreement.agreement_id
    assert one(space.provider, "SELECT state FROM agreements WHERE agreement_id = ?",
               agreement_id) == "active"
    assert not outbox.due(space.consumer, None, force=True)  # the countersignature arrived
    # The consumer's newest checkpoint came back cosigned by the provider, which holds it.
    size, note = space.consumer.conn.execute(
        "SELECT size, note FROM audit_cosignatures ORDER BY size DESC LIMIT 1").fetchone()
    keys = {space.consumer.node_id: space.consumer.keys.signing.verify_key,
            space.provider_peer.node_id: VerifyKey(space.provider_peer.card.verify_key)}
    assert set(open_note(str(note), keys).signers) == set(keys)
    assert sql(space.provider, "SELECT max(size) FROM audit_peer_checkpoints WHERE peer_id = ?",
               space.consumer.node_id) == [(size,)]
    # The consumer holds the provider's checkpoint, which the provider signed, cosigned.
    [(held,)] = space.consumer.conn.execute(
        "SELECT note FROM audit_peer_checkpoints WHERE peer_id = ? ORDER BY size DESC LIMIT 1",
        (space.provider_peer.node_id,)).fetchall()
    assert set(open_note(str(held), keys).signers) == set(keys)


def test_one_client_carries_many_negotiations_and_stays_open(space: Space) -> None:
    with space.client() as client:
        before = space.calls_seen()
        results = [negotiate(space.consumer, "prov", OFFER_ID, REQUEST, client=client)
                   for _ in range(3)]
        assert [r.state for r in results] == ["agreed"] * 3
        assert space.calls_seen() - before == 6
        offers = client.call(client.catalog.ListOffers, pb.ListOffersRequest()).offers
        assert [o.offer_id for o in offers] == [OFFER_ID]  # the lent client is still open


def test_a_client_connected_to_another_peer_is_refused_and_changes_nothing(
        space: Space) -> None:
    before = space.consumer_tables()
    with space.client("other") as client, pytest.raises(BadInput) as refused:
        negotiate(space.consumer, "prov", OFFER_ID, REQUEST, client=client)
    assert refused.value.message == "the client given is connected to other, not to prov"
    assert space.consumer_tables() == before


def _size_of(offered: pb.CheckpointExchangeRequest) -> int:
    return Checkpoint.parse(note_text(offered.checkpoint)).size


def _awaiting_countersignature(space: Space, client: PeerClient) -> StoredAgreement:
    """An agreement the provider signed and the consumer accepted, not yet countersigned
    at the provider (its countersignature waits in the consumer's outbox)."""
    provider = space.provider_peer
    request = negotiation.make_request(space.consumer, provider, OFFER_ID, REQUEST)
    answer = client.call(client.negotiation.Negotiate,
                         pb.NegotiateRequest(request=doc_to_pb(request)))
    return negotiation.accept_agreement(
        space.consumer, provider, request.body()["request_id"],
        doc_from_pb(answer.agreement, what="agreement"),
        doc_from_pb(answer.decision, what="decision"))


def test_a_retried_countersignature_changes_nothing_and_still_swaps_checkpoints(
        space: Space) -> None:
    """The consumer's outbox may send a countersignature twice (its answer was lost): the
    agreement stays as it is and the checkpoint exchange it carries is answered again."""
    with space.client() as client:
        stored = _awaiting_countersignature(space, client)
        answers, offers = [], []
        for _ in range(2):
            offered = offer_checkpoints(space.consumer, space.provider_peer)
            offers.append(offered)
            answers.append(client.call(client.negotiation.Countersign, pb.CountersignRequest(
                agreement=doc_to_pb(stored.doc), checkpoints=offered)))
            take_answer(space.consumer, space.provider_peer, offered, answers[-1].checkpoints)
    signed = sql(space.provider, "SELECT seq FROM audit_entries WHERE kind = "
                                 "'agreement.signed' AND json_extract(entry, '$.body.agreement')"
                                 " = ?", stored.agreement_id)
    assert len(signed) == 1  # activated once
    assert one(space.provider, "SELECT state FROM agreements WHERE agreement_id = ?",
               stored.agreement_id) == "active"
    for answer in answers:
        assert answer.agreement_id == stored.agreement_id and not answer.checkpoints_refused
        assert answer.checkpoints.cosigned and answer.checkpoints.checkpoint
    # the provider holds what was offered each time (the same checkpoint, unless a newer one
    # came due in between)
    held = {size for (size,) in sql(space.provider, "SELECT size FROM audit_peer_checkpoints")}
    assert {_size_of(o) for o in offers} <= held


@pytest.mark.parametrize("checkpoint", [
    pytest.param("", id="empty note"),
    pytest.param("not a signed note\n", id="not a note"),
    pytest.param("trustspace/x\n1\nAAAA\n\n— x AAAA\n", id="signature of an unknown key"),
])
def test_a_refused_checkpoint_does_not_refuse_the_countersignature(
        space: Space, checkpoint: str) -> None:
    with space.client() as client:
        stored = _awaiting_countersignature(space, client)
        cosigned_before = len(sql(space.provider, "SELECT 1 FROM audit_entries WHERE kind = "
                                                  "'checkpoint.cosigned'"))
        response = client.call(client.negotiation.Countersign, pb.CountersignRequest(
            agreement=doc_to_pb(stored.doc),
            checkpoints=pb.CheckpointExchangeRequest(checkpoint=checkpoint)))
    assert response.agreement_id == stored.agreement_id
    assert response.checkpoints_refused and not response.HasField("checkpoints")
    assert one(space.provider, "SELECT state FROM agreements WHERE agreement_id = ?",
               stored.agreement_id) == "active"
    assert len(sql(space.provider, "SELECT 1 FROM audit_entries WHERE kind = "
                                   "'checkpoint.cosigned'")) == cosigned_before


def _resigned(doc: SignedDoc, node_id: str, signature: bytes | None) -> SignedDoc:
    signatures = {k: v for k, v in doc.signatures.items() if k != node_id}
    if signature is not None:
        signatures[node_id] = signature
    return SignedDoc(doc.type, doc.payload, signatures)


def _flipped(signature: bytes) -> bytes:
    return bytes([signature[0] ^ 1]) + signature[1:]


TAMPERED = {  # (change to the countersigned document, the refusal's message ends with)
    "the provider's signature removed": (
        lambda doc, space: _resigned(doc, space.provider_peer.node_id, None),
        "(provider) is not signed by {provider}"),
    "the provider's signature altered": (
        lambda doc, space: _resigned(doc, space.provider_peer.node_id,
                                     _flipped(doc.signatures[space.provider_peer.node_id])),
        "(provider) does not verify"),
    "the consumer's signature removed": (
        lambda doc, space: _resigned(doc, space.consumer.node_id, None),
        "(consumer) is not signed by {consumer}"),
    "the consumer's signature altered": (
        lambda doc, space: _resigned(doc, space.consumer.node_id,
                                     _flipped(doc.signatures[space.consumer.node_id])),
        "(consumer) does not verify"),
    "another payload": (
        lambda doc, space: SignedDoc(doc.type, re.sub(  # one more read, still canonical
            rb'"max_reads":(\d+)', lambda m: b'"max_reads":%d' % (int(m[1]) + 1), doc.payload),
            doc.signatures),
        "differs from the one this node signed"),
}


@pytest.mark.parametrize("tamper, message", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_countersignature_is_refused_and_changes_nothing(
        space: Space, tamper: Any, message: str) -> None:
    with space.client() as client:
        stored = _awaiting_countersignature(space, client)
        entries = int(one(space.provider, "SELECT count(*) FROM audit_entries"))
        with pytest.raises(TrustspaceError) as refused:
            client.call(client.negotiation.Countersign, pb.CountersignRequest(
                agreement=doc_to_pb(tamper(stored.doc, space))))
    assert refused.value.message.endswith(message.format(
        provider=space.provider_peer.node_id, consumer=space.consumer.node_id)), \
        refused.value.message
    assert one(space.provider, "SELECT state FROM agreements WHERE agreement_id = ?",
               stored.agreement_id) == "awaiting_countersignature"
    # nothing changed but the refusal, recorded with its reason
    [(kind, body)] = [(k, json.loads(e)["body"]) for k, e in sql(
        space.provider, "SELECT kind, entry FROM audit_entries WHERE seq >= ?", entries)]
    assert (kind, body["method"], body["caller"], body["reason"]) == (
        "call.refused", "/trustspace.v1.Negotiation/Countersign", space.consumer.node_id,
        refused.value.code)
    assert refused.value.message.endswith(body["message"])  # the caller's adds who refused


# ---- the running node's poll of pending requests --------------------------------------------
def _request_state(space: Space, request_id: str) -> tuple[object, ...]:
    return tuple(space.consumer.conn.execute(
        "SELECT state, agreement_id FROM requests WHERE request_id = ?", (request_id,)
    ).fetchone())


def test_the_poll_leaves_a_request_a_command_is_still_sending(space: Space) -> None:
    """The node's poll may ask about a request before the command's call reached the
    provider: "not found" then ends nothing, and the answer, once sent, is taken."""
    request = negotiation.make_request(space.consumer, space.provider_peer, OFFER_ID, REQUEST)
    request_id = request.body()["request_id"]
    before = space.consumer_tables()
    assert poll_pending_requests(space.consumer) == 0
    assert space.consumer_tables() == before
    with space.client() as client:  # the command's call arrives
        client.call(client.negotiation.Negotiate, pb.NegotiateRequest(
            request=doc_to_pb(request)))
    assert poll_pending_requests(space.consumer) == 1
    state, agreement_id = _request_state(space, request_id)
    assert state == "agreed"
    assert one(space.provider, "SELECT state FROM agreements WHERE agreement_id = ?",
               agreement_id) == "active"  # the poll countersigned it


def test_the_poll_ends_a_request_never_sent_once_its_sending_window_closed(
        space: Space, monkeypatch: pytest.MonkeyPatch) -> None:
    request = negotiation.make_request(space.consumer, space.provider_peer, OFFER_ID, REQUEST)
    request_id = request.body()["request_id"]
    monkeypatch.setattr(consumer, "SENDING_S", 0.0)  # the command died before sending it
    assert poll_pending_requests(space.consumer) == 1
    assert _request_state(space, request_id) == ("rejected", None)
    [entry] = [json.loads(e)["body"] for (e,) in space.consumer.conn.execute(
        "SELECT entry FROM audit_entries WHERE kind = 'negotiation.decided' AND "
        "json_extract(entry, '$.body.request') = ?", (request_id,))]
    assert entry["outcome"] == "rejected"
    assert [r["term"] for r in entry["reasons"]] == ["not_found"]
    assert not sql(space.provider, "SELECT 1 FROM requests WHERE request_id = ?", request_id)
