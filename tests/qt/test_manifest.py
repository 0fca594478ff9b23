"""The manifest: contributions are registered, the reader declines other files, samples load."""

from __future__ import annotations

import numpy as np
import pytest
from npe2 import PluginManager

from napari_sgi._napari import (
    default_output_path,
    get_reader,
    guess_layer_axes,
    sample_brightfield,
    sample_fluorescence,
    sample_zstack,
)


@pytest.fixture(scope="module")
def manifest():
    pm = PluginManager.instance()
    pm.discover()
    return pm.get_manifest("napari-sgi")


def test_contributions(manifest):
    contrib = manifest.contributions
    commands = {c.id: c for c in contrib.commands}
    assert commands["napari-sgi.compress_active_layer"].title == "Compress with SGI"
    assert [w.display_name for w in contrib.widgets] == ["SGI compression"]
    menu = contrib.menus["napari/layers/data"]
    assert menu[0].command == "napari-sgi.compress_active_layer"
    assert menu[0].when == "active_layer_type == 'image'"
    assert contrib.readers[0].filename_patterns == ["*.sgi"]
    assert contrib.writers[0].layer_types == ["image"]
    assert contrib.writers[0].filename_extensions == [".sgi"]
    assert {s.key for s in contrib.sample_data} == {"brightfield", "fluorescence", "zstack"}
    manifest.validate_imports()  # what `npe2 validate napari-sgi --imports` checks


def test_reader_declines_what_it_cannot_read(tmp_path):
    from napari_sgi.file.format import MAGIC

    sgi = tmp_path / "a.sgi"
    sgi.write_bytes(MAGIC + bytes(32))
    other = tmp_path / "silicon_graphics.sgi"  # .sgi is also the old SGI raster image format
    other.write_bytes(b"\x01\xda" + bytes(32))
    assert get_reader(str(other)) is None
    assert get_reader(str(sgi)) is not None
    assert get_reader([str(sgi)]) is not None
    assert get_reader(str(tmp_path / "a.tif")) is None
    assert get_reader(str(tmp_path / "missing.sgi")) is None
    assert get_reader(str(tmp_path)) is None
    assert get_reader([str(sgi), str(sgi)]) is None
    assert get_reader(None) is None  # never raises


def test_samples():
    ((rgb, rgb_meta, _),) = sample_brightfield()
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8 and rgb_meta["rgb"]
    ((fluo, _, _),) = sample_fluorescence()
    assert fluo.shape == (512, 512) and fluo.dtype == np.uint16
    ((stack, stack_meta, _),) = sample_zstack()
    assert stack.shape == (16, 128, 128) and len(stack_meta["scale"]) == 3


def test_axes_and_default_path(tmp_path):
    assert guess_layer_axes(2, False) == "YX"
    assert guess_layer_axes(4, True) == "ZYXS"
    assert guess_layer_axes(5, False) == "TCZYX"

    class Source:
        path = str(tmp_path / "cells.ome.tif")

    class Layer:
        name = "cells"
        source = Source()

    assert default_output_path(Layer()) == tmp_path / "cells.sgi"
    Source.path = str(tmp_path / "cells.sgi")
    assert default_output_path(Layer()) == tmp_path / "cells_recompressed.sgi"


def test_layer_data_channels_and_rgb():
    from types import SimpleNamespace

    from napari_sgi._napari import sgi_layer_data

    channels = SimpleNamespace(
        levels=[np.zeros((2, 3, 16, 16), np.uint16)],
        axes="CZYX",
        rgb=False,
        scale=(1.0, 2.0, 0.5, 0.5),
        units=(None, "micrometer", "micrometer", "micrometer"),
        contrast_limits=((0, 10), (0, 20)),
        name="cells",
        metadata={"layout": {"channel_names": ["DAPI", "GFP"]}},
    )
    data, meta, kind = sgi_layer_data(channels, "cells.sgi")
    assert kind == "image" and meta["multiscale"] and len(data) == 1
    assert meta["channel_axis"] == 0 and meta["name"] == ["DAPI", "GFP"]
    assert meta["scale"] == (2.0, 0.5, 0.5) and meta["axis_labels"] == ["z", "y", "x"]
    assert meta["units"] == ("micrometer",) * 3
    assert meta["contrast_limits"] == [(0.0, 10.0), (0.0, 20.0)]

    rgb = SimpleNamespace(
        levels=[np.zeros((16, 16, 3), np.uint8)],
        axes="YXS",
        rgb=True,
        scale=(0.5, 0.5, 1.0),
        units=None,
        contrast_limits=(0, 255),
        name="he",
        metadata={},
    )
    _, meta, _ = sgi_layer_data(rgb)
    assert meta["rgb"] and meta["scale"] == (0.5, 0.5) and meta["contrast_limits"] == (0.0, 255.0)
    assert meta["axis_labels"] == ["y", "x"] and "channel_axis" not in meta
