"""The .sgi container: round trips, partial reads, atomic writes and every kind of bad file."""

from __future__ import annotations

import gc
import io
import os
import struct
import threading
import tracemalloc
import zlib

import pytest

from napari_sgi.errors import MissingSectionError, SGIFormatError
from napari_sgi.file.container import SGIReader, SGIWriter, sgi_info
from napari_sgi.file.format import MAGIC, VERSION, Format, SectionEntry

HEADER = {
    "shape": [3, 64, 80],
    "axes": "ZYX",
    "dtype": "<u2",
    "scale": [2.0, 0.5, 0.5],
    "units": ["micrometer"] * 3,
    "channel_names": ["DAPI"],
    "contrast_limits": [[0.0, 4095.0]],
    "encoder_version": "0.1.0",
    "model": {"features": 50, "offsets": 10},
}
SECTIONS = {
    "slice/0/mlp": b"a" * 100,
    "slice/0/features": bytes(range(256)) * 4,
    "slice/1/mlp": b"",
    "slice/1/features": b"xyz",
}


def write_sgi(path, header, sections, *, overwrite=True):
    """A whole file written atomically, sections in the mapping's order."""
    with SGIWriter(path, header, overwrite=overwrite) as writer:
        for name, data in sections.items():
            writer.add_section(name, data)


def read_sgi(source) -> tuple[dict, dict[str, bytes]]:
    """``(header, {name: bytes})`` with every CRC checked."""
    with SGIReader(source) as reader:
        return reader.header, {n: reader.read_section(n) for n in reader.section_names}


def _write(tmp_path, header=HEADER, sections=SECTIONS, name="a.sgi"):
    path = tmp_path / name
    write_sgi(path, header, sections)
    return path


def _raw_file(header_json: bytes, entries, payload: bytes) -> bytes:
    """A file from parts, with no validation: for crafting bad files with valid checksums."""
    footer = Format().encode_footer(header_json, entries)
    return struct.pack("<8sII", MAGIC, VERSION, len(footer)) + payload + footer


def _open_bytes(data: bytes) -> SGIReader:
    return SGIReader(io.BytesIO(data))


# --- round trips ------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    path = _write(tmp_path)
    header, sections = read_sgi(path)
    assert header == HEADER
    assert sections == SECTIONS and list(sections) == list(SECTIONS)
    with SGIReader(path) as r:
        assert r.format_version == VERSION == 4
        assert r.file_size == os.path.getsize(path)
        assert r.section_sizes == {k: len(v) for k, v in SECTIONS.items()}
        assert "slice/1/mlp" in r and "nope" not in r
        r.verify()


def test_empty_file_round_trip(tmp_path):
    path = _write(tmp_path, header={}, sections={})
    assert read_sgi(path) == ({}, {})


def test_streaming_writer_writes_sections_as_they_come(tmp_path):
    path = tmp_path / "s.sgi"
    buf = bytearray(b"first")
    with SGIWriter(path, {"axes": "YX"}) as w:
        w.add_section("a", buf)
        buf[:] = b"XXXXX"  # the writer kept no reference: the bytes are already in the file
        w.add_section("b", memoryview(b"second"))
        assert w.bytes_written == Format().preamble_size + 5 + 6
        w.header["quality"] = {"psnr": 40.5}
    header, sections = read_sgi(path)
    assert sections == {"a": b"first", "b": b"second"}
    assert header["quality"] == {"psnr": 40.5}


def test_header_update_at_close(tmp_path):
    path = tmp_path / "u.sgi"
    w = SGIWriter(path, {"axes": "YX"})
    w.add_section("x", b"1")
    w.close({"quality": {"ssim": 0.9}})
    assert SGIReader(path).header == {"axes": "YX", "quality": {"ssim": 0.9}}
    with pytest.raises(ValueError):
        w.add_section("y", b"2")


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        SGIWriter(tmp_path / "a.sgi", {"x": float("nan")})
    with pytest.raises(ValueError):
        SGIWriter(tmp_path / "a.sgi", {"x": object()})
    with pytest.raises(ValueError, match="at most"):
        SGIWriter(tmp_path / "a.sgi", {"x": "y" * (1 << 20)})
    with pytest.raises(ValueError, match="shape"):
        SGIWriter(tmp_path / "a.sgi", {"shape": [10**6, 10**6]})
    with SGIWriter(tmp_path / "b.sgi", {}) as w:
        for bad in ("", "/abs", "a//b", "sp ace", "é", "x" * 256, "a/"):
            with pytest.raises(ValueError, match="section name"):
                w.add_section(bad, b"")
        w.add_section("ok", b"")
        with pytest.raises(ValueError, match="already"):
            w.add_section("ok", b"")
    assert list(tmp_path.iterdir()) == [tmp_path / "b.sgi"]


