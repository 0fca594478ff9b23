"""Write decoded (or any) image stacks to OME-Zarr 0.5 and OME-TIFF.

Both writers take numpy or lazy dask arrays plus axis letters over
``T, C, Z, Y, X, S`` (see :mod:`napari_sgi.inputs.axes`), and compute the data slice
by slice or chunk by chunk, never the whole array at once.

Axes are written in the canonical OME order (subset of ``TCZYX``, plus ``S`` last
for OME-TIFF); OME-Zarr has no sample axis, so RGB(A) samples become a channel
axis with red/green/blue(/white) colours.

Example
-------
>>> import numpy as np, tempfile, os
>>> d = tempfile.mkdtemp()
>>> _ = write_tiff(os.path.join(d, "a.ome.tif"), np.zeros((2, 32, 32), np.uint16),
...                axes="ZYX", scale={"Z": 2.0, "Y": 0.5, "X": 0.5})
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_sgi.inputs.axes import (
    RGB_CHANNEL_COLORS,
    is_rgb_samples,
    normalize_unit,
    ome_unit_symbol,
    validate_axes,
)

__all__ = ["write_ome_zarr", "write_tiff"]

PerAxis = Mapping[str, Any] | Sequence[Any] | None
Limits = Sequence[float] | Sequence[Sequence[float]] | None

_CHANNEL_COLORS = ["00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF", "FFFFFF"]
_ZARR_TILE = 1024  # chunk edge in Y and X: large enough for few files, small enough to stream
_PYRAMID_TOP = 256  # stop adding levels once the largest plane side fits in this


def write_ome_zarr(
    path: str | os.PathLike,
    data: Any,
    *,
    axes: str,
    scale: PerAxis = None,
    units: PerAxis = None,
    channel_names: Sequence[str] | None = None,
    contrast_limits: Limits = None,
    scale_factors: Sequence[int] | None = None,
    name: str | None = None,
) -> Path:
    """Write an image as OME-Zarr 0.5 (zarr v3) with a pyramid and ``omero`` windows.

    Parameters
    ----------
    path : str or path-like
        Target folder (``*.ome.zarr``); replaced if it exists.
    data : numpy.ndarray or dask.array.Array
        Image, read chunk by chunk when lazy.
    axes : str
        Letters over T, C, Z, Y, X, S in ``data``'s order.
    scale, units : dict or sequence, optional
        Physical pixel size and unit per axis (``{"Z": 2.0, "X": 0.5}`` or aligned with
        ``axes``); missing sizes are written as 1.0.
    channel_names : sequence of str, optional
        Labels along C (or S).
    contrast_limits : (lo, hi) or list of (lo, hi), optional
        Display window, one for all channels or one per channel; by default the
        0.1-99.9 percentiles of the smallest pyramid level (0..255 for RGB).
    scale_factors : sequence of int, optional
        Downsampling factors in Y and X per extra level (default: 2, 4, ... until
        the plane fits in 256 pixels).
    name : str, optional
        Image name in the metadata (default: the folder's stem).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = write_ome_zarr(os.path.join(tempfile.mkdtemp(), "x.ome.zarr"),
    ...                    np.zeros((2, 600, 500), np.uint16), axes="CYX",
    ...                    scale={"Y": 0.2, "X": 0.2}, units={"Y": "µm", "X": "µm"})
    """
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    data, axes, scale_d, units_d, rgb = _prepare(data, axes, scale, units)
    if rgb:  # NGFF has no sample axis: colours become channels
        if "C" in axes:
            raise ValueError(f"axes {axes!r} has both C and RGB samples S; OME-Zarr allows one")
        axes = axes.replace("S", "C")
    order = [a for a in "TCZYX" if a in axes]
    data = data.transpose([axes.index(a) for a in order])
    axes = "".join(order)
    ny, nx = data.shape[-2:]
    data = data.rechunk((1,) * (data.ndim - 2) + (min(ny, _ZARR_TILE), min(nx, _ZARR_TILE)))
    if scale_factors is None:
        scale_factors, f = [], 2
        while max(ny, nx) / (f // 2) > _PYRAMID_TOP and min(ny, nx) // f >= 1:
            scale_factors.append(f)
            f *= 2
    path = Path(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    write_image(
        data,
        group,
        scale_factors=list(scale_factors),
        # box averaging: no ringing, keeps the intensity meaning of microscopy data
        method=Methods.LOCAL_MEAN,
        fmt=FormatV05(),
        axes=axes.lower(),
        scale={a.lower(): float(scale_d.get(a) or 1.0) for a in axes},
        axes_units={a.lower(): u for a, u in units_d.items() if a in "TZYX" and u} or None,
        name=name or path.name.split(".")[0],
    )

    n_ch = data.shape[axes.index("C")] if "C" in axes else 1
    windows = _windows(group, axes, n_ch, data.dtype, contrast_limits, rgb)
    names = list(channel_names) if channel_names is not None else None
    if names is not None and len(names) != n_ch:
        raise ValueError(f"{len(names)} channel names for {n_ch} channels")
    colors = RGB_CHANNEL_COLORS if rgb else ["FFFFFF"] if n_ch == 1 else _CHANNEL_COLORS
    omero = {
        "channels": [
            {
                "label": names[i] if names else f"channel {i}",
                "color": colors[i % len(colors)],
                "active": True,
                "window": windows[i],
            }
            for i in range(n_ch)
        ],
        "rdefs": {"model": "color"},
    }
    group.attrs["ome"] = {**group.attrs["ome"], "omero": omero}
    return path


def _windows(
    group: Any, axes: str, n_ch: int, dtype: np.dtype, limits: Limits, rgb: bool
) -> list[dict[str, float]]:
    """Per-channel omero windows {start, end, min, max}."""
    ms = group.attrs["ome"]["multiscales"][0]
    if limits is None and rgb:
        limits = (0, 255)
    if limits is None:
        # the smallest level is cheap to read and close enough for a display window
        small = np.asarray(group[ms["datasets"][-1]["path"]][...])
        small = np.moveaxis(small, axes.index("C"), 0) if "C" in axes else small[None]
        limits = [np.percentile(c, (0.1, 99.9)).tolist() for c in small.reshape(n_ch, -1)]
    limits = np.asarray(limits, dtype=float)
    if limits.shape == (2,):
        limits = np.tile(limits, (n_ch, 1))
    if limits.shape != (n_ch, 2):
        raise ValueError(f"contrast_limits must be (lo, hi) or {n_ch} pairs, got {limits.tolist()}")
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo_all, hi_all = np.full(n_ch, float(info.min)), np.full(n_ch, float(info.max))
    else:
        lo_all, hi_all = limits[:, 0], limits[:, 1]
    return [
        {"start": float(lo), "end": float(hi), "min": float(mn), "max": float(mx)}
        for (lo, hi), mn, mx in zip(limits, lo_all, hi_all, strict=True)
    ]


def write_tiff(
    path: str | os.PathLike,
    data: Any,
    *,
    axes: str,
    scale: PerAxis = None,
    units: PerAxis = None,
    channel_names: Sequence[str] | None = None,
    compression: str | None = "zlib",
    bigtiff: bool | None = None,
    tile: tuple[int, int] | None = None,
) -> Path:
    """Write an image as OME-TIFF, page by page.

    Parameters
    ----------
    path : str or path-like
        Target file, conventionally ``*.ome.tif``.
    data : numpy.ndarray or dask.array.Array
        Image; one 2D page (with its RGB samples) is computed at a time.
    axes : str
        Letters over T, C, Z, Y, X, S in ``data``'s order.
    scale, units : dict or sequence, optional
        Pixel size per axis, written as ``PhysicalSizeX/Y/Z`` and ``TimeIncrement``;
        units default to micrometre / second as in the OME schema.
    channel_names : sequence of str, optional
        Names along C.
    compression : {"zlib", None}
        Lossless page compression.
    bigtiff : bool, optional
        Default: only when the data exceed ~4 GB.
    tile : (int, int), optional
        Write tiled pages (e.g. ``(512, 512)``) for large planes.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = write_tiff(os.path.join(tempfile.mkdtemp(), "rgb.ome.tif"),
    ...                np.zeros((64, 64, 3), np.uint8), axes="YXS")
    """
    import tifffile

    data, axes, scale_d, units_d, rgb = _prepare(data, axes, scale, units)
    if "S" in axes and not rgb:
        raise ValueError(f"axes {axes!r}: S must be uint8 RGB(A); name other samples C")
    order = [a for a in "TCZYXS" if a in axes]
    data = data.transpose([axes.index(a) for a in order])
    axes = "".join(order)
    n_lead = len(axes) - (3 if rgb else 2)
    metadata: dict[str, Any] = {"axes": axes}
    for letter, key, default_unit in (
        ("X", "PhysicalSizeX", "micrometer"),
        ("Y", "PhysicalSizeY", "micrometer"),
        ("Z", "PhysicalSizeZ", "micrometer"),
        ("T", "TimeIncrement", "second"),
    ):
        if letter in axes and scale_d.get(letter):
            metadata[key] = float(scale_d[letter])
            metadata[key + "Unit"] = ome_unit_symbol(units_d.get(letter) or default_unit)
    if channel_names is not None and "C" in axes:
        if len(channel_names) != data.shape[axes.index("C")]:
            n_c = data.shape[axes.index("C")]
            raise ValueError(f"{len(channel_names)} channel names for {n_c} channels")
        metadata["Channel"] = {"Name": [str(n) for n in channel_names]}
    if bigtiff is None:
        bigtiff = data.nbytes > 2**32 - 2**26  # leave room for the IFDs

    def pages() -> Iterator[np.ndarray]:
        for key in np.ndindex(*data.shape[:n_lead]):
            page = np.ascontiguousarray(data[key].compute())
            if tile is None:
                yield page
                continue
            for y in range(0, page.shape[0], tile[0]):
                for x in range(0, page.shape[1], tile[1]):
                    yield page[y : y + tile[0], x : x + tile[1]]  # tifffile pads edges

    path = Path(path)
    tifffile.imwrite(
        path,
        pages(),
        shape=data.shape,
        dtype=data.dtype,
        ome=True,
        bigtiff=bigtiff,
        photometric="rgb" if rgb else "minisblack",
        compression=compression,
        tile=tile,
        metadata=metadata,
    )
    return path


def _prepare(
    data: Any, axes: str, scale: PerAxis, units: PerAxis
) -> tuple[da.Array, str, dict[str, Any], dict[str, str | None], bool]:
    """Common checks: lazy array, valid axes, per-axis dicts, RGB flag."""
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data) if not hasattr(data, "shape") else data)
    axes = validate_axes(axes, data.ndim)
    if 0 in data.shape:
        raise ValueError(f"cannot write an empty array of shape {data.shape}")
    if np.dtype(data.dtype).kind not in "uif":
        raise ValueError(f"cannot write dtype {data.dtype}; use an integer or float type")
    scale_d = _per_axis(scale, axes, "scale")
    units_d = {a: normalize_unit(u) for a, u in _per_axis(units, axes, "units").items()}
    rgb = "S" in axes and is_rgb_samples(data.shape[axes.index("S")], data.dtype)
    if "S" in axes and not rgb and "C" not in axes:
        # samples that are not 8-bit colour are channels
        axes = axes.replace("S", "C")
        scale_d = {("C" if a == "S" else a): v for a, v in scale_d.items()}
        units_d = {("C" if a == "S" else a): v for a, v in units_d.items()}
    return data, axes, scale_d, units_d, rgb


def _per_axis(value: PerAxis, axes: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out = {str(k).upper(): v for k, v in value.items()}
        bad = sorted(set(out) - set(axes))
        if bad:
            raise ValueError(f"{what} names axes {bad} that are not in {axes!r}")
        return out
    value = list(value)
    if len(value) != len(axes):
        raise ValueError(f"{what} has {len(value)} entries for axes {axes!r}")
    return dict(zip(axes, value, strict=True))
