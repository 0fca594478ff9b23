"""Byte layout of ``.sgi`` files: format version 4, the one napari-sgi writes and reads.

A file is a 16-byte preamble, the section bytes back to back, and a deflated footer that holds
the JSON header and the index (``docs/format.md`` has every rule)::

    preamble  16 B   magic 89 53 47 49 0D 0A 1A 0A, u32 format version (4), u32 footer length L
    sections         the section bytes, back to back from offset 16, in index order
    footer           the last L bytes: a raw deflate stream (RFC 1951) of the plain footer,
                     compressed with the preset dictionary ``FOOTER_DICTIONARY``, then the u32
                     CRC32 of the plain footer
    plain footer     varint H, H bytes of header JSON, varint N, then N index entries:
                     u8 K (1..255), K bytes of ASCII name, varint length, u32 CRC32 of the section

All integers are little-endian; varints are unsigned LEB128. A section's offset is where the
previous one ends (the first is at 16); the lengths must add up to ``file size - L - 16``
exactly. A truncated file shows up as a footer that does not inflate or whose CRC does not
match. Reading inflates at most ``MAX_FOOTER`` bytes and requires the deflate stream to end
exactly 4 bytes before the file does. Versions 1 to 3 were pre-release development layouts:
:func:`detect_format` refuses them with a message that says so.

Examples
--------
>>> fmt = Format()
>>> footer = fmt.encode_footer(b'{"axes": "YX"}', [SectionEntry("a", 16, 2, 0)])
>>> fmt.decode_footer(footer, 18, 1 << 20)
(b'{"axes": "YX"}', [SectionEntry(name='a', offset=16, length=2, crc32=0)])
>>> len(fmt.pack_preamble(len(footer)))
16
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from napari_sgi.codec.varint import decode_uvarint, encode_uvarint
from napari_sgi.errors import SGIFormatError

__all__ = [
    "FOOTER_DICTIONARY",
    "MAGIC",
    "VERSION",
    "Format",
    "SectionEntry",
    "check_section_name",
    "describe_foreign",
    "detect_format",
]

MAGIC = b"\x89SGI\r\n\x1a\n"  # PNG-style: catches 7-bit and text-mode (CR LF, ^Z) transfers
VERSION = 4
PREFIX = struct.Struct("<8sI")  # magic, version: what every version, past or future, starts with
PRE_RELEASE_VERSIONS = (1, 2, 3)  # development layouts, never released

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

# The footer's preset dictionary (zlib's ``zdict``): a typical footer, so that deflate refers back
# to keys and section names from the footer's first byte instead of spelling each out once. Later
# bytes are cheaper to refer to (shorter distances): rare JSON fragments first, then a one-slice
# header, the tail of a one-slice header of the compact preset, and the index-entry prefixes
# (u8 length, name) of region 0's sections after a section count of 5. Part of the format: any
# change makes every file unreadable (a test pins its length and CRC32; docs/format.md spells it).
FOOTER_DICTIONARY = (
    b'"axes":"TCZYX","CYX","TYX","ZYXS","YXS","uint8","<f4","<i2","|u1","micrometer","nm",'
    b'"channel_names":["red","green","blue"],"grid_levels":null,"distortion":"l1",'
    b'"grid_levels":6,"grid_features":4,"grid_log2_table":13,"feature_dim":50,'
    b'{"kind":"napari-sgi image","encoder_version":"0.1.0","layout":{"version":1,"axes":"YX",'
    b'"source_axes":"YX","shape":[512,512],"dtype":"<u2","scale":[null,null],'
    b'"units":[null,null],"channel_names":null,"contrast_limits":null,"slice_axes":"",'
    b'"slice_shape":[512,512],"n_slices":1},"value_range":[0.0,255.0],'
    b'"contrast_limits":[0.0,255.0],"fit":{"iterations":4000,"levels":3,"feature_dim":4,'
    b'"gaussians_per_seed":10,"lmbda":2e-05,"density":0.01,"seeds":null,"rng_seed":0,'
    b'"rate_subset":0.05,"grid_levels":0,"attribute_lr_scale":8.0,"distortion":"mse"},'
    b'"n_slices":1,"slices":[{"key":[],"regions":[{"core":[0,512,0,512],"box":[0,512,0,512],'
    b'"model":{"height":512,"width":512,"channels":1,"feature_dim":4,"gaussians_per_seed":10,'
    b'"seed_count":262,"rng_seed":0,"levels":3,"grid_levels":0,"grid_features":4,'
    b'"grid_log2_table":13}}],"blend":32,"psnr":33.0,"ssim":0.75}],'
    b'"quality":{"psnr":33.0,"ssim":0.75}}'
    b'"iterations":12500,"levels":3,"feature_dim":4,"gaussians_per_seed":10,"lmbda":2e-05,'
    b'"density":0.01,"seeds":null,"rng_seed":0,"rate_subset":0.05,"grid_levels":0,'
    b'"attribute_lr_scale":8.0,"distortion":"mse","refine":0.04},"n_slices":1,"slices":'
    b'[{"key":[],"regions":[{"core":[0,256,0,256],"box":[0,256,0,256],"model":{"height":256,'
    b'"width":256,"channels":1,"feature_dim":4,"gaussians_per_seed":10,"seed_count":262,'
    b'"rng_seed":0,"levels":3,"grid_levels":0,"grid_features":4,"grid_log2_table":13}}],'
    b'"blend":32,"psnr":'
    b"\x05"
    b"\x12slice/0/r0/weights"
    b"\x14slice/0/r0/hash_grid"
    b"\x13slice/0/r0/features"
    b"\x16slice/0/r0/log_scaling"
    b"\x12slice/0/r0/offsets"
)


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
    >>> check_section_name("slice/0/r0/features")
    """
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid section name {name!r}: use 1..255 characters of [A-Za-z0-9_.-] in "
            "'/'-separated parts, e.g. 'slice/0/r0/features'"
        )


