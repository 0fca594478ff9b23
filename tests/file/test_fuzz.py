"""Property-based fuzzing of the reader: a damaged file either reads or raises SGIFormatError."""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader, SGIWriter
from napari_sgi.file.format import MAGIC, VERSION, Format, SectionEntry


def _valid_file() -> bytes:
    header = {"shape": [2, 32, 32], "axes": "ZYX", "dtype": "|u1", "scale": [1.0, 0.3, 0.3]}
    sections = {"slice/0/mlp": b"m" * 40, "slice/0/features": bytes(range(200)), "x": b""}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.sgi"
        with SGIWriter(path, header) as writer:
            for name, data in sections.items():
                writer.add_section(name, data)
        return path.read_bytes()


VALID = _valid_file()


def read_everything(data: bytes) -> None:
    """Open, touch the header and read every section; only SGIFormatError may escape."""
    try:
        with SGIReader(io.BytesIO(data)) as reader:
            assert isinstance(reader.header, dict)
            for name in reader.section_names:
                reader.read_section(name)
            assert reader.info().total == len(data)
    except SGIFormatError:
        pass


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, len(VALID))),
    st.tuples(
        st.just("flip"),
        st.lists(
            st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), min_size=1, max_size=8
        ),
    ),
    st.tuples(st.just("insert"), st.integers(0, len(VALID)), st.binary(min_size=1, max_size=64)),
    st.tuples(
        st.just("overwrite"), st.integers(0, len(VALID) - 1), st.binary(min_size=1, max_size=32)
    ),
    st.tuples(st.just("delete"), st.integers(0, len(VALID) - 1), st.integers(1, 64)),
)


def apply(data: bytes, m) -> bytes:
    kind = m[0]
    if kind == "truncate":
        return data[: m[1]]
    if kind == "flip":
        out = bytearray(data)
        for pos, x in m[1]:
            out[pos % len(out)] ^= x
        return bytes(out)
    if kind == "insert":
        return data[: m[1]] + m[2] + data[m[1] :]
    if kind == "overwrite":
        return data[: m[1]] + m[2] + data[m[1] + len(m[2]) :]
    return data[: m[1]] + data[m[1] + m[2] :]


@settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_files_read_or_raise_format_error(mutations):
    data = VALID
    for m in mutations:
        data = apply(data, m) if data else data
    read_everything(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
generic_fields = st.dictionaries(
    st.sampled_from(
        [
            "shape",
            "axes",
            "dtype",
            "scale",
            "units",
            "channel_names",
            "contrast_limits",
            "value_range",
            "n_slices",
            "slice_shape",
            "image",
        ]
    ),
    json_values,
    max_size=5,
)


@settings(max_examples=200, deadline=1000)
@given(generic_fields, st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=6))
def test_structured_garbage_with_valid_checksums(header, numbers):
    """Headers and index entries that pass the checksums but hold arbitrary values."""
    header_json = json.dumps(header).encode()
    entries = [
        SectionEntry(f"s{i}", numbers[i], numbers[i + 1], 0) for i in range(0, len(numbers) - 1, 2)
    ]
    payload = b"\x00" * 64
    read_everything(_crafted(header_json, entries, payload))
    # Same header behind a correct index: the reader accepts it or names the bad field.
    entry = [SectionEntry("p", 16, 64, zlib.crc32(payload))]
    read_everything(_crafted(header_json, entry, payload))


def _crafted(header_json: bytes, entries, payload: bytes) -> bytes:
    """A file from raw parts, with valid checksums."""
    footer = Format().encode_footer(header_json, entries)
    return struct.pack("<8sII", MAGIC, VERSION, len(footer)) + payload + footer
