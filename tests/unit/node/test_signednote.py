"""C2SP signed notes and tlog checkpoints against the public known answers, then our rules.

The known answers come from tests/vectors/transparency_vectors.json (a copy of
shared/reference/transparency_vectors.json): golang.org/x/mod/sumdb/note test keys and
notes, the C2SP examples, and the malformed notes Go's TestOpen refuses.
"""

from __future__ import annotations

import base64
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from node.errors import BadNote, BadSignature
from node.signednote import (
    MAX_SIGNATURES,
    Checkpoint,
    add_signature,
    key_id,
    open_note,
    parse_verifier_key,
    sign_note,
    signed_as_before,
    verifier_key,
)
from tests.vectors import load_transparency_vectors

V = load_transparency_vectors()["signed_note"]
KEYS = {k["name"]: k for k in V["keys"]}
NOTES = {n["id"]: n for n in V["notes"]}
CHECKPOINTS = {c["id"]: c for c in V["checkpoints"]}

PETER = KEYS["PeterNeumann"]
PETER_VKEY = PETER["verifier_key"]
PETER_SIGNER = SigningKey(bytes.fromhex(PETER["ed25519_seed_hex"]))
PETER_KNOWN = {"PeterNeumann": VerifyKey(bytes.fromhex(PETER["public_key_hex"]))}
ENOCH_SIGNER = SigningKey(bytes(32))  # example_test.go: GenerateKey from a zero reader
PETER_NOTE = NOTES["peterneumann_sign"]
TEXT = PETER_NOTE["text"]
SIGNED = PETER_NOTE["signed"]
PETER_LINE = PETER_NOTE["signatures"][0]["line"]


def _known(*vkeys: str) -> dict[str, VerifyKey]:
    return dict(parse_verifier_key(v) for v in vkeys)


# --- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", V["keys"], ids=[k["name"] for k in V["keys"]])
def test_key_ids_and_verifier_keys(key: dict[str, Any]) -> None:
    public = VerifyKey(bytes.fromhex(key["public_key_hex"]))
    assert key_id(key["name"], public).hex() == key["key_id_hex"]
    assert verifier_key(key["name"], public) == key["verifier_key"]
    name, parsed = parse_verifier_key(key["verifier_key"])
    assert (name, bytes(parsed)) == (key["name"], bytes(public))
    if "ed25519_seed_hex" in key:
        seed = bytes.fromhex(key["ed25519_seed_hex"])
        assert bytes(SigningKey(seed).verify_key) == bytes(public)
        signer_b64 = key["signer_key"].split("+", 4)[4]  # PRIVATE+KEY+name+id+base64
        assert base64.b64decode(signer_b64) == b"\x01" + seed


def test_enoch_root_is_the_zero_seed_key() -> None:
    assert verifier_key("EnochRoot", ENOCH_SIGNER.verify_key) == KEYS["EnochRoot"]["verifier_key"]


BAD_VKEYS = {c["desc"]: c["verifier_key"] for c in V["negative_cases"]["bad_verifier_keys"]}
BAD_VKEYS |= {
    "uppercase key id": PETER_VKEY.replace("c74f20a3", "C74F20A3"),
    "key id of 7 digits": PETER_VKEY.replace("c74f20a3", "c74f20a"),
    "key id of another key": PETER_VKEY.replace("c74f20a3", "c74f20a4"),
    "no key part": "PeterNeumann+c74f20a3",
    "name with a space": "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "empty name": "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "base64 without padding rules": PETER_VKEY + "=",
}


@pytest.mark.parametrize("vkey", BAD_VKEYS.values(), ids=BAD_VKEYS.keys())
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(BadNote):
        parse_verifier_key(vkey)


def test_every_proper_substring_and_byte_increment_of_a_verifier_key_is_refused() -> None:
    """TestNewVerifier's sweep: no truncation or one-byte change yields a key."""
    variants = {PETER_VKEY[i:j] for i in range(len(PETER_VKEY) + 1)
                for j in range(i, len(PETER_VKEY) + 1)} - {PETER_VKEY}
    variants |= {PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1:]
                 for i in range(len(PETER_VKEY))}
    accepted = []
    for vkey in variants:
        try:
            parse_verifier_key(vkey)
        except BadNote:
            continue
        accepted.append(vkey)
    assert accepted == []


