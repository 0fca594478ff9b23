"""PNG/JPEG/BMP through Pillow and memory-mapped .npy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_sgi.inputs import open_input

DATA = Path(__file__).parent.parent / "data"

rng = np.random.default_rng(0)


def _stack(shape, dtype=np.uint16):
    return rng.integers(0, 1000, shape).astype(dtype)


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


def test_bmp_and_palette_png(tmp_path):
    from PIL import Image

    rgb = _stack((12, 10, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(open_input(tmp_path / "a.bmp").read_slice(()), rgb)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert open_input(tmp_path / "p.png").axes == "YXS"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("text.png", b"this is not an image", "not a readable image"),
        ("cut.png", "truncated", "not a readable image"),
        ("empty.npy", b"", "not a readable .npy"),
        ("text.npy", b"not an array at all", "not a readable .npy"),
        ("objects.npy", "objects", "not a readable .npy"),
        ("archive.npy", "npz", "archive"),
    ],
)
def test_hostile_files_are_value_errors(tmp_path, name, content, match):
    from PIL import Image

    path = tmp_path / name
    if content == "truncated":
        Image.fromarray(_stack((64, 64), np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:80])
    elif content == "objects":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content == "npz":
        with path.open("wb") as file:
            np.savez(file, a=_stack((4, 4)))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        open_input(path)
