"""C2SP signed notes with Ed25519 keys, and the tlog-checkpoint text they carry.

A signed note is a text followed by a blank line and one line per signature
(``— <key name> base64(key id || signature)``), the format of golang.org/x/mod/sumdb/note
and c2sp.org/signed-note. We use it for audit-log checkpoints because any tool of the
transparency ecosystem can read them, and because a cosignature needs no format of its
own: the counterparty adds one more signature line with its key. See
docs/adr/0002-audit-merkle-log.md.

Opening a note is strict: a note that is not exactly well formed is refused, a signature
by a known key that does not verify is refused, signatures by unknown keys are kept aside
unverified, and at least one known key must have signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from node.errors import BadNote, BadSignature

ED25519 = 0x01
"""The signature type byte of Ed25519 in c2sp.org/signed-note."""
MAX_SIGNATURES = 100
"""More signature lines than this make a note malformed (the spec requires accepting 16)."""

_DASH = "\u2014 "  # em dash, space: the start of every signature line
_KEY_ID_SIZE = 4
_HASH_SIZE = 32
_MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: who signed (key name and key id) and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, with its final newline."""
        return f"{_DASH}{self.name} {_b64(self.key_id + self.signature)}\n"

    @property
    def key(self) -> str:
        """``name+hex key id``, how the note ecosystem names a key in messages."""
        return f"{self.name}+{self.key_id.hex()}"


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text may be trusted: at least one known key signed it."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]

    @property
    def signers(self) -> tuple[str, ...]:
        """Names of the known keys whose signatures verified, in note order."""
        return tuple(s.name for s in self.verified)

    def signed_by(self, name: str) -> bool:
        return name in self.signers


# --- keys --------------------------------------------------------------------------------


