"""zarr arrays and groups (v2 and v3) and OME-Zarr images (NGFF 0.4 and 0.5), read lazily.

An OME-Zarr image gives its level 0, axes, scale and units from ``multiscales`` and channel names
and display windows from ``omero``; a bioformats2raw container opens its first image. A plain
zarr array takes its axes from zarr v3 dimension names or xarray's ``_ARRAY_DIMENSIONS``.

Example
-------
>>> import numpy as np, tempfile, os, zarr
>>> z = zarr.create_array(os.path.join(tempfile.mkdtemp(), "a.zarr"), shape=(2, 8, 8),
...                       dtype="uint16", dimension_names=["c", "y", "x"])
>>> from_zarr_array(z, None, name=None).axes
'CYX'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_sgi.inputs.axes import RGB_CHANNEL_COLORS, is_rgb_samples, validate_axes
from napari_sgi.inputs.source import ImageSource, build_source

__all__ = ["from_zarr_array", "from_zarr_group", "open_zarr_path"]

_NGFF_NAMES = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
_NGFF_TYPES = {"time": "T", "channel": "C"}


def open_zarr_path(path: Path, axes: str | None) -> ImageSource:
    """Open a zarr array or group folder (an OME-Zarr image is a group)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a zarr store"
        raise ValueError(f"{str(path)!r} is not a readable zarr array or group: {exc}") from exc
    if isinstance(node, zarr.Group):
        return from_zarr_group(node, axes, name=path.name)
    return from_zarr_array(node, axes, name=path.name)


def from_zarr_array(arr: Any, axes: str | None, name: str | None) -> ImageSource:
    """A zarr array, axes from its dimension names when ``axes`` is None (else guessed)."""
    if axes is None:
        # dimension names: zarr v3 metadata, or xarray's attribute in zarr v2
        names = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
        if names and all(isinstance(n, str) and len(n) == 1 and n in "tczyxsTCZYXS" for n in names):
            axes = "".join(n.upper() for n in names)
    return build_source(da.from_zarr(arr), axes, name=name)


def from_zarr_group(group: Any, axes: str | None, name: str | None) -> ImageSource:
    """Level 0 of an OME-Zarr image group, or of a bioformats2raw container's first image."""
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)  # NGFF 0.5 nests everything under "ome"
    if "multiscales" not in meta:
        if "bioformats2raw.layout" in meta and "0" in group:
            return from_zarr_group(group["0"], axes, name)
        arrays = sorted(k for k, _ in group.arrays())
        raise ValueError(
            f"zarr group {name or group.path!r} has no OME-Zarr 'multiscales' metadata; "
            f"open one of its arrays instead: {arrays[:10]}"
        )
    try:
        arr, axes, found = _read_multiscales(group, meta, axes)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:  # hostile or broken JSON
        raise ValueError(
            f"zarr group {name or group.path!r} has malformed OME-Zarr metadata: {exc!r}"
        ) from exc
    return build_source(da.from_zarr(arr), axes, name=name, **found)


def _read_multiscales(group: Any, meta: dict, axes: str | None) -> tuple[Any, str, dict]:
    """Level 0, its axes, and the keyword arguments of :func:`build_source` from NGFF metadata."""
    ms = meta["multiscales"][0]
    ds0 = ms["datasets"][0]
    arr = group[ds0["path"]]
    ngff_axes = ms.get("axes") or [{"name": n} for n in "tczyx"[-arr.ndim :]]
    ngff_axes = [a if isinstance(a, dict) else {"name": a} for a in ngff_axes]  # NGFF 0.3
    if axes is None:
        letters = []
        for ax in ngff_axes:
            letter = _NGFF_NAMES.get(str(ax.get("name", "")).lower()) or _NGFF_TYPES.get(
                ax.get("type", "")
            )
            if letter is None:
                raise ValueError(f"OME-Zarr axis {ax} cannot be mapped to T, C, Z, Y, X")
            letters.append(letter)
        axes = "".join(letters)
    axes = validate_axes(axes, arr.ndim)
    factors = np.ones(arr.ndim)
    for transforms in (
        ds0.get("coordinateTransformations", []),
        ms.get("coordinateTransformations", []),
    ):
        for t in transforms:
            if t.get("type") == "scale" and "scale" in t:
                factors = factors * np.asarray(t["scale"], dtype=float)
    units = {a: ax.get("unit") for a, ax in zip(axes, ngff_axes, strict=True)}
    scale = {a: f for a, f in zip(axes, factors, strict=True) if a in "TZYX"}
    channels = meta.get("omero", {}).get("channels") or []
    names = [c.get("label", f"channel {i}") for i, c in enumerate(channels)] or None
    colors = [str(c.get("color", "")).upper() for c in channels]
    if (
        "C" in axes
        and "S" not in axes
        and colors == RGB_CHANNEL_COLORS[: len(colors)]
        and (is_rgb_samples(arr.shape[axes.index("C")], arr.dtype))
    ):
        # NGFF has no sample axis; red/green/blue(/white) uint8 channels, as
        # write_ome_zarr stores RGB(A), are colour samples again
        axes, names = axes.replace("C", "S"), None
    windows = [c.get("window", {}) for c in channels]
    limits = [[float(w["start"]), float(w["end"])] for w in windows if "start" in w and "end" in w]
    return (
        arr,
        axes,
        {
            "scale": scale,
            "units": units,
            "channel_names": names,
            "contrast_limits": limits if limits and len(limits) == len(channels) else None,
        },
    )
