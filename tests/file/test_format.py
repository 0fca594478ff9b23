"""The .sgi byte layout (format version 4): its pinned dictionary, versions, crafted and bad
footers."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader, sgi_info
from napari_sgi.file.format import (
    FOOTER_DICTIONARY,
    MAGIC,
    VERSION,
    Format,
    SectionEntry,
    detect_format,
)


def _file(footer: bytes, payload: bytes = b"") -> bytes:
    return struct.pack("<8sII", MAGIC, 4, len(footer)) + payload + footer


def _plain_footer(header_json: bytes, entries: list[tuple[bytes, int, int]]) -> bytes:
    """A plain footer from raw parts (names as bytes), without validation."""
    from napari_sgi.codec.varint import encode_uvarint

    parts = [encode_uvarint(len(header_json)), header_json, encode_uvarint(len(entries))]
    for name, length, crc in entries:
        parts += [bytes([len(name)]), name, encode_uvarint(length), struct.pack("<I", crc)]
    return b"".join(parts)


def _deflated(plain: bytes, crc: int | None = None) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=FOOTER_DICTIONARY)
    body = compressor.compress(plain) + compressor.flush()
    return body + struct.pack("<I", zlib.crc32(plain) if crc is None else crc)


def _read_all(data: bytes) -> tuple[dict, dict[str, bytes]]:
    with SGIReader(io.BytesIO(data)) as reader:
        return reader.header, {name: reader.read_section(name) for name in reader.section_names}


def _expect(data: bytes, match: str) -> None:
    with pytest.raises(SGIFormatError, match=match):
        SGIReader(io.BytesIO(data))


def test_the_dictionary_is_frozen():
    # Changing a byte of it makes every file unreadable: a new dictionary is a new format version.
    assert (len(FOOTER_DICTIONARY), zlib.crc32(FOOTER_DICTIONARY)) == (1732, 2063653725)


def test_new_files_are_version_4_with_a_small_footer(tmp_path):
    from napari_sgi.encode.pipeline import compress

    assert VERSION == Format.version == 4
    image = (np.random.default_rng(0).random((24, 24)) * 1000).astype(np.uint16)
    result = compress(image, tmp_path / "a.sgi", preset="default", iterations=5)
    with SGIReader(result.path) as reader:
        assert reader.format_version == 4
        n_sections = len(reader.section_names)
    info = sgi_info(result.path)
    assert info.total == info.file_size == result.bytes
    assert info.overhead["preamble"] == 16
    # The dictionary holds a one-slice header: its ~700 bytes of JSON (with the fit record: the
    # preset and the steps asked for) and the index of five sections deflate to about 145 bytes.
    assert n_sections == 5 and info.overhead["header+index"] < 150


def test_round_trip_of_many_sections():
    sections = {f"slice/{z}/r0/{part}": bytes([z]) * (z * 37) for z in range(40) for part in "ab"}
    entries, offset = [], 16
    for name, data in sections.items():
        entries.append(SectionEntry(name, offset, len(data), zlib.crc32(data)))
        offset += len(data)
    footer = Format().encode_footer(b'{"n": 80}', entries)
    header, read = _read_all(_file(footer, b"".join(sections.values())))
    assert header == {"n": 80} and read == sections


@pytest.mark.parametrize(
    ("version", "match"),
    [
        (1, "version 1, a pre-release development version"),
        (2, "version 2, a pre-release development version"),
        (3, "version 3, a pre-release development version"),
        (5, r"newer napari-sgi \(format version 5; this napari-sgi reads version 4\)"),
        (0xFFFF, "newer napari-sgi"),
        (0, "unknown .sgi format version 0"),
        (1 << 16, "unknown .sgi format version"),
        (0xDEADBEEF, "unknown .sgi format version"),
    ],
)
def test_other_versions_are_refused_by_name(version, match):
    # A pre-release file (32-byte preamble: u32 flags, u64 footer offset and length) is refused
    # from its first 12 bytes, whatever follows.
    data = struct.pack("<8sIIQQ", MAGIC, version, 0, 32, 20) + b"\x00" * 20
    with pytest.raises(SGIFormatError, match=match):
        detect_format(data[:16], len(data))
    _expect(data, match)


def test_foreign_and_short_prefixes():
    with pytest.raises(SGIFormatError, match="JPEG"):
        detect_format(b"\xff\xd8\xff\xe0" + b"\x00" * 12, 100)
    with pytest.raises(SGIFormatError, match="truncated"):
        detect_format(MAGIC[:5], 5)
    with pytest.raises(SGIFormatError, match="no SGI signature"):
        detect_format(b"", 0)


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
    assert _read_all(_file(_deflated(plain), b"abc"))[1] == {"s": b"abc"}
    _expect(_file(_deflated(plain, crc=1), b"abc"), "checksum")
    _expect(_file(_deflated(plain) + b"x", b"abc"), "corrupt or truncated")
    _expect(_file(b"\xff" * 20, b"abc"), "corrupt or truncated")
    with_zlib_wrapper = zlib.compress(plain) + struct.pack("<I", zlib.crc32(plain))
    _expect(_file(with_zlib_wrapper, b"abc"), "corrupt or truncated")
    # A footer deflated without the dictionary refers to bytes the reader's window lacks.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    header = b'{"kind":"napari-sgi image","layout":{"axes":"YX"}}'
    with_dictionary = Format().encode_footer(header, [])
    without = compressor.compress(_plain_footer(header, [])) + compressor.flush()
    assert len(with_dictionary) < len(without)
    assert SGIReader(io.BytesIO(_file(with_dictionary))).header["layout"] == {"axes": "YX"}


def test_a_zip_bomb_inflates_no_more_than_the_footer_bound():
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=FOOTER_DICTIONARY)
    bomb = compressor.compress(b"\x00" * (80 << 20)) + compressor.flush() + b"\x00" * 4
    _expect(_file(bomb), "corrupt or truncated")


def test_too_many_sections_are_refused_when_writing():
    entries = [SectionEntry("s", 16, 0, 0)] * (Format.MAX_SECTIONS + 1)
    with pytest.raises(ValueError, match="too many sections"):
        Format().encode_footer(b"{}", entries)


def test_the_documented_dictionary_is_the_dictionary():
    # docs/format.md spells the dictionary out for independent readers: it must be these bytes.
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "format.md").read_text()
    start = doc.index("```\n", doc.index("It is the following ASCII text")) + 4
    text = doc[start : doc.index("```", start)].replace("\n", "").encode()
    parts = ("weights", "hash_grid", "features", "log_scaling", "offsets")
    names = [f"slice/0/r0/{part}".encode() for part in parts]
    spelled = text + b"\x05" + b"".join(bytes([len(name)]) + name for name in names)
    assert spelled == FOOTER_DICTIONARY
