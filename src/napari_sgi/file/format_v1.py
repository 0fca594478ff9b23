"""Byte layout of ``.sgi`` files, one class per format version (``CurrentFormat`` writes).

Every version starts with the same 12 bytes: the magic ``89 53 47 49 0D 0A 1A 0A`` (PNG-style:
catches text-mode and 7-bit transfers) and a little-endian u32 format version; the rest is the
version's own (``docs/format.md`` has the full layout). Version 1::

    preamble  32 B   magic, u32 version, u32 flags (0), u64 footer offset, u64 footer length
    sections         the section bytes, back to back from offset 32, in index order
    footer           b"SGIX", u32 H, H bytes of header JSON, u32 N, N index entries
                     (u16 L, L bytes of ASCII name, u64 offset, u64 length, u32 CRC32),
                     u32 CRC32 of the footer bytes before it; the file ends with the footer.

Examples
--------
>>> fmt = FormatV1()
>>> fmt.version, len(fmt.pack_preamble(32, 14))
(1, 32)
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from napari_sgi.errors import SGIFormatError

__all__ = ["MAGIC", "PREFIX", "FormatV1", "SectionEntry", "describe_foreign"]

MAGIC = b"\x89SGI\r\n\x1a\n"
PREFIX = struct.Struct("<8sI")  # magic, version: shared by every version

# Magic numbers of files that users may rename to .sgi by mistake, for a helpful message.
_FOREIGN = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"{", "a JSON/text file"),
)

NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


@dataclass(frozen=True)
class SectionEntry:
    """Where a section lies in the file: absolute ``offset``, ``length`` and CRC32 of its bytes."""

    name: str
    offset: int
    length: int
    crc32: int


def check_section_name(name: str) -> None:
    """Section names: 1..255 ASCII characters, ``/``-separated parts of ``[A-Za-z0-9_.-]``.

    Examples
    --------
    >>> check_section_name("slice/0/features")
    """
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid section name {name!r}: use 1..255 characters of [A-Za-z0-9_.-] in "
            "'/'-separated parts, e.g. 'slice/0/features'"
        )


def describe_foreign(prefix: bytes) -> str:
    for magic, what in _FOREIGN:
        if prefix.startswith(magic):
            return f"; it looks like {what}"
    return ""


class FormatV1:
    """Version 1 of the ``.sgi`` container (see the module docstring and ``docs/format.md``)."""

    version = 1
    PREAMBLE = struct.Struct("<8sIIQQ")  # magic, version, flags, footer offset, footer length
    FOOTER_TAG = b"SGIX"
    ENTRY = struct.Struct("<QQI")  # offset, length, crc32 (after u16 name length + name)
    MAX_FOOTER = 64 << 20  # header (<= 1 MiB) + index of up to a million sections
    MAX_SECTIONS = 1 << 20
    MIN_ENTRY = 2 + 1 + 20  # u16 length, a one-character name, ENTRY
    MIN_FOOTER = 4 + 4 + 4 + 4  # tag, header length, section count, CRC

    @property
    def preamble_size(self) -> int:
        return self.PREAMBLE.size

    def pack_preamble(self, footer_offset: int, footer_length: int) -> bytes:
        return self.PREAMBLE.pack(MAGIC, self.version, 0, footer_offset, footer_length)

    def unpack_preamble(self, data: bytes, file_size: int) -> tuple[int, int]:
        """Validate the preamble against the file size; return (footer offset, footer length)."""
        if len(data) < self.PREAMBLE.size:
            raise SGIFormatError(
                f"truncated file: {file_size} bytes, an .sgi file has at least "
                f"{self.PREAMBLE.size + self.MIN_FOOTER}"
            )
        _, _, flags, offset, length = self.PREAMBLE.unpack_from(data)
        if flags != 0:
            raise SGIFormatError(f"unknown flags {flags:#x} in the preamble (corrupt file?)")
        if not self.MIN_FOOTER <= length <= self.MAX_FOOTER:
            raise SGIFormatError(
                f"footer length {length} out of range [{self.MIN_FOOTER}, {self.MAX_FOOTER}] "
                "(corrupt file?)"
            )
        if offset < self.PREAMBLE.size or offset + length != file_size:
            expected = offset + length
            if offset >= self.PREAMBLE.size and expected > file_size:
                raise SGIFormatError(
                    f"truncated file: {file_size} bytes, the preamble says {expected}"
                )
            raise SGIFormatError(
                f"footer at offset {offset} with length {length} does not end the "
                f"{file_size}-byte file (corrupt or truncated file?)"
            )
        return offset, length

    def encode_footer(self, header_json: bytes, entries: Iterable[SectionEntry]) -> bytes:
        entries = list(entries)
        parts = [self.FOOTER_TAG, struct.pack("<I", len(header_json)), header_json]
        parts.append(struct.pack("<I", len(entries)))
        for e in entries:
            name = e.name.encode("ascii")
            parts += [
                struct.pack("<H", len(name)),
                name,
                self.ENTRY.pack(e.offset, e.length, e.crc32),
            ]
        body = b"".join(parts)
        if len(body) + 4 > self.MAX_FOOTER or len(entries) > self.MAX_SECTIONS:
            raise ValueError(f"too many sections ({len(entries)}) for one file")
        return body + struct.pack("<I", zlib.crc32(body))

    def decode_footer(
        self, footer: bytes, footer_offset: int, max_header: int
    ) -> tuple[bytes, list[SectionEntry]]:
        """Check the footer CRC and the index; return (header JSON bytes, entries).

        Sections must tile ``[preamble end, footer offset)`` exactly, in index order, with
        distinct valid names, so that the file has no hidden or overlapping bytes.
        """
        if len(footer) < self.MIN_FOOTER or footer[:4] != self.FOOTER_TAG:
            raise SGIFormatError("footer tag missing at the footer offset (corrupt file?)")
        (crc,) = struct.unpack_from("<I", footer, len(footer) - 4)
        if zlib.crc32(footer[:-4]) != crc:
            raise SGIFormatError("footer checksum mismatch: the header or index is corrupt")
        body = memoryview(footer)[:-4]
        (h_len,) = struct.unpack_from("<I", body, 4)
        if h_len > max_header or 8 + h_len + 4 > len(body):
            raise SGIFormatError(f"header length {h_len} out of range (max {max_header})")
        header_json = bytes(body[8 : 8 + h_len])
        pos = 8 + h_len
        (count,) = struct.unpack_from("<I", body, pos)
        pos += 4
        if count > self.MAX_SECTIONS or count * self.MIN_ENTRY > len(body) - pos:
            raise SGIFormatError(f"section count {count} does not fit the footer")
        entries, names, expected = [], set(), self.PREAMBLE.size
        for i in range(count):
            if pos + 2 > len(body):
                raise SGIFormatError(f"index entry {i} truncated")
            (n_len,) = struct.unpack_from("<H", body, pos)
            pos += 2
            if pos + n_len + self.ENTRY.size > len(body):
                raise SGIFormatError(f"index entry {i} truncated")
            try:
                name = bytes(body[pos : pos + n_len]).decode("ascii")
                check_section_name(name)
            except (UnicodeDecodeError, ValueError):
                raise SGIFormatError(f"index entry {i} has an invalid section name") from None
            pos += n_len
            offset, length, s_crc = self.ENTRY.unpack_from(body, pos)
            pos += self.ENTRY.size
            if name in names:
                raise SGIFormatError(f"section {name!r} appears twice in the index")
            if offset != expected or length > footer_offset - offset:
                raise SGIFormatError(
                    f"section {name!r} at offset {offset} with length {length} is outside the "
                    f"section area [{expected}, {footer_offset}) (corrupt file?)"
                )
            names.add(name)
            entries.append(SectionEntry(name, offset, length, s_crc))
            expected = offset + length
        if pos != len(body) or expected != footer_offset:
            raise SGIFormatError("the index does not account for every byte of the file")
        return header_json, entries

    def overhead(self, header_json: bytes, footer_length: int) -> dict[str, int]:
        """Container bytes: the preamble, the JSON header, and the rest of the footer (index)."""
        return {
            "preamble": self.preamble_size,
            "header": len(header_json),
            "index": footer_length - len(header_json),
        }
