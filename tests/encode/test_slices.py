"""One slice: fitted region by region, measured on exactly what a reader decodes."""

import math

import numpy as np
import pytest

from napari_sgi.core.image import ValueRange, to_tensor
from napari_sgi.core.presets import get_preset
from napari_sgi.core.regions import Region, blend, plan_regions, render_box
from napari_sgi.encode.slices import CoreMeter, RegionResult, SliceResult, compress_slice
from napari_sgi.file.header import MODEL_SECTIONS

CONFIG = get_preset("fast").with_overrides(
    iterations=12, feature_dim=6, gaussians_per_seed=3, density=0.2, levels=2
)


@pytest.fixture(scope="module")
def fitted(nuclei_crop):
    image = nuclei_crop
    value_range = ValueRange(float(image.min()), float(image.max()), "uint16")
    steps = []
    result = compress_slice(
        image,
        CONFIG,
        value_range,
        region_size=32,
        region_margin=32,
        progress=lambda step, total, psnr: steps.append((step, total)),
    )
    return image, value_range, result, steps


def test_a_slice_is_a_result_per_region(fitted):
    image, _, result, steps = fitted
    assert isinstance(result, SliceResult) and result.blend == 32
    assert [r.region for r in result.regions] == plan_regions(64, 64, 32, 32)
    for region in result.regions:
        assert isinstance(region, RegionResult) and isinstance(region.region, Region)
        assert set(region.sections) == set(MODEL_SECTIONS)
        assert (region.model.height, region.model.width) == region.region.box_shape
    assert result.gaussians == sum(r.model.seed_count * 3 for r in result.regions)
    assert result.psnr == 10 * math.log10(1 / result.mse) and -1 <= result.ssim <= 1
    assert steps == [(s, 4 * 12) for s in range(1, 4 * 12 + 1)]  # 4 regions' steps


def test_the_stored_sections_decode_to_what_was_measured(fitted):
    image, value_range, result, _ = fitted
    models = result.decoded_models()
    regions = [r.region for r in result.regions]
    renders = [render_box(model, 0) for model in models]
    pixels = blend(regions, renders.__getitem__, 0, (0, 64, 0, 64), (64, 64), result.blend)
    decoded = value_range.denormalize(pixels[:, :, 0])
    measured = to_tensor(decoded, value_range).double()
    target = to_tensor(image, value_range).double()
    assert float(((measured - target) ** 2).mean()) == pytest.approx(result.mse, rel=1e-12)


def test_an_image_too_small_is_refused():
    with pytest.raises(ValueError, match="too small"):
        compress_slice(np.ones((3, 40), np.uint16), CONFIG, ValueRange(0.0, 1.0, "uint16"))


def test_the_meter_keeps_only_the_renders_that_cores_still_need():
    image = np.zeros((384, 256), np.uint16)
    regions = plan_regions(384, 256, size=64, margin=32)  # 6 rows x 4 columns
    meter = CoreMeter(image, regions, ValueRange(0.0, 1.0, "uint16"), 32)
    held = []
    for number, region in enumerate(regions):
        meter.add(number, np.zeros((*region.box_shape, 1), np.float32))  # the image, exactly
        held.append(len(meter.renders))
    assert not meter.needs and not meter.renders  # every core measured, nothing left
    assert max(held) <= 2 * 4 + 3  # two rows of regions and a few, not all of them
    assert meter.result() == (0.0, 1.0)


def test_each_region_weighs_its_box_as_the_blend_shows_it(monkeypatch):
    import napari_sgi.encode.targeting as targeting
    from napari_sgi.core.regions import box_weights

    seen = []
    fit_region = targeting.fit_region

    def recording(image, config, **options):
        seen.append(options["pixel_weights"])
        return fit_region(image, config, **options)

    monkeypatch.setattr(targeting, "fit_region", recording)
    image = np.arange(64 * 96, dtype=np.uint16).reshape(64, 96)
    value_range = ValueRange(0.0, float(image.max()), "uint16")
    config = CONFIG.with_overrides(iterations=2)
    regions = plan_regions(64, 96, 64, 32)
    compress_slice(image, config, value_range, region_size=64, region_margin=32, region_workers=1)
    assert len(seen) == len(regions) == 2
    for weights, region in zip(seen, regions, strict=True):
        np.testing.assert_array_equal(weights.numpy(), box_weights(region, (64, 96), 32))
