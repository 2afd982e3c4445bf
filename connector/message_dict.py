"""Protobuf messages as the dictionaries a call signature covers.

ADR 0001 defines a call's canonical encoding over ``MessageToDict(request,
preserving_proto_field_name=True)``. That function walks descriptors in Python for every
field and cost about 40 us per call on each side, twice per negotiation. :func:`message_dict`
gives the same dictionary for the field types the wire contract uses (strings, bytes,
integers, booleans, enums, messages and repeated fields) in a fraction of that, and hands
any message with another kind of field (maps, floating point, well-known types) to
``MessageToDict`` itself. A property test holds the two equal for every message type of
the wire contract.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

_AS_TEXT = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64,
                      FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
                      FieldDescriptor.TYPE_SFIXED64})  # JSON writes 64-bit integers as text
_AS_IS = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BOOL,
                    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32,
                    FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_FIXED32,
                    FieldDescriptor.TYPE_SFIXED32})


def message_dict(message: Message) -> dict[str, Any]:
    """``MessageToDict(message, preserving_proto_field_name=True)``, faster."""
    if not _plain(message.DESCRIPTOR):
        return MessageToDict(message, preserving_proto_field_name=True)
    return _walk(message)


def _walk(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            out[field.name] = [_value(field, item) for item in value]
        else:
            out[field.name] = _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    if kind in _AS_IS:
        return value
    if kind in _AS_TEXT:
        return str(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return _walk(value)
    # an enum: its name, or the number itself when this build does not know it
    known = field.enum_type.values_by_number.get(value)
    return known.name if known is not None else value


@cache
def _plain(descriptor: Descriptor) -> bool:
    """Whether every field, down every nested message, is of a kind :func:`_walk` handles."""
    handled = _AS_IS | _AS_TEXT | {FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_ENUM}
    seen, stack = {descriptor.full_name}, [descriptor]
    while stack:
        current = stack.pop()
        if current.full_name.startswith("google.protobuf.") or current.GetOptions().map_entry:
            return False
        for field in current.fields:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if field.message_type.full_name not in seen:
                    seen.add(field.message_type.full_name)
                    stack.append(field.message_type)
            elif field.type not in handled:
                return False
    return True
