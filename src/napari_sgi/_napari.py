"""The napari side of napari-sgi that needs no Qt: reader, writer, sample data and the menu command.

npe2 imports this module through ``napari.yaml``. It imports neither Qt nor torch at module level,
so that ``npe2.read``/``npe2.write`` work in scripts and napari starts fast; the dock widget lives
in :mod:`napari_sgi._qt`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari

LayerData = tuple[Any, dict, str]
WIDGET_NAME = "SGI compression"
PLUGIN_NAME = "napari-sgi"
SGI_SUFFIX = ".sgi"
_DATA = Path(__file__).parent / "data"
# Letters napari-sgi understands for the axes in front of Y and X (see napari_sgi.inputs.axes).
_STACK_LETTERS = "TCZ"


# --------------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------------
def get_reader(path: str | Sequence[str]) -> Callable[[str], list[LayerData]] | None:
    """Return :func:`read_sgi` for one existing ``*.sgi`` file, otherwise ``None``.

    napari calls this for every file the user opens, so it never raises: anything it cannot read is
    somebody else's file.
    """
    try:
        if isinstance(path, list | tuple):
            # One container per file: a list is only ours when it holds exactly one .sgi file.
            if len(path) != 1:
                return None
            path = path[0]
        path = os.fspath(path)
        if path.lower().endswith(SGI_SUFFIX) and os.path.isfile(path) and _has_magic(path):
            return read_sgi
    except Exception:  # noqa: BLE001 - a reader probe must not raise
        return None
    return None


def _has_magic(path: str) -> bool:
    """Whether the file starts like a napari-sgi container (another tool's ``.sgi`` does not)."""
    from napari_sgi.file.format import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def read_sgi(path: str | Sequence[str]) -> list[LayerData]:
    """Open an ``.sgi`` file as multiscale image layer data (decoded lazily, chunk by chunk)."""
    from napari_sgi import open_sgi

    if isinstance(path, list | tuple):
        path = path[0]
    return [sgi_layer_data(open_sgi(path), path)]


def sgi_layer_data(sgi: Any, path: str | os.PathLike | None = None) -> LayerData:
    """napari layer data for an :class:`~napari_sgi.api.SGIImage` (levels, axes, scale, limits).

    Axes named ``C`` become napari channels (one layer each); RGB files keep their last axis as
    colour (``rgb=True``).
    """
    levels = list(sgi.levels)
    axes = str(sgi.axes or "")
    rgb = bool(sgi.rgb)
    spatial = axes[:-1] if rgb and axes.endswith("S") else axes
    scale = _spatial_scale(getattr(sgi, "scale", None), axes, rgb)
    kwargs: dict[str, Any] = {
        "name": sgi.name or (Path(path).stem if path else "SGI"),
        "rgb": rgb,
        # Always multiscale, even with one level: one code path in napari and in scripts.
        "multiscale": True,
        "metadata": {
            "sgi": dict(getattr(sgi, "metadata", None) or {}),
            "sgi_path": os.fspath(path) if path else None,
            "sgi_axes": axes,
        },
    }
    limits = _limit_pairs(sgi.contrast_limits)
    labels = [letter.lower() for letter in spatial]
    if "C" in spatial and not rgb and levels[0].shape[spatial.index("C")] > 1:
        channel = spatial.index("C")
        kwargs["channel_axis"] = channel
        del labels[channel]
        if scale is not None:
            scale = scale[:channel] + scale[channel + 1 :]
        header = getattr(sgi, "metadata", None) or {}
        names = (header.get("layout") or {}).get("channel_names") or header.get("channel_names")
        if names and len(names) == levels[0].shape[channel]:
            kwargs["name"] = [str(n) for n in names]
        if limits is not None and len(limits) == levels[0].shape[channel]:
            kwargs["contrast_limits"] = limits  # one window per channel
            limits = None
    if limits is not None:  # one window for the layer: the union of the file's windows
        kwargs["contrast_limits"] = (min(lo for lo, _ in limits), max(hi for _, hi in limits))
    if scale is not None:
        kwargs["scale"] = scale
    units = _spatial_units(
        getattr(sgi, "units", None), axes, rgb, kwargs.get("channel_axis"), spatial
    )
    if units is not None:
        kwargs["units"] = units
    if len(labels) == levels[0].ndim - (1 if rgb else 0) - ("channel_axis" in kwargs):
        kwargs["axis_labels"] = labels
    return levels, kwargs, "image"


def _limit_pairs(limits: Any) -> list[tuple[float, float]] | None:
    """``(lo, hi)`` or a list of them (one per channel) as a list of float pairs."""
    if limits is None or len(limits) == 0:
        return None
    if np.ndim(limits) == 1:
        return [(float(limits[0]), float(limits[1]))]
    return [(float(lo), float(hi)) for lo, hi in limits]


def _spatial_scale(scale: Sequence[float] | None, axes: str, rgb: bool) -> tuple[float, ...] | None:
    """The scale of the non-colour axes (napari gives RGB's colour axis no scale)."""
    if scale is None:
        return None
    scale = tuple(float(s) for s in scale)
    if rgb and len(scale) == len(axes) and axes.endswith("S"):
        scale = scale[:-1]
    return scale


def _spatial_units(
    units: Sequence[str | None] | None, axes: str, rgb: bool, channel_axis: int | None, spatial: str
) -> tuple[str, ...] | None:
    """Units of the axes napari shows, with ``pixel`` where the file has none."""
    if not units:
        return None
    units = [u or "pixel" for u in units]
    if rgb and len(units) == len(axes) and axes.endswith("S"):
        units = units[:-1]
    if len(units) != len(spatial):
        return None
    if channel_axis is not None:
        del units[channel_axis]
    return None if all(u == "pixel" for u in units) else tuple(units)


# --------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------
def write_sgi(path: str, data: Any, meta: dict) -> list[str]:
    """Compress one image layer into ``path`` with the ``default`` preset; npe2 writer.

    The file is only written once the fit has finished (the API writes nothing on failure).
    """
    from napari_sgi import compress

    if meta.get("multiscale") or (isinstance(data, list) and not hasattr(data, "shape")):
        data = data[0]  # the full-resolution level; SGI builds its own pyramid
    if not path.lower().endswith(SGI_SUFFIX):
        path += SGI_SUFFIX
    ndim = len(data.shape)
    rgb = bool(meta.get("rgb", False))
    result = compress(
        data,
        path,
        preset="default",
        axes=guess_layer_axes(ndim, rgb, meta.get("axis_labels")),
        scale=_non_trivial(meta.get("scale")),
        units=_unit_names(meta.get("units")),
        contrast_limits=_limits(meta.get("contrast_limits")),
    )
    return [os.fspath(result.path)]


def guess_layer_axes(ndim: int, rgb: bool, axis_labels: Sequence[str] | None = None) -> str:
    """Axis letters for layer data: the layer's own labels when they are axis letters, else a guess.

    Examples
    --------
    >>> guess_layer_axes(3, True)
    'YXS'
    >>> guess_layer_axes(3, False, ("z", "y", "x"))
    'ZYX'
    >>> guess_layer_axes(4, False, ("axis -4", "axis -3", "axis -2", "axis -1"))
    'TZYX'
    """
    spatial = ndim - (1 if rgb else 0)
    labels = [str(label).upper() for label in (axis_labels or ())]
    if (
        len(labels) == spatial
        and all(len(x) == 1 and x in "TCZYX" for x in labels)
        and len(set(labels)) == spatial
        and labels[-2:] == ["Y", "X"]
    ):
        letters = "".join(labels)
    else:
        extra = spatial - 2
        if not 0 <= extra <= len(_STACK_LETTERS):
            raise ValueError(f"cannot name the axes of {ndim}-D layer data (rgb={rgb})")
        # The innermost stack axis is depth, the next one time (the napari/OME convention).
        stack = {0: "", 1: "Z", 2: "TZ", 3: _STACK_LETTERS}[extra]
        letters = stack + "YX"
    return letters + ("S" if rgb else "")


def layer_compress_kwargs(layer: Any) -> dict[str, Any]:
    """What an image layer says about its data: axes, scale, units, contrast limits."""
    data = layer.data[0] if layer.multiscale else layer.data
    return {
        "axes": guess_layer_axes(len(data.shape), bool(layer.rgb), tuple(layer.axis_labels)),
        "scale": _non_trivial(layer.scale),
        "units": _unit_names(getattr(layer, "units", None)),
        "contrast_limits": _limits(layer.contrast_limits),
    }


def _non_trivial(scale: Sequence[float] | None) -> tuple[float, ...] | None:
    if scale is None or np.allclose(np.asarray(scale, dtype=float), 1.0):
        return None
    return tuple(float(s) for s in scale)


def _unit_names(units: Sequence[Any] | None) -> tuple[str, ...] | None:
    """pint units as names (``"micrometer"``); ``None`` when napari only knows pixels."""
    if units is None:
        return None
    names = tuple(str(unit) for unit in units)
    return None if all(name in ("pixel", "px", "") for name in names) else names


def _limits(limits: Sequence[float] | None) -> tuple[float, float] | None:
    return None if limits is None else (float(limits[0]), float(limits[1]))


# --------------------------------------------------------------------------------------------------
# Sample data
# --------------------------------------------------------------------------------------------------
def _read_sample(name: str) -> np.ndarray:
    """A sample image of the package's data folder, whole, read as every input is read."""
    from napari_sgi.inputs import open_input

    with open_input(_DATA / name) as source:
        return np.asarray(source.data.compute(scheduler="threads"))


def sample_brightfield() -> list[LayerData]:
    """Brightfield IHC of colon, 512x512 RGB uint8."""
    data = _read_sample("ihc_colon.png")
    return [(data, {"name": "IHC colon (brightfield)", "rgb": True}, "image")]


def sample_fluorescence() -> list[LayerData]:
    """Fluorescent nuclei, 512x512 uint16."""
    data = _read_sample("nuclei2d.tif")
    return [
        (
            data,
            {
                "name": "nuclei (fluorescence)",
                "colormap": "gray",
                "contrast_limits": (float(data.min()), float(data.max())),
            },
            "image",
        )
    ]


def sample_zstack() -> list[LayerData]:
    """Confocal nuclei z-stack, 16x128x128 uint16, voxel 0.29 x 0.26 x 0.26 µm (cells3d)."""
    data = _read_sample("nuclei_zstack.tif")
    return [
        (
            data,
            {
                "name": "nuclei z-stack",
                "colormap": "green",
                "scale": (0.29, 0.26, 0.26),
                "axis_labels": ("z", "y", "x"),
                "contrast_limits": (float(data.min()), float(data.max())),
            },
            "image",
        )
    ]


# --------------------------------------------------------------------------------------------------
# Command: Layers > Data > Compress with SGI
# --------------------------------------------------------------------------------------------------
def open_compress_widget(viewer: napari.viewer.Viewer) -> Any:
    """Open (or raise) the SGI compression dock widget, set to the active image layer."""
    from napari.layers import Image

    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, WIDGET_NAME)
    dock.show()
    dock.raise_()
    active = viewer.layers.selection.active
    if isinstance(active, Image):
        widget.set_layer(active)
    return widget


def default_output_path(layer: Any) -> Path:
    """Where a layer's ``.sgi`` goes by default: next to its source file, else in the home dir."""
    source = getattr(getattr(layer, "source", None), "path", None)
    if source:
        src = Path(source)
        stem = src.name
        while Path(stem).suffix.lower() in (
            ".tif",
            ".tiff",
            ".ome",
            ".png",
            ".jpg",
            ".jpeg",
            ".zarr",
            ".npy",
            ".czi",
            ".nd2",
            ".lif",
            ".sgi",
        ):
            stem = Path(stem).stem
        target = src.parent / f"{stem or 'image'}{SGI_SUFFIX}"
        if target.resolve() == src.resolve():  # never offer to overwrite the file being compressed
            target = src.parent / f"{stem}_recompressed{SGI_SUFFIX}"
        return target
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(getattr(layer, "name", "image"))).strip("._")
    return Path.home() / f"{name or 'image'}{SGI_SUFFIX}"
