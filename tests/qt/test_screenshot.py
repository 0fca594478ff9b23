"""A real screenshot of the viewer with the widget is not blank (needs Xvfb, not offscreen)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_sgi._napari import sample_fluorescence


def test_screenshot_not_blank(sgi_widget, qtbot):
    viewer, widget = sgi_widget
    ((data, meta, _),) = sample_fluorescence()
    viewer.add_image(data, **meta)
    widget.set_layer(viewer.layers[0])
    for _ in range(5):
        QApplication.processEvents()
    qtbot.wait(100)
    window = viewer.screenshot(canvas_only=False, flash=False)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    grey = window[..., :3].mean(axis=-1)
    assert window.shape[0] > 300 and window.shape[1] > 500
    assert grey.std() > 10  # widgets, text and the image, not one flat colour
    assert len(np.unique(grey.astype(np.uint8))) > 50
    # The canvas really drew the nuclei (an offscreen platform would give a black canvas).
    canvas_grey = canvas[..., :3].mean(axis=-1)
    assert canvas_grey.max() > 100 and canvas_grey.std() > 5
    assert widget.native.isVisible()
