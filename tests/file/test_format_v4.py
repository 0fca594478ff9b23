"""Format version 4: the small-file layout, its pinned dictionary, crafted and bad footers."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader, read_sgi, sgi_info
from napari_sgi.file.format_v1 import MAGIC, SectionEntry
from napari_sgi.file.format_v3 import FormatV3
from napari_sgi.file.format_v4 import FOOTER_DICTIONARY, FormatV4
from napari_sgi.file.formats import CurrentFormat


def _file(footer: bytes, payload: bytes = b"") -> bytes:
    return struct.pack("<8sII", MAGIC, 4, len(footer)) + payload + footer


def _plain_footer(header_json: bytes, entries: list[tuple[bytes, int, int]]) -> bytes:
    """A plain version-4 footer from raw parts (names as bytes), without validation."""
    from napari_sgi.codec.varint import encode_uvarint

    parts = [encode_uvarint(len(header_json)), header_json, encode_uvarint(len(entries))]
    for name, length, crc in entries:
        parts += [bytes([len(name)]), name, encode_uvarint(length), struct.pack("<I", crc)]
    return b"".join(parts)


def _deflated(plain: bytes, crc: int | None = None) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=FOOTER_DICTIONARY)
    body = compressor.compress(plain) + compressor.flush()
    return body + struct.pack("<I", zlib.crc32(plain) if crc is None else crc)


def _expect(data: bytes, match: str) -> None:
    with pytest.raises(SGIFormatError, match=match):
        SGIReader(io.BytesIO(data))


def test_the_dictionary_is_frozen():
    # Changing a byte of it makes every version-4 file unreadable: a new dictionary is a new
    # format version.
    assert (len(FOOTER_DICTIONARY), zlib.crc32(FOOTER_DICTIONARY)) == (1732, 2063653725)


def test_new_files_are_version_4_and_smaller_than_version_3(tmp_path):
    from napari_sgi.encode.pipeline import compress

    assert CurrentFormat is FormatV4
    image = (np.random.default_rng(0).random((24, 24)) * 1000).astype(np.uint16)
    result = compress(image, tmp_path / "a.sgi", preset="compact", iterations=5)
    with SGIReader(result.path) as reader:
        assert reader.format_version == 4
        header, entries = reader.header, [reader.section_entry(n) for n in reader.section_names]
    info = sgi_info(result.path)
    assert info.total == info.file_size == result.bytes
    assert info.overhead["preamble"] == 16
    header_json = json.dumps(header, separators=(",", ":")).encode()
    footer_v3 = len(FormatV3().encode_footer(header_json, entries))
    # Measured on this file: 16 preamble bytes and about 40 footer bytes fewer than version 3.
    assert info.overhead["header+index"] <= footer_v3 - 25


def test_round_trip_of_many_sections(tmp_path):
    sections = {f"slice/{z}/r0/{part}": bytes([z]) * (z * 37) for z in range(40) for part in "ab"}
    entries, offset = [], 16
    for name, data in sections.items():
        entries.append(SectionEntry(name, offset, len(data), zlib.crc32(data)))
        offset += len(data)
    footer = FormatV4().encode_footer(b'{"n": 80}', entries)
    header, read = read_sgi(io.BytesIO(_file(footer, b"".join(sections.values()))))
    assert header == {"n": 80} and read == sections


@pytest.mark.parametrize(
    ("entries", "payload", "match"),
    [
        ([(b"a", 10, 0), (b"b", 1 << 40, 0)], 30, "outside"),  # past the end
        ([(b"a", 2**64 - 1, 0)], 30, "outside"),  # a negative length, read unsigned
        ([(b"a", 10, 0)], 30, "account"),  # a gap before the footer
        ([(b"a", 15, 0), (b"a", 15, 0)], 30, "twice"),
        ([(b"bad name", 30, 0)], 30, "name"),
        ([(b"", 30, 0)], 30, "name|does not fit"),
        ([(b"\xff\xfe", 30, 0)], 30, "name"),
    ],
)
def test_crafted_indexes_with_valid_checksums(entries, payload, match):
    footer = _deflated(_plain_footer(b"{}", entries))
    _expect(_file(footer, b"\x00" * payload), match)


@pytest.mark.parametrize(
    ("plain", "match"),
    [
        (b"\xff\xff\xff\xff\x7f{}", "header length"),  # a 34-GB header
        (b"\x02{}\xff\xff\xff\xff\x0f", "section count"),  # 4 billion sections
        (b"\x02{}\x01\x05ab", "truncated"),  # an entry cut inside its name
        (b"\x02{}\x01\x01a\x80", "truncated"),  # an entry cut inside its length
        (b"\x02{}\x01\x01a\x00\x00\x00", "truncated"),  # an entry cut inside its CRC
        (b"\x02{}\x00trailing", "account"),
    ],
)
def test_absurd_or_truncated_footers_fail_without_allocating(plain, match):
    tracemalloc.start()
    try:
        _expect(_file(_deflated(plain)), match)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_bad_footer_streams():
    plain = _plain_footer(b"{}", [(b"s", 3, zlib.crc32(b"abc"))])
    assert read_sgi(io.BytesIO(_file(_deflated(plain), b"abc")))[1] == {"s": b"abc"}
    _expect(_file(_deflated(plain, crc=1), b"abc"), "checksum")
    _expect(_file(_deflated(plain) + b"x", b"abc"), "corrupt or truncated")
    _expect(_file(b"\xff" * 20, b"abc"), "corrupt or truncated")
    with_zlib_wrapper = zlib.compress(plain) + struct.pack("<I", zlib.crc32(plain))
    _expect(_file(with_zlib_wrapper, b"abc"), "corrupt or truncated")


def test_a_zip_bomb_inflates_no_more_than_the_footer_bound():
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=FOOTER_DICTIONARY)
    bomb = compressor.compress(b"\x00" * (80 << 20)) + compressor.flush() + b"\x00" * 4
    _expect(_file(bomb), "corrupt or truncated")
