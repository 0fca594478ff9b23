"""Hostile files: small, with valid checksums, deflate and JSON, whose values ask for huge work,
crash a decoder or decode to a silently wrong image. Each is refused with an SGIFormatError naming
the field, before anything large is allocated: the cases run in one subprocess limited to 1.5 GiB
of address space (torch and a decode of a real file need ~1.3 GiB of it), each within seconds.
"""

from __future__ import annotations

import copy
import json
import math
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sgi.codec.gaussian_stream import _pack_head
from napari_sgi.codec.model import encode_model
from napari_sgi.core.model import ModelConfig, SGIModel
from napari_sgi.errors import SGIFormatError
from napari_sgi.file.budget import CHUNK_SYMBOLS
from napari_sgi.file.container import SGIReader, SGIWriter
from napari_sgi.file.format import MAGIC, VERSION, Format, SectionEntry
from napari_sgi.file.header import MODEL_SECTIONS
from napari_sgi.file.schema import section_name

DATA = Path(__file__).parent.parent / "data"
ADDRESS_SPACE = 3 << 29  # 1.5 GiB
SECONDS = 3.0  # per case, torch's first use included
PEAK_RSS = 800 << 20  # of the whole subprocess: torch, numpy, dask and every case


def _fixture_region() -> tuple[dict, dict[str, bytes]]:
    """Region 1 of slice 0 of the committed fixture: a 64x64 box, its model and sections."""
    with SGIReader(DATA / "fixture_v4.sgi") as reader:
        header = copy.deepcopy(reader.header)
        sections = {p: reader.read_section(section_name(0, 1, p)) for p in MODEL_SECTIONS}
    return header, sections


def base_header() -> dict:
    """A valid one-region 64x64 uint16 image (the fixture's region on its own)."""
    header, _ = _fixture_region()
    region = header["slices"][0]["regions"][1]
    region["core"] = region["box"] = [0, 64, 0, 64]
    header["layout"] = {"axes": "YX", "shape": [64, 64], "dtype": "<u2"}
    header["n_slices"] = 1
    header["slices"] = [{**header["slices"][0], "key": [], "regions": [region]}]
    return header