# --- signing and opening the known notes -------------------------------------------------


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    assert sign_note(TEXT, "PeterNeumann", PETER_SIGNER) == SIGNED


def test_opening_the_go_note() -> None:
    opened = open_note(SIGNED, _known(PETER_VKEY))
    assert opened.text == TEXT
    assert opened.signers == ("PeterNeumann",)
    assert opened.verified[0].line() == PETER_LINE
    assert opened.unverified == ()


def test_a_cosignature_is_one_more_signature_line() -> None:
    double = NOTES["peterneumann_enochroot_double_signed"]
    assert add_signature(SIGNED, "EnochRoot", ENOCH_SIGNER) == double["signed"]


def test_cosigning_again_replaces_the_own_signature() -> None:
    once = add_signature(SIGNED, "EnochRoot", ENOCH_SIGNER)
    assert add_signature(once, "EnochRoot", ENOCH_SIGNER) == once


def test_a_note_that_comes_back_unchanged_is_known_as_opened_before() -> None:
    cosigned = add_signature(SIGNED, "EnochRoot", ENOCH_SIGNER)  # as the verifier keeps it
    peter = PETER_KNOWN["PeterNeumann"]
    assert signed_as_before(SIGNED, cosigned, "PeterNeumann", peter)
    assert signed_as_before(cosigned, cosigned, "PeterNeumann", peter)


def _peter_line_flipped(note: str) -> str:
    head, _, b64 = PETER_LINE.rstrip("\n").rpartition(" ")
    flipped = b64[:-2] + ("A" if b64[-2] != "A" else "B") + b64[-1]
    return note.replace(PETER_LINE, f"{head} {flipped}\n")


@pytest.mark.parametrize("note", [
    pytest.param(sign_note("Hello, World!\n", "PeterNeumann", PETER_SIGNER), id="another text"),
    pytest.param(_peter_line_flipped(SIGNED), id="the signature altered"),
    pytest.param(sign_note(TEXT, "EnochRoot", ENOCH_SIGNER), id="signed by another key only"),
    pytest.param(sign_note(TEXT, "PeterNeumann", ENOCH_SIGNER), id="the name with another key"),
    pytest.param("not a note", id="not a note"),
])
def test_a_note_that_differs_in_its_text_or_signature_must_be_opened_again(note: str) -> None:
    cosigned = add_signature(SIGNED, "EnochRoot", ENOCH_SIGNER)
    assert not signed_as_before(note, cosigned, "PeterNeumann", PETER_KNOWN["PeterNeumann"])


DOUBLE = NOTES["peterneumann_enochroot_double_signed"]


@pytest.mark.parametrize("result", DOUBLE["open_results"],
                         ids=[f"{len(r['verifiers'])} verifiers" for r in DOUBLE["open_results"]])
def test_opening_a_double_signed_note(result: dict[str, Any]) -> None:
    known = _known(*result["verifiers"])
    if "error" in result:
        with pytest.raises(BadSignature, match="expected a signature by a known key"):
            open_note(DOUBLE["signed"], known)
        return
    opened = open_note(DOUBLE["signed"], known)
    assert list(opened.signers) == result["verified"]
    assert [s.name for s in opened.unverified] == result["unverified"]
    assert opened.text == DOUBLE["text"]


def test_opening_the_c2sp_example() -> None:
    note = NOTES["c2sp_example_com_foo"]
    opened = open_note(note["signed"], _known(note["verifier_key"]))
    assert (opened.text, opened.signers) == (note["text"], ("example.com/foo",))


@pytest.mark.parametrize("case", [NOTES["c2sp_quasimodo_parse_only"],
                                  CHECKPOINTS["c2sp_tlog_checkpoint_example"]],
                         ids=["quasimodo (text with a blank line)", "tlog checkpoint example"])
def test_notes_without_a_published_key_split_at_the_last_blank_line(case: dict[str, Any]) -> None:
    """Cosigned by a key of ours, the example opens; its own signature stays unverified."""
    ours = SigningKey(bytes(range(32)))
    opened = open_note(add_signature(case["signed"], "witness.example", ours),
                       {"witness.example": ours.verify_key})
    assert opened.text == case["text"]
    assert [(s.name, s.key_id.hex(), s.signature.hex()) for s in opened.unverified] == [
        (s["name"], s["key_id_hex"], s["signature_hex"]) for s in case["signatures"]]


