"""Node keys, node ids and signed node cards.

A card is accepted only when it is exactly a node card, its node id derives from its
signing key, and that key signed it. Every other card is refused with its own reason; the
same table drives ``trustspace peer add`` in tests/integration/test_cli_node.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from node.canonical import b64
from node.errors import (
    BadInput,
    BadSignature,
    InvalidId,
    MalformedFile,
    MalformedMessage,
    TrustspaceError,
)
from node.identity import NodeCard, NodeKeys, SignedCard, check_address, node_id_of

FIXED = NodeKeys(SigningKey(bytes(range(32))), PrivateKey(bytes(range(32, 64))),
                 bytes(range(64, 96)))
OTHER = NodeKeys(SigningKey(bytes(range(100, 132))), PrivateKey(bytes(range(132, 164))),
                 bytes(32))

CARD_PAYLOAD = (
    b'{"address":"127.0.0.1:7001","domain":"data.qingdao",'
    b'"encryption_key":"NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ=","issued_at":1700000000000,'
    b'"name":"prov","node_id":"n56475aa75463474c0285df5dbf2bcab7",'
    b'"signing_key":"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="}')
CARD_SIGNATURE = ("93dbd0104595302aad9c15d39d177724d1c7f75b98788fe2fd9737b6de43edbd"
                  "9a3e8299052df617b858424017f3fe4cbe437ea4913828581d9d23d36b11df0b")
CARD_FILE = """\
{
  "card": {
    "address": "127.0.0.1:7001",
    "domain": "data.qingdao",
    "encryption_key": "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ=",
    "issued_at": 1700000000000,
    "name": "prov",
    "node_id": "n56475aa75463474c0285df5dbf2bcab7",
    "signing_key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
  },
  "signature": "SIGNATURE"
}""".replace("SIGNATURE", "k9vQEEWVMCqtnBXTnRd3JNHH91uYeI/i/Zc3tt5D7b2aPoKZBS32F7hYQkAX8/5Mv"
                          "kN+pJE4KFgdnSPTaxHfCw==")
KEY_FILE = (b'{"ed25519": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", '
            b'"x25519": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", '
            b'"vault": "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="}')


def fixed_card(keys: NodeKeys = FIXED) -> NodeCard:
    return NodeCard(keys.node_id, "prov", "data.qingdao", "127.0.0.1:7001", b64(keys.verify_key),
                    b64(bytes(keys.box.public_key)), 1700000000000)


# ---- vectors --------------------------------------------------------------------------------
NODE_IDS = {
    "all-zero key": (bytes(32), "n66687aadf862bd776c8fc18b8e9f8e20"),
    "the fixed test key": (FIXED.verify_key, "n56475aa75463474c0285df5dbf2bcab7"),
}


@pytest.mark.parametrize(("key", "node_id"), list(NODE_IDS.values()), ids=list(NODE_IDS))
def test_node_id_is_n_plus_128_bits_of_sha256_of_the_key(key: bytes, node_id: str) -> None:
    assert node_id_of(key) == node_id


def test_card_vector() -> None:
    card = fixed_card()
    assert card.payload() == CARD_PAYLOAD
    signed = SignedCard.create(FIXED, card)
    assert signed.signature.hex() == CARD_SIGNATURE
    assert signed.to_json() == CARD_FILE
    assert SignedCard.from_json(CARD_FILE) == signed


def test_key_file_vector_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    FIXED.save(path)
    assert path.read_bytes() == KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = NodeKeys.load(path)
    assert (loaded.verify_key, bytes(loaded.box), loaded.vault_master) == \
        (FIXED.verify_key, bytes(FIXED.box), FIXED.vault_master)


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    FIXED.save(path)
    with pytest.raises(FileExistsError):
        OTHER.save(path)
    assert path.read_bytes() == KEY_FILE


KEY_FILE_REFUSALS: dict[str, tuple[bytes, int, type[TrustspaceError], str]] = {
    "readable by the group": (KEY_FILE, 0o640, BadInput, "readable by others .mode 640."),
    "readable by everyone": (KEY_FILE, 0o644, BadInput, "run chmod 600"),
    "not JSON": (b"secret", 0o600, MalformedFile, "is damaged"),
    "empty": (b"", 0o600, MalformedFile, "is damaged"),
    "a JSON list": (b"[]", 0o600, MalformedFile, "is damaged"),
    "a key missing": (b'{"ed25519": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}', 0o600,
                      MalformedFile, "is damaged"),
    "a key of the wrong size": (KEY_FILE.replace(b"AAECAwQF", b"AAAA"), 0o600, MalformedFile,
                                "is damaged"),
    "a key that is a number": (b'{"ed25519": 5, "x25519": 5, "vault": 5}', 0o600,
                               MalformedFile, "is damaged"),
}


@pytest.mark.parametrize(("content", "mode", "error", "message"),
                         list(KEY_FILE_REFUSALS.values()), ids=list(KEY_FILE_REFUSALS))
def test_key_file_refusals(tmp_path: Path, content: bytes, mode: int,
                           error: type[TrustspaceError], message: str) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(content)
    os.chmod(path, mode)
    with pytest.raises(error, match=message) as caught:
        NodeKeys.load(path)
    assert "AAECAwQF" not in str(caught.value)  # never a key in a message


# ---- cards ----------------------------------------------------------------------------------
Mutation = Callable[[dict[str, Any], NodeKeys, NodeKeys], str]


def _resign(raw: dict[str, Any], keys: NodeKeys) -> str:
    """Sign the card fields as they are now with ``keys``, bypassing NodeCard's checks."""
    from node.canonical import canonical_json

    raw["signature"] = b64(keys.sign("node-card", canonical_json(raw["card"])))
    return json.dumps(raw)


