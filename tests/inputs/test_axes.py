"""Axis letters, tifffile axes and units."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sgi.inputs.axes import guess_axes, map_tifffile_axes, normalize_unit


def test_axis_helpers():
    assert map_tifffile_axes("QYX") == "ZYX" and map_tifffile_axes("ZQYX") == "ZTYX"
    assert map_tifffile_axes("TZCYXS") == "TZCYXS"
    with pytest.raises(ValueError, match="pass axes"):
        map_tifffile_axes("TZQYX")
    assert guess_axes((10, 10, 3), np.uint8) == "YXS"
    assert normalize_unit("µm") == normalize_unit("micron") == "micrometer"
    assert normalize_unit("pixel") is None