def key_id(name: str, verify_key: VerifyKey) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4]: the id in each signature line."""
    _check_name(name)
    data = name.encode() + b"\n" + bytes([ED25519]) + bytes(verify_key)
    return hashlib.sha256(data).digest()[:_KEY_ID_SIZE]


def verifier_key(name: str, verify_key: VerifyKey) -> str:
    """``name+hex8(key id)+base64(0x01 || public key)``, the portable public key string."""
    return f"{name}+{key_id(name, verify_key).hex()}+{_b64(bytes([ED25519]) + bytes(verify_key))}"


def parse_verifier_key(vkey: str) -> tuple[str, VerifyKey]:
    """The key name and Ed25519 key of a verifier key string; anything else is refused."""
    parts = vkey.split("+", 2)  # names hold no '+'; base64 may
    if len(parts) != 3:
        raise BadNote("expected a verifier key 'name+hex key id+base64 key'; found "
                      f"{len(parts) - 1} '+' separators")
    name, id_hex, key64 = parts
    if not _valid_name(name):
        raise BadNote("a verifier key's name must be non-empty, without spaces, '+' or "
                      "control characters")
    if not _HEX8.fullmatch(id_hex):
        raise BadNote(f"a verifier key's id must be 8 lowercase hex digits; found {id_hex!r}")
    raw = _unb64(key64)
    if raw is None or len(raw) != 1 + 32 or raw[0] != ED25519:
        raise BadNote("a verifier key must encode the Ed25519 type byte 0x01 and a 32-byte "
                      "public key")
    verify_key = VerifyKey(raw[1:])
    if key_id(name, verify_key) != bytes.fromhex(id_hex):
        raise BadNote(f"the verifier key {name}+{id_hex} names an id that is not the hash of "
                      "its name and key")
    return name, verify_key


# --- signing -----------------------------------------------------------------------------


def sign_note(text: str, name: str, signing_key: SigningKey) -> str:
    """The note ``text`` signed by ``signing_key`` under the key name ``name``."""
    _check_text(text)
    return text + "\n" + _sign(text, name, signing_key).line()


def add_signature(note: str, name: str, signing_key: SigningKey) -> str:
    """``note`` with one more signature line by ``signing_key`` (a cosignature).

    The note's own signatures are not checked here: open it with the signer's key first.
    A signature already there by the same key is replaced, so signing again is harmless.
    """
    text, signatures = _split(note)
    mine = _sign(text, name, signing_key)
    kept = [s for s in signatures if (s.name, s.key_id) != (mine.name, mine.key_id)]
    return text + "\n" + "".join(s.line() for s in [*kept, mine])


def _sign(text: str, name: str, signing_key: SigningKey) -> NoteSignature:
    signature = signing_key.sign(text.encode()).signature
    return NoteSignature(name, key_id(name, signing_key.verify_key), signature)


# --- opening -----------------------------------------------------------------------------


def open_note(note: str | bytes, known: Mapping[str, VerifyKey]) -> OpenedNote:
    """Parse ``note`` and verify its signatures against ``known`` (key name -> key).

    Raises :class:`BadNote` if the note is malformed and :class:`BadSignature` if a known
    key's signature does not verify or no known key signed it.
    """
    # 1. The note must be UTF-8 text in the signed-note layout (_split checks each rule).
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise BadNote("a signed note must be valid UTF-8") from None
    text, signatures = _split(note)
    message = text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for sig in signatures:
        # 2. A signature by a key we do not know (by name and id together) is set aside.
        verify_key = known.get(sig.name)
        if verify_key is None or key_id(sig.name, verify_key) != sig.key_id:
            unverified.append(sig)
            continue
        # 3. A signature by a known key must verify, or the whole note is refused.
        try:
            verify_key.verify(message, sig.signature)
        except (BadSignatureError, ValueError):
            raise BadSignature(f"the signature by key {sig.key} on the note does not "
                               "verify") from None
        verified.append(sig)
    # 4. At least one known key must have signed.
    if not verified:
        found = ", ".join(s.key for s in unverified)
        raise BadSignature("expected a signature by a known key on the note; found only "
                           f"signatures by unknown keys ({found})")
    return OpenedNote(text, tuple(verified), tuple(unverified))


def signed_as_before(note: str, opened: str, name: str, verify_key: VerifyKey) -> bool:
    """True if ``note`` has the text of ``opened``, a note this node opened and verified
    before, and the signature by ``name`` that ``opened`` carries: it needs no second check.

    A checkpoint that comes back unchanged is compared, not verified again.
    """
    try:
        text, signatures = _split(note)
        opened_text, opened_signatures = _split(opened)
    except BadNote:
        return False
    wanted = key_id(name, verify_key)
    signed = [s for s in signatures if (s.name, s.key_id) == (name, wanted)]
    return text == opened_text and bool(signed) and signed[0] in opened_signatures


def note_text(note: str) -> str:
    """The text of a well-formed note, verifying no signature.

    Only for the node's own notes, read back from its own database: a peer's note is
    opened with :func:`open_note`.
    """
    return _split(note)[0]


def _split(note: str) -> tuple[str, tuple[NoteSignature, ...]]:
    """The text and the signature lines of a note, refusing any departure from the format."""
    _check_chars(note, "a signed note")
    # The text ends at the last blank line; the signature block after it ends in newline.
    split = note.rfind("\n\n")
    if split < 0:
        raise BadNote("a signed note needs a blank line between its text and its signatures; "
                      "found none")
    text, block = note[:split + 1], note[split + 2:]
    if not block or not block.endswith("\n"):
        raise BadNote("a signed note must end with signature lines, each ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise BadNote(f"a signed note may carry at most {MAX_SIGNATURES} signatures; found "
                      f"{len(lines)}")
    signatures = tuple(_parse_line(line, number) for number, line in enumerate(lines, 1))
    seen: set[tuple[str, bytes]] = set()
    for sig in signatures:
        if (sig.name, sig.key_id) in seen:
            raise BadNote(f"a signed note carries one signature per key; found key {sig.key} "
                          "twice")
        seen.add((sig.name, sig.key_id))
    return text, signatures


def _parse_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(_DASH):
        raise BadNote(f"signature line {number} must start with an em dash and a space")
    name, _, b64 = line[len(_DASH):].partition(" ")
    if not _valid_name(name):
        raise BadNote(f"signature line {number} must name a key without spaces or '+'")
    raw = _unb64(b64)
    if raw is None or len(raw) <= _KEY_ID_SIZE:
        raise BadNote(f"signature line {number} must end in canonical base64 of a 4-byte key "
                      "id and a signature")
    return NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


# --- checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tree head as c2sp.org/tlog-checkpoint text: origin, size, root, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise BadNote("a checkpoint's origin must be one non-empty line")
        _check_chars(self.origin, "a checkpoint's origin")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise BadNote(f"a checkpoint's tree size must be between 0 and 2^64-1; found "
                          f"{self.size}")
        if len(self.root) != _HASH_SIZE:
            raise BadNote(f"a checkpoint's root hash must be {_HASH_SIZE} bytes; found "
                          f"{len(self.root)}")
        for line in self.extensions:
            if not line or "\n" in line:
                raise BadNote("each checkpoint extension must be one non-empty line")
            _check_chars(line, "a checkpoint extension")

    def to_text(self) -> str:
        """The note text to sign: one line each for origin, size, root, extensions."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str, origin: str | None = None) -> Checkpoint:
        """The checkpoint in a note text; if ``origin`` is given, the text must name it."""
        # 1. At least three non-empty lines, each ending in a newline.
        _check_chars(text, "a checkpoint")
        if not text.endswith("\n"):
            raise BadNote("a checkpoint's text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not all(lines):
            raise BadNote("a checkpoint needs origin, size and root lines, and no empty line")
        first, size_line, root_line, *extensions = lines
        # 2. The origin, if the caller expects one.
        if origin is not None and first != origin:
            raise BadNote(f"expected a checkpoint of origin {origin!r}; found {first!r}")
        # 3. The size in decimal without leading zeros.
        if not _DECIMAL.fullmatch(size_line):
            raise BadNote("a checkpoint's size must be decimal digits without leading zeros")
        if len(size_line) > len(str(_MAX_TREE_SIZE)):  # int() refuses 4300 digits and more
            raise BadNote(f"a checkpoint's tree size must be between 0 and 2^64-1; found "
                          f"{len(size_line)} digits")
        # 4. The root as canonical base64 of 32 bytes (length checked by the constructor).
        root = _unb64(root_line)
        if root is None:
            raise BadNote("a checkpoint's root hash must be canonical base64")
        return cls(first, int(size_line), root, tuple(extensions))


# --- helpers -----------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_NOT_IN_NAME = re.compile(r"[\s+\x00-\x1f]")  # \s: str.isspace()'s Unicode spaces


def _check_text(text: str) -> None:
    _check_chars(text, "a note text")
    if not text.endswith("\n"):
        raise BadNote("a note text must end in a newline")


def _check_chars(value: str, what: str) -> None:
    """Valid UTF-8 and no ASCII control character but newline, as signed-note requires."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadNote(f"{what} must be valid UTF-8") from None
    control = _CONTROL.search(value)
    if control is not None:
        raise BadNote(f"{what} may hold no control character but newline; found "
                      f"U+{ord(control.group()):04X}")


def _valid_name(name: str) -> bool:
    """Non-empty, no Unicode space, no '+', no control character."""
    return bool(name) and _NOT_IN_NAME.search(name) is None


def _check_name(name: str) -> None:
    if not _valid_name(name):
        raise BadNote(f"a key name must be non-empty, without spaces, '+' or control "
                      f"characters; found {name!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Standard padded base64 in its one canonical spelling, or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw and _b64(raw) == text else None
