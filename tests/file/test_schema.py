"""The napari-sgi image header: built as the encoder writes it, parsed and checked by the
reader."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader, SGIWriter
from napari_sgi.file.format import check_section_name
from napari_sgi.file.header import MODEL_SECTIONS
from napari_sgi.file.schema import (
    MAX_BLEND,
    ImageHeader,
    Quality,
    RegionEntry,
    SliceEntry,
    section_name,
    stored_figure,
)

DATA = Path(__file__).parent.parent / "data"


def _json(header: dict) -> str:
    return json.dumps(header, separators=(",", ":"), allow_nan=False)


@pytest.fixture(scope="module")
def written() -> dict:
    """The header of a committed file: 2 slices (Z) of 64x96, two regions each."""
    with SGIReader(DATA / "fixture_v4.sgi") as reader:
        return copy.deepcopy(reader.header)


def test_committed_headers_parse_and_rebuild_key_for_key(written):
    for name in ("fixture_v4.sgi", "fixture_v4_rgb.sgi"):
        with SGIReader(DATA / name) as reader:
            header = reader.header
        image = ImageHeader.from_dict(header)
        assert _json(image.to_dict()) == _json(header)  # same keys, order and values
    image = ImageHeader.from_dict(written)
    assert (image.axes, image.shape, image.stack_shape, image.slice_shape) == (
        "ZYX",
        (2, 64, 96),
        (2,),
        (64, 96),
    )
    assert [entry.key for entry in image.slices] == [(0,), (1,)]
    assert image.slices[1].regions[1].core == (0, 64, 64, 96) and image.slices[1].blend == 32


def test_a_header_built_from_parts_is_what_the_encoder_writes(tmp_path):
    from napari_sgi.encode.pipeline import compress

    image = (np.random.default_rng(1).random((2, 40, 72)) * 4000).astype(np.uint16)
    image[1] = image[0]
    out = tmp_path / "a.sgi"
    compress(
        image,
        out,
        preset="fast",
        iterations=2,
        feature_dim=2,
        gaussians_per_seed=2,
        levels=1,
        region_size=64,
        region_margin=32,
        contrast_limits=(0, 4000),
    )
    with SGIReader(out) as reader:
        header = reader.header
    built = ImageHeader(
        encoder_version=header["encoder_version"],
        layout=header["layout"],
        value_range=tuple(header["value_range"]),
        contrast_limits=(0, 4000),
        fit=header["fit"],
    )
    start = built.to_dict()  # what a writer is opened with, before any slice
    assert (start["n_slices"], start["slices"], start["quality"]) == (0, [], None)
    for entry in header["slices"]:
        regions = [
            RegionEntry(tuple(r["core"]), tuple(r["box"]), r["model"]) for r in entry["regions"]
        ]
        psnr = float("inf") if entry["psnr"] is None else entry["psnr"]
        built.slices.append(SliceEntry.measured(entry["key"], regions, 32, psnr, entry["ssim"]))
    built.quality = Quality.measured(header["quality"]["psnr"], header["quality"]["ssim"])
    start.update(built.to_dict())  # as SGIWriter.close(update) does: keys keep their order
    assert _json(start) == _json(header)
    assert header["contrast_limits"] == [0, 4000]


def test_measured_figures_are_rounded_and_infinity_is_null():
    entry = SliceEntry.measured([np.int64(3)], [], 32, float("inf"), np.float64(0.123456789))
    assert entry.to_dict() == {
        "key": [3],
        "regions": [],
        "blend": 32,
        "psnr": None,
        "ssim": 0.123457,
    }
    assert stored_figure(float("nan"), 4) is None
    assert Quality.measured(40.123449, 1.0).to_dict() == {"psnr": 40.1234, "ssim": 1.0}


def test_section_names():
    names = [section_name(3, 12, part) for part in MODEL_SECTIONS]
    assert names[0] == "slice/3/r12/weights" and names[-1] == "slice/3/r12/offsets"
    for name in names:
        check_section_name(name)
    with pytest.raises(ValueError, match="unknown model section"):
        section_name(0, 0, "mlp")


def _region(header, slice_index=0, region=0):
    return header["slices"][slice_index]["regions"][region]


def _set(path, value):
    def change(header):
        target = header
        for part in path[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_set(["kind"], "another image"), "not a napari-sgi image"),
        (_set(["kind"], _DELETE), "not a napari-sgi image"),
        (_set(["encoder_version"], _DELETE), "encoder_version"),
        (_set(["layout"], None), "layout"),
        (_set(["layout", "dtype"], _DELETE), "axes, shape and dtype"),
        (_set(["layout", "axes"], "YXZ"), "stack axes, then YX"),
        (_set(["layout", "axes"], "SYX"), "stack axes, then YX"),
        (_set(["layout", "axes"], "ZY"), "axes"),
        (_set(["layout", "shape"], [3, 64, 96]), "slices"),
        (_set(["n_slices"], 3), "slices"),
        (_set(["slices"], {"0": 1}), "slices"),
        (_set(["value_range"], [5.0, 1.0]), "value_range"),
        (_set(["value_range"], [[0, 1], [0, 2]]), "value_range"),
        (_set(["contrast_limits"], _DELETE), "contrast_limits"),
        (_set(["fit"], _DELETE), "fit"),
        (_set(["quality"], [1, 2]), "quality"),
        (_set(["quality"], {"psnr": "high"}), "quality.psnr"),
        (_set(["slices", 1, "key"], [0]), r"slices\[1\].key must be \[1\]"),
        (_set(["slices", 0, "blend"], _DELETE), r"slices\[0\].blend"),
        (_set(["slices", 0, "blend"], -1), "blend"),
        (_set(["slices", 0, "blend"], MAX_BLEND + 1), "blend"),
        (_set(["slices", 0, "blend"], True), "blend"),
        (_set(["slices", 0, "blend"], 32.0), "blend"),
        (_set(["slices", 0, "psnr"], "35"), "psnr"),
        (_set(["slices", 0, "regions"], []), "non-empty"),
        (_set(["slices", 0, "regions", 0], "r0"), "must be an object"),
        (_set(["slices", 0, "regions", 0, "core"], [0, 64, 0]), "core"),
        (_set(["slices", 0, "regions", 0, "core"], [0, 64, 0, 200]), "must lie in the 64x96"),
        (_set(["slices", 0, "regions", 0, "core"], [10, 10, 0, 64]), "core"),
        (_set(["slices", 0, "regions", 0, "box"], [0, 64, 10, 96]), "must contain the core"),
        (_set(["slices", 0, "regions", 0, "core"], [0, 64, 0, 60]), "tile"),  # a gap
        (_set(["slices", 0, "regions", 0, "core"], [0, 64, 0, 70]), "tile"),  # an overlap
        (_set(["slices", 0, "regions", 0, "core"], [0, 32, 0, 64]), "tile"),  # not a grid
        (_set(["slices", 0, "regions", 0, "model", "height"], 63), "as large as the box"),
        (_set(["slices", 0, "regions", 0, "model", "channels"], 3), "channels"),
        (_set(["slices", 0, "regions", 0, "model", "seed_count"], -1), "seed_count"),
        (_set(["slices", 0, "regions", 0, "model", "colour"], 1), "model"),
    ],
)
def test_headers_a_reader_cannot_render_from_are_refused(written, change, match):
    header = copy.deepcopy(written)
    change(header)
    with pytest.raises(SGIFormatError, match=match):
        ImageHeader.from_dict(header)


def test_duplicate_regions_do_not_tile(written):
    header = copy.deepcopy(written)
    regions = header["slices"][0]["regions"]
    regions.append(copy.deepcopy(regions[0]))
    with pytest.raises(SGIFormatError, match="tile"):
        ImageHeader.from_dict(header)


def test_the_reader_refuses_a_file_without_blend_widths(tmp_path, written):
    from napari_sgi.reader import SGIFile

    header = copy.deepcopy(written)
    for entry in header["slices"]:
        del entry["blend"]  # files before blending: no longer read
    path = tmp_path / "no-blend.sgi"
    with SGIWriter(path, header):
        pass
    with pytest.raises(SGIFormatError, match=r"no-blend.sgi: .*slices\[0\].blend"):
        SGIFile(path)
    with SGIWriter(path, {"kind": "something else"}):
        pass
    with pytest.raises(SGIFormatError, match="not a napari-sgi image"):
        SGIFile(path)
