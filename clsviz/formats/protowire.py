"""Protobuf wire-format primitives (varints), shared by the hand-written readers.

clsviz reads Paddle's ProgramDesc, TensorDesc and sniffs ONNX headers without the
protobuf library; these are the only pieces of the wire format they need in common.
"""

from __future__ import annotations


class WireError(ValueError):
    """Bytes that are not valid protobuf wire format."""


def encode_varint(value: int) -> bytes:
    """Encode as a protobuf varint; a negative int64 takes ten bytes, as in protobuf."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode the varint at ``buf[pos:]``; returns ``(value, next position)``."""
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise WireError("varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def signed64(value: int) -> int:
    """Two's-complement int64 from a varint (negative int32/int64 take ten bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value
