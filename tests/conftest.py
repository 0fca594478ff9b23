from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def ihc_crop() -> np.ndarray:
    """64x64 RGB uint8 crop of the brightfield IHC sample."""
    from PIL import Image

    with Image.open(DATA / "ihc_crop64.png") as image:
        return np.asarray(image)


@pytest.fixture(scope="session")
def nuclei_crop() -> np.ndarray:
    """64x64 uint16 crop of the fluorescence nuclei sample."""
    import tifffile

    return tifffile.imread(DATA / "nuclei_crop64.tif")