def region_sections(header: dict, sections: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The fixture region's sections for every region of ``header``."""
    parts = sections or _fixture_region()[1]
    return {
        section_name(i, r, part): parts[part]
        for i, entry in enumerate(header.get("slices", []) if isinstance(header, dict) else [])
        if isinstance(entry, dict) and isinstance(entry.get("regions"), list)
        for r in range(len(entry["regions"]))
        for part in MODEL_SECTIONS
        if part in parts
    }


def write_file(path: Path, header: dict, sections: dict[str, bytes]) -> Path:
    """A file with valid checksums. The writer checks the generic header fields; a header that
    breaks them is assembled byte by byte (preamble, sections, the format's own footer)."""
    try:
        with SGIWriter(path, header) as writer:
            for name, data in sections.items():
                writer.add_section(name, data)
        return path
    except ValueError:
        pass
    raw = json.dumps(header).encode()
    entries = [
        SectionEntry(name, 0, len(data), zlib.crc32(data)) for name, data in sections.items()
    ]
    footer = Format().encode_footer(raw, entries)
    body = b"".join(sections.values())
    path.write_bytes(struct.pack("<8sII", MAGIC, VERSION, len(footer)) + body + footer)
    return path


def _model(header: dict) -> dict:
    return header["slices"][0]["regions"][0]["model"]


def _whole(header: dict, height: int, width: int) -> dict:
    """``header`` with a height x width image of one region over all of it."""
    header["layout"]["shape"] = [height, width]
    region = header["slices"][0]["regions"][0]
    region["core"] = region["box"] = [0, height, 0, width]
    region["model"].update(height=height, width=width)
    return header


def _set(*path_value):
    *path, value = path_value

    def change(header: dict) -> dict:
        target = header
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return header

    return change


def _one_region_in(height: int, width: int):
    def change(header: dict) -> dict:
        header["layout"]["shape"] = [height, width]
        return header

    return change


def _model_size(height: int, width: int):
    def change(header: dict) -> dict:
        _model(header).update(height=height, width=width)
        return header

    return change


def _seeds(count: int):
    def change(header: dict) -> dict:
        _model(header)["seed_count"] = count
        return header

    return change


HEADER_CASES = {
    # huge work from a tiny file
    "shape 2^18 x 2^20, one 64x64 region": (_one_region_in(1 << 18, 1 << 20), "do not tile"),
    "shape 46341^2, one 64x64 region": (_one_region_in(46341, 46341), "do not tile"),
    "shape 46341^2, one region over it": (lambda h: _whole(h, 46341, 46341), "'height' too large"),
    "seed_count 2^24": (_seeds(1 << 24), "'seed_count' too large"),
    "seed_count 2^28": (_seeds(1 << 28), "'seed_count' too large"),
    "model 16384^2 in a 64^2 box": (_model_size(16384, 16384), "'height' too large"),
    "model 2^24 x 2^24": (_model_size(1 << 24, 1 << 24), "'height' too large"),
    "model 64x65 in a 64^2 box": (_model_size(64, 65), "must be as large as the box"),
    "model 2^24 x 2^24 over a 2^24 x 2^24 image": (
        lambda h: _whole(h, 1 << 24, 1 << 24),
        "'layout.shape' has 2.81e\\+14 elements",
    ),
    "slices as a string": (_set("slices", "0123"), "slices must list the 1 slices"),
    "model as a list": (_set("slices", 0, "regions", 0, "model", [64, 64]), "model"),
    "a model without its seed count": (
        lambda h: _model(h).pop("seed_count") and h,
        "it needs exactly the fields",
    ),
    # silently wrong images
    "pixels no core covers": (_set("slices", 0, "regions", 0, "core", [0, 60, 0, 64]), "tile"),
    "box out of bounds": (_set("slices", 0, "regions", 0, "box", [0, 64, 0, 99]), "must lie in"),
    "inverted box": (_set("slices", 0, "regions", 0, "box", [64, 0, 0, 64]), "must lie in"),
    "value range 1e308 for uint16": (_set("value_range", [0, 1e308]), "range of uint16"),
    "value range of infinite span": (
        lambda h: _set("value_range", [-1e308, 1e308])(_set("layout", "dtype", "<f8")(h)),
        "finite span",
    ),
    "value range beyond float32": (
        lambda h: _set("value_range", [0, 1e39])(_set("layout", "dtype", "<f4")(h)),
        "range of float32",
    ),
    "value range 2^64 for uint64": (
        lambda h: _set("value_range", [0, 2**64])(_set("layout", "dtype", "<u8")(h)),
        "range of uint64",
    ),
    "value range 0.5 for uint16": (_set("value_range", [0.5, 0.5]), "whole numbers for uint16"),
    "contrast limits of infinite span": (_set("contrast_limits", [-1e308, 1e308]), "finite span"),
    "dtype |b1": (_set("layout", "dtype", "|b1"), "'layout.dtype' must name an integer"),
    "dtype <f16": (_set("layout", "dtype", "<f16"), "'layout.dtype' must name an integer"),
    "dtype <c8": (_set("layout", "dtype", "<c8"), "'layout.dtype' must name an integer"),
    "n_slices 3 for one slice": (_set("n_slices", 3), "slices must list the 1 slices"),
    "layout n_slices 7": (_set("layout", "n_slices", 7), "layout.n_slices must be 1"),
    "layout slice_shape": (_set("layout", "slice_shape", [64, 65]), "layout.slice_shape"),
    "5 samples of RGB": (
        lambda h: _set("layout", "shape", [64, 64, 5])(_set("layout", "axes", "YXS")(h)),
        "3 or 4 samples",
    ),
    "a model of more seeds than its streams hold": (
        _seeds(1000),
        "the features stream holds 204 symbols, its model has 4000",
    ),
    "a model of F=1024": (
        _set("slices", 0, "regions", 0, "model", "feature_dim", 1024),
        "weights section holds 712 bytes, its model needs 6404272 [(]int8 rows[)] or 50154 to",
    ),
}


def _sections_change(change):
    """A case that keeps the base header and changes the region's sections."""

    def make(header: dict) -> tuple[dict, dict[str, bytes]]:
        sections = dict(_fixture_region()[1])
        change(header, sections)
        return header, sections

    return make


def _stream_claiming(count: int, chunk: int):
    """A Gaussian stream header of ``count`` symbols in chunks of ``chunk``, padded with zeros."""
    n_chunks = -(-count // chunk)
    chunks = [(min(chunk, count - i * chunk), 0, 0, 1, 0, 0) for i in range(n_chunks)]
    return _pack_head((6, 7, 20, count), chunks) + b"\0" * n_chunks


def _seeds_and_stream(seeds: int, chunk: int):
    def change(header, sections):
        model = _model(header)
        model["seed_count"] = seeds
        side = math.isqrt(seeds * model["gaussians_per_seed"]) + 1  # a box large enough
        _whole(header, side, side)
        sections["features"] = _stream_claiming(seeds * model["feature_dim"], chunk)

    return change


def _weights_nan(header, sections):
    weights = bytearray(sections["weights"])
    weights[-2:] = np.array([np.nan], "<f2").tobytes()  # the last bias of the context MLP
    sections["weights"] = bytes(weights)


SECTION_CASES = {
    "weights one byte short": (
        _sections_change(lambda h, s: s.update(weights=s["weights"][:-1])),
        "weight section holds 711 bytes, the model needs 712",
    ),
    "weights with a NaN": (_sections_change(_weights_nan), "NaN or infinite"),
    "a model without a grid, with a grid model's sections": (
        _sections_change(lambda h, s: _model(h).update(grid_levels=0)),
        "a hash-grid section of 194 bytes for a model of 0 grid levels",
    ),
    "an empty hash grid": (_sections_change(lambda h, s: s.update(hash_grid=b"")), "hash-grid"),
    "features stream of 2^28 symbols": (
        _sections_change(lambda h, s: s.update(features=_stream_claiming(1 << 28, CHUNK_SYMBOLS))),
        "holds 268435456 symbols, its model has 204",
    ),
    "460,000 seeds in a 72-byte stream": (
        _sections_change(lambda h, s: _model(_whole(h, 1360, 1360)).update(seed_count=460_000)),
        "the features section holds 72 bytes, too few for the 1840000 symbols",
    ),
    "seed count the streams do not hold": (
        _sections_change(_seeds_and_stream(4096, CHUNK_SYMBOLS)),
        "the log_scaling stream holds 204 symbols, its model has 16384",
    ),
    "a chunk of 2^18 + 1 symbols": (
        _sections_change(_seeds_and_stream(65537, CHUNK_SYMBOLS + 1)),
        "chunk of more than 262144 symbols",
    ),
    "a missing section": (
        _sections_change(lambda h, s: s.pop("offsets")),
        "no section 'slice/0/r0/offsets'",
    ),
}


def _huge_gaussians(tmp_path: Path) -> Path:
    """A consistent file whose 16384 Gaussians each cover a whole 256x256 box: the context
    model's prior predicts log-scalings of 12 (a 160,000-pixel radius) at almost no cost."""
    config = ModelConfig(
        height=256,
        width=256,
        channels=1,
        feature_dim=1,
        gaussians_per_seed=16,
        seed_count=1024,
        grid_levels=0,
    )
    model = SGIModel(config, initialize_scaling=False)
    with torch.no_grad():
        prior, start = model.context.prior, 0
        prior.zero_()
        for group, dim in model.context.dims.items():
            prior[start : start + dim] = 12.0 if group == "log_scaling" else 0.0
            prior[start + dim : start + 2 * dim] = -20.0  # scale 1e-6: every symbol certain
            start += 2 * dim
        model.features.zero_()
        model.offsets.zero_()
        model.log_scaling.fill_(12.0)
    parts = encode_model(model)
    header = _whole(base_header(), 256, 256)
    _model(header).update(config.to_dict())
    path = write_file(tmp_path / "huge-gaussians.sgi", header, region_sections(header, parts))
    assert path.stat().st_size < 4000
    return path


CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from napari_sgi.errors import SGIFormatError
    from napari_sgi.reader import open_sgi

    def peak():
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) << 10 for l in status if l.startswith("VmHWM"))

    results = {}
    for name, path in json.loads(sys.argv[2]).items():
        start, outcome = time.perf_counter(), {}
        try:
            image = open_sgi(path)
            pixels = image.levels[0].compute()
            outcome = {"shape": list(pixels.shape), "finite": bool((pixels == pixels).all())}
        except Exception as error:
            cause = error.__cause__
            outcome = {
                "error": type(error).__name__,
                "format_error": isinstance(error, SGIFormatError),
                "cause": None if cause is None else type(cause).__name__,
                "message": str(error),
            }
        outcome.update(seconds=time.perf_counter() - start, peak=peak())
        results[name] = outcome
    print(json.dumps(results))
    """
)


def run_cases(paths: dict[str, Path]) -> dict[str, dict]:
    """Open and render each file in one subprocess with limited address space."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(ADDRESS_SPACE),
            json.dumps({k: str(v) for k, v in paths.items()}),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    paths = {
        "valid": write_file(tmp_path / "valid.sgi", base_header(), region_sections(base_header()))
    }
    for number, (name, (change, _)) in enumerate(HEADER_CASES.items()):
        header = change(base_header())
        paths[name] = write_file(tmp_path / f"h{number}.sgi", header, region_sections(header))
    for number, (name, (make, _)) in enumerate(SECTION_CASES.items()):
        header, parts = make(base_header())
        paths[name] = write_file(
            tmp_path / f"s{number}.sgi", header, region_sections(header, parts)
        )
    paths["huge Gaussians"] = _huge_gaussians(tmp_path)
    started = time.perf_counter()
    results = run_cases(paths)
    results["total seconds"] = time.perf_counter() - started
    return results


