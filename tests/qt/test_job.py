"""The compression job without a GUI: coalesced progress, result, cancel, errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sgi._qt.job import CompressJob, estimate_work


def test_fast_steps_are_coalesced(fake_api, tmp_path):
    job = CompressJob(
        fake_api.compress,
        np.zeros((8, 8), np.uint16),
        str(tmp_path / "a.sgi"),
        {"iterations": 500},
        open_fn=fake_api.open_sgi,
        prefetch_index=(),
    )
    gen = job.steps(min_interval=0.05)
    events = []
    with pytest.raises(StopIteration) as stop:
        while True:
            events.append(next(gen))
    result, opened = stop.value.value
    assert 1 <= len(events) < 500 and events[-1].done == events[-1].total == 500
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert result.path.exists() and opened.levels[0].shape == (8, 8)
    assert not job.running and not job.was_cancelled


def test_slow_steps_are_yielded_one_by_one(fake_api, tmp_path):
    fake_api.step_seconds = 0.02
    job = CompressJob(
        fake_api.compress, np.zeros((8, 8), np.uint16), str(tmp_path / "a.sgi"), {"iterations": 5}
    )
    assert [e.done for e in job.steps(min_interval=0.005)] == [1, 2, 3, 4, 5]


def test_cancel_and_errors(fake_api, tmp_path):
    job = CompressJob(
        fake_api.compress, np.zeros((8, 8), np.uint16), str(tmp_path / "a.sgi"), {"iterations": 100}
    )
    job.stop.set()
    assert list(job.steps()) == [] and job.was_cancelled and not list(tmp_path.iterdir())

    def broken(*args, **kwargs):
        raise ValueError("bad axes")

    job = CompressJob(broken, np.zeros((8, 8)), str(tmp_path / "b.sgi"), {})
    with pytest.raises(ValueError, match="bad axes"):
        list(job.steps())


def test_estimate():
    work = estimate_work(
        (3, 512, 512, 3),
        "ZYXS",
        {"preset": "fast", "iterations": 100, "gaussians_per_seed": 8, "density": 0.07},
    )
    assert (work.slices, work.total_steps, work.seeds, work.gaussians) == (3, 300, 2294, 18352)
    assert "3 slices × 100 steps = 300 steps" in work.describe()


def test_estimate_counts_every_region_of_a_large_slice():
    work = estimate_work((2048, 2048), "YX", {"preset": "fast", "iterations": 100})
    assert (work.slices, work.regions, work.total_steps) == (1, 4, 400)
    assert "1 slice × 400 steps (4 regions × 100) = 400 steps" in work.describe()
    smaller = estimate_work((2048, 2048), "YX", {"iterations": 100, "region_size": 2048})
    assert smaller.regions == 1 and smaller.total_steps == 100
