"""ImageSource: the layout rules (axes, slices, dtypes) and the header round trip."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest

from napari_sgi.inputs import ImageSource, open_input

rng = np.random.default_rng(0)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 1000, shape).astype(dtype)


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
    for key in keys:
        np.testing.assert_array_equal(src.read_slice(key), arr[key])


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


def test_read_slice_checks_its_key():
    src = open_input(np.zeros((2, 4, 4)))
    with pytest.raises(IndexError):
        src.read_slice((2,))
    with pytest.raises(IndexError):
        src.read_slice((0, 0))
