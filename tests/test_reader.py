"""The reader's parallel decode of the regions a chunk needs."""

import threading

import numpy as np
import torch

from napari_sgi import reader
from napari_sgi.encode.pipeline import compress


def _thread_count_of_a_new_thread() -> int:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_regions_decoded_side_by_side_read_as_decoded_one_by_one(
    tmp_path, nuclei_crop, monkeypatch
):
    """A chunk that needs every region is the same decoded on several threads or one, and the
    decode threads' one-thread torch setting does not leak to this thread or to later threads."""
    image = np.tile(nuclei_crop, (2, 2))
    out = tmp_path / "regions.sgi"
    compress(
        image,
        out,
        preset="fast",
        iterations=6,
        feature_dim=6,
        gaussians_per_seed=3,
        density=0.2,
        levels=2,
        region_size=64,
        region_margin=32,
    )
    torch.set_num_threads(2)
    monkeypatch.setattr(reader, "DECODE_THREADS", 4)
    several = reader.SGIFile(out)
    coarse = several.render_slice(0, level=1)
    assert torch.get_num_threads() == 2 and _thread_count_of_a_new_thread() == 2
    monkeypatch.setattr(reader, "DECODE_THREADS", 1)
    one = reader.SGIFile(out)
    assert np.array_equal(one.render_slice(0, level=1), coarse)
    assert np.array_equal(one.render_slice(0), several.render_slice(0))
