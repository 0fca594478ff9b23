"""A slice's regions fitted by worker processes: the same bytes as one after the other, with
progress, cancellation and clean-up (napari_sgi.encode.parallel)."""

import multiprocessing
import time

import numpy as np
import pytest

from napari_sgi.core.image import ValueRange
from napari_sgi.core.presets import get_preset
from napari_sgi.core.regions import plan_regions
from napari_sgi.encode.parallel import region_worker_count
from napari_sgi.encode.slices import compress_slice
from napari_sgi.encode.targeting import pilot_steps_per_region
from napari_sgi.errors import FitCancelled

CONFIG = get_preset("fast").with_overrides(iterations=20)
REGIONS = {"region_size": 32, "region_margin": 32}


@pytest.fixture(scope="module")
def image(nuclei_crop) -> np.ndarray:
    """96x96 uint16 of real pixels: 9 regions of 32x32 (more than the workers keep in flight)."""
    tiles = np.block([[nuclei_crop, nuclei_crop[:, ::-1]], [nuclei_crop[::-1], nuclei_crop]])
    return np.ascontiguousarray(tiles[:96, :96])


def value_range(image: np.ndarray) -> ValueRange:
    return ValueRange(float(image.min()), float(image.max()), "uint16")


def run(image, workers, config=CONFIG, **options):
    reports = []
    result = compress_slice(
        image,
        config,
        value_range(image),
        region_workers=workers,
        progress=lambda step, total, psnr: reports.append((step, total)),
        **REGIONS,
        **options,
    )
    return result, reports


@pytest.fixture(scope="module")
def one_and_two(image):
    return run(image, 1), run(image, 2)


def test_two_workers_write_the_same_bytes_as_one(one_and_two):
    (one, _), (two, _) = one_and_two
    assert len(one.regions) == 9
    assert one.regions == two.regions  # regions, model shapes and every section's bytes
    assert (one.mse, one.ssim, one.blend) == (two.mse, two.ssim, two.blend)
    assert not multiprocessing.active_children()


def test_progress_from_workers_counts_up_to_the_total(one_and_two):
    (_, sequential), (_, parallel) = one_and_two
    total = 9 * CONFIG.iterations
    assert sequential == [(s, total) for s in range(1, total + 1)]  # every step, as before
    steps = [step for step, _ in parallel]
    assert {t for _, t in parallel} == {total} and steps[-1] == total
    assert np.all(np.diff(steps) > 0)  # never backwards
    assert len(steps) >= 2  # along the way, not only at the end


def test_a_warm_start_gives_the_same_bytes(nuclei_crop):
    first, _ = run(nuclei_crop, 1)
    warm = CONFIG.with_overrides(iterations=8, levels=1)
    one, _ = run(nuclei_crop, 1, warm, start_models=first.decoded_models())
    models = first.decoded_models()
    before = [m.features.detach().clone() for m in models]
    two, _ = run(nuclei_crop, 2, warm, start_models=models)
    assert one.regions == two.regions and one.mse == two.mse
    assert one.regions != first.regions  # the warm fit did change the models
    assert all(np.array_equal(m.features.detach(), b) for m, b in zip(models, before, strict=True))


def test_a_size_target_gives_the_same_bytes(nuclei_crop):
    config = CONFIG.with_overrides(target_bpp=10.0)  # 32x32 cores: 5.2 bpp are the weights
    (one, _), (two, reports) = run(nuclei_crop, 1, config), run(nuclei_crop, 2, config)
    assert one.regions == two.regions and one.mse == two.mse
    total = 4 * (config.iterations + pilot_steps_per_region(config))  # the pilots count too
    assert reports[-1] == (total, total)


def test_cancel_stops_the_workers_promptly(image):
    cancelled_at = []

    def cancel() -> bool:
        if reports and not cancelled_at:
            cancelled_at.append(time.perf_counter())
        return bool(cancelled_at)

    reports = []
    with pytest.raises(FitCancelled):
        compress_slice(
            image,
            CONFIG.with_overrides(iterations=5000),  # minutes, were it not stopped
            value_range(image),
            region_workers=2,
            progress=lambda step, total, psnr: reports.append(step),
            cancel=cancel,
            **REGIONS,
        )
    assert time.perf_counter() - cancelled_at[0] < 5
    assert not multiprocessing.active_children()  # terminated and joined


def test_a_worker_error_reaches_the_caller(nuclei_crop):
    crop = nuclei_crop[:48, :48]
    wrong = compress_slice(crop, CONFIG, value_range(crop), region_workers=1)
    models = wrong.decoded_models()  # one region of 48x48: not the shape of the 64x64 boxes
    with pytest.raises(RuntimeError, match="size"):
        run(nuclei_crop, 2, start_models=models * 4)
    assert not multiprocessing.active_children()


def test_the_number_of_workers():
    large, small = plan_regions(2048, 2048), plan_regions(64, 64, 32, 32)
    assert region_worker_count(None, small) == 1  # a small slice: not worth the workers' start
    assert region_worker_count(None, large, "cuda") == 1
    assert region_worker_count(3, large) == 3 and region_worker_count(9, large) == 4
    with pytest.raises(ValueError, match="region_workers"):
        region_worker_count(0, large)


def test_a_script_without_a_main_guard_compresses_with_workers(tmp_path):
    """spawn would re-run an unguarded script in each worker (and fail there): it must not."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import numpy as np\n"
        "from napari_sgi.core.image import ValueRange\n"
        "from napari_sgi.core.presets import get_preset\n"
        "from napari_sgi.encode.slices import compress_slice\n"
        "print('top level ran', flush=True)\n"
        "image = (np.random.default_rng(0).random((64, 64)) * 1000).astype(np.uint16)\n"
        "config = get_preset('fast').with_overrides(iterations=5)\n"
        "result = compress_slice(image, config, ValueRange(0.0, 999.0, 'uint16'),\n"
        "                        region_size=32, region_margin=32, region_workers=2)\n"
        "print('regions', len(result.regions))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("top level ran") == 1
    assert "regions 4" in out.stdout


def test_compress_takes_the_region_workers(tmp_path, image):
    """compress(region_workers=) reaches the slices: the same file either way; bad ones refused."""
    from napari_sgi.encode.pipeline import compress

    options = dict(preset="fast", iterations=10, region_size=32, region_margin=32)
    one = compress(image, tmp_path / "one.sgi", region_workers=1, **options)
    two = compress(image, tmp_path / "two.sgi", region_workers=2, **options)
    assert one.path.read_bytes() == two.path.read_bytes()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="region_workers"):
            compress(image, tmp_path / "bad.sgi", region_workers=bad, **options)
    assert not (tmp_path / "bad.sgi").exists()


def test_the_cli_passes_region_workers(tmp_path, image):
    from napari_sgi.cli import main

    np.save(tmp_path / "image.npy", image)
    out = tmp_path / "cli.sgi"
    args = ["compress", str(tmp_path / "image.npy"), "-o", str(out), "--preset", "fast"]
    assert main([*args, "--iterations", "10", "--region-workers", "1", "--json"]) == 0
    assert out.exists()
    with pytest.raises(SystemExit):
        main([*args, "--region-workers", "0"])
