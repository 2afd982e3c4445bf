from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_STATE_UNSPECIFIED: _ClassVar[RequestState]
    REQUEST_STATE_PENDING: _ClassVar[RequestState]
    REQUEST_STATE_AGREED: _ClassVar[RequestState]
    REQUEST_STATE_REJECTED: _ClassVar[RequestState]
REQUEST_STATE_UNSPECIFIED: RequestState
REQUEST_STATE_PENDING: RequestState
REQUEST_STATE_AGREED: RequestState
REQUEST_STATE_REJECTED: RequestState

class Signature(_message.Message):
    __slots__ = ("node_id", "signature")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    signature: bytes
    def __init__(self, node_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SignedDocument(_message.Message):
    __slots__ = ("type", "payload", "signatures")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    type: str
    payload: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[Signature]
    def __init__(self, type: _Optional[str] = ..., payload: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[Signature, _Mapping]]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("id", "acknowledgement")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGEMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    acknowledgement: SignedDocument
    def __init__(self, id: _Optional[str] = ..., acknowledgement: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class ListOffersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Offer(_message.Message):
    __slots__ = ("offer_id", "dataset_id", "classification", "terms", "row_count", "fields")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    dataset_id: str
    classification: str
    terms: bytes
    row_count: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, offer_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., classification: _Optional[str] = ..., terms: _Optional[bytes] = ..., row_count: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ListOffersResponse(_message.Message):
    __slots__ = ("offers",)
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    offers: _containers.RepeatedCompositeFieldContainer[Offer]
    def __init__(self, offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ...) -> None: ...

class NegotiateRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: SignedDocument
    def __init__(self, request: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class NegotiateResponse(_message.Message):
    __slots__ = ("request_id", "state", "agreement", "reason", "decision")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    state: RequestState
    agreement: SignedDocument
    reason: str
    decision: SignedDocument
    def __init__(self, request_id: _Optional[str] = ..., state: _Optional[_Union[RequestState, str]] = ..., agreement: _Optional[_Union[SignedDocument, _Mapping]] = ..., reason: _Optional[str] = ..., decision: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class RequestStatusRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CountersignRequest(_message.Message):
    __slots__ = ("agreement", "checkpoints")
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    agreement: SignedDocument
    checkpoints: CheckpointExchangeRequest
    def __init__(self, agreement: _Optional[_Union[SignedDocument, _Mapping]] = ..., checkpoints: _Optional[_Union[CheckpointExchangeRequest, _Mapping]] = ...) -> None: ...

class CountersignResponse(_message.Message):
    __slots__ = ("agreement_id", "checkpoints", "checkpoints_refused")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    checkpoints: CheckpointExchangeResponse
    checkpoints_refused: str
    def __init__(self, agreement_id: _Optional[str] = ..., checkpoints: _Optional[_Union[CheckpointExchangeResponse, _Mapping]] = ..., checkpoints_refused: _Optional[str] = ...) -> None: ...

class AgreementStatusRequest(_message.Message):
    __slots__ = ("agreement_id",)
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    def __init__(self, agreement_id: _Optional[str] = ...) -> None: ...

class AgreementStatusResponse(_message.Message):
    __slots__ = ("agreement_id", "state", "revocation")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    state: str
    revocation: SignedDocument
    def __init__(self, agreement_id: _Optional[str] = ..., state: _Optional[str] = ..., revocation: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("agreement_id", "resume_delivery_id", "from_sequence")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    resume_delivery_id: str
    from_sequence: int
    def __init__(self, agreement_id: _Optional[str] = ..., resume_delivery_id: _Optional[str] = ..., from_sequence: _Optional[int] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("header", "signature", "body")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    header: bytes
    signature: bytes
    body: bytes
    def __init__(self, header: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., body: _Optional[bytes] = ...) -> None: ...

class DeliveryFrame(_message.Message):
    __slots__ = ("start", "envelope", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: SignedDocument
    envelope: Envelope
    end: SignedDocument
    def __init__(self, start: _Optional[_Union[SignedDocument, _Mapping]] = ..., envelope: _Optional[_Union[Envelope, _Mapping]] = ..., end: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class ReceiptRequest(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: SignedDocument
    def __init__(self, receipt: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class RevocationNotice(_message.Message):
    __slots__ = ("revocation",)
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    revocation: SignedDocument
    def __init__(self, revocation: _Optional[_Union[SignedDocument, _Mapping]] = ...) -> None: ...

class CheckpointExchangeRequest(_message.Message):
    __slots__ = ("checkpoint", "known_size", "consistency", "cosigned_size")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    KNOWN_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    COSIGNED_SIZE_FIELD_NUMBER: _ClassVar[int]
    checkpoint: str
    known_size: int
    consistency: _containers.RepeatedScalarFieldContainer[bytes]
    cosigned_size: int
    def __init__(self, checkpoint: _Optional[str] = ..., known_size: _Optional[int] = ..., consistency: _Optional[_Iterable[bytes]] = ..., cosigned_size: _Optional[int] = ...) -> None: ...

class CheckpointExchangeResponse(_message.Message):
    __slots__ = ("cosigned", "checkpoint", "consistency")
    COSIGNED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    cosigned: str
    checkpoint: str
    consistency: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, cosigned: _Optional[str] = ..., checkpoint: _Optional[str] = ..., consistency: _Optional[_Iterable[bytes]] = ...) -> None: ...
