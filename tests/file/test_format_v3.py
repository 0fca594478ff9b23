"""Format version 3: the footer deflated with a preset dictionary, pinned bytes, bad streams."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader
from napari_sgi.file.format_v1 import MAGIC, SectionEntry
from napari_sgi.file.format_v2 import FormatV2
from napari_sgi.file.format_v3 import FOOTER_DICTIONARY, FormatV3


def _file_with_footer(footer: bytes, payload: bytes = b"") -> bytes:
    preamble = struct.pack("<8sIIQQ", MAGIC, 3, 0, 32 + len(payload), len(footer))
    return preamble + payload + footer


def test_the_dictionary_is_frozen():
    # Changing a byte of it makes every version-3 file unreadable: a new dictionary is a new
    # format version.
    assert (len(FOOTER_DICTIONARY), zlib.crc32(FOOTER_DICTIONARY)) == (1231, 2676934346)


def test_version_3_files_read_and_their_footer_beats_version_2():
    header = {"kind": "napari-sgi image", "layout": {"axes": "YX", "shape": [24, 24]}}
    header_json = json.dumps(header, separators=(",", ":")).encode()
    payload = b"abcdef"
    entries = [SectionEntry("slice/0/r0/weights", 32, 6, zlib.crc32(payload))]
    footer = FormatV3().encode_footer(header_json, entries)
    data = _file_with_footer(footer, payload)
    with SGIReader(io.BytesIO(data)) as reader:
        assert reader.format_version == 3
        assert reader.header == header
        assert reader.read_section("slice/0/r0/weights") == payload
        assert reader.info().overhead == {"preamble": 32, "header+index": len(footer)}
    assert len(footer) < 0.5 * len(FormatV2().encode_footer(header_json, entries))


def test_a_reader_without_the_dictionary_fails_loudly():
    entries = [SectionEntry("s", 32, 3, zlib.crc32(b"abc"))]
    footer = FormatV3().encode_footer(b'{"axes": "YX"}', entries)
    assert SGIReader(io.BytesIO(_file_with_footer(footer, b"abc"))).header == {"axes": "YX"}
    with pytest.raises(SGIFormatError, match="corrupt"):
        FormatV2().decode_footer(footer, 35, 1 << 20)


def test_a_dictionary_zip_bomb_inflates_no_more_than_the_stated_length():
    compressor = zlib.compressobj(9, zdict=FOOTER_DICTIONARY)
    bomb = compressor.compress(b"\x00" * (64 << 20)) + compressor.flush()
    footer = FormatV3.DEFLATED_TAG + struct.pack("<I", 1000) + bomb
    with pytest.raises(SGIFormatError, match="stated length"):
        SGIReader(io.BytesIO(_file_with_footer(footer)))
