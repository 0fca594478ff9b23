"""OME-Zarr 0.5 and OME-TIFF exports: metadata, napari-ome-zarr, round trips."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_sgi.export.volumes import write_ome_zarr, write_tiff
from napari_sgi.inputs import open_input

rng = np.random.default_rng(1)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 4000, shape).astype(dtype)


def _counting_dask(arr):
    """A dask array over ``arr`` with one chunk per plane that records which are read."""
    seen = []

    def block(block_id=None):
        seen.append(block_id)
        return arr[block_id[0] : block_id[0] + 1]

    lazy = da.map_blocks(
        block, chunks=((1,) * arr.shape[0], *((n,) for n in arr.shape[1:])), dtype=arr.dtype
    )
    seen.clear()
    return lazy, seen


# ------------------------------------------------------------------ OME-Zarr


def test_ome_zarr_metadata_pyramid_and_windows(tmp_path):
    arr = _stack((2, 3, 600, 500))
    path = write_ome_zarr(
        tmp_path / "img.ome.zarr",
        da.from_array(arr, chunks=(1, 1, 300, 500)),
        axes="CZYX",
        scale={"Z": 2.0, "Y": 0.2, "X": 0.2},
        units={"Z": "µm", "Y": "um", "X": "micrometer"},
        channel_names=["dapi", "gfp"],
        contrast_limits=[(100, 3000), (0, 2000)],
    )
    group = zarr.open_group(path, mode="r")
    assert group.metadata.zarr_format == 3
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("unit") for a in ms["axes"]] == [None] + ["micrometer"] * 3
    shapes = [group[d["path"]].shape for d in ms["datasets"]]
    assert shapes == [(2, 3, 600, 500), (2, 3, 300, 250), (2, 3, 150, 125)]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 0.2, 0.2]
    channels = ome["omero"]["channels"]
    assert [c["label"] for c in channels] == ["dapi", "gfp"]
    assert channels[0]["window"] == {"start": 100.0, "end": 3000.0, "min": 0.0, "max": 65535.0}
    np.testing.assert_array_equal(group[ms["datasets"][0]["path"]][1, 2], arr[1, 2])


def test_ome_zarr_default_window_and_pyramid_size(tmp_path):
    arr = _stack((40, 60), np.float32)
    path = write_ome_zarr(tmp_path / "small.ome.zarr", arr, axes="YX")
    ome = zarr.open_group(path, mode="r").attrs["ome"]
    assert len(ome["multiscales"][0]["datasets"]) == 1  # already small: no extra level
    (channel,) = ome["omero"]["channels"]
    lo, hi = np.percentile(arr, (0.1, 99.9))
    assert channel["window"]["start"] == pytest.approx(lo)
    assert channel["window"]["end"] == pytest.approx(hi)


def test_ome_zarr_from_dask_reads_plane_by_plane_and_round_trips(tmp_path):
    arr = _stack((5, 64, 48))
    lazy, seen = _counting_dask(arr)
    path = write_ome_zarr(
        tmp_path / "z.ome.zarr", lazy, axes="ZYX", scale=[3.0, 0.5, 0.5], units=[None, "nm", "nm"]
    )
    assert sorted(seen) == [(z, 0, 0) for z in range(5)]  # every plane read once
    src = open_input(path)
    assert src.axes == "ZYX" and src.shape == arr.shape
    assert src.scale == (3.0, 0.5, 0.5) and src.units == (None, "nanometer", "nanometer")
    np.testing.assert_array_equal(src.data.compute(), arr)


def test_ome_zarr_reorders_axes_and_keeps_rgb(tmp_path):
    arr = _stack((4, 2, 32, 32))  # Z, C, Y, X
    src = open_input(write_ome_zarr(tmp_path / "zc.ome.zarr", arr, axes="ZCYX"))
    assert src.axes == "CZYX"  # NGFF order
    np.testing.assert_array_equal(src.data.compute(), arr.transpose(1, 0, 2, 3))
    rgb = _stack((3, 32, 40, 3), np.uint8)
    src = open_input(write_ome_zarr(tmp_path / "rgb.ome.zarr", rgb, axes="ZYXS"))
    assert src.axes == "ZYXS" and src.contrast_limits == [[0, 255]] * 3
    np.testing.assert_array_equal(src.data.compute(), rgb)


def test_ome_zarr_opens_with_napari_ome_zarr(tmp_path):
    from napari_ome_zarr._reader import napari_get_reader

    arr = _stack((2, 3, 600, 500))
    path = write_ome_zarr(
        tmp_path / "nz.ome.zarr",
        arr,
        axes="CZYX",
        scale={"Z": 2.0, "Y": 0.2, "X": 0.2},
        units={"Y": "µm", "X": "µm"},
        channel_names=["a", "b"],
        contrast_limits=(50, 3500),
    )
    reader = napari_get_reader(str(path))
    assert callable(reader)
    (data, kwargs, layer_type), *_ = reader(str(path))
    assert layer_type == "image"
    assert [level.shape for level in data][:2] == [(2, 3, 600, 500), (2, 3, 300, 250)]
    assert kwargs["channel_axis"] == 0
    assert kwargs["contrast_limits"] == [[50, 3500], [50, 3500]]
    assert kwargs["scale"] == pytest.approx([2.0, 0.2, 0.2])
    assert [n.split(": ")[-1] for n in kwargs["name"]] == ["a", "b"]


def test_ome_zarr_bad_arguments(tmp_path):
    arr = _stack((2, 16, 16))
    with pytest.raises(ValueError, match="channel names"):
        write_ome_zarr(tmp_path / "a.zarr", arr, axes="CYX", channel_names=["x"])
    with pytest.raises(ValueError, match="contrast_limits"):
        write_ome_zarr(tmp_path / "b.zarr", arr, axes="CYX", contrast_limits=[1, 2, 3])
    with pytest.raises(ValueError, match="letters"):
        write_ome_zarr(tmp_path / "c.zarr", arr, axes="YX")
    with pytest.raises(ValueError, match="not in"):
        write_ome_zarr(tmp_path / "d.zarr", arr, axes="CYX", scale={"Z": 1.0})
    with pytest.raises(ValueError, match="both C"):
        write_ome_zarr(tmp_path / "e.zarr", _stack((2, 8, 8, 3), np.uint8), axes="CYXS")


# ------------------------------------------------------------------ TIFF


def test_ome_tiff_round_trip_axes_scale_units_channels(tmp_path):
    arr = _stack((2, 3, 4, 32, 40))
    lazy = da.from_array(arr, chunks=(1, 1, 1, 16, 40))
    path = write_tiff(
        tmp_path / "a.ome.tif",
        lazy,
        axes="TCZYX",
        scale={"T": 5.0, "Z": 0.1, "Y": 0.05, "X": 0.05},
        units={"T": "ms", "Z": "µm", "Y": "nm", "X": "nm"},
        channel_names=["a", "b", "c"],
    )
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome and not tf.is_bigtiff and tf.pages[0].compression == 8  # zlib
    with open_input(path) as src:
        assert src.axes == "TCZYX" and src.shape == arr.shape
        assert src.scale == (5.0, None, 0.1, 0.05, 0.05)
        assert src.units == ("millisecond", None, "micrometer", "nanometer", "nanometer")
        assert src.channel_names == ["a", "b", "c"]
        np.testing.assert_array_equal(src.data.compute(), arr)


def test_tiff_reorders_axes_default_units_rgb_and_tiles(tmp_path):
    arr = _stack((4, 2, 70, 90))
    with open_input(
        write_tiff(
            tmp_path / "zc.ome.tif", arr, axes="ZCYX", scale=[2.0, None, 0.3, 0.3], tile=(32, 32)
        )
    ) as src:
        assert src.axes == "CZYX" and src.units == (None, "micrometer", "micrometer", "micrometer")
        np.testing.assert_array_equal(src.data.compute(), arr.transpose(1, 0, 2, 3))
    rgb = _stack((3, 20, 30, 3), np.uint8)
    lazy, seen = _counting_dask(rgb)
    with open_input(
        write_tiff(tmp_path / "rgb.ome.tif", lazy, axes="ZYXS", compression=None)
    ) as src:
        assert src.axes == "ZYXS" and src.n_slices == 3
        np.testing.assert_array_equal(src.data.compute(), rgb)
    assert sorted(seen) == [(z, 0, 0, 0) for z in range(3)]


def test_tiff_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="channel names"):
        write_tiff(tmp_path / "a.tif", _stack((2, 8, 8)), axes="CYX", channel_names=["x"])
    with pytest.raises(ValueError, match="dtype"):
        write_tiff(tmp_path / "b.tif", np.zeros((8, 8), bool), axes="YX")
    with pytest.raises(ValueError, match="empty"):
        write_tiff(tmp_path / "c.tif", np.zeros((0, 8, 8)), axes="ZYX")
