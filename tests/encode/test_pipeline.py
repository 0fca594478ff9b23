"""compress() refuses what it cannot do before any fitting, and leaves nothing behind."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_sgi.encode import pipeline
from napari_sgi.encode.pipeline import compress

TINY = dict(preset="fast", iterations=4, feature_dim=4, gaussians_per_seed=2, density=0.2, levels=1)
IMAGE = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)


@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if a slice is fitted."""

    def refuse(*args, **kwargs):
        raise AssertionError("a slice was fitted")

    monkeypatch.setattr(pipeline, "run_local", refuse)


@pytest.mark.parametrize("shape", [(1, 1), (1, 30), (30, 1), (2, 3, 30)])
def test_an_image_too_small_leaves_no_parts_folder(tmp_path, shape, no_fitting):
    with pytest.raises(ValueError, match="the image is too small"):
        compress(np.ones(shape, np.uint16), tmp_path / "small.sgi", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_bad_output_paths_are_refused_before_any_fitting(tmp_path, no_fitting):
    with pytest.raises(ValueError, match=".sgi"):
        compress(IMAGE, tmp_path / "out.tif", **TINY)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        compress(IMAGE, tmp_path / "missing" / "out.sgi", **TINY)
    (tmp_path / "folder.sgi").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        compress(IMAGE, tmp_path / "folder.sgi", **TINY)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        compress(IMAGE, tmp_path / "file" / "out.sgi", **TINY)
    (tmp_path / "taken.sgi.parts").write_text("")
    with pytest.raises(FileExistsError, match="not a resume folder"):
        compress(IMAGE, tmp_path / "taken.sgi", **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.sgi", "taken.sgi.parts"]


@pytest.mark.skipif(sys.platform != "linux", reason="needs a folder no one can write in")
def test_a_folder_that_cannot_be_written_is_refused_before_any_fitting(tmp_path, no_fitting):
    folder = Path("/sys")  # sysfs: no one creates files there, root included
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="cannot write in the output folder"):
        compress(IMAGE, folder / "out.sgi", **TINY)
    assert not (folder / "out.sgi.parts").exists()


def test_a_failure_before_any_slice_is_finished_leaves_no_parts_folder(tmp_path, monkeypatch):
    def broken(job, todo):
        raise RuntimeError("the device went away")

    monkeypatch.setattr(pipeline, "run_local", broken)
    with pytest.raises(RuntimeError, match="went away"):
        compress(IMAGE, tmp_path / "a.sgi", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_compress_has_a_real_signature():
    import inspect

    parameters = inspect.signature(compress).parameters
    assert list(parameters)[:2] == ["data", "path"]
    assert parameters["region_size"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["region_size"].annotation == "int"


def test_settings_whose_models_readers_refuse_fail_before_any_work(tmp_path):
    path = tmp_path / "dense.sgi"
    with pytest.raises(ValueError, match="readers refuse"):
        compress(np.full((64, 64), 5, np.uint8), path, density=2.0, iterations=5)
    assert list(tmp_path.iterdir()) == []


def test_the_slices_of_a_stack_share_the_file_overhead(tmp_path, monkeypatch):
    from napari_sgi.encode.targeting import FILE_OVERHEAD_BYTES

    seen = []

    def stop(job, todo):
        seen.append(job.config)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline, "run_local", stop)
    stack = np.zeros((8, 64, 64), np.uint8)
    options = {k: v for k, v in TINY.items() if k != "density"}
    with pytest.raises(RuntimeError, match="stop here"):
        compress(stack, tmp_path / "out.sgi", axes="ZYX", bpp=2.0, **options)
    # The file's own bytes come off the target once, over all 8 slices' pixels (a slice of a
    # stack used to pay them all, and the stack landed 10 % under a 0.1 bpp target).
    (config,) = seen
    assert config.target_bpp == pytest.approx(2.0 - 8 * FILE_OVERHEAD_BYTES / (8 * 64 * 64))
