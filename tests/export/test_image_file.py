"""write_image_file: a decoded 2D image written by suffix, read back as written."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sgi.export.image_file import write_image_file
from napari_sgi.inputs import open_input

rng = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("suffix", "image"),
    [
        (".tif", rng.integers(0, 4000, (12, 10)).astype(np.uint16)),
        (".tiff", rng.random((12, 10)).astype(np.float32)),
        (".png", rng.integers(0, 255, (12, 10, 3)).astype(np.uint8)),
        (".PNG", rng.integers(0, 4000, (12, 10)).astype(np.uint16)),
        (".npy", rng.integers(0, 255, (12, 10, 4)).astype(np.uint8)),
    ],
)
def test_round_trip_through_the_inputs(tmp_path, suffix, image):
    path = write_image_file(tmp_path / f"a{suffix}", image)
    source = open_input(path)
    assert source.n_slices == 1 and source.dtype == image.dtype
    np.testing.assert_array_equal(source.read_slice(()), image)


def test_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="PNG holds uint8 or uint16"):
        write_image_file(tmp_path / "a.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="unsupported output file"):
        write_image_file(tmp_path / "a.gif", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
