"""Writing a decoded 2D image to a TIFF, PNG or NPY file."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_image_file(path: str | Path, image: np.ndarray) -> Path:
    """Write ``image`` by extension: ``.tif``/``.tiff`` (tifffile), ``.png`` (Pillow), ``.npy``.

    Examples
    --------
    >>> import tempfile, os
    >>> out = write_image_file(os.path.join(tempfile.mkdtemp(), "a.npy"), np.zeros((4, 4)))
    >>> out.suffix
    '.npy'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(
            path,
            image,
            photometric="rgb" if image.ndim == 3 and image.shape[-1] in (3, 4) else None,
        )
    elif suffix == ".png":
        from PIL import Image

        if image.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"PNG holds uint8 or uint16 images, not {image.dtype}; use .tif or .npy"
            )
        Image.fromarray(image).save(path)
    elif suffix == ".npy":
        np.save(path, image)
    else:
        raise ValueError(f"unsupported output file {path.name!r}: use .tif, .png or .npy")
    return path
