"""The classic codecs' decoded slices as napari layers beside the original and the SGI layer.

GUI thread only. A 2D image's layer holds its decoded array. A stack's layer holds a
:class:`CachedStack`: an array-like as large as the stack whose slices are the decoded ones
compared so far (zeros elsewhere, until the slider reaches them), so that nothing is decoded or
allocated for slices nobody looks at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from napari_sgi._qt.compare import release_grid
from napari_sgi._qt.layer_steps import (
    STEP_INTERVAL_MS,
    drop_controls,
    insert_quietly,
    make_controls,
    step_timer,
)
from napari_sgi.compare.slices import SliceComparison


def layer_name(original: Any, codec: str) -> str:
    """``nuclei [JPEG 2000, same size]``."""
    return f"{original.name} [{codec}, same size]"


class CachedStack:
    """Array-like ``(stack axes..., Y, X[, C])`` of one codec's decoded slices, by slice index."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, lead_shape: tuple[int, ...]) -> None:
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.ndim, self.lead_shape = len(self.shape), tuple(lead_shape)
        self.slices: dict[int, np.ndarray] = {}

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        n_lead = len(self.lead_shape)
        lead = [
            range(n)[k] if isinstance(k, slice) else [range(n)[int(k)]]
            for k, n in zip(key[:n_lead], self.lead_shape, strict=True)
        ]
        plane_shape = self.shape[n_lead:]
        out = np.zeros((*[len(r) for r in lead], *plane_shape), self.dtype)
        for position in np.ndindex(*[len(r) for r in lead]):
            index = np.ravel_multi_index(
                tuple(r[p] for r, p in zip(lead, position, strict=True)), self.lead_shape
            )
            plane = self.slices.get(int(index))
            if plane is not None:
                out[position] = plane
        squeeze = tuple(0 if not isinstance(k, slice) else slice(None) for k in key[:n_lead])
        return out[squeeze + tuple(key[n_lead:])]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[(slice(None),) * self.ndim]
        return array if dtype is None else array.astype(dtype)


