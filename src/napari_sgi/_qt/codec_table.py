"""The comparison table: bytes, bits per pixel, PSNR and SSIM of each codec for one slice.

A plain ``QTableWidget`` (magicgui's table turns number-like text back into floats shown with four
decimals); the best PSNR and the best SSIM are marked ★ and bold, among the codecs within the
budget.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QSizePolicy, QTableWidget
from qtpy.QtWidgets import QTableWidgetItem as Item

from napari_sgi.compare.slices import SliceComparison

BEST = " ★"
COLUMNS = ("bytes", "bpp", "PSNR (dB)", "SSIM", "setting")


def table_rows(comparison: SliceComparison, codecs: list[str]) -> dict[str, list[str]]:
    """The rows shown, by codec (SGI first, then those of ``codecs`` that were compared)."""
    shown = {
        name: result
        for name, result in comparison.results.items()
        if name in codecs or result.key == "sgi"
    }
    subset = SliceComparison(comparison.index, comparison.budget, comparison.shape, shown)
    best_psnr, best_ssim = subset.best("psnr"), subset.best("ssim")
    return {
        name: [
            f"{r.bytes:,}",
            f"{r.bpp:.3f}",
            f"{r.psnr:.2f}" + (BEST if name == best_psnr else ""),
            f"{r.ssim:.4f}" + (BEST if name == best_ssim else ""),
            (r.setting or "—") if r.fits else f"{r.setting} (smallest, over budget)",
        ]
        for name, r in shown.items()
    }


class CodecTable(QTableWidget):
    """One row per codec, sized to show every row without scrolling."""

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.rows: dict[str, list[str]] = {}

    def show_rows(self, rows: dict[str, list[str]]) -> None:
        self.rows = rows
        self.setRowCount(len(rows))
        self.setVerticalHeaderLabels(list(rows))
        for r, cells in enumerate(rows.values()):
            for c, text in enumerate(cells):
                item = Item(text)
                align = (
                    Qt.AlignmentFlag.AlignLeft
                    if c == len(cells) - 1
                    else Qt.AlignmentFlag.AlignRight
                )
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                if text.endswith(BEST):
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(r, c, item)
        height = self.horizontalHeader().height() + 2 * self.frameWidth()
        height += sum(self.rowHeight(r) for r in range(len(rows)))
        if self.horizontalScrollBar().isVisible():
            height += self.horizontalScrollBar().height()
        self.setFixedHeight(height)
