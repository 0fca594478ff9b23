"""The real sample images of ../shared/data that the benchmarks measure on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
# name -> (file, description, z index of a stack or None)
IMAGES = {
    "ihc": ("ihc_skimage_colon.png", "RGB IHC 512x512 uint8", None),
    "nuclei": ("fluo_nuclei2d_stardist_dsb2018.tif", "nuclei 512x512 uint16 (values 0..235)", None),
    "zslice": ("fluo_nuclei3d_zstack_napari_bio.tif", "z-stack slice 30, 256x256 uint16", 30),
}


def load(name: str) -> np.ndarray:
    """The sample image ``name`` (one z-slice for a stack)."""
    file, _, index = IMAGES[name]
    path = DATA / file
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image)
    import tifffile

    array = tifffile.imread(path)
    return array[index] if index is not None else array
