"""The rate-distortion plot dock: the picture the comparison worker drew, and Save as PNG.

matplotlib draws on the worker (:func:`napari_sgi.compare.plot.rd_png`); the GUI thread only shows
the PNG, so a redraw never stalls napari. Nothing is written unless the user saves it.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QEvent, Qt, Signal
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

DOCK_NAME = "SGI rate–distortion"


class RDPlot(QWidget):
    """A plot of the current slice's rate-distortion curves, with a Save as PNG… button."""

    #: its dock was closed (napari takes the widget out of the dock: its parent becomes None)
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.png: bytes = b""
        self._pixmap: QPixmap | None = None
        self.picture = QLabel("The plot appears when a comparison is done.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(260, 180)
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.save_button = QPushButton("Save as PNG…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._ask_and_save)
        self.caption.setMaximumWidth(220)
        side = QVBoxLayout()
        side.addWidget(self.caption)
        side.addStretch(1)
        side.addWidget(self.save_button)
        layout = QHBoxLayout(self)
        layout.addWidget(self.picture, 1)
        layout.addLayout(side)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.closed.emit()
        return super().event(event)

    def show_png(self, png: bytes, caption: str = "") -> None:
        pixmap = QPixmap()
        pixmap.loadFromData(png, "PNG")
        self.png, self._pixmap = png, pixmap
        self._fit()
        self.caption.setText(caption)
        self.save_button.setEnabled(True)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        """Show the picture as large as the dock allows, its proportions kept."""
        if self._pixmap is None:
            return
        size = self.picture.size()
        self.picture.setPixmap(
            self._pixmap.scaled(
                size,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

    def save_png(self, path: str | Path) -> Path:
        """Write the plot shown to ``path`` (``.png`` added when missing)."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        path.write_bytes(self.png)
        return path

    def _ask_and_save(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Save the rate–distortion plot", str(Path.home() / "rd.png"), "PNG (*.png)"
        )
        if name:
            self.save_png(name)
