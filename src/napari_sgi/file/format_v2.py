"""Version 2 of the ``.sgi`` container: version 1 with its footer deflated.

On a 512x512 image at 0.3 bits per pixel the whole file is about 10 KB, and version 1's JSON
header and index took 1.2 KB of it. They are repetitive text (the same keys for every slice and
region, section names that differ by one digit), so version 2 stores the very bytes of a version-1
footer (tag, header, index, CRC) compressed with zlib, after its own tag and length::

    preamble  32 B   as version 1, with version 2
    sections         as version 1
    footer           b"SGIZ", u32 R (length of the version-1 footer), zlib stream of those R bytes

Reading inflates at most ``R <= MAX_FOOTER`` bytes (a zip bomb cannot allocate more), requires the
stream to end exactly there, then checks the inflated footer as version 1 does (its CRC included).

Examples
--------
>>> from napari_sgi.file.format_v1 import SectionEntry
>>> fmt = FormatV2()
>>> footer = fmt.encode_footer(b'{"axes": "YX"}', [SectionEntry("a", 32, 2, 0)])
>>> fmt.decode_footer(footer, 34, 1 << 20)
(b'{"axes": "YX"}', [SectionEntry(name='a', offset=32, length=2, crc32=0)])
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.format_v1 import FormatV1, SectionEntry

__all__ = ["FormatV2"]


class FormatV2(FormatV1):
    """Version 2: the version-1 layout with a deflated footer (see the module docstring)."""

    version = 2
    DEFLATED_TAG = b"SGIZ"
    LENGTH = struct.Struct("<I")
    MIN_FOOTER = 4 + 4 + 8  # tag, inflated length, the smallest zlib stream

    def encode_footer(self, header_json: bytes, entries: Iterable[SectionEntry]) -> bytes:
        plain = super().encode_footer(header_json, entries)
        return self.DEFLATED_TAG + self.LENGTH.pack(len(plain)) + self._deflate(plain)

    def _deflate(self, plain: bytes) -> bytes:
        return zlib.compress(plain, 9)

    def _inflater(self):
        return zlib.decompressobj()

    def decode_footer(
        self, footer: bytes, footer_offset: int, max_header: int
    ) -> tuple[bytes, list[SectionEntry]]:
        """Inflate the footer (bounded by its stated length), then check it as version 1."""
        if len(footer) < self.MIN_FOOTER or footer[:4] != self.DEFLATED_TAG:
            raise SGIFormatError("footer tag missing at the footer offset (corrupt file?)")
        (length,) = self.LENGTH.unpack_from(footer, 4)
        if not FormatV1.MIN_FOOTER <= length <= self.MAX_FOOTER:
            raise SGIFormatError(f"inflated footer length {length} out of range (corrupt file?)")
        inflater = self._inflater()
        try:
            plain = inflater.decompress(footer[8:], length)
        except zlib.error as exc:
            raise SGIFormatError(f"the compressed header is corrupt ({exc})") from None
        if len(plain) != length or not inflater.eof or inflater.unconsumed_tail:
            raise SGIFormatError(
                "the compressed header does not inflate to its stated length (corrupt file?)"
            )
        if inflater.unused_data:
            raise SGIFormatError("bytes after the compressed header (corrupt file?)")
        return super().decode_footer(plain, footer_offset, max_header)

    def overhead(self, header_json: bytes, footer_length: int) -> dict[str, int]:
        """Container bytes: the preamble and the deflated header and index (one stream)."""
        return {"preamble": self.preamble_size, "header+index": footer_length}
