import subprocess
import sys

import numpy as np
import pytest

from napari_sgi import fit_image


def test_importing_the_package_is_light():
    code = (
        "import sys, napari_sgi; from napari_sgi import compress, open_sgi, fit_image;"
        "heavy = [m for m in ('torch', 'qtpy', 'PyQt6', 'napari') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [None, 3, 5])
def test_fit_image_keeps_dtype_and_shape(dtype, channels):
    rng = np.random.default_rng(0)
    shape = (20, 24) if channels is None else (20, 24, channels)
    image = (rng.random(shape) * (200 if dtype == np.uint8 else 3000)).astype(dtype)
    result = fit_image(
        image, preset="fast", iterations=6, levels=2, density=0.2, gaussians_per_seed=2
    )
    assert result.decoded.shape == image.shape and result.decoded.dtype == image.dtype
    assert np.isfinite(result.psnr) and -1 <= result.ssim <= 1
    summary = result.summary()
    assert summary["gaussians"] == result.seeds * 2


def test_fit_image_reports_progress_and_cancels():
    import threading

    from napari_sgi import FitCancelled

    stop = threading.Event()
    seen = []

    def progress(report):
        seen.append(report.step)
        if report.step == 3:
            stop.set()

    with pytest.raises(FitCancelled):
        fit_image(
            np.zeros((16, 16), np.uint8),
            preset="fast",
            iterations=50,
            progress=progress,
            cancel=stop,
        )
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"preset": "nope"}, ValueError, "unknown preset"),
        ({"iterations": -1}, ValueError, "iterations"),
        ({"colour": 3}, TypeError, "unknown fit option"),
        ({"device": "tpu"}, ValueError, "device"),
    ],
)
def test_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        fit_image(np.zeros((16, 16), np.uint8), **kwargs)