def test_a_known_name_with_another_key_is_set_aside_not_refused() -> None:
    other = SigningKey(bytes(range(1, 33)))
    note = add_signature(SIGNED, "PeterNeumann-2", other)
    opened = open_note(note, {"PeterNeumann": PETER_KNOWN["PeterNeumann"],
                              "PeterNeumann-2": other.verify_key})
    assert opened.signers == ("PeterNeumann", "PeterNeumann-2")
    impostor = open_note(note, {"PeterNeumann": PETER_KNOWN["PeterNeumann"],
                                "PeterNeumann-2": PETER_SIGNER.verify_key})
    assert impostor.signers == ("PeterNeumann",)
    assert [s.name for s in impostor.unverified] == ["PeterNeumann-2"]


# --- refusals when opening ---------------------------------------------------------------


def _go_negative(case: dict[str, Any]) -> str | bytes:
    if "construct" in case:
        c = case["construct"]
        return str(c["text"] + "\n" + c["signature_line"] * c["repeat"])
    if case["message"] is None:
        return bytes.fromhex(case["message_hex"])
    return str(case["message"])


GO_NEGATIVES = V["negative_cases"]["open_with_peter_verifier"]


@pytest.mark.parametrize("case", GO_NEGATIVES, ids=[c["desc"] for c in GO_NEGATIVES])
def test_go_malformed_notes_are_refused(case: dict[str, Any]) -> None:
    expected = BadNote if case["error"] == "malformed note" else BadSignature
    with pytest.raises(expected):
        open_note(_go_negative(case), PETER_KNOWN)


def _line(name: str, raw: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(raw).decode()}\n"


PETER_RAW = base64.b64decode(PETER_NOTE["signatures"][0]["base64"])
NON_CANONICAL = PETER_NOTE["signatures"][0]["base64"][:-2] + "N="  # same bytes, stray low bits

OPEN_REFUSALS: dict[str, tuple[str | bytes, type[Exception], str]] = {
    "the same signature twice": (SIGNED + PETER_LINE, BadNote, "one signature per key"),
    "101 signatures by different keys": (
        TEXT + "\n" + "".join(_line(f"k{i}", PETER_RAW) for i in range(101)),
        BadNote, "at most 100 signatures; found 101"),
    "signature in non-canonical base64": (
        TEXT + "\n\u2014 PeterNeumann " + NON_CANONICAL + "\n", BadNote, "canonical base64"),
    "signature line with a hyphen, not an em dash": (
        SIGNED.replace("\u2014", "-"), BadNote, "must start with an em dash"),
    "key name with a plus": (TEXT + "\n" + _line("Peter+Neumann", PETER_RAW), BadNote,
                             "without spaces or '\\+'"),
    "no key name": (TEXT + "\n" + _line("", PETER_RAW), BadNote, "without spaces"),
    "signature of the key id alone": (TEXT + "\n" + _line("PeterNeumann", PETER_RAW[:4]),
                                      BadNote, "4-byte key id and a signature"),
    "signature one byte short": (TEXT + "\n" + _line("PeterNeumann", PETER_RAW[:-1]),
                                 BadSignature, "by key PeterNeumann\\+c74f20a3 .* does not"),
    "text changed after signing": (SIGNED.replace("cryptography", "Cryptography"),
                                   BadSignature, "does not verify"),
    "CRLF line endings": (SIGNED.replace("\n", "\r\n"), BadNote, "U\\+000D"),
    "tab in the text": (SIGNED.replace(" is the answer", "\tis the answer"), BadNote,
                        "U\\+0009"),
    "lone surrogate in the text": (SIGNED.replace("problem,", "problem\ud800,"), BadNote,
                                   "valid UTF-8"),
    "empty note": ("", BadNote, "needs a blank line"),
    "blank line then nothing but a newline": (TEXT + "\n\n", BadNote, "must end with signature"),
}


