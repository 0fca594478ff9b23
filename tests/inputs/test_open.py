"""open_input: the reader chosen by type or suffix, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_sgi.inputs import open_input

rng = np.random.default_rng(0)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 1000, shape).astype(dtype)


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


def test_arrays_and_paths_of_every_kind(tmp_path):
    arr = _stack((2, 16, 16))
    with (tmp_path / "a.NPY").open("wb") as file:  # suffixes in any case
        np.save(file, arr)
    for source in (arr, tmp_path / "a.NPY", str(tmp_path / "a.NPY")):
        src = open_input(source)
        assert src.axes == "ZYX" and src.shape == (2, 16, 16)


def test_bad_source_type():
    with pytest.raises(TypeError, match="cannot open"):
        open_input(42)
