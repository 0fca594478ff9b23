"""Version 4 of the ``.sgi`` container: the small-file layout.

At the compact preset a 256x256 slice is a 3-4 KB file, and version 3 spent about 235 bytes of it
on the container: a 32-byte preamble, and a footer whose index holds u64 offsets and lengths, a
zlib wrapper (header, dictionary id, Adler-32) and a tag. Version 4 keeps what a reader needs
and drops what it can work out::

    preamble  16 B   magic, u32 version (4), u32 footer length L
    sections         the section bytes, back to back from offset 16, in index order
    footer           the last L bytes: a raw deflate stream (RFC 1951) of the plain footer,
                     compressed with the preset dictionary ``FOOTER_DICTIONARY``, then the u32
                     CRC32 of the plain footer
    plain footer     varint H, H bytes of header JSON, varint N, then N index entries:
                     u8 K (1..255), K bytes of ASCII name, varint length, u32 CRC32 of the section

Varints are unsigned LEB128. A section's offset is where the previous one ended (the first is
at 16); the lengths must add up to ``file size - L - 16`` exactly. A truncated file shows up as a
footer that does not inflate or whose CRC does not match. Reading inflates at most
``MAX_FOOTER`` bytes and requires the deflate stream to end exactly 4 bytes before the file does.

Examples
--------
>>> from napari_sgi.file.format_v1 import SectionEntry
>>> fmt = FormatV4()
>>> footer = fmt.encode_footer(b'{"axes": "YX"}', [SectionEntry("a", 16, 2, 0)])
>>> fmt.decode_footer(footer, 18, 1 << 20)
(b'{"axes": "YX"}', [SectionEntry(name='a', offset=16, length=2, crc32=0)])
>>> len(fmt.pack_preamble(18, len(footer)))
16
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from napari_sgi.codec.varint import decode_uvarint, encode_uvarint
from napari_sgi.errors import SGIFormatError
from napari_sgi.file.format_v1 import MAGIC, FormatV1, SectionEntry, check_section_name
from napari_sgi.file.format_v3 import FOOTER_DICTIONARY as _V3_DICTIONARY
from napari_sgi.file.header import MODEL_SECTIONS

__all__ = ["FOOTER_DICTIONARY", "FormatV4"]


# Version 3's dictionary, its one-slice header with the compact preset's settings of today (12500
# steps, refinement), and the names of region 0's sections as a version-4 index spells them.
FOOTER_DICTIONARY = (
    _V3_DICTIONARY[: _V3_DICTIONARY.index(b"\x05\x00\x00\x00")]
    + b'"iterations":12500,"levels":3,"feature_dim":4,"gaussians_per_seed":10,"lmbda":2e-05,'
    b'"density":0.01,"seeds":null,"rng_seed":0,"rate_subset":0.05,"grid_levels":0,'
    b'"attribute_lr_scale":8.0,"distortion":"mse","refine":0.04},"n_slices":1,"slices":'
    b'[{"key":[],"regions":[{"core":[0,256,0,256],"box":[0,256,0,256],"model":{"height":256,'
    b'"width":256,"channels":1,"feature_dim":4,"gaussians_per_seed":10,"seed_count":262,'
    b'"rng_seed":0,"levels":3,"grid_levels":0,"grid_features":4,"grid_log2_table":13}}],'
    b'"blend":32,"psnr":'
    + b"\x05"
    + b"".join(
        bytes([len(name)]) + name
        for name in (f"slice/0/r0/{part}".encode() for part in MODEL_SECTIONS)
    )
)


class FormatV4(FormatV1):
    """Version 4: a 16-byte preamble and a compact, raw-deflated footer (module docstring)."""

    version = 4
    PREAMBLE = struct.Struct("<8sII")  # magic, version, footer length
    CRC = struct.Struct("<I")
    DICTIONARY = FOOTER_DICTIONARY
    MIN_FOOTER = 2 + 4  # the shortest deflate stream, the CRC

    def pack_preamble(self, footer_offset: int, footer_length: int) -> bytes:
        return self.PREAMBLE.pack(MAGIC, self.version, footer_length)

    def unpack_preamble(self, data: bytes, file_size: int) -> tuple[int, int]:
        """Validate the preamble against the file size; return (footer offset, footer length)."""
        if len(data) < self.PREAMBLE.size or file_size < self.PREAMBLE.size + self.MIN_FOOTER:
            raise SGIFormatError(
                f"truncated file: {file_size} bytes, an .sgi file of version 4 has at least "
                f"{self.PREAMBLE.size + self.MIN_FOOTER}"
            )
        (length,) = struct.unpack_from("<I", data, 12)
        if not self.MIN_FOOTER <= length <= self.MAX_FOOTER:
            raise SGIFormatError(
                f"footer length {length} out of range [{self.MIN_FOOTER}, {self.MAX_FOOTER}] "
                "(corrupt file?)"
            )
        if length > file_size - self.PREAMBLE.size:
            raise SGIFormatError(
                f"truncated file: {file_size} bytes, shorter than its {length}-byte footer "
                "and the preamble"
            )
        return file_size - length, length

    def encode_footer(self, header_json: bytes, entries: Iterable[SectionEntry]) -> bytes:
        entries = list(entries)
        if len(entries) > self.MAX_SECTIONS:
            raise ValueError(f"too many sections ({len(entries)}) for one file")
        parts = [encode_uvarint(len(header_json)), header_json, encode_uvarint(len(entries))]
        for entry in entries:
            name = entry.name.encode("ascii")
            parts += [bytes([len(name)]), name, encode_uvarint(entry.length)]
            parts.append(self.CRC.pack(entry.crc32))
        plain = b"".join(parts)
        if len(plain) > self.MAX_FOOTER:
            raise ValueError(f"too many sections ({len(entries)}) for one file")
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=self.DICTIONARY)
        deflated = compressor.compress(plain) + compressor.flush()
        return deflated + self.CRC.pack(zlib.crc32(plain))

    def _inflate(self, footer: bytes) -> bytes:
        unreadable = (
            "the compressed header and index do not inflate: the file is corrupt or truncated"
        )
        inflater = zlib.decompressobj(-15, zdict=self.DICTIONARY)
        try:
            plain = inflater.decompress(footer, self.MAX_FOOTER)
        except zlib.error:
            raise SGIFormatError(unreadable) from None
        if not inflater.eof or len(inflater.unused_data) != self.CRC.size:
            raise SGIFormatError(unreadable)
        if zlib.crc32(plain) != self.CRC.unpack(inflater.unused_data)[0]:
            raise SGIFormatError("footer checksum mismatch: the header or index is corrupt")
        return plain

    def decode_footer(
        self, footer: bytes, footer_offset: int, max_header: int
    ) -> tuple[bytes, list[SectionEntry]]:
        """Inflate and check the footer; return (header JSON bytes, entries).

        The sections' lengths must tile ``[16, footer offset)`` exactly, with distinct valid
        names, so that the file has no hidden or overlapping bytes.
        """
        plain = self._inflate(footer)
        try:
            h_len, pos = decode_uvarint(plain, 0)
            if h_len > max_header or pos + h_len > len(plain):
                raise SGIFormatError(f"header length {h_len} out of range (max {max_header})")
            header_json = plain[pos : pos + h_len]
            count, pos = decode_uvarint(plain, pos + h_len)
            if count > self.MAX_SECTIONS or count * 7 > len(plain) - pos:  # 7: smallest entry
                raise SGIFormatError(f"section count {count} does not fit the footer")
            entries, names, offset = [], set(), self.PREAMBLE.size
            for i in range(count):
                entry, pos = self._entry(plain, pos, i, offset, footer_offset)
                if entry.name in names:
                    raise SGIFormatError(f"section {entry.name!r} appears twice in the index")
                names.add(entry.name)
                entries.append(entry)
                offset += entry.length
        except ValueError as exc:  # a varint that runs off the end
            raise SGIFormatError(f"the index is truncated ({exc})") from None
        if pos != len(plain) or offset != footer_offset:
            raise SGIFormatError("the index does not account for every byte of the file")
        return header_json, entries

    def _entry(self, plain: bytes, pos: int, i: int, offset: int, end: int):
        if pos >= len(plain):
            raise SGIFormatError(f"index entry {i} truncated")
        n_len = plain[pos]
        if pos + 1 + n_len > len(plain):
            raise SGIFormatError(f"index entry {i} truncated")
        name_bytes = plain[pos + 1 : pos + 1 + n_len]
        try:
            name = name_bytes.decode("ascii")
            check_section_name(name)
        except (UnicodeDecodeError, ValueError):
            raise SGIFormatError(f"index entry {i} has an invalid section name") from None
        length, pos = decode_uvarint(plain, pos + 1 + n_len)
        if pos + self.CRC.size > len(plain):
            raise SGIFormatError(f"index entry {i} truncated")
        if length > end - offset:
            raise SGIFormatError(
                f"section {name!r} at offset {offset} with length {length} is outside the "
                f"section area [{self.PREAMBLE.size}, {end}) (corrupt file?)"
            )
        (crc,) = self.CRC.unpack_from(plain, pos)
        return SectionEntry(name, offset, length, crc), pos + self.CRC.size

    def overhead(self, header_json: bytes, footer_length: int) -> dict[str, int]:
        """Container bytes: the preamble and the deflated header and index (one stream)."""
        return {"preamble": self.preamble_size, "header+index": footer_length}