@pytest.mark.parametrize("case", OPEN_REFUSALS.values(), ids=OPEN_REFUSALS.keys())
def test_open_refusals_say_what_failed(case: tuple[str | bytes, type[Exception], str]) -> None:
    note, expected, message = case
    with pytest.raises(expected, match=message):
        open_note(note, PETER_KNOWN)


def test_a_hundred_signatures_are_accepted() -> None:
    note = SIGNED + "".join(_line(f"k{i}", PETER_RAW) for i in range(MAX_SIGNATURES - 1))
    opened = open_note(note, PETER_KNOWN)
    assert (len(opened.verified), len(opened.unverified)) == (1, MAX_SIGNATURES - 1)


SIGN_REFUSALS = {
    "text without a final newline": (TEXT[:-1], "PeterNeumann", "must end in a newline"),
    "text with a control character": ("a\x00b\n", "PeterNeumann", "U\\+0000"),
    "key name with a space": (TEXT, "Peter Neumann", "key name must be non-empty"),
    "key name with a plus": (TEXT, "Peter+Neumann", "key name must be non-empty"),
    "key name with a no-break space": (TEXT, "Peter\u00a0Neumann", "key name must be"),
    "empty key name": (TEXT, "", "key name must be non-empty"),
}


@pytest.mark.parametrize("case", SIGN_REFUSALS.values(), ids=SIGN_REFUSALS.keys())
def test_sign_refusals(case: tuple[str, str, str]) -> None:
    text, name, message = case
    with pytest.raises(BadNote, match=message):
        sign_note(text, name, PETER_SIGNER)


def test_cosigning_a_malformed_note_is_refused() -> None:
    with pytest.raises(BadNote, match="needs a blank line"):
        add_signature(TEXT, "EnochRoot", ENOCH_SIGNER)


@given(st.text(alphabet=st.characters(codec="utf-8", min_codepoint=0x20)
               | st.just("\n")))
def test_any_valid_text_round_trips_through_a_signed_note(body: str) -> None:
    text = body + "\n"
    opened = open_note(sign_note(text, "PeterNeumann", PETER_SIGNER), PETER_KNOWN)
    assert opened.text == text


# --- checkpoints -------------------------------------------------------------------------

C2SP_CP = CHECKPOINTS["c2sp_tlog_checkpoint_example"]
GO_TREE = CHECKPOINTS["go_sumdb_tlog_format_tree"]


@pytest.mark.parametrize("case", [C2SP_CP, GO_TREE], ids=[C2SP_CP["id"], GO_TREE["id"]])
def test_checkpoint_known_answers(case: dict[str, Any]) -> None:
    checkpoint = Checkpoint.parse(case["text"])
    assert checkpoint.origin == case.get("origin", case.get("first_line"))
    assert checkpoint.size == case["tree_size"]
    assert checkpoint.root.hex() == case["root_hash_hex"]
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == case["text"]


def test_go_tree_root_is_the_leaf_hash_of_its_record() -> None:
    from node.merkle import leaf_hash
    record = GO_TREE["hashed_record_ascii"].encode()
    assert Checkpoint.parse(GO_TREE["text"]).root == leaf_hash(record)


@pytest.mark.parametrize("text", GO_TREE["parse_must_fail"],
                         ids=["other origin", "hex size", "root of wrong length"])
def test_go_tree_notes_that_must_not_parse(text: str) -> None:
    with pytest.raises(BadNote):
        Checkpoint.parse(text, origin=GO_TREE["first_line"])


def test_extension_lines_are_preserved() -> None:
    text = GO_TREE["parse_ignores_trailing_lines"][1]
    checkpoint = Checkpoint.parse(text)
    assert checkpoint.extensions == ("JOE",)
    assert checkpoint.to_text() == text


def test_a_last_line_without_newline_is_refused_not_ignored() -> None:
    """Go's tlog.ParseTree ignores it; a C2SP note text always ends in a newline."""
    with pytest.raises(BadNote, match="must end in a newline"):
        Checkpoint.parse(GO_TREE["parse_ignores_trailing_lines"][0])


