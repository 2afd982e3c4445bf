"""Sends what waits in the outbox, until each peer acknowledges it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from connector.audit_exchange import offer_checkpoints, take_answer
from connector.client import PeerClient
from connector.convert import doc_from_pb, doc_to_pb
from connector.pb import trustspace_pb2 as pb
from node import outbox
from node.destruction import acknowledge_receipt_sent
from node.errors import TrustspaceError
from node.faults import crash_point
from node.home import Change, Home
from node.peers import peer_by_id

log = logging.getLogger("trustspace.outbox")
SEND_TIMEOUT_S = 5.0
"""How long one message may take to be sent and acknowledged."""


def flush_outbox(home: Home, peer_id: str | None = None, *, force: bool = False,
                 client: PeerClient | None = None) -> int:
    """Try every due message once; returns how many were delivered.

    ``client``, already connected to a peer, carries that peer's messages and is left
    open: a negotiation sends its countersignature on the channel it negotiated on,
    instead of opening a second connection for one call.
    """
    delivered = 0
    clients: dict[str, PeerClient] = {}
    lent = {} if client is None else {client.peer.node_id: client}
    try:
        for message in outbox.due(home, peer_id, force=force):
            try:
                peer = peer_by_id(home, message.peer_id, include_removed=True)
                sender = lent.get(peer.node_id) or clients.get(peer.node_id)
                if sender is None:
                    sender = clients[peer.node_id] = PeerClient(home, peer,
                                                                timeout=SEND_TIMEOUT_S)
                _send(home, sender, message)
            except TrustspaceError as e:
                outbox.mark_failed(home, message, e.message)
                log.info("outbox %s to %s not delivered yet: %s", message.kind,
                         message.peer_id, e.code)
                continue
            delivered += 1
    finally:
        for opened in clients.values():  # not the lent client: its owner closes it
            opened.close()
    return delivered


def _send(home: Home, client: PeerClient, message: outbox.Message) -> None:
    """Send one message; it leaves the outbox once the peer acknowledged it."""
    doc = doc_to_pb(message.doc)
    leave = partial(outbox.mark_delivered, message_id=message.id)
    if message.kind == "countersign":
        _countersign(home, client, doc, leave)
        return
    if message.kind == "receipt":
        ack = client.call(client.receipts.SubmitReceipt, pb.ReceiptRequest(receipt=doc),
                          SEND_TIMEOUT_S)
        acknowledge_receipt_sent(home, message.doc,
                                 doc_from_pb(ack.acknowledgement, what="acknowledgement"),
                                 client.peer)
    elif message.kind == "revocation":
        client.call(client.notifications.Revoked, pb.RevocationNotice(revocation=doc),
                    SEND_TIMEOUT_S)
    else:  # pragma: no cover — the table's CHECK constraint allows nothing else
        raise ValueError(message.kind)
    crash_point(f"outbox.{message.kind}_sent")
    with home.change() as change:
        leave(change)


def _countersign(home: Home, client: PeerClient, doc: pb.SignedDocument,
                 leave: Callable[[Change], None]) -> None:
    """The countersignature, carrying this node's half of the checkpoint exchange.

    The exchange never fails the countersignature: a checkpoint either side refuses is
    recorded as ``checkpoint.refused`` by the side that refused it. The message leaves
    the outbox (``leave``) in the transaction that keeps the provider's answer.
    """
    try:
        offered: pb.CheckpointExchangeRequest | None = offer_checkpoints(home, client.peer)
    except TrustspaceError:
        offered = None
    answer = client.call(client.negotiation.Countersign,
                         pb.CountersignRequest(agreement=doc, checkpoints=offered),
                         SEND_TIMEOUT_S)
    crash_point("outbox.countersign_sent")
    if offered is None or not answer.HasField("checkpoints"):
        if answer.checkpoints_refused:
            log.info("%s refused this node's checkpoint: %s", client.peer.name,
                     answer.checkpoints_refused[:300])
        with home.change() as change:
            leave(change)
        return
    try:
        take_answer(home, client.peer, offered, answer.checkpoints, also=leave)
    except TrustspaceError as e:
        log.info("checkpoint of %s not accepted: %s", client.peer.name, e.code)