def describe_foreign(prefix: bytes) -> str:
    """``"; it looks like a PNG image"`` for a known foreign signature, else ``""``."""
    for magic, what in _FOREIGN:
        if prefix.startswith(magic):
            return f"; it looks like {what}"
    return ""


class Format:
    """Format version 4 of the ``.sgi`` container (see the module docstring)."""

    version = VERSION
    PREAMBLE = struct.Struct("<8sII")  # magic, version, footer length
    CRC = struct.Struct("<I")
    MAX_FOOTER = 64 << 20  # header (<= 1 MiB) + index of up to a million sections
    MAX_SECTIONS = 1 << 20
    MIN_FOOTER = 2 + 4  # the shortest deflate stream, the CRC
    MIN_ENTRY = 1 + 1 + 1 + 4  # name length, a one-character name, a one-byte length, CRC

    @property
    def preamble_size(self) -> int:
        return self.PREAMBLE.size

    def pack_preamble(self, footer_length: int) -> bytes:
        return self.PREAMBLE.pack(MAGIC, self.version, footer_length)

    def unpack_preamble(self, data: bytes, file_size: int) -> tuple[int, int]:
        """Validate the preamble against the file size; return (footer offset, footer length)."""
        if len(data) < self.PREAMBLE.size or file_size < self.PREAMBLE.size + self.MIN_FOOTER:
            raise SGIFormatError(
                f"truncated file: {file_size} bytes, an .sgi file has at least "
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
        """The footer of a file with this header and these sections (offsets are implied)."""
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
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=FOOTER_DICTIONARY)
        deflated = compressor.compress(plain) + compressor.flush()
        return deflated + self.CRC.pack(zlib.crc32(plain))

    def _inflate(self, footer: bytes) -> bytes:
        unreadable = (
            "the compressed header and index do not inflate: the file is corrupt or truncated"
        )
        inflater = zlib.decompressobj(-15, zdict=FOOTER_DICTIONARY)
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
            if count > self.MAX_SECTIONS or count * self.MIN_ENTRY > len(plain) - pos:
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

    def overhead(self, footer_length: int) -> dict[str, int]:
        """Container bytes: the preamble and the deflated header and index (one stream)."""
        return {"preamble": self.preamble_size, "header+index": footer_length}


def detect_format(prefix: bytes, file_size: int) -> Format:
    """The format of a file starting with ``prefix`` (at least its first 12 bytes).

    Raises :class:`SGIFormatError` for foreign files, truncated files, the pre-release versions
    1 to 3, and newer versions.

    Examples
    --------
    >>> detect_format(MAGIC + (4).to_bytes(4, "little"), 100).version
    4
    >>> detect_format(b"\\x89PNG\\r\\n\\x1a\\n....", 100)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_sgi.errors.SGIFormatError: not an .sgi file ...; it looks like a PNG image
    """
    if len(prefix) < PREFIX.size:
        if MAGIC.startswith(prefix[: len(MAGIC)]) and file_size > 0:
            raise SGIFormatError(f"truncated file: {file_size} bytes, shorter than the preamble")
        raise SGIFormatError(
            f"not an .sgi file ({file_size} bytes, no SGI signature){describe_foreign(prefix)}"
        )
    magic, version = PREFIX.unpack_from(prefix)
    if magic != MAGIC:
        raise SGIFormatError(
            f"not an .sgi file (starts with {prefix[:8]!r}){describe_foreign(prefix)}"
        )
    if version in PRE_RELEASE_VERSIONS:
        raise SGIFormatError(
            f"the file has .sgi format version {version}, a pre-release development version "
            f"that napari-sgi no longer reads (it reads version {VERSION}): compress the image "
            "again"
        )
    if VERSION < version < 1 << 16:  # larger values are bit flips, not releases
        raise SGIFormatError(
            f"the file was written by a newer napari-sgi (format version {version}; this "
            f"napari-sgi reads version {VERSION}): upgrade napari-sgi"
        )
    if version != VERSION:
        raise SGIFormatError(f"unknown .sgi format version {version} (corrupt file?)")
    return Format()