ROOT_LINE = C2SP_CP["root_hash_base64"]
CHECKPOINT_REFUSALS = {
    "size with a leading zero": (f"log\n012\n{ROOT_LINE}\n", "without leading zeros"),
    "size with a sign": (f"log\n+12\n{ROOT_LINE}\n", "without leading zeros"),
    "negative size": (f"log\n-1\n{ROOT_LINE}\n", "without leading zeros"),
    "size in Arabic-Indic digits": (f"log\n\u0661\u0662\n{ROOT_LINE}\n", "decimal digits"),
    "size beyond 2^64-1": (f"log\n{2**64}\n{ROOT_LINE}\n", "between 0 and 2\\^64-1"),
    "root of 31 bytes": ("log\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",
                         "32 bytes; found 31"),
    "root in non-canonical base64": (f"log\n1\n{ROOT_LINE[:-2]}3=\n", "canonical base64"),
    "root missing": ("log\n1\n", "origin, size and root"),
    "empty origin": (f"\n1\n{ROOT_LINE}\n", "no empty line"),
    "empty extension line": (f"log\n1\n{ROOT_LINE}\n\next\n", "no empty line"),
    "no final newline": (f"log\n1\n{ROOT_LINE}", "must end in a newline"),
    "carriage return": (f"log\r\n1\n{ROOT_LINE}\n", "U\\+000D"),
}


@pytest.mark.parametrize("case", CHECKPOINT_REFUSALS.values(), ids=CHECKPOINT_REFUSALS.keys())
def test_checkpoint_parse_refusals(case: tuple[str, str]) -> None:
    text, message = case
    with pytest.raises(BadNote, match=message):
        Checkpoint.parse(text)


def test_checkpoint_of_another_origin_is_refused() -> None:
    with pytest.raises(BadNote, match="expected a checkpoint of origin 'b.example'"):
        Checkpoint.parse(C2SP_CP["text"], origin="b.example")


CONSTRUCT_REFUSALS = {
    "empty origin": (lambda: Checkpoint("", 0, bytes(32)), "origin must be one non-empty line"),
    "origin of two lines": (lambda: Checkpoint("a\nb", 0, bytes(32)), "one non-empty line"),
    "negative size": (lambda: Checkpoint("log", -1, bytes(32)), "between 0 and 2"),
    "root of 33 bytes": (lambda: Checkpoint("log", 0, bytes(33)), "32 bytes; found 33"),
    "empty extension": (lambda: Checkpoint("log", 0, bytes(32), ("",)), "non-empty line"),
    "extension with a tab": (lambda: Checkpoint("log", 0, bytes(32), ("a\tb",)), "U\\+0009"),
}


@pytest.mark.parametrize("case", CONSTRUCT_REFUSALS.values(), ids=CONSTRUCT_REFUSALS.keys())
def test_checkpoint_constructor_refusals(case: tuple[Any, str]) -> None:
    build, message = case
    with pytest.raises(BadNote, match=message):
        build()


line_text = st.text(alphabet=st.characters(codec="utf-8", min_codepoint=0x20),
                    min_size=1, max_size=40)


@given(origin=line_text, size=st.integers(min_value=0, max_value=2**64 - 1),
       root=st.binary(min_size=32, max_size=32), extensions=st.lists(line_text, max_size=3))
def test_checkpoint_text_round_trips(origin: str, size: int, root: bytes,
                                     extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.to_text(), origin=origin) == checkpoint


def test_a_cosigned_checkpoint_opens_with_both_node_keys() -> None:
    provider, consumer = SigningKey(bytes([7]) * 32), SigningKey(bytes([9]) * 32)
    checkpoint = Checkpoint("provider.finance.qingdao/audit", 42, bytes(range(32)))
    signed = sign_note(checkpoint.to_text(), "provider.finance.qingdao", provider)
    opened = open_note(signed, {"provider.finance.qingdao": provider.verify_key})
    cosigned = add_signature(signed, "consumer.finance.qingdao", consumer)
    both = open_note(cosigned, {"provider.finance.qingdao": provider.verify_key,
                                "consumer.finance.qingdao": consumer.verify_key})
    assert both.signers == ("provider.finance.qingdao", "consumer.finance.qingdao")
    assert Checkpoint.parse(both.text) == Checkpoint.parse(opened.text) == checkpoint


def test_printable_ascii_names_without_space_or_plus_are_valid_key_names() -> None:
    name = "".join(c for c in string.printable if c.isprintable() and c not in " +")
    assert sign_note(TEXT, name, PETER_SIGNER).endswith("\n")
