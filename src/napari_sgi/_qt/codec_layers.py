"""The classic codecs' decoded slices as napari layers beside the original and the SGI layer.

GUI thread only. A 2D image's layer holds its decoded array. A stack's layer holds a
:class:`CachedStack`: an array-like as large as the stack whose slices are the decoded ones
compared so far (zeros elsewhere, until the slider reaches them), so that nothing is decoded or
allocated for slices nobody looks at.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_sgi._qt.compare import _place_after
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
    """One layer per codec for one original layer; filled slice by slice as results arrive."""

    def __init__(
        self,
        viewer: Any,
        original: Any,
        anchors: list[Any],
        shape: tuple[int, ...],
        lead_shape: tuple[int, ...],
        rgb: bool,
    ) -> None:
        #: the layers to follow in the grid (the SGI layer, its difference): the last still there
        self.viewer, self.original, self.anchors = viewer, original, list(anchors)
        self.shape, self.lead_shape, self.rgb = tuple(shape), tuple(lead_shape), bool(rgb)
        self.layers: dict[str, Any] = {}

    def show(self, comparison: SliceComparison) -> list[Any]:
        """Put ``comparison``'s decoded slices in their layers (adding those not there yet);
        returns the layers added."""
        added = []
        for codec, decoded in comparison.decoded.items():
            layer = self.layers.get(codec)
            if layer is not None and layer not in self.viewer.layers:
                layer = None  # the user deleted it: add it again
            result = comparison.results[codec]
            if layer is None:
                layer = self._add(codec, decoded, comparison)
                added.append(layer)
            elif self.lead_shape:
                layer.data.slices[comparison.index] = decoded
                layer.refresh()
            else:
                layer.data = decoded
            layer.metadata["mapping"] = comparison.mappings[codec]
            layer.metadata.setdefault("slices", {})[comparison.index] = result.to_dict()
        if added:
            _place_after(self.viewer, self.anchor(last=True), added)
        return added

    def anchor(self, last: bool = False) -> Any:
        """The SGI layer (``last``: the last decoded layer) still shown, else the original."""
        there = [layer for layer in self.anchors if layer in self.viewer.layers]
        if not there:
            return self.original
        return there[-1] if last else there[0]

    def _add(self, codec: str, decoded: np.ndarray, comparison: SliceComparison) -> Any:
        original = self.original
        if self.lead_shape:
            data: Any = CachedStack(self.shape, decoded.dtype, self.lead_shape)
            data.slices[comparison.index] = decoded
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
        layer = self.viewer.add_image(
            data,
            rgb=self.rgb,
            name=layer_name(original, codec),
            contrast_limits=tuple(original.contrast_limits),
            metadata={
                "codec": codec,
                "same_size_as": "the .sgi slice's share of the file",
                "mapping": comparison.mappings[codec],
            },
            **kwargs,
        )
        self.layers[codec] = layer
        return layer

    def remove(self) -> None:
        """Take this comparison's layers out of the viewer (a new file replaces them)."""
        for layer in self.layers.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers.clear()
