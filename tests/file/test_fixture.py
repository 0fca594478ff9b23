"""Files written by napari-sgi keep decoding to the same pixels.

``tests/data/fixture_v4*.sgi`` were written once, by the writer of format version 4, with
:func:`write_fixtures` below (not run by the tests: run this module as a script to see how they
were made, never to replace them). The tests only read the committed files and compare every
slice at every level with SHA-256 digests of its pixels pinned here. A change that makes an
existing file decode differently (container, header, symbol streams, weights, model, rasterizer,
blending) fails here; that needs a new format version, not new digests.

- ``fixture_v4.sgi``: a 2-slice uint16 z-stack (Z, Y, X) = (2, 64, 96), ``fast`` preset (hash grid
  and context MLP), two regions per slice (size 64, margin 32) blended across the core border.
- ``fixture_v4_rgb.sgi``: one 64x96 RGB uint8 slice, ``compact`` preset (no hash grid: the context
  is one learned prior), refinement, two regions.

Both hold their weights in int8 rows (``SGW9``). ``fixture_v4_coded.sgi``, written later by
:func:`write_coded_fixture`, holds coded weights (``SGWA``): one 64x64 uint16 slice, ``default``
preset (adaptive seeds, soft rounding, refinement), one region. ``fixture_v4_gated.sgi``, written
by :func:`write_gated_fixture`, draws with the gated blend (a model's ``blend`` = 1, the blend
head's weights, trained away from zero, in its coded weights section): one 64x96 RGB uint8 slice,
``default`` preset, two regions blended across the core border.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent.parent / "data"
LEVELS = 3  # the fits' pyramid levels: 64x96, 32x48, 16x24

# name -> (axes, shape, dtype, {(slice, level): SHA-256 of the rendered slice's C-order bytes})
PINNED = {
    "fixture_v4.sgi": (
        "ZYX",
        (2, 64, 96),
        "uint16",
        {
            (0, 0): "ae91b2a95bfb7e751d9f8bc85ba72bda4b6f5773825c2f29daed053b25f9803f",
            (1, 0): "39fea7beb9a72500754f0d4ae344fd84654379e9bad81eaf4fbbf4bfe066c423",
            (0, 1): "79a315d6bf16f5b28d3da1105f3133a57d92204237ee9f5a560b9ee25ae7b1f6",
            (1, 1): "1ee843cddf2770812a44fbcde20b951f996ac8c5413526fa4221dce8bcf7883e",
            (0, 2): "e044e980bfed192ca52b9c85fcfaf46cd1da988ef21c865e86b58bc872530ebc",
            (1, 2): "fc94aac87a88781fb024ce0d575f0e18c8b606beb609ac3e370b1657645a94d5",
        },
    ),
    "fixture_v4_rgb.sgi": (
        "YXS",
        (64, 96, 3),
        "uint8",
        {
            (0, 0): "dc3e824fb7ca126cd4033499bd74c85c9d96a2bbd92689ba9542d84f327d7167",
            (0, 1): "3302f9b9d95446e75000517618f4db86ab1850bc0ecab83ea476ec21268217bf",
            (0, 2): "4f144cff07fe679ee6c5f44fe0db1347d189f044da13671cd04dd49d97a8382e",
        },
    ),
    "fixture_v4_coded.sgi": (
        "YX",
        (64, 64),
        "uint16",
        {
            (0, 0): "f978ef1fd53957e57fc7231bf33324e4e6ef860322fe91e840322b1745b829a7",
            (0, 1): "21c0f51c3189c47d1a84c8f555038a1ad4f7a1408fd409b6a0558d4f2af0dcfc",
            (0, 2): "15f3511141a52adbd2555b8d9d7472a377b93d811e4516d9613a8663fd787531",
        },
    ),
    "fixture_v4_gated.sgi": (
        "YXS",
        (64, 96, 3),
        "uint8",
        {
            (0, 0): "ad8d8a9a5c0283cd0752eb02f0409d0be6f7e523f04441e00606a85a89a26ff6",
            (0, 1): "490a8708b055e843cc48cf675c95607ef06920669e33bac18816b785195d04e0",
            (0, 2): "4f90beaeccd9e10d1952eee4caf185fd3aed1858c0942dcd4fd5527cf9519f67",
        },
    ),
}


def write_fixtures(directory: Path = DATA) -> None:
    """How the fixtures were written (napari-sgi 0.1.0, format version 4). Not run by the tests."""
    import tifffile
    from PIL import Image

    from napari_sgi.encode.pipeline import compress

    stack = tifffile.imread(DATA / "nuclei_zstack_crop.tif")[:2]  # (3, 48, 48) uint16
    stack = np.ascontiguousarray(np.tile(stack, (1, 2, 2))[:, :64, :96])
    compress(
        stack,
        directory / "fixture_v4.sgi",
        preset="fast",
        axes="ZYX",
        iterations=40,
        feature_dim=4,
        gaussians_per_seed=4,
        density=0.05,
        levels=3,
        grid_levels=2,
        region_size=64,
        region_margin=32,
        resume=False,
    )
    with Image.open(DATA / "ihc_crop64.png") as image:
        rgb = np.asarray(image)  # (64, 64, 3) uint8
    rgb = np.ascontiguousarray(np.concatenate([rgb, rgb[:, :32]], axis=1))
    compress(
        rgb,
        directory / "fixture_v4_rgb.sgi",
        preset="compact",
        iterations=50,
        gaussians_per_seed=4,
        density=0.03,
        levels=3,
        region_size=64,
        region_margin=32,
        resume=False,
    )


def write_coded_fixture(directory: Path = DATA) -> None:
    """How ``fixture_v4_coded.sgi`` was written (napari-sgi 0.1.0, weights layout ``SGWA``)."""
    import tifffile

    from napari_sgi.encode.pipeline import compress

    nuclei = tifffile.imread(DATA / "nuclei_crop64.tif")  # (64, 64) uint16
    compress(
        nuclei,
        directory / "fixture_v4_coded.sgi",
        preset="default",
        iterations=60,
        density=0.05,
        levels=3,
        resume=False,
    )


def write_gated_fixture(directory: Path = DATA) -> None:
    """How ``fixture_v4_gated.sgi`` was written (napari-sgi 0.1.0, the gated blend), before the
    encoder kept the head to regions where it is a small part of the values
    (``model.MAX_HEAD_SHARE``, lifted here)."""
    from PIL import Image

    from napari_sgi.core import model
    from napari_sgi.encode.pipeline import compress

    model.MAX_HEAD_SHARE = 1.0

    with Image.open(DATA / "ihc_crop64.png") as image:
        rgb = np.asarray(image)  # (64, 64, 3) uint8
    rgb = np.ascontiguousarray(np.concatenate([rgb[:, 32:], rgb], axis=1))
    compress(
        rgb,
        directory / "fixture_v4_gated.sgi",
        preset="default",
        iterations=60,
        density=0.05,
        levels=3,
        region_size=64,
        region_margin=32,
        resume=False,
    )


def digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def rendered(name: str) -> dict[tuple[int, int], np.ndarray]:
    from napari_sgi.reader import open_sgi

    image = open_sgi(DATA / name, n_levels=LEVELS)
    try:
        out = {}
        for level, array in enumerate(image.levels):
            stack = np.asarray(array)
            lead = stack.shape[: len(image.file.lead_shape)]
            for index, position in enumerate(np.ndindex(*lead)):
                out[index, level] = stack[position]
        return out
    finally:
        image.file.close()


WEIGHTS_LAYOUT = {
    "fixture_v4.sgi": b"SGW9",
    "fixture_v4_rgb.sgi": b"SGW9",
    "fixture_v4_coded.sgi": b"SGWA",
    "fixture_v4_gated.sgi": b"SGWA",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_each_weights_layout_has_a_committed_file(name):
    from napari_sgi.file.container import SGIReader

    with SGIReader(DATA / name) as reader:
        layouts = {
            reader.read_section(section)[:4]
            for section in reader.section_names
            if section.endswith("/weights")
        }
    assert layouts == {WEIGHTS_LAYOUT[name]}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_committed_file_decodes_to_pinned_pixels(name):
    axes, shape, dtype, digests = PINNED[name]
    from napari_sgi.reader import open_sgi

    image = open_sgi(DATA / name, n_levels=LEVELS)
    image.file.close()
    assert (DATA / name).read_bytes()[8:12] == (4).to_bytes(4, "little")  # format version 4
    models = [r["model"] for s in image.metadata["slices"] for r in s["regions"]]
    assert {model["levels"] for model in models} == {LEVELS}
    assert (image.axes, image.data.shape, image.data.dtype) == (axes, shape, np.dtype(dtype))
    got = {key: digest(pixels) for key, pixels in rendered(name).items()}
    assert got == digests


if __name__ == "__main__":  # print the digests of the committed files (after write_fixtures())
    for name in sorted(PINNED):
        for key, pixels in rendered(name).items():
            print(name, key, pixels.shape, pixels.dtype, digest(pixels))
