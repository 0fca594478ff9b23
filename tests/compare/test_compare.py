"""napari_sgi.compare: codecs at the same size, mappings, metrics, budgets, curves, plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_sgi.compare import (
    CODECS,
    compare_slice,
    encode_at_most,
    mapping_for,
    parse_codecs,
    quality,
    rd_curve,
    slice_budgets,
)
from napari_sgi.compare.same_size import _setting
from napari_sgi.core.image import ValueRange

DATA = Path(__file__).parents[1] / "data"


def _structured(shape, dtype, top, seed=0) -> np.ndarray:
    """Smooth blobs plus a little noise: compressible, not trivial."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape[:2])
    for _ in range(6):
        cy, cx, r = rng.random(3) * [shape[0], shape[1], 8] + [0, 0, 3]
        image += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    image = image / image.max() * 0.9 + 0.05 * rng.random(shape[:2])
    if len(shape) == 3:
        image = np.stack([np.roll(image, 3 * c, axis=1) for c in range(shape[2])], axis=-1)
    return (image * top).astype(dtype)


def _torch_quality(decoded, original, value_range):
    """The engine's own torch metrics: an independent computation of the figures."""
    from napari_sgi.core.image import to_tensor
    from napari_sgi.core.metrics import psnr, ssim

    a, b = to_tensor(decoded, value_range), to_tensor(original, value_range)
    return psnr(a, b), ssim(a, b)


@pytest.mark.parametrize(
    ("shape", "dtype", "top"),
    [((40, 36), np.uint16, 4000), ((32, 32, 3), np.uint8, 255), ((24, 20, 2), np.float32, 3.5)],
)
def test_numpy_metrics_equal_the_engines(shape, dtype, top):
    original = _structured(shape, dtype, top)
    noisy = (original + np.random.default_rng(1).normal(0, top / 50, shape)).clip(0, top)
    noisy = noisy.astype(dtype)
    value_range = ValueRange.of(original)
    assert quality(noisy, original) == pytest.approx(
        _torch_quality(noisy, original, value_range), abs=1e-9
    )


def test_mappings_round_trip_and_say_what_they_did():
    u8 = _structured((16, 16, 3), np.uint8, 255)
    m = mapping_for(u8, 16)
    assert not m.stretched and m.layout == "colour"
    assert np.array_equal(m.from_codec(m.to_codec(u8)), u8)
    assert "uint8 samples as they are" in m.describe("JPEG 2000")

    u16 = _structured((16, 16), np.uint16, 900) + 100
    m = mapping_for(u16, 16)
    (coded,) = m.to_codec(u16)
    assert coded.dtype == np.uint16 and coded.min() == 0 and coded.max() == 65535
    assert np.array_equal(m.from_codec([coded]), u16)
    assert "stretched linearly to 0..65535" in m.describe("JPEG XL")
    (coded8,) = mapping_for(u16, 8).to_codec(u16)
    assert coded8.dtype == np.uint8 and coded8.max() == 255

    f32 = _structured((16, 16), np.float32, 2.0) - 1.0
    m = mapping_for(f32, 12)
    back = m.from_codec(m.to_codec(f32))
    assert back.dtype == np.float32 and np.abs(back - f32).max() <= (2.0 / 4095)

    four = _structured((16, 16, 4), np.uint16, 5000)
    m = mapping_for(four, 16)
    planes = m.to_codec(four)
    assert m.layout == "planes" and len(planes) == 4 and planes[0].shape == (16, 16)
    assert np.array_equal(m.from_codec(planes), four)
    assert "4 grey images" in m.describe("AVIF")


def test_parse_codecs():
    assert [c.key for c in parse_codecs("avif,jpeg2000,jpg")] == ["jpeg", "j2k", "avif"]
    with pytest.raises(ValueError, match="unknown codec 'webp'"):
        parse_codecs("jpeg,webp")


@pytest.mark.parametrize("key", list(CODECS))
def test_largest_encoding_within_the_budget(key):
    codec = CODECS[key]
    image = _structured((48, 48), np.uint16, 3000)
    arrays = mapping_for(image, codec.bits).to_codec(image)
    small = sum(len(s) for s in codec.encode(arrays, _setting(codec, 0.0)))
    large = sum(len(s) for s in codec.encode(arrays, _setting(codec, 1.0)))
    budget = int(small + 0.3 * (large - small))
    best = encode_at_most(codec, arrays, budget)
    assert best.fits and best.nbytes <= budget
    if codec.integer:  # the next setting up is over the budget: nothing larger fits
        step = 1 if codec.increasing else -1
        above = sum(len(s) for s in codec.encode(arrays, best.value + step))
        assert above > budget
    else:
        assert best.nbytes > 0.9 * budget
    # A budget below the smallest file: the smallest, marked as not fitting.
    tiny = encode_at_most(codec, arrays, small - 1)
    assert not tiny.fits and tiny.nbytes == small


def test_compare_slice_16_bit_and_rgb():
    for original in (
        _structured((40, 48), np.uint16, 6000),
        _structured((32, 32, 3), np.uint8, 255),
    ):
        sgi = np.clip(original.astype(np.float64) * 0.97, 0, None).astype(original.dtype)
        comparison = compare_slice(original, 900, list(CODECS.values()), sgi_decoded=sgi)
        assert list(comparison.results) == ["SGI", "JPEG", "JPEG 2000", "JPEG XL", "AVIF"]
        value_range = ValueRange.of(original)
        for name, decoded in comparison.decoded.items():
            result = comparison.results[name]
            assert decoded.shape == original.shape and decoded.dtype == original.dtype
            assert result.bytes <= 900 and result.fits
            pixels = original.shape[0] * original.shape[1]
            assert result.bpp == pytest.approx(8 * result.bytes / pixels)
            expected = _torch_quality(decoded, original, value_range)
            assert (result.psnr, result.ssim) == pytest.approx(expected, abs=1e-9)
        assert comparison.best("psnr") in comparison.results
        json.dumps(comparison.to_dict())


def test_rd_curve_and_plot():
    from napari_sgi.compare.plot import rd_png

    original = _structured((32, 32), np.uint16, 2000)
    curve = rd_curve(CODECS["jxl"], original)
    assert len(curve) == len(CODECS["jxl"].sweep)
    assert [p.bytes for p in curve] == sorted(p.bytes for p in curve)
    png = rd_png({"JPEG XL": curve}, title="slice 0")
    assert png.startswith(b"\x89PNG")


def test_slice_budgets_add_up_to_the_file():
    for name in ("fixture_v4.sgi", "fixture_v4_rgb.sgi"):
        budgets = slice_budgets(DATA / name)
        assert sum(budgets) == (DATA / name).stat().st_size
        assert all(b > 0 for b in budgets)


def test_importing_compare_stays_light():
    heavy = ("torch", "napari", "qtpy", "matplotlib", "dask")
    code = (
        "import sys, numpy as np, napari_sgi.compare as c; "
        "c.compare_slice(np.zeros((8, 8), np.uint16), 400, [c.CODECS['jpeg']]); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
