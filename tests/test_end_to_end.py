"""End to end: compress to a file, read it back, resume, run distributed, warm-start."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from napari_sgi.encode.pipeline import compress
from napari_sgi.errors import FitCancelled, SGIFormatError
from napari_sgi.file.header import model_config_from_header
from napari_sgi.reader import SGIFile, open_sgi

TINY = dict(
    preset="fast", iterations=15, feature_dim=6, gaussians_per_seed=3, density=0.2, levels=2
)


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:40, 0:36]
    base = 2000 + 1500 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    return np.stack([base + z * 300 + rng.normal(0, 50, base.shape) for z in range(3)]).astype(
        np.uint16
    )


def test_file_decodes_to_what_the_encoder_measured(tmp_path, stack):
    from napari_sgi.core.image import ValueRange, to_tensor
    from napari_sgi.core.metrics import psnr

    out = tmp_path / "stack.sgi"
    result = compress(stack, out, **TINY)
    assert result.bytes == os.path.getsize(out)
    assert result.bpp == pytest.approx(8 * result.bytes / stack.size)
    image = open_sgi(out)
    decoded = image.levels[0].compute()
    assert decoded.dtype == stack.dtype and decoded.shape == stack.shape
    value_range = ValueRange(float(stack.min()), float(stack.max()), "uint16")
    for z in range(3):
        measured = psnr(to_tensor(decoded[z], value_range), to_tensor(stack[z], value_range))
        assert measured == result.slice_psnr[z]  # exact: the same pixels
    assert image.metadata["quality"]["psnr"] == pytest.approx(result.psnr, abs=1e-4)


def test_decode_in_another_process_with_another_thread_count(tmp_path, stack):
    out = tmp_path / "a.sgi"
    compress(stack[:1], out, **TINY)
    here = open_sgi(out).levels[0].compute()
    script = (
        "import sys, numpy as np, torch; torch.set_num_threads(1);"
        "from napari_sgi import open_sgi;"
        "np.save(sys.argv[2], open_sgi(sys.argv[1]).levels[0].compute())"
    )
    subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "b.npy")], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), here)


def test_lazy_levels_have_the_right_shapes_and_match_a_direct_render(tmp_path, stack, monkeypatch):
    import napari_sgi.reader as reader

    out = tmp_path / "levels.sgi"
    compress(stack, out, **TINY)
    monkeypatch.setattr(reader, "CHUNK", 16)  # several chunks per slice, tile-aligned
    file = SGIFile(out)
    levels = file.levels(n_levels=3)
    assert [lv.shape for lv in levels] == [(3, 40, 36), (3, 20, 18), (3, 10, 9)]
    assert levels[0].chunks[1] == (16, 16, 8)
    for level in range(3):
        whole = np.stack([file.render_slice(z, level) for z in range(3)])
        np.testing.assert_array_equal(levels[level].compute(), whole)


def test_cancel_leaves_no_file(tmp_path, stack):
    out = tmp_path / "cancelled.sgi"
    with pytest.raises(FitCancelled):
        compress(stack, out, cancel=lambda: True, **TINY)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_resumes_to_the_same_file(tmp_path, stack):
    reference = tmp_path / "reference.sgi"
    compress(stack, reference, **TINY)
    out = tmp_path / "resumed.sgi"

    def interrupt(event):
        if event.slice_index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compress(stack, out, progress=interrupt, **TINY)
    assert not out.exists()
    parts = sorted(p.name for p in (tmp_path / "resumed.sgi.parts").glob("slice-*.part"))
    assert len(parts) == 2
    fitted = []
    compress(stack, out, progress=lambda e: fitted.append(e.slice_index), **TINY)
    assert set(fitted) == {2}  # only the missing slice was fitted again
    assert out.read_bytes() == reference.read_bytes()
    assert not (tmp_path / "resumed.sgi.parts").exists()


def test_kill_during_compress_then_resume(tmp_path, stack):
    np.save(tmp_path / "stack.npy", stack)
    out = tmp_path / "killed.sgi"
    command = [
        sys.executable,
        "-m",
        "napari_sgi.cli",
        "compress",
        str(tmp_path / "stack.npy"),
        "-o",
        str(out),
        "--preset",
        "fast",
        "--iterations",
        "120",
        "--levels",
        "2",
        "--density",
        "0.2",
        "--k",
        "3",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed.sgi.parts"
    deadline = time.time() + 120
    while time.time() < deadline and not list(parts.glob("slice-*.part")):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(parts.glob("slice-*.part")), "no slice finished before the deadline"
    assert not out.exists()
    finished = subprocess.run(command + ["--json"], capture_output=True, text=True, check=True)
    assert out.exists() and not parts.exists()
    reference = tmp_path / "reference.sgi"
    subprocess.run(
        command[:6] + [str(reference)] + command[7:], check=True, stdout=subprocess.DEVNULL
    )
    assert out.read_bytes() == reference.read_bytes()
    assert '"bytes"' in finished.stdout


def test_distributed_run_writes_the_same_file(tmp_path, stack, monkeypatch):
    import napari_sgi.encode.scheduling as scheduling
    from napari_sgi.encode.cluster import local_client

    local = tmp_path / "local.sgi"
    compress(stack, local, **TINY)
    with local_client(2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        # The helper's workers run without distributed's statistical profiler.
        assert set(client.run(_worker_profiler_enabled).values()) == {False}
        remote = tmp_path / "remote.sgi"
        reports = []
        result = compress(stack, remote, client=client, progress=reports.append, **TINY)
        # Sources that hold their pixels in memory send each task its slice, not the stack.
        monkeypatch.setattr(scheduling, "_SMALL_TASK_BYTES", 0)
        sliced = tmp_path / "sliced.sgi"
        compress(stack, sliced, client=client, **TINY)
    assert result.n_slices == 3 and len(reports) == 3
    assert remote.read_bytes() == local.read_bytes() == sliced.read_bytes()


def _worker_profiler_enabled() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def test_absurd_model_configuration_is_refused():
    good = dict(
        height=10,
        width=10,
        channels=1,
        feature_dim=4,
        gaussians_per_seed=2,
        seed_count=5,
        rng_seed=0,
        levels=2,
        grid_levels=6,
        grid_features=4,
        grid_log2_table=13,
    )
    assert model_config_from_header(good).seed_count == 5
    for field, value in [
        ("seed_count", 10**12),
        ("height", -4),
        ("feature_dim", "50"),
        ("channels", 10**6),
    ]:
        with pytest.raises(SGIFormatError, match=field):
            model_config_from_header({**good, field: value})
    with pytest.raises(SGIFormatError):
        model_config_from_header({**good, "surprise": 1})


@pytest.fixture(scope="module")
def mirrored_nuclei(nuclei_crop) -> np.ndarray:
    """128x128: the crop and its mirror images, so that 64-pixel regions see different data."""
    crop = nuclei_crop
    return np.ascontiguousarray(np.block([[crop, crop[:, ::-1]], [crop[::-1], crop[::-1, ::-1]]]))


def _seam(decoded: np.ndarray, original: np.ndarray) -> tuple[float, float]:
    """Jump across the region borders (row and column 64) and squared error in an 8-pixel band."""
    decoded = decoded.astype(np.float64)
    jump = np.abs(decoded[64] - decoded[63]).mean() + np.abs(decoded[:, 64] - decoded[:, 63]).mean()
    band = np.zeros(original.shape, bool)
    band[60:68] = band[:, 60:68] = True
    return float(jump), float(np.mean((decoded[band] - original[band]) ** 2))


def test_region_wise_slice_decodes_exactly_and_blends_its_seams(
    tmp_path, mirrored_nuclei, monkeypatch
):
    from napari_sgi import reader
    from napari_sgi.core.image import ValueRange, to_tensor
    from napari_sgi.core.metrics import psnr

    image = mirrored_nuclei
    out = tmp_path / "regions.sgi"
    options = {**TINY, "iterations": 40, "density": 0.3}
    result = compress(image, out, region_size=64, region_margin=32, **options)
    opened = open_sgi(out)
    entry = opened.metadata["slices"][0]
    assert len(entry["regions"]) == 4 and entry["blend"] == 32
    decoded = opened.levels[0].compute()
    value_range = ValueRange(float(image.min()), float(image.max()), "uint16")
    decoded_t, original_t = to_tensor(decoded, value_range), to_tensor(image, value_range)
    assert psnr(decoded_t, original_t) == result.psnr  # exact: what the encoder blended
    # Any window reads the same pixels, decoded on one thread or several.
    monkeypatch.setattr(reader, "DECODE_THREADS", 1)
    serial = SGIFile(out)
    for y0, y1, x0, x1 in [(0, 128, 0, 128), (50, 70, 10, 128), (63, 65, 0, 64), (0, 40, 90, 91)]:
        assert np.array_equal(serial.render_region(0, 0, y0, y1, x0, x1), decoded[y0:y1, x0:x1])
    # The same models cut at the core borders (as files before blending were): a visible step.
    cut = SGIFile(out)
    cut.slices[0].blend = 0
    jump_cut, band_cut = _seam(cut.render_slice(0), image)
    jump_blend, band_blend = _seam(decoded, image)
    assert jump_blend < 0.7 * jump_cut and band_blend < band_cut
    # Coarser levels blend the region renders too.
    assert opened.file.levels(n_levels=2)[1].compute().shape == (64, 64)


def test_warm_start_uses_the_previous_slice_and_resumes_identically(tmp_path, stack):
    options = {**TINY, "iterations": 30}
    reference = tmp_path / "warm.sgi"
    reports = []
    compress(stack, reference, warm_start=True, progress=reports.append, **options)
    # The first slice runs the full schedule, the others 40% of it at full resolution.
    assert reports[-1].total == 30 + 2 * 12 and reports[-1].done == reports[-1].total
    out = tmp_path / "warm-resumed.sgi"

    def interrupt(event):
        if event.slice_index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compress(stack, out, warm_start=True, progress=interrupt, **options)
    compress(stack, out, warm_start=True, **options)
    assert out.read_bytes() == reference.read_bytes()
    with pytest.raises(ValueError, match="warm"):
        compress(stack, tmp_path / "x.sgi", warm_start=True, client=object(), **options)
