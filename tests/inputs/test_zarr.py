"""zarr arrays and groups, OME-Zarr 0.4 / 0.5 and bioformats2raw, read lazily."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_sgi.inputs import open_input

rng = np.random.default_rng(0)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 1000, shape).astype(dtype)


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


@pytest.mark.parametrize(
    "multiscales",
    [
        [],
        [{"datasets": []}],
        [{"datasets": [{"path": "missing"}]}],
        [{"datasets": [{"path": "0"}], "axes": [3, 4]}],
        "not a list",
    ],
)
def test_malformed_ome_metadata_is_a_value_error(tmp_path, multiscales):
    group = zarr.open_group(tmp_path / "bad.zarr", mode="w")
    group.create_array("0", shape=(8, 8), dtype="uint8")
    group.attrs["multiscales"] = multiscales
    with pytest.raises(ValueError, match="multiscales|OME-Zarr"):
        open_input(tmp_path / "bad.zarr")
