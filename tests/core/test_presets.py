from dataclasses import replace

import pytest

from napari_sgi.core.presets import PRESETS, FitConfig, configure, fit_from_record, fit_record


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize(
    "overrides",
    [{}, {"target_bpp": 0.1}, {"target_psnr": 30.0, "iterations": 700}, {"grid_levels": None}],
)
@pytest.mark.parametrize("shape", [(256, 256, 1), (96, 200, 3)])
def test_a_fit_record_gives_the_configuration_back(preset, overrides, shape):
    config = configure(preset, *shape, **overrides)
    if "grid_levels" in overrides:  # None is a value of its own, which configure would skip
        config = replace(config, grid_levels=None)
    record = fit_record(preset, config, *shape)
    assert record["preset"] == preset
    assert fit_from_record(record, *shape) == config


def test_a_default_fit_records_only_what_the_preset_did_not_choose():
    config = configure("default", 512, 512, 3, target_bpp=0.25, rng_seed=3)
    assert fit_record("default", config, 512, 512, 3) == {
        "preset": "default",
        "target_bpp": 0.25,
        "rng_seed": 3,
    }


def test_a_record_without_a_preset_is_read_as_before():
    # Files written before fit records named their preset list what differs from FitConfig().
    config = FitConfig(iterations=12500, feature_dim=4, seed_layout="adaptive")
    assert fit_from_record(config.to_header(), 512, 512, 1) == config


def test_an_unknown_preset_or_field_in_a_record_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        fit_from_record({"preset": "best"}, 64, 64, 1)
    with pytest.raises(TypeError):
        fit_from_record({"preset": "fast", "speed": 3}, 64, 64, 1)
