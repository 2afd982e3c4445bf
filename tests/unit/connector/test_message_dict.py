"""The dictionary a call signature covers is MessageToDict's, for every message of the wire
contract: random messages of each type, every field kind at its edges (64-bit integers,
empty and non-ASCII text, bytes, unknown enum numbers, empty nested messages)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from connector.message_dict import message_dict
from connector.pb import trustspace_pb2 as pb

F = FieldDescriptor
_INTEGERS = {
    F.TYPE_INT32: st.integers(-2**31, 2**31 - 1), F.TYPE_SINT32: st.integers(-2**31, 2**31 - 1),
    F.TYPE_SFIXED32: st.integers(-2**31, 2**31 - 1), F.TYPE_UINT32: st.integers(0, 2**32 - 1),
    F.TYPE_FIXED32: st.integers(0, 2**32 - 1), F.TYPE_INT64: st.integers(-2**63, 2**63 - 1),
    F.TYPE_SINT64: st.integers(-2**63, 2**63 - 1), F.TYPE_SFIXED64: st.integers(-2**63, 2**63 - 1),
    F.TYPE_UINT64: st.integers(0, 2**64 - 1), F.TYPE_FIXED64: st.integers(0, 2**64 - 1)}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INTEGERS:
        return _INTEGERS[field.type]
    if field.type == F.TYPE_STRING:
        return st.text(max_size=8)
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=8)
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    assert field.type == F.TYPE_ENUM, field.type  # the wire contract has no other kind
    return st.sampled_from([v.number for v in field.enum_type.values] + [99])


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    made: Message = getattr(pb, descriptor.name)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == F.TYPE_MESSAGE:
            if depth >= 3:
                continue
            parts = draw(st.lists(messages(field.message_type, depth + 1), max_size=2))
            if field.is_repeated:
                getattr(made, field.name).extend(parts)
            else:
                getattr(made, field.name).CopyFrom(parts[0] if parts else
                                                   type(getattr(made, field.name))())
        elif field.is_repeated:
            getattr(made, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(made, field.name, draw(_scalar(field)))
    return made


TYPES = sorted(pb.DESCRIPTOR.message_types_by_name)


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
def test_message_dict_is_message_to_dict_for_every_wire_message(name: str,
                                                                  data: st.DataObject) -> None:
    message = data.draw(messages(pb.DESCRIPTOR.message_types_by_name[name]))
    assert message_dict(message) == MessageToDict(message, preserving_proto_field_name=True)


def test_messages_of_other_kinds_go_to_message_to_dict() -> None:
    """Maps, floating point and well-known types are left to MessageToDict itself."""
    struct = Struct()
    struct.update({"a": 1.5, "b": [True, None]})
    stamp = Timestamp(seconds=1, nanos=5)
    for message in (struct, stamp):
        assert message_dict(message) == MessageToDict(message, preserving_proto_field_name=True)