class CodecLayers:
    """One layer per codec for one original layer; filled slice by slice as results arrive.

    napari adds a layer on the GUI thread in one go (its visual, its controls, the grid laid out
    again when the grid gets another cell), then draws it: 0.1-0.4 s on a small CPU under a
    software-rendered display. So each new layer comes in three steps, one per turn of the
    event loop, ``STEP_INTERVAL_MS`` apart, with the canvas drawing in between
    (:mod:`napari_sgi._qt.layer_steps`): its controls built; the layer inserted at its place,
    hidden (a hidden layer takes no grid cell: nothing is laid out) and not selected; the layer
    shown (its grid cell, its first drawing). The cells were reserved when the decoded layer was
    added (``reserved``, see :func:`napari_sgi._qt.compare.reserve_grid`), so showing it lays
    nothing out again; the reservation ends once the layers are shown. Results that arrive for a
    layer still on its way are kept and given to it.
    """

    def __init__(
        self,
        viewer: Any,
        original: Any,
        anchors: list[Any],
        shape: tuple[int, ...],
        lead_shape: tuple[int, ...],
        rgb: bool,
        parent: Any = None,
        reserved: tuple[int, int] | None = None,
    ) -> None:
        #: the layers to follow in the grid (the SGI layer, its difference): the last still there
        self.viewer, self.original, self.anchors = viewer, original, list(anchors)
        self.shape, self.lead_shape, self.rgb = tuple(shape), tuple(lead_shape), bool(rgb)
        self.reserved = reserved  #: the grid shape fixed for these layers, until they are shown
        self.layers: dict[str, Any] = {}
        self._waiting: dict[str, list[tuple]] = {}  # codec -> (index, decoded, row, mapping)
        self._made: list[tuple[Any, bool]] = []  # (layer, its controls made): to insert next
        self._hidden: list[Any] = []  # inserted, to be shown at the next step
        self.on_done: Callable[[], None] | None = None  #: called when all are added and shown
        self._timer = step_timer(parent, lambda: self._step(), STEP_INTERVAL_MS)

    @property
    def adding(self) -> bool:
        """Whether layers are still on their way in (to be built, inserted or shown)."""
        return bool(self._waiting or self._made or self._hidden)

    def show(self, comparison: SliceComparison) -> None:
        """Put ``comparison``'s decoded slices in their layers; layers not there yet are added
        (in steps, see the class docstring)."""
        for codec, decoded in comparison.decoded.items():
            entry = (
                comparison.index,
                decoded,
                comparison.results[codec].to_dict(),
                comparison.mappings[codec],
            )
            layer = self.layers.get(codec)
            if layer is not None and layer not in self.viewer.layers and not self._coming(layer):
                del self.layers[codec]  # the user deleted it: add it again
                layer = None
            if layer is None:
                self._waiting.setdefault(codec, []).append(entry)
            else:
                self._fill(layer, *entry)
                if self.lead_shape:
                    layer.refresh()
        self._schedule()

    def release(self) -> None:
        """End the grid's reservation (the grid goes back to its automatic shape)."""
        reserved, self.reserved = self.reserved, None
        release_grid(self.viewer, reserved)

    def _coming(self, layer: Any) -> bool:
        return any(layer is made for made, _ in self._made)

    def _schedule(self) -> None:
        if self.adding and not self._timer.isActive():
            self._timer.start()

    def _fill(self, layer: Any, index: int, decoded: np.ndarray, row: dict, mapping: str) -> None:
        if self.lead_shape:
            layer.data.slices[index] = decoded
        else:
            layer.data = decoded
        layer.metadata["mapping"] = mapping
        layer.metadata.setdefault("slices", {})[index] = row

    def _step(self) -> str:
        """One step of adding layers; returns which ("show", "insert", "controls" or "")."""
        done = ""
        if self._hidden:
            layer, done = self._hidden.pop(0), "show"
            if layer in self.viewer.layers:
                layer.visible = True
        elif self._made:
            (layer, controls), done = self._made.pop(0), "insert"
            anchor, layers = self.anchor(last=True), self.viewer.layers
            at = layers.index(anchor) + 1 if anchor in layers else len(layers)
            insert_quietly(self.viewer, at, layer, controls)
            self._hidden.append(layer)
        elif self._waiting:
            codec, done = next(iter(self._waiting)), "controls"
            layer = self._build(codec, self._waiting.pop(codec))
            self.layers[codec] = layer
            self._made.append((layer, make_controls(self.viewer, layer)))
        if self.adding:
            self._timer.start()
            return done
        self.release()  # shown in the cells reserved for them: the same shape, no new layout
        if self.on_done is not None:
            self.on_done()
        return done

    def anchor(self, last: bool = False) -> Any:
        """The SGI layer still shown (``last``: the last of the decoded and classic layers), else
        the original."""
        candidates = self.anchors + (list(self.layers.values()) if last else [])
        there = [layer for layer in candidates if layer in self.viewer.layers]
        if not there:
            return self.original
        return there[-1] if last else there[0]

    def _build(self, codec: str, entries: list[tuple]) -> Any:
        """The layer of ``codec``, hidden; its display settings are the original's, given
        explicitly so that napari computes nothing from the data."""
        from napari.layers import Image

        original = self.original
        index, decoded, _, mapping = entries[-1]
        if self.lead_shape:
            data: Any = CachedStack(self.shape, decoded.dtype, self.lead_shape)
            data.slices.update({entry[0]: entry[1] for entry in entries})
        else:
            data = decoded
        kwargs: dict[str, Any] = {
            "scale": original.scale,
            "translate": original.translate,
            "blending": original.blending,
        }
        for name in ("axis_labels", "units"):
            if getattr(original, name, None) is not None:
                kwargs[name] = getattr(original, name)
        if not self.rgb:
            kwargs.update(colormap=original.colormap, gamma=original.gamma)
        return Image(
            data,
            rgb=self.rgb,
            name=layer_name(original, codec),
            contrast_limits=tuple(original.contrast_limits),
            visible=False,
            metadata={
                "codec": codec,
                "same_size_as": "the .sgi slice's share of the file",
                "mapping": mapping,
                "slices": {entry[0]: entry[2] for entry in entries},
            },
            **kwargs,
        )

    def take_over(self, previous: CodecLayers) -> None:
        """Reuse the layers of ``previous`` (a comparison of the same layer, now replaced by a
        new file's), blanked until this one's results arrive.

        Cheaper than removing them and adding others (napari adds a layer to its grid in
        0.2-0.4 s), and napari 0.9 has crashed in OpenGL, under a software renderer, when several
        layers were removed from its grid at once.
        """
        previous._timer.stop()
        previous._waiting.clear()
        for layer, _ in previous._made:  # built, never inserted: added again if still needed
            drop_controls(self.viewer, layer)
        previous._made.clear()
        hidden, previous._hidden = previous._hidden, []
        previous.release()
        same = previous.original is self.original and (previous.shape, previous.rgb) == (
            self.shape,
            self.rgb,
        )
        if not same:  # another layer's comparison: its layers stay as they are, all shown
            for layer in hidden:
                layer.visible = True
            return
        for codec, layer in previous.layers.items():
            if layer not in self.viewer.layers:
                continue
            if self.lead_shape:
                layer.data = CachedStack(self.shape, layer.data.dtype, self.lead_shape)
            else:
                layer.data = np.zeros_like(layer.data)
            layer.metadata["slices"] = {}
            layer.metadata["mapping"] = ""
            self.layers[codec] = layer
            if layer in hidden:  # inserted, not shown yet: shown by this one's steps
                self._hidden.append(layer)
        self._schedule()
