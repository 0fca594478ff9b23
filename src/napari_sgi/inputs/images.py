"""Small flat image files: PNG, JPEG and BMP through Pillow (read whole), ``.npy`` (memory-mapped).

Example
-------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
>>> np.save(path, np.zeros((2, 8, 8), np.uint16))
>>> open_npy(path, None).axes
'ZYX'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_sgi.inputs.source import ImageSource, build_source

__all__ = ["NPY_SUFFIX", "PIL_SUFFIXES", "open_npy", "open_pil"]

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
NPY_SUFFIX = ".npy"


def open_pil(path: str | Path, axes: str | None) -> ImageSource:
    """Read a PNG/JPEG/BMP file: grey stays grey (8 or 16 bit), palettes become RGB(A)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.mode in ("P", "PA", "LA"):
                rgba = "A" in img.mode or "transparency" in img.info
                img = img.convert("RGBA" if rgba else "RGB")
            elif img.mode == "1":
                img = img.convert("L")
            elif img.mode not in ("L", "I;16", "I;16B", "I", "F", "RGB", "RGBA"):
                img = img.convert("RGB")
            arr = np.asarray(img)
    except PermissionError:
        raise
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        # OSError: not an image (UnidentifiedImageError) or truncated; SyntaxError: what Pillow's
        # plugins raise for a corrupt header; DecompressionBombError: too many pixels to decode
        raise ValueError(f"{str(path)!r} is not a readable image file: {exc}") from exc
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return build_source(arr, axes or ("YXS" if arr.ndim == 3 else "YX"), name=path.name)


def open_npy(path: str | Path, axes: str | None) -> ImageSource:
    """Memory-map a ``.npy`` file: a large one is paged in slice by slice, never read whole."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as exc:  # not .npy, pickled objects, empty, a bad header
        raise ValueError(f"{str(path)!r} is not a readable .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever the suffix
        array.close()
        raise ValueError(f"{str(path)!r} is an .npz archive, not one .npy array")
    return build_source(array, axes, name=path.name)
