"""A node's keys and its signed node card.

The node id is derived from the Ed25519 public key, so an id can never be claimed by a
different key. The card binds name, domain, address and both public keys (Ed25519 for
signatures, X25519 for envelopes encrypted to the node) under the node's own signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from node.canonical import b64, canonical_json, signing_bytes, unb64
from node.errors import BadInput, BadSignature, MalformedFile, MalformedMessage
from node.ids import check_domain, check_id

KEY_FILE_MODE = 0o600


def node_id_of(verify_key: bytes) -> str:
    """``n`` + the first 128 bits of SHA-256 of the Ed25519 public key, in hex."""
    return "n" + hashlib.sha256(verify_key).hexdigest()[:32]


@dataclass(frozen=True)
class NodeKeys:
    """The node's secrets: signing key, envelope decryption key, vault master key."""

    signing: SigningKey
    box: PrivateKey
    vault_master: bytes

    @classmethod
    def generate(cls) -> NodeKeys:
        return cls(SigningKey.generate(), PrivateKey.generate(), os.urandom(32))

    @property
    def verify_key(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def node_id(self) -> str:
        return node_id_of(self.verify_key)

    def sign(self, doc_type: str, payload: bytes) -> bytes:
        return self.signing.sign(signing_bytes(doc_type, payload)).signature

    def save(self, path: Path) -> None:
        """Write the key file with mode 0600 from the first byte; never overwrite one."""
        data = json.dumps({"ed25519": b64(bytes(self.signing)), "x25519": b64(bytes(self.box)),
                           "vault": b64(self.vault_master)}).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path) -> NodeKeys:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise BadInput(f"the key file {path} is readable by others (mode {mode:o}); "
                           "run chmod 600 on it")
        try:
            raw = json.loads(path.read_bytes())
            return cls(SigningKey(unb64(raw["ed25519"], what="ed25519 key", size=32)),
                       PrivateKey(unb64(raw["x25519"], what="x25519 key", size=32)),
                       unb64(raw["vault"], what="vault key", size=32))
        except (ValueError, KeyError, TypeError, MalformedMessage):
            raise MalformedFile(f"the key file {path} is damaged") from None


def verify_signature(verify_key: bytes, doc_type: str, payload: bytes, signature: bytes,
                     *, what: str) -> None:
    """Check an Ed25519 signature over a document's signing bytes, or refuse naming it."""
    try:
        VerifyKey(verify_key).verify(signing_bytes(doc_type, payload), signature)
    except (BadSignatureError, ValueError, TypeError):
        raise BadSignature(f"the signature on {what} does not verify") from None


@dataclass(frozen=True)
class NodeCard:
    """A node's public identity, as peers see and trust it."""

    node_id: str
    name: str
    domain: str
    address: str
    signing_key: str  # base64 Ed25519 public key
    encryption_key: str  # base64 X25519 public key
    issued_at: int  # unix milliseconds

    def __post_init__(self) -> None:
        check_id(self.name, what="node name")
        check_domain(self.domain)
        check_address(self.address)
        sk = unb64(self.signing_key, what="the card's signing key", size=32)
        unb64(self.encryption_key, what="the card's encryption key", size=32)
        if node_id_of(sk) != self.node_id:
            raise BadSignature("the card's node id does not match its signing key")

    @property
    def verify_key(self) -> bytes:
        return unb64(self.signing_key, what="signing key", size=32)

    @property
    def box_key(self) -> PublicKey:
        return PublicKey(unb64(self.encryption_key, what="encryption key", size=32))

    def payload(self) -> bytes:
        return canonical_json(asdict(self))

    @classmethod
    def issue(cls, keys: NodeKeys, name: str, domain: str, address: str) -> NodeCard:
        return cls(keys.node_id, name, domain, address, b64(keys.verify_key),
                   b64(bytes(keys.box.public_key)), int(time.time() * 1000))


@dataclass(frozen=True)
class SignedCard:
    card: NodeCard
    signature: bytes

    def to_json(self) -> str:
        return json.dumps({"card": asdict(self.card), "signature": b64(self.signature)},
                          indent=2, sort_keys=True)

    @classmethod
    def create(cls, keys: NodeKeys, card: NodeCard) -> SignedCard:
        return cls(card, keys.sign("node-card", card.payload()))

    @classmethod
    def from_json(cls, text: str) -> SignedCard:
        """Parse and verify a card file: the signature must be by the card's own key."""
        try:
            raw = json.loads(text)
            fields = raw["card"]
            if not isinstance(fields, dict) or set(fields) != set(NodeCard.__dataclass_fields__):
                raise MalformedFile("the card does not have exactly the fields of a node card")
            issued_at = fields["issued_at"]
            if not isinstance(issued_at, int) or isinstance(issued_at, bool) or not all(
                    isinstance(fields[k], str) for k in fields if k != "issued_at"):
                raise MalformedFile("the card's fields have the wrong types")
            signature_text = raw.get("signature")
            if not isinstance(signature_text, str):
                raise BadSignature("the card is not signed")
        except (ValueError, TypeError, KeyError, RecursionError):  # deep nesting: not a card
            raise MalformedFile("the file is not a node card (JSON with 'card' and "
                                "'signature')") from None
        card = NodeCard(**fields)
        signature = unb64(signature_text, what="the card's signature", size=64)
        verify_signature(card.verify_key, "node-card", card.payload(), signature,
                         what=f"the card of {card.name}")
        return cls(card, signature)


def check_address(address: object) -> str:
    """HOST:PORT with a port in range; the host is not resolved here.

    Both parts are ASCII (an international host name goes in its xn-- form): a host of
    look-alike letters must not pass for another, and a port of other digits (``int``
    reads Arabic-Indic ones, and refuses 4300 digits with a ValueError) is no port.
    """
    if not isinstance(address, str) or ":" not in address:
        raise BadInput(f"an address must be HOST:PORT, found {_shown(address)}")
    host, _, port = address.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or len(port) > 5 \
            or not 0 < int(port) < 65536 or not (host.isascii() and host.isprintable()) \
            or " " in host:
        raise BadInput(f"an address must be HOST:PORT with a port from 1 to 65535, "
                       f"found {_shown(address)}")
    return address


def _shown(value: object) -> str:
    """``value`` quoted for a message, in at most about 80 characters."""
    if isinstance(value, str) and len(value) > 77:
        return repr(value[:77]) + "..."
    return repr(value)


def card_dict(card: NodeCard) -> dict[str, Any]:
    return asdict(card)