def test_the_base_file_decodes_within_the_limits(outcomes):
    valid = outcomes["valid"]
    assert valid.get("shape") == [64, 64] and valid["finite"], valid
    assert valid["peak"] < PEAK_RSS


@pytest.mark.parametrize("name", [*HEADER_CASES, *SECTION_CASES])
def test_a_hostile_file_is_refused_quickly_naming_the_problem(outcomes, name):
    outcome = outcomes[name]
    match = {**HEADER_CASES, **SECTION_CASES}[name][1]
    assert outcome.get("format_error"), outcome
    assert outcome["cause"] is None, outcome  # no RuntimeError or MemoryError behind it
    assert outcome["message"] == " ".join(outcome["message"].split()), "one line"
    assert re.search(match, outcome["message"]), outcome["message"]
    assert outcome["seconds"] < SECONDS, outcome
    assert outcome["peak"] < PEAK_RSS, outcome


def test_huge_gaussians_are_refused_before_the_rasterizer_lists_them(outcomes):
    outcome = outcomes["huge Gaussians"]
    assert outcome.get("format_error") and outcome["cause"] is None, outcome
    assert (
        "region 0 does not decode: its 16384 Gaussians cover 4194304 tiles at level 0"
        in (outcome["message"])
    ), outcome
    assert outcome["seconds"] < SECONDS and outcome["peak"] < PEAK_RSS, outcome


