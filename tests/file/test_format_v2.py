"""Format version 2: the deflated footer, its bounds, and reading version-1 files alongside."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader, read_sgi, sgi_info
from napari_sgi.file.format_v1 import MAGIC, FormatV1, SectionEntry
from napari_sgi.file.format_v2 import FormatV2

# A header like the pipeline's: repeated keys per slice and region.
HEADER = {
    "kind": "napari-sgi image",
    "slices": [
        {"key": [z], "regions": [{"core": [0, 64, 0, 64], "model": {"feature_dim": 8}}]}
        for z in range(8)
    ],
}
SECTIONS = {f"slice/{z}/r0/{part}": b"x" * 5 for z in range(8) for part in ("weights", "offsets")}


def _file_with_footer(footer: bytes, version: int = 2, payload: bytes = b"") -> bytes:
    preamble = struct.pack("<8sIIQQ", MAGIC, version, 0, 32 + len(payload), len(footer))
    return preamble + payload + footer


def _entries() -> list[SectionEntry]:
    entries, offset = [], 32
    for name, data in SECTIONS.items():
        entries.append(SectionEntry(name, offset, len(data), zlib.crc32(data)))
        offset += len(data)
    return entries


def test_version_2_files_read_with_a_footer_under_half_of_version_1(tmp_path):
    header_json = json.dumps(HEADER).encode()
    footer = FormatV2().encode_footer(header_json, _entries())
    path = tmp_path / "a.sgi"
    path.write_bytes(_file_with_footer(footer, 2, b"".join(SECTIONS.values())))
    with SGIReader(path) as reader:
        assert reader.format_version == 2
        assert reader.header == HEADER
        assert reader.read_section("slice/3/r0/offsets") == SECTIONS["slice/3/r0/offsets"]
    info = sgi_info(path)
    assert info.total == info.file_size
    plain = FormatV1().encode_footer(header_json, _entries())
    assert info.overhead["header+index"] < len(plain) / 2


def test_version_1_files_still_read():
    payload = b"abc"
    entries = [SectionEntry("s", 32, 3, zlib.crc32(payload))]
    footer = FormatV1().encode_footer(b'{"axes": "YX"}', entries)
    header, sections = read_sgi(io.BytesIO(_file_with_footer(footer, 1, payload)))
    assert header == {"axes": "YX"} and sections == {"s": payload}
    info = SGIReader(io.BytesIO(_file_with_footer(footer, 1, payload))).info()
    assert set(info.overhead) == {"preamble", "header", "index"}


def _deflated(plain: bytes, stated: int | None = None, tail: bytes = b"") -> bytes:
    stated = len(plain) if stated is None else stated
    return FormatV2.DEFLATED_TAG + struct.pack("<I", stated) + zlib.compress(plain) + tail


@pytest.mark.parametrize(
    "footer, match",
    [
        (b"SGIX" + b"\x00" * 20, "footer tag"),
        (_deflated(b"\x00" * 40, stated=10**9), "out of range"),
        (FormatV2.DEFLATED_TAG + struct.pack("<I", 40) + b"\x78\x9c garbage bytes", "corrupt"),
        (_deflated(b"\x00" * 40, stated=30), "stated length"),
        (_deflated(b"\x00" * 40, stated=50), "stated length"),
        (_deflated(b"\x00" * 40, tail=b"extra"), "after the compressed"),
        (_deflated(b"SGIX" + b"\x00" * 36), "checksum"),
    ],
)
def test_bad_deflated_footers(footer, match):
    with pytest.raises(SGIFormatError, match=match):
        SGIReader(io.BytesIO(_file_with_footer(footer)))


def test_a_zip_bomb_inflates_no_more_than_the_stated_length():
    bomb = zlib.compress(b"\x00" * (256 << 20), 9)  # 256 MiB of zeros in ~250 KB
    footer = FormatV2.DEFLATED_TAG + struct.pack("<I", 1000) + bomb
    with pytest.raises(SGIFormatError, match="stated length"):
        SGIReader(io.BytesIO(_file_with_footer(footer)))
