"""Fixtures for the napari plugin tests (real viewer under Xvfb through pytest-xvfb).

``fake_api`` stands in for ``napari_sgi.compress``/``open_sgi`` with the API contract's signature
and behaviour (progress per step, cancel → ``FitCancelled`` and no file), so that the GUI plumbing
is tested in milliseconds. It reports with the real ``CompressProgress`` and ``CompressResult``
so that it cannot drift from what the widget gets from the real API.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from napari_sgi import CompressProgress, CompressResult, api


@pytest.fixture
def real_api():
    return api


@pytest.fixture
def tiny_image() -> np.ndarray:
    """32x32 uint16 with structure (a blob on a ramp) so that a short fit has something to fit."""
    y, x = np.mgrid[:32, :32]
    blob = 3000 * np.exp(-((y - 14) ** 2 + (x - 18) ** 2) / 40)
    return (200 + 20 * x + blob).astype(np.uint16)


@dataclass
class FakeSGI:
    levels: list
    axes: str
    scale: tuple | None
    rgb: bool
    contrast_limits: tuple
    name: str
    metadata: dict


class FakeAPI:
    """Records each compress call; ``step_seconds`` slows it down for cancel tests."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.step_seconds = 0.0
        self.started = threading.Event()

    def compress(self, data, path, *, progress=None, cancel=None, **kwargs):
        from napari_sgi import FitCancelled

        self.calls.append(dict(kwargs, path=path))
        axes = kwargs.get("axes") or "YX"
        n_slices = int(
            np.prod([n for n, a in zip(data.shape, axes, strict=True) if a not in "YXS"], dtype=int)
        )
        steps = kwargs.get("iterations") or 10
        total = n_slices * steps
        partial = Path(str(path) + ".partial")
        partial.write_bytes(b"in progress")  # what a real writer may leave behind if careless
        self.started.set()
        try:
            for done in range(1, total + 1):
                if cancel is not None and (
                    cancel.is_set() if hasattr(cancel, "is_set") else cancel()
                ):
                    raise FitCancelled("cancelled")
                if progress is not None:
                    progress(CompressProgress(done, total, (done - 1) // steps, n_slices, 20.0))
                time.sleep(self.step_seconds)
        except BaseException:
            partial.unlink()
            raise
        array = np.asarray(data)
        np.save(partial.with_suffix(".npy"), array)
        os.replace(partial.with_suffix(".npy"), path)
        partial.unlink()
        return CompressResult(
            path=Path(path),
            bytes=os.path.getsize(path),
            bpp=1.0,
            compression_ratio=16.0,
            psnr=40.0,
            ssim=0.99,
            slice_psnr=[40.0 + i for i in range(n_slices)],
            slice_ssim=[0.99] * n_slices,
            seconds=0.1,
            n_slices=n_slices,
            gaussians=0,
        )

    def open_sgi(self, path):
        with open(path, "rb") as f:
            data = np.load(f)
        levels = [data, data[..., ::2, ::2]]
        return FakeSGI(
            levels,
            "YX",
            None,
            False,
            (float(data.min()), float(data.max())),
            Path(path).stem,
            {"fake": True},
        )


@pytest.fixture
def fake_api(monkeypatch) -> FakeAPI:
    fake = FakeAPI()
    monkeypatch.setattr(api, "compress", fake.compress, raising=False)
    monkeypatch.setattr(api, "open_sgi", fake.open_sgi, raising=False)
    return fake


@pytest.fixture
def sgi_widget(make_napari_viewer):
    """A shown viewer with the plugin's dock widget, opened the way users open it."""
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sgi", "SGI compression")
    return viewer, widget


@pytest.fixture
def wait_idle(qtbot):
    """Wait until the widget's worker and its compress thread have both ended."""

    def wait(widget, timeout: int = 20_000) -> None:
        qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)

    return wait