def test_the_api_raises_sgi_format_errors_in_process(tmp_path):
    """The same refusals through SGIFile and open_sgi here, as ValueErrors, never another type."""
    from napari_sgi.reader import SGIFile, open_sgi

    header = _model_size(1 << 24, 1 << 24)(base_header())
    path = write_file(tmp_path / "m.sgi", header, region_sections(header))
    with pytest.raises(SGIFormatError, match="'height' too large"):
        SGIFile(path)
    header, parts = _sections_change(_weights_nan)(base_header())
    path = write_file(tmp_path / "nan.sgi", header, region_sections(header, parts))
    image = open_sgi(path)
    attempts = (
        lambda: image.file.render_slice(0),
        lambda: image.file.render_region(0, 1, 0, 32, 0, 32),
        lambda: image.levels[0][:10, :10].compute(),
    )
    for attempt in attempts:
        with pytest.raises(ValueError, match="NaN or infinite") as error:
            attempt()
        assert isinstance(error.value, SGIFormatError)


def test_decompress_refuses_an_output_over_its_limit_before_rendering(tmp_path, capsys):
    """Nine consistent 8192x8192 float64 slices from ~60 KB: 4.5 GiB to write, refused at once."""
    from napari_sgi.cli import DECOMPRESS_LIMIT, build_parser, main

    header = _whole(base_header(), 8192, 8192)
    header["layout"].update(axes="ZYX", shape=[9, 8192, 8192], dtype="<f8")
    header["slices"] = [{**header["slices"][0], "key": [z]} for z in range(9)]
    header["n_slices"] = 9
    path = write_file(tmp_path / "big.sgi", header, region_sections(header))
    assert path.stat().st_size < 100_000 and 9 * 8192**2 * 8 > DECOMPRESS_LIMIT == 4 << 30
    started = time.perf_counter()
    assert main(["decompress", str(path), "-o", str(tmp_path / "big.tif")]) == 1
    assert time.perf_counter() - started < 2.0
    error = capsys.readouterr().err
    assert "4.5 GiB (shape (9, 8192, 8192), float64), more than the 4 GiB" in error
    assert "pass --force" in error and error.count("\n") == 1
    assert not (tmp_path / "big.tif").exists()
    decompress = build_parser()._subparsers._group_actions[0].choices["decompress"]
    assert "4 GiB" in decompress.format_help() and "--force" in decompress.format_help()


def test_a_constant_image_decodes_to_its_one_value(tmp_path):
    """value_range [low, low]: every pixel is low, whatever the model renders (the encoder maps a
    constant image with a span of 1, so a render of 0.9 would otherwise come out as low + 1)."""
    from napari_sgi.reader import open_sgi

    header = _set("value_range", [7, 7])(base_header())
    path = write_file(tmp_path / "constant.sgi", header, region_sections(header))
    pixels = open_sgi(path).levels[0].compute()
    assert pixels.dtype == np.uint16 and np.unique(pixels).tolist() == [7]
