"""Documents a peer gives, verified with no node running: canonical JSON, signed documents,
agreements, envelopes and audit entries.

Each property feeds a verifier hostile input and requires one of two outcomes: the value
it would accept from a good peer, or a refusal with the right :class:`TrustspaceError`
subclass and one clear line. The regression cases are named after the bugs they found.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import SealedBox

from node.agreements import Agreement, verify_agreement
from node.audit_format import AuditEntry
from node.canonical import canonical_json, parse_canonical, unb64
from node.documents import DOC_TYPES, SignedDoc
from node.envelopes import FIRST_PREV, EnvelopeHeader, digest_of, encode_batch, open_envelope
from node.errors import (
    BadSignature,
    ContractRefused,
    EnvelopeTampered,
    InvalidTerms,
    MalformedMessage,
    TrustspaceError,
)
from node.identity import NodeCard, NodeKeys
from policies.evaluate import AgreedTerms
from tests.hostile.strategies import (
    examples,
    json_values,
    mutations,
    near_json,
    outcome,
    payload_of,
)

PROVIDER, CONSUMER, OTHER = NodeKeys.generate(), NodeKeys.generate(), NodeKeys.generate()
PROVIDER_CARD = NodeCard.issue(PROVIDER, "prov", "data.qingdao", "127.0.0.1:7001")
CONSUMER_CARD = NodeCard.issue(CONSUMER, "cons", "finance.qingdao", "127.0.0.1:7002")
FIELDS = ("company_id", "legal_person", "phone", "revenue")
EXAMPLES = examples(150)


# ---- canonical JSON -----------------------------------------------------------------------------
@EXAMPLES
@given(payload=near_json)
def test_only_canonical_json_of_an_object_is_parsed(payload: bytes) -> None:
    result = outcome(parse_canonical, payload, what="document")
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedMessage)
    else:
        assert isinstance(result, dict) and canonical_json(result) == payload


@EXAMPLES
@given(value=json_values)
def test_any_json_value_is_encoded_canonically_or_refused(value: Any) -> None:
    result = outcome(canonical_json, value)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedMessage)  # a lone surrogate has no UTF-8 form
    elif isinstance(value, dict):
        assert parse_canonical(result) == value


@EXAMPLES
@given(text=st.one_of(st.text(max_size=100), st.binary(max_size=70).map(
    lambda b: __import__("base64").b64encode(b).decode())), size=st.sampled_from([None, 32, 64]))
def test_base64_is_decoded_strictly(text: str, size: int | None) -> None:
    result = outcome(unb64, text, what="a signature", size=size)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedMessage)
    else:
        assert size is None or len(result) == size


# ---- signed documents ---------------------------------------------------------------------------
GOOD_DOC = SignedDoc.create("receipt-ack", {"receipt_id": "rcp-1"}, PROVIDER)


@EXAMPLES
@given(form=st.one_of(json_values, mutations(GOOD_DOC.to_dict())))
def test_a_signed_document_form_is_read_or_refused(form: Any) -> None:
    result = outcome(SignedDoc.from_dict, form)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedMessage)
        return
    assert result.type in DOC_TYPES
    assert all(len(s) == 64 for s in result.signatures.values())
    verified = outcome(result.verify, PROVIDER.node_id, PROVIDER.verify_key, what="the ack")
    assert verified is None or isinstance(verified, BadSignature)


@EXAMPLES
@given(text=st.one_of(st.text(max_size=200), near_json.map(
    lambda b: b.decode("utf-8", "replace"))))
def test_a_signed_document_file_is_read_or_refused(text: str) -> None:
    result = outcome(SignedDoc.from_json, text)
    assert isinstance(result, (SignedDoc, MalformedMessage))


def test_regression_deeply_nested_signed_document_json() -> None:
    """json.loads raised RecursionError, which is no ValueError, out of SignedDoc.from_json."""
    with pytest.raises(MalformedMessage, match="not JSON"):
        SignedDoc.from_json("[" * 100_000 + "]" * 100_000)


def test_regression_unknown_document_type_of_100k_characters_is_quoted_briefly() -> None:
    """The refusal quoted the whole type: a peer chose the size of the error it got back."""
    with pytest.raises(MalformedMessage) as caught:
        SignedDoc("t" * 100_000, b"{}")
    assert len(caught.value.message) < 300 and "unknown document type" in caught.value.message


# ---- agreements ---------------------------------------------------------------------------------
TERMS = AgreedTerms(purpose="credit-scoring", app="scoring",
                    fields=(("company_id", "plain"), ("phone", "hash")), max_deliveries=2,
                    period=86_400, retention=3_600, max_reads=3, valid_for=86_400,
                    onward_transfer=False)
AGREEMENT = Agreement("agr-1", "req-1", "offer-1", "companies", PROVIDER.node_id,
                      CONSUMER.node_id, "data.qingdao", "finance.qingdao", TERMS,
                      1_700_000_000_000, 1_700_000_000_000 + 86_400_000)


def _signed(doc_type: str, body: Any, *keys: NodeKeys) -> SignedDoc:
    doc = SignedDoc(doc_type, payload_of(body))
    for key in keys:
        doc = doc.signed_by(key)
    return doc


def test_the_unchanged_agreement_verifies() -> None:
    doc = _signed("agreement", AGREEMENT.to_body(), PROVIDER, CONSUMER)
    assert verify_agreement(doc, PROVIDER_CARD, CONSUMER_CARD, countersigned=True) == AGREEMENT


@EXAMPLES
@given(body=mutations(AGREEMENT.to_body()), countersigned=st.booleans())
def test_a_hostile_agreement_is_verified_or_refused(body: dict[str, Any],
                                                    countersigned: bool) -> None:
    """Both parties sign whatever the body says: only its content can be wrong."""
    doc = _signed("agreement", body, PROVIDER, CONSUMER)
    result = outcome(verify_agreement, doc, PROVIDER_CARD, CONSUMER_CARD,
                     countersigned=countersigned)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, (MalformedMessage, InvalidTerms, ContractRefused))
    else:
        assert result.to_body() == body


@EXAMPLES
@given(payload=near_json, doc_type=st.sampled_from(DOC_TYPES))
def test_an_agreement_payload_that_is_no_agreement_is_refused(payload: bytes,
                                                              doc_type: str) -> None:
    doc = SignedDoc(doc_type, payload).signed_by(PROVIDER).signed_by(CONSUMER)
    result = outcome(verify_agreement, doc, PROVIDER_CARD, CONSUMER_CARD, countersigned=True)
    assert isinstance(result, (MalformedMessage, InvalidTerms, ContractRefused))


SIGNERS = {
    "signed by the provider only, countersignature required": ((PROVIDER,), BadSignature),
    "signed by the consumer only": ((CONSUMER,), BadSignature),
    "signed by a stranger as the provider": ((OTHER,), BadSignature),
    "not signed at all": ((), BadSignature),
}


@pytest.mark.parametrize(("keys", "error"), list(SIGNERS.values()), ids=list(SIGNERS))
def test_an_agreement_without_both_signatures_is_refused(keys: tuple[NodeKeys, ...],
                                                         error: type[TrustspaceError]) -> None:
    doc = _signed("agreement", AGREEMENT.to_body(), *keys)
    if keys == (OTHER,):  # a stranger's signature filed under the provider's id
        doc = SignedDoc(doc.type, doc.payload, {PROVIDER.node_id: doc.signatures[OTHER.node_id]})
    with pytest.raises(error):
        verify_agreement(doc, PROVIDER_CARD, CONSUMER_CARD, countersigned=True)


# ---- envelopes ----------------------------------------------------------------------------------
EXPECT = EnvelopeHeader("agr-1", "dlv-1", 0, 0, FIELDS, "", FIRST_PREV)
ROWS = [["C1", "Z*1", "5f0c", 1], ["C2", "Z*2", "77aa", 2]]


def _envelope(header: dict[str, Any], plaintext: bytes,
              signer: NodeKeys = PROVIDER) -> tuple[bytes, bytes, bytes]:
    header_bytes = payload_of(header)
    return (header_bytes, signer.sign("envelope", header_bytes),
            SealedBox(CONSUMER.box.public_key).encrypt(plaintext))


def _header_for(plaintext: bytes, rows: int = 2) -> dict[str, Any]:
    return {"agreement": "agr-1", "delivery": "dlv-1", "seq": 0, "rows": rows,
            "fields": list(FIELDS), "digest": digest_of(plaintext), "prev": FIRST_PREV}


def _open(header_bytes: bytes, signature: bytes, body: bytes) -> Any:
    return outcome(open_envelope, header_bytes, signature, body,
                   provider_key=PROVIDER.verify_key, box_key=CONSUMER.box, expect=EXPECT)


def test_the_unchanged_envelope_opens() -> None:
    plaintext = encode_batch(ROWS)
    header, _, rows = _open(*_envelope(_header_for(plaintext), plaintext))
    assert rows == ROWS and header.rows == 2


ENVELOPE_ERRORS = (EnvelopeTampered, MalformedMessage, BadSignature)


@EXAMPLES
@given(header=mutations(_header_for(encode_batch(ROWS))))
def test_a_hostile_envelope_header_signed_by_the_provider_is_refused(
        header: dict[str, Any]) -> None:
    """A provider gone bad signs any header; the consumer still checks every field."""
    plaintext = encode_batch(ROWS)
    result = _open(*_envelope(header, plaintext))
    if not isinstance(result, TrustspaceError):
        assert EnvelopeHeader.decode(payload_of(header)) == result[0]
        return
    assert isinstance(result, ENVELOPE_ERRORS)


@EXAMPLES
@given(plaintext=st.one_of(near_json, json_values.map(lambda v: json.dumps(v).encode())),
       rows=st.sampled_from([0, 1, 2, 2**63]))
def test_a_hostile_batch_with_a_matching_digest_is_refused(plaintext: bytes, rows: int) -> None:
    """The provider signs the digest of whatever it sends: the batch itself must be rows."""
    result = _open(*_envelope(_header_for(plaintext, rows), plaintext))
    if isinstance(result, TrustspaceError):
        assert isinstance(result, EnvelopeTampered)
    else:
        batch = result[2]
        assert len(batch) == rows and all(len(r) == len(FIELDS) for r in batch)


@EXAMPLES
@given(part=st.sampled_from([0, 1, 2]), data=st.data())
def test_an_envelope_changed_in_transit_is_refused(part: int, data: st.DataObject) -> None:
    plaintext = encode_batch(ROWS)
    sealed = list(_envelope(_header_for(plaintext), plaintext))
    original = sealed[part]
    changed = data.draw(st.one_of(
        st.binary(max_size=len(original) + 8),
        st.integers(0, max(len(original) - 1, 0)).map(
            lambda i: original[:i] + bytes([original[i] ^ 1]) + original[i + 1:]),
        st.integers(0, len(original)).map(lambda i: original[:i])))
    if changed == original:
        return
    sealed[part] = changed
    result = _open(*sealed)
    assert isinstance(result, ENVELOPE_ERRORS), result


def test_regression_deeply_nested_envelope_batch() -> None:
    """A batch nested 100 000 deep, with a correct digest, raised RecursionError out of
    open_envelope: the fetch crashed instead of aborting the delivery as tampered."""
    plaintext = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(EnvelopeTampered, match="is not a batch of rows"):
        open_envelope(*_envelope(_header_for(plaintext), plaintext),
                      provider_key=PROVIDER.verify_key, box_key=CONSUMER.box, expect=EXPECT)


# ---- audit entries ------------------------------------------------------------------------------
GOOD_ENTRY = AuditEntry(3, 1_700_000_000_000, PROVIDER.node_id, "peer.added",
                        {"peer": CONSUMER.node_id}, "0" * 64)


@EXAMPLES
@given(data=st.one_of(near_json, mutations(GOOD_ENTRY.to_dict()).map(payload_of)))
def test_an_audit_entry_is_decoded_or_refused(data: bytes) -> None:
    result = outcome(AuditEntry.decode, data)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedMessage)
    else:
        assert result.encode() == data


def test_regression_audit_entry_of_version_true() -> None:
    data = payload_of({**GOOD_ENTRY.to_dict(), "v": True})
    with pytest.raises(MalformedMessage):
        AuditEntry.decode(data)


def test_regression_signed_document_payload_with_a_lone_surrogate() -> None:
    """JSON can spell a lone surrogate (\\ud800), which has no UTF-8 form: from_dict let
    UnicodeEncodeError out instead of refusing the document."""
    form = {**GOOD_DOC.to_dict(), "payload": "\ud800"}
    with pytest.raises(MalformedMessage, match="not valid Unicode"):
        SignedDoc.from_dict(form)
