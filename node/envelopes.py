"""Envelopes: one batch of rows, signed by the provider and encrypted to the consumer.

The header is canonical JSON naming the agreement, the delivery, the sequence number, the
row count, the fields, the SHA-256 of the plaintext batch and the previous envelope's
digest (a chain: none can be dropped, reordered or moved to another delivery). The
provider signs the header; the body is the batch sealed to the consumer's X25519 key. The
batch itself is a JSON array of rows, each an array of values in field order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from node.canonical import canonical_json, parse_canonical
from node.errors import EnvelopeTampered, MalformedMessage
from node.identity import NodeKeys, verify_signature

FIRST_PREV = ""
_HEADER_KEYS = {"agreement", "delivery", "seq", "rows", "fields", "digest", "prev"}


@dataclass(frozen=True)
class EnvelopeHeader:
    agreement: str
    delivery: str
    seq: int
    rows: int
    fields: tuple[str, ...]
    digest: str
    prev: str

    def encode(self) -> bytes:
        return canonical_json({"agreement": self.agreement, "delivery": self.delivery,
                               "seq": self.seq, "rows": self.rows, "fields": list(self.fields),
                               "digest": self.digest, "prev": self.prev})

    @classmethod
    def decode(cls, data: bytes) -> EnvelopeHeader:
        raw = parse_canonical(data, what="envelope header")
        if set(raw) != _HEADER_KEYS:
            raise MalformedMessage("the envelope header does not have exactly the header fields")
        fields = raw["fields"]
        if not all(isinstance(raw[k], str) for k in ("agreement", "delivery", "digest", "prev")) \
                or not all(isinstance(raw[k], int) and not isinstance(raw[k], bool)
                           and raw[k] >= 0 for k in ("seq", "rows")) \
                or not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise MalformedMessage("the envelope header has a field of the wrong type")
        return cls(raw["agreement"], raw["delivery"], raw["seq"], raw["rows"], tuple(fields),
                   raw["digest"], raw["prev"])


def encode_batch(rows: list[Any]) -> bytes:
    """The batch as compact UTF-8 JSON.

    orjson, not ``json.dumps``: encoding was the provider's largest cost per row (0.86 us
    against 0.11 us). orjson writes a NaN or infinite float as null, and such a float never
    reaches a batch: import keeps those cells as text (node/rowfile.py).
    """
    return orjson.dumps(rows)


def digest_of(plaintext: bytes) -> str:
    return hashlib.sha256(plaintext).hexdigest()


def seal(keys: NodeKeys, consumer_key: PublicKey, header: EnvelopeHeader,
         plaintext: bytes) -> tuple[bytes, bytes, bytes]:
    """(header bytes, signature, encrypted body) for one batch."""
    header_bytes = header.encode()
    return header_bytes, keys.sign("envelope", header_bytes), \
        SealedBox(consumer_key).encrypt(plaintext)


def open_envelope(header_bytes: bytes, signature: bytes, body: bytes, *,
                  provider_key: bytes, box_key: PrivateKey,
                  expect: EnvelopeHeader) -> tuple[EnvelopeHeader, bytes, list[list[Any]]]:
    """Verify one envelope in order and return (header, plaintext, rows); refuse on any doubt.

    1. the provider's signature verifies over the header bytes as received (nothing
    unauthenticated is parsed); 2. the header parses; 3. agreement, delivery, sequence,
    previous digest and fields are the expected ones; 4. the body decrypts with this node's
    key; 5. its digest matches the header; 6. it holds exactly ``rows`` rows of
    ``len(fields)`` values.
    """
    verify_signature(provider_key, "envelope", header_bytes, signature,
                     what=f"envelope {expect.seq}")
    header = EnvelopeHeader.decode(header_bytes)
    for name in ("agreement", "delivery", "seq", "prev", "fields"):
        if getattr(header, name) != getattr(expect, name):
            raise EnvelopeTampered(f"envelope {header.seq} has {name} "
                                   f"{_short(getattr(header, name))}, expected "
                                   f"{_short(getattr(expect, name))}")
    try:
        plaintext = SealedBox(box_key).decrypt(body)
    except CryptoError:
        raise EnvelopeTampered(f"envelope {header.seq} does not decrypt with this node's "
                               "key") from None
    if digest_of(plaintext) != header.digest:
        raise EnvelopeTampered(f"envelope {header.seq}'s content does not match its digest")
    try:
        rows = orjson.loads(plaintext)
    except (ValueError, RecursionError):  # a batch nested too deeply is no batch of rows
        raise EnvelopeTampered(f"envelope {header.seq}'s content is not a batch of rows") \
            from None
    width = len(header.fields)
    if not isinstance(rows, list) or len(rows) != header.rows or not all(
            isinstance(r, list) and len(r) == width for r in rows):
        raise EnvelopeTampered(f"envelope {header.seq} does not hold {header.rows} rows of "
                               f"{width} fields")
    return header, plaintext, rows


def _short(value: object) -> str:
    """A header value in a message: one line (escaped if it holds control characters)."""
    text = str(value)
    if not text.isprintable():
        text = ascii(text)
    return text if len(text) <= 60 else text[:57] + "..."
