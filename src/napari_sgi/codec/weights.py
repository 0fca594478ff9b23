"""The MLP weights of a slice's model as stored in a `.sgi` file, and back.

Every weight matrix (colour, covariance and context MLPs) is stored as int8 with one float16
scale per output row; biases, and the prior of a model without a hash grid, as float16. The
context MLP only predicts the distributions that the seed attributes are coded with: rounding it
changes a few bits of the file, never a pixel, because the encoder codes with the same rounded
weights that the decoder rebuilds. The colour and covariance MLPs make the image, and int8 rows
cost them no measurable quality (compact preset: -0.001 dB on the z-slice, -0.004 dB on the IHC
image; tested) while saving a quarter of the weights of a small model (96 of 384 bytes at F=4,
K=10, one channel), where the weights are a large part of a small file.

Layout (little-endian), after the 4-byte magic ``SGW9``: for every parameter in module order
(``mlp_color``, ``mlp_cov``, ``context.mlp``; each ``Linear``'s weight then bias), either its
float16 values (biases) or, for weight matrices, the float16 row scales then the int8 values,
row-major. A model without a hash grid (``grid_levels=0``) has no context MLP: its constant prior
(``context.prior``) follows as float16 instead. Only this layout is read and written.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_sgi.core.model import SGIModel

MAGIC = b"SGW9"  # every weight matrix int8 rows
IMAGE_MODULES = ("mlp_color", "mlp_cov")
CONTEXT_MODULE = "context.mlp"


def _module(model: SGIModel, name: str) -> torch.nn.Module:
    module = model
    for part in name.split("."):
        module = getattr(module, part)
    return module


def _parameters(model: SGIModel) -> list[tuple[torch.Tensor, bool]]:
    """Every stored parameter in file order, with whether it is stored as int8 rows."""
    image = [p for name in IMAGE_MODULES for p in _module(model, name).parameters()]
    if model.context.prior is not None:
        return [(p, p.ndim == 2) for p in image] + [(model.context.prior, False)]
    context = list(_module(model, CONTEXT_MODULE).parameters())
    return [(p, p.ndim == 2) for p in image + context]


def _int8_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: float16 scales ``[R]`` and values ``[R, C]``."""
    peak = np.abs(matrix).max(axis=1)
    scales = np.where(peak > 0, peak / 127, 1).astype(np.float16)
    scales = np.where(scales == 0, np.float16(2**-24), scales)  # a row below float16's range
    values = np.clip(np.rint(matrix / scales.astype(np.float32)[:, None]), -127, 127)
    return scales, values.astype(np.int8)


def _dequantize(scales: np.ndarray, values: np.ndarray) -> np.ndarray:
    # int8 x float16 is exact in float32 (8 + 11 significant bits), on any machine.
    return values.astype(np.float32) * scales.astype(np.float32)[:, None]


def stored_size(model: SGIModel) -> int:
    """Bytes of the weights section of ``model``.

    Examples
    --------
    >>> from napari_sgi.core.model import ModelConfig
    >>> model = SGIModel(ModelConfig(height=8, width=8, channels=1, feature_dim=4,
    ...                              gaussians_per_seed=2, seed_count=4, grid_levels=1))
    >>> stored_size(model) == len(store_weights(model))
    True
    """
    size = len(MAGIC)
    for param, as_int8 in _parameters(model):
        size += param.numel() + 2 * param.shape[0] if as_int8 else 2 * param.numel()
    return size


@torch.no_grad()
def store_weights(model: SGIModel) -> bytes:
    """Round the MLP weights of ``model`` in place to what the file holds; return the section."""
    chunks = [MAGIC]
    for param, as_int8 in _parameters(model):
        values = param.detach().cpu().float().numpy()
        if as_int8:
            scales, q = _int8_rows(values)
            chunks += [scales.astype("<f2").tobytes(), q.tobytes()]
            rounded = _dequantize(scales, q)
        else:
            half = values.astype("<f2")
            chunks.append(half.tobytes())
            rounded = half.astype(np.float32)
        param.copy_(torch.from_numpy(rounded).reshape(param.shape))
    return b"".join(chunks)


@torch.no_grad()
def load_weights(model: SGIModel, data: bytes) -> None:
    """Install the weights of a weights section (of :func:`store_weights`) into ``model``.

    Raises
    ------
    ValueError
        If the section does not start with ``SGW9`` or its length is not what the model's shapes
        need.
    """
    if not data.startswith(MAGIC):
        raise ValueError(f"weight section starts with {data[:4]!r}, not {MAGIC!r}")
    if len(data) != stored_size(model):
        raise ValueError(
            f"weight section holds {len(data)} bytes, the model needs {stored_size(model)}"
        )
    position = len(MAGIC)
    for param, as_int8 in _parameters(model):
        n = param.numel()
        if as_int8:
            rows = param.shape[0]
            scales = np.frombuffer(data, "<f2", rows, position)
            q = np.frombuffer(data, np.int8, n, position + 2 * rows).reshape(rows, -1)
            values = _dequantize(scales, q)
            position += 2 * rows + n
        else:
            values = np.frombuffer(data, "<f2", n, position).astype(np.float32)
            position += 2 * n
        param.copy_(torch.from_numpy(values.copy()).reshape(param.shape))