def _field(name: str, value: Callable[[NodeKeys], object]) -> Mutation:
    def mutate(raw: dict[str, Any], own: NodeKeys, other: NodeKeys) -> str:
        raw["card"][name] = value(other)
        return json.dumps(raw)
    return mutate


def _field_resigned(name: str, value: object) -> Mutation:
    def mutate(raw: dict[str, Any], own: NodeKeys, other: NodeKeys) -> str:
        raw["card"][name] = value
        return _resign(raw, own)
    return mutate


def _top(change: Callable[[dict[str, Any]], object]) -> Mutation:
    def mutate(raw: dict[str, Any], own: NodeKeys, other: NodeKeys) -> str:
        change(raw)
        return json.dumps(raw)
    return mutate


def _swap_identity(raw: dict[str, Any], own: NodeKeys, other: NodeKeys) -> str:
    raw["card"]["signing_key"] = b64(other.verify_key)
    raw["card"]["node_id"] = other.node_id
    return json.dumps(raw)


def _claim_with_own_key(raw: dict[str, Any], own: NodeKeys, other: NodeKeys) -> str:
    """An impostor keeps the victim's node id but puts in and signs with its own key."""
    raw["card"]["signing_key"] = b64(other.verify_key)
    return _resign(raw, other)


# name: (mutation, error class, message, exit code of `peer add`)
CARD_REFUSALS: dict[str, tuple[Mutation, type[TrustspaceError], str, int]] = {
    "tampered name": (_field("name", lambda o: "mallory"), BadSignature, "does not verify", 3),
    "tampered domain": (_field("domain", lambda o: "evil.qingdao"), BadSignature,
                        "does not verify", 3),
    "tampered address": (_field("address", lambda o: "10.0.0.1:7001"), BadSignature,
                         "does not verify", 3),
    "tampered encryption key": (_field("encryption_key", lambda o: b64(bytes(o.box.public_key))),
                                BadSignature, "does not verify", 3),
    "tampered issued_at": (_field("issued_at", lambda o: 1), BadSignature, "does not verify", 3),
    "tampered signing key": (_field("signing_key", lambda o: b64(o.verify_key)), BadSignature,
                             "node id does not match its signing key", 3),
    "tampered node id": (_field("node_id", lambda o: o.node_id), BadSignature,
                         "node id does not match its signing key", 3),
    "another node's key and id under the old signature": (_swap_identity, BadSignature,
                                                          "does not verify", 3),
    "signed by the wrong key": (lambda raw, own, other: _resign(raw, other), BadSignature,
                                "does not verify", 3),
    "node id not matching key, signed by that key": (_claim_with_own_key, BadSignature,
                                                     "node id does not match", 3),
    "node id not derived from the key, re-signed": (
        _field_resigned("node_id", "n" + "0" * 32), BadSignature, "node id does not match", 3),
    "unsigned: no signature": (_top(lambda raw: raw.pop("signature")), BadSignature,
                               "the card is not signed", 3),
    "unsigned: signature null": (_top(lambda raw: raw.update(signature=None)), BadSignature,
                                 "the card is not signed", 3),
    "signature empty": (_top(lambda raw: raw.update(signature="")), MalformedMessage,
                        "must be 64 bytes, found 0", 2),
    "signature not base64": (_top(lambda raw: raw.update(signature="not base64!")),
                             MalformedMessage, "not valid base64", 2),
    "signature cut short": (_top(lambda raw: raw.update(signature=raw["signature"][:40])),
                            MalformedMessage, "not valid base64|must be 64 bytes", 2),
    "not JSON": (lambda raw, own, other: "this is not a card", MalformedFile,
                 "not a node card", 2),
    "JSON but a list": (lambda raw, own, other: json.dumps([raw]), MalformedFile,
                        "not a node card", 2),
    "no card": (_top(lambda raw: raw.pop("card")), MalformedFile, "not a node card", 2),
    "card is not an object": (_top(lambda raw: raw.update(card="prov")), MalformedFile,
                              "exactly the fields of a node card", 2),
    "card with an extra field": (_field("role", lambda o: "admin"), MalformedFile,
                                 "exactly the fields of a node card", 2),
    "card missing a field": (_top(lambda raw: raw["card"].pop("address")), MalformedFile,
                             "exactly the fields of a node card", 2),
    "issued_at as text": (_field_resigned("issued_at", "1700000000000"), MalformedFile,
                          "wrong types", 2),
    "issued_at as a boolean": (_field_resigned("issued_at", True), MalformedFile,
                               "wrong types", 2),
    "issued_at as a float": (_field("issued_at", lambda o: 1.5e12), MalformedFile,
                             "wrong types", 2),
    "name as a number": (_field("name", lambda o: 7), MalformedFile, "wrong types", 2),
    "name not an id, signed": (_field_resigned("name", "../prov"), InvalidId,
                               "node name '../prov' is not a valid id", 2),
    "domain not a domain, signed": (_field_resigned("domain", "Data Qingdao"), InvalidId,
                                    "a domain must be", 2),
    "address without a port, signed": (_field_resigned("address", "127.0.0.1"), BadInput,
                                       "HOST:PORT", 2),
    "signing key not base64, signed": (_field_resigned("signing_key", "???"), MalformedMessage,
                                       "signing key is not valid base64", 2),
    "encryption key of the wrong size, signed": (
        _field_resigned("encryption_key", b64(bytes(16))), MalformedMessage,
        "encryption key must be 32 bytes, found 16", 2),
}