def test_info_adds_up_to_file_size(tmp_path):
    path = _write(tmp_path)
    info = sgi_info(path)
    assert info.total == info.file_size == os.path.getsize(path)
    assert info.overhead["preamble"] == Format().preamble_size == 16
    assert set(info.overhead) == {"preamble", "header+index"}
    assert info.grouped() == {"mlp": 100, "features": 1027}
    assert info.grouped(0) == {"slice": 1127}
    assert "total" in str(info)


# --- partial reads ----------------------------------------------------------------------------


class CountingFile(io.BytesIO):
    """Records the byte ranges that were read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.ranges: list[tuple[int, int]] = []

    def read(self, size=-1):
        start = self.tell()
        data = super().read(size)
        self.ranges.append((start, start + len(data)))
        return data


def test_reading_one_section_reads_only_its_range(tmp_path):
    big = {f"slice/{i}/features": bytes([i]) * 50_000 for i in range(5)}
    data = _write(tmp_path, sections=big).read_bytes()
    f = CountingFile(data)
    reader = SGIReader(f)
    entry = reader.section_entry("slice/3/features")
    opened = list(f.ranges)
    assert sum(b - a for a, b in opened) < 16 + 2000  # preamble and footer only
    f.ranges.clear()
    assert reader.read_section("slice/3/features") == bytes([3]) * 50_000
    assert f.ranges == [(entry.offset, entry.offset + entry.length)]
    assert not f.closed  # a file object passed in is not ours to close
    reader.close()
    assert not f.closed


def test_concurrent_section_reads(tmp_path):
    sections = {f"s{i}": os.urandom(20_000) for i in range(8)}
    path = _write(tmp_path, sections=sections)
    errors = []
    with SGIReader(path) as reader:

        def work(name):
            for _ in range(20):
                if reader.read_section(name) != sections[name]:
                    errors.append(name)

        threads = [threading.Thread(target=work, args=(n,)) for n in sections]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors


def test_missing_section(tmp_path):
    with SGIReader(_write(tmp_path)) as r:
        with pytest.raises(MissingSectionError, match="no section 'nope'") as exc:
            r.read_section("nope")
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, SGIFormatError)


# --- atomic writes ----------------------------------------------------------------------------


def test_exception_mid_write_leaves_destination_untouched(tmp_path):
    path = _write(tmp_path)
    before = path.read_bytes()
    for exc_type in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc_type):
            with SGIWriter(path, {"axes": "YX"}) as w:
                w.add_section("a", b"new data" * 1000)
                raise exc_type("interrupted")
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sgi"]


def test_failure_during_commit_leaves_no_temp(tmp_path, monkeypatch):
    path = _write(tmp_path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_sgi(path, {}, {"a": b"1"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sgi"]


def test_failure_in_a_sections_iterable(tmp_path):
    def sections():
        yield "a", b"1"
        raise KeyboardInterrupt

    class Lazy(dict):
        def items(self):
            return sections()

    with pytest.raises(KeyboardInterrupt):
        write_sgi(tmp_path / "k.sgi", {}, Lazy())
    assert list(tmp_path.iterdir()) == []


def test_abandoned_writer_removes_its_temp_file(tmp_path):
    w = SGIWriter(tmp_path / "gone.sgi", {})
    w.add_section("a", b"123")
    assert len(list(tmp_path.iterdir())) == 1  # the temporary file
    del w
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_and_directories(tmp_path):
    path = _write(tmp_path)
    with pytest.raises(FileExistsError):
        write_sgi(path, {}, {}, overwrite=False)
    with pytest.raises(IsADirectoryError):
        write_sgi(tmp_path, {}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sgi"]


def test_written_file_has_normal_permissions(tmp_path):
    path = _write(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --- bad files --------------------------------------------------------------------------------


def _expect(data: bytes, match: str):
    with pytest.raises(SGIFormatError, match=match):
        with _open_bytes(data) as r:
            for name in r.section_names:
                r.read_section(name)


def test_foreign_files(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    _expect(png, "not an .sgi file.*PNG")
    _expect(b"II*\x00" + b"\x00" * 60, "TIFF")
    _expect(b"", "not an .sgi file")
    _expect(b"hello world, this is a text file that is long enough", "not an .sgi file")
    path = tmp_path / "image.sgi"
    path.write_bytes(png)
    with pytest.raises(SGIFormatError, match="PNG"):
        SGIReader(path)


def test_pre_release_newer_and_unknown_versions(tmp_path):
    data = bytearray(_write(tmp_path).read_bytes())
    for version in (1, 2, 3):
        data[8:12] = struct.pack("<I", version)
        _expect(bytes(data), f"format version {version}, a pre-release development version")
    data[8:12] = struct.pack("<I", VERSION + 1)
    _expect(bytes(data), "newer napari-sgi.*upgrade napari-sgi")
    data[8:12] = struct.pack("<I", 0)
    _expect(bytes(data), "unknown .sgi format version 0")
    data[8:12] = struct.pack("<I", 0xDEADBEEF)
    _expect(bytes(data), "unknown .sgi format version")


def test_truncated_and_extended_files(tmp_path):
    data = _write(tmp_path).read_bytes()
    for cut in (5, 12, 31, 32, 100, len(data) - 200, len(data) - 1):
        _expect(data[:cut], "truncated|not an .sgi|does not end")
    _expect(data + b"\x00", "does not end|truncated")


def test_bit_flips_are_detected(tmp_path):
    data = _write(tmp_path).read_bytes()
    section = SGIReader(io.BytesIO(data)).section_entry("slice/0/features")
    bad = bytearray(data)
    bad[section.offset + 10] ^= 0x04
    _expect(bytes(bad), "'slice/0/features' is corrupt")
    bad = bytearray(data)
    bad[-30] ^= 0x01  # inside the index
    _expect(bytes(bad), "footer checksum|compressed header")
    bad = bytearray(data)
    bad[12] ^= 0x01  # the footer length
    _expect(bytes(bad), "footer|truncated")


def test_absurd_preamble_values_fail_without_allocating(tmp_path):
    data = _write(tmp_path).read_bytes()
    tracemalloc.start()
    try:
        for length in (0xFFFFFFFF, 1 << 30, len(data) - 10, len(data) + 10, 0, 3):
            bad = data[:12] + struct.pack("<I", length) + data[16:]
            _expect(bad, "footer|truncated")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_crafted_indexes_with_valid_checksums():
    # Offsets are implied by the lengths (the first section at 16); the lengths must tile the
    # section area exactly.
    payload = b"\x00" * 30
    entries = [SectionEntry("s0", 16, 10, zlib.crc32(payload[:10]))]
    entries.append(SectionEntry("s1", 26, 20, zlib.crc32(payload[:20])))
    assert read_sgi(io.BytesIO(_raw_file(b"{}", entries, payload)))[1] == {
        "s0": b"\x00" * 10,
        "s1": b"\x00" * 20,
    }
    cases = {
        "past the end": [SectionEntry("a", 16, 10, 0), SectionEntry("b", 26, 1 << 40, 0)],
        "negative-like": [SectionEntry("a", 16, 2**64 - 1, 0)],
        "gap": [SectionEntry("a", 16, 10, 0)],
        "overlap": [SectionEntry("a", 16, 20, 0), SectionEntry("b", 36, 20, 0)],
        "twice": [SectionEntry("a", 16, 15, 0), SectionEntry("a", 31, 15, 0)],
    }
    for entries in cases.values():
        with pytest.raises(SGIFormatError, match="outside|account|twice"):
            _open_bytes(_raw_file(b"{}", entries, payload))


@pytest.mark.parametrize(
    "header, match",
    [
        (b"[1, 2]", "JSON object"),
        (b"{not json", "not valid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": 1e999}', "out of range"),
        (b'{"a": "\xff\xfe"}', "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested|JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "JSON"),
        (b'{"shape": [1000000, 1000000]}', "elements"),
        (b'{"shape": [-5, 10]}', "shape"),
        (b'{"shape": [10, 10], "axes": "ZYX"}', "one letter per dimension"),
        (b'{"axes": "YY"}', "distinct"),
        (b'{"dtype": "object"}', "dtype"),
        (b'{"dtype": 12}', "dtype"),
        (b'{"scale": [1.0, -1.0]}', "scale"),
        (b'{"contrast_limits": [5, 1]}', "contrast_limits"),
        (b'{"n_slices": -1}', "n_slices"),
        (b'{"n_slices": true}', "n_slices"),
        (b'{"image": {"shape": [0]}}', "image.shape"),
        (b'{"encoder_version": 3}', "encoder_version"),
    ],
)
def test_bad_headers_with_valid_checksums(header, match):
    _expect(_raw_file(header, [], b""), match)


def test_oversized_header():
    _expect(_raw_file(b'{"a": "' + b"x" * (1 << 20) + b'"}', [], b""), "header length")
