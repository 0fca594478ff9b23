"""Unsigned LEB128 varints (7 bits per byte, low groups first), as protobuf and DWARF write them.

Examples
--------
>>> encode_uvarint(300)
b'\\xac\\x02'
>>> decode_uvarint(b"\\xac\\x02rest", 0)
(300, 2)
"""

from __future__ import annotations

MAX_BYTES = 10  # enough for any u64


def encode_uvarint(value: int) -> bytes:
    """The varint bytes of ``0 <= value < 2**64``."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """``(value, position after it)`` of the varint at ``data[pos]``.

    Raises ``ValueError`` when the data ends inside it, or it is longer than ``MAX_BYTES`` or not
    minimal (a trailing zero group), so that every value has exactly one encoding.
    """
    value, shift = 0, 0
    for i in range(pos, min(len(data), pos + MAX_BYTES)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > pos:
                raise ValueError("varint with a redundant trailing zero group")
            if value >= 1 << 64:
                raise ValueError("varint out of range")
            return value, i + 1
        shift += 7
    raise ValueError("varint truncated or too long")
