"""Envelope frames written in wire format by hand are the message's own serialization."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.convert import envelope_frame
from connector.pb import trustspace_pb2 as pb


@given(st.binary(max_size=300), st.binary(max_size=80), st.binary(max_size=20_000))
def test_an_envelope_frame_is_the_delivery_frame_message(header: bytes, signature: bytes,
                                                         body: bytes) -> None:
    frame = envelope_frame(header, signature, body)
    message = pb.DeliveryFrame(envelope=pb.Envelope(header=header, signature=signature,
                                                    body=body))
    assert frame == message.SerializeToString()
    assert pb.DeliveryFrame.FromString(frame) == message


@pytest.mark.parametrize("size", [127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 9_000_000])
def test_lengths_at_every_varint_boundary(size: int) -> None:
    body = bytes(size)
    message = pb.DeliveryFrame(envelope=pb.Envelope(header=b"h", signature=b"s" * 64, body=body))
    assert envelope_frame(b"h", b"s" * 64, body) == message.SerializeToString()