def tampered(text: str, mutation: Mutation, own: NodeKeys, other: NodeKeys) -> str:
    return mutation(json.loads(text), own, other)


def test_a_valid_card_is_accepted_as_issued() -> None:
    card = NodeCard.issue(FIXED, "prov", "data.qingdao", "127.0.0.1:7001")
    signed = SignedCard.from_json(SignedCard.create(FIXED, card).to_json())
    assert signed.card == card
    assert signed.card.node_id == FIXED.node_id
    assert signed.card.verify_key == FIXED.verify_key
    assert bytes(signed.card.box_key) == bytes(FIXED.box.public_key)


def test_a_valid_card_in_any_json_spelling_is_accepted() -> None:
    compact = json.dumps(json.loads(CARD_FILE), separators=(",", ":"))
    assert SignedCard.from_json(compact) == SignedCard.from_json(CARD_FILE)


@pytest.mark.parametrize(("mutation", "error", "message", "exit_code"),
                         list(CARD_REFUSALS.values()), ids=list(CARD_REFUSALS))
def test_card_refusals(mutation: Mutation, error: type[TrustspaceError], message: str,
                       exit_code: int) -> None:
    text = tampered(CARD_FILE, mutation, FIXED, OTHER)
    with pytest.raises(error, match=message) as caught:
        SignedCard.from_json(text)
    assert caught.type is error
    assert "\n" not in caught.value.message


def test_the_card_constructor_refuses_a_node_id_of_another_key() -> None:
    with pytest.raises(BadSignature, match="node id does not match"):
        replace(fixed_card(), node_id=OTHER.node_id)


ADDRESSES = {
    "host and port": ("127.0.0.1:7001", None),
    "name and port": ("node.example:443", None),
    "ipv6 in brackets": ("[::1]:7001", None),
    "no port": ("127.0.0.1", "HOST:PORT"),
    "empty host": (":7001", "port from 1 to 65535"),
    "port zero": ("127.0.0.1:0", "port from 1 to 65535"),
    "port too big": ("127.0.0.1:65536", "port from 1 to 65535"),
    "port not a number": ("127.0.0.1:http", "port from 1 to 65535"),
    "space in host": ("a b:7001", "port from 1 to 65535"),
    "control character": ("a\nb:7001", "port from 1 to 65535"),
    "not text": (7001, "HOST:PORT"),
}


@pytest.mark.parametrize(("address", "message"), list(ADDRESSES.values()), ids=list(ADDRESSES))
def test_check_address(address: object, message: str | None) -> None:
    if message is None:
        assert check_address(address) == address
    else:
        with pytest.raises(BadInput, match=message):
            check_address(address)
