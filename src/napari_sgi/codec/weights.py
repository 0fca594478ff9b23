"""The MLP weights of a slice's model as stored in a `.sgi` file, and back.

Two layouts, told apart by their 4-byte magic; a reader reads both, the writer stores the smaller.

``SGWA`` (coded): every stored tensor on its own power-of-two step, the integers entropy-coded.
Small files are where weights matter (346 of the 805 bytes of a 0.1 bpp file of a 256x256
slice, with ``SGW9``), and their weights are few, so coding them pays: a third smaller on the
presets' fits (346 -> 226-237 bytes on one channel, 666 -> 380-410 on RGB), for -0.01 to -0.07 dB
of the render (docs/method.md, "Entropy-coded MLP weights"). Layout:

    magic "SGWA", then for each tensor (:func:`_coded_tensors`, in file order): i8 exponent e
    (the step is 2^e, -48 <= e <= 16) and u8 spread code s; then one Gaussian stream
    (:mod:`.gaussian_stream`) of every tensor's integers q in order, each coded with mean 0,
    step 1 and sigma 2^(s/16 - 2) of its tensor. The stored value is q 2^e (float32, exact).

The tensors are each ``Linear``'s weight then bias of ``mlp_color``, ``mlp_cov``, the blend
head ``mlp_blend`` of a model that has one, and
``context.mlp`` (or ``context.prior`` without a hash grid), with the context's three step-logit
outputs split off into their own tensors: they set the attributes' quantisation steps, so they
get at least 2047 steps to their peak, where everything else gets 63.

``SGW9`` (rows): every weight matrix as int8 with one float16 scale per output row; biases, and
the prior of a model without a hash grid, as float16; in the same module order, each
``Linear``'s weight then bias (for matrices, the float16 row scales then the int8 values,
row-major). The first published layout: int8 rows cost the colour and covariance MLPs no
measurable quality (compact preset: -0.001 dB on the z-slice, -0.004 dB on the IHC image).

The context model only predicts the distributions that the seed attributes are coded with, and
the encoder codes with the same rounded weights that the decoder rebuilds, so either layout is
exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from napari_sgi.codec.gaussian_stream import _unpack_head as unpack_gaussian_head
from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian
from napari_sgi.core.entropy import GROUPS
from napari_sgi.core.model import SGIModel
from napari_sgi.file.budget import CHUNK_SYMBOLS

MAGIC = b"SGW9"  # every weight matrix int8 rows
CODED_MAGIC = b"SGWA"  # power-of-two steps, entropy-coded
EXPONENT_RANGE = (-48, 16)  # of a coded tensor's step 2^e
SPREAD_OFFSET, SPREAD_STEPS = 2, 16  # sigma = 2^(s / 16 - 2) for a spread code s in 0..255
FINE_LEVELS, COARSE_LEVELS = 2047, 63  # a tensor's peak over its step, at least
EXACT_LEVELS = 4095  # at most, for a tensor whose values all lie on a power-of-two step
MAX_CODED_SYMBOL = 1 << 24  # |q|: so that q 2^e is exact in float32
# Whether the writer may code the weights (SGWA); False stores int8 rows only, as before (for
# benchmarks: the same encoder with the previous layout).
CODED = True
# For size targets, before a fit: bits a coded weight takes (measured on the presets' fits,
# docs/method.md) and the Gaussian stream's head with one chunk.
CODED_BITS_PER_VALUE = 7.5
CODED_STREAM_HEAD = 18
CONTEXT_MODULE = "context.mlp"


def _module(model: SGIModel, name: str) -> torch.nn.Module:
    module = model
    for part in name.split("."):
        module = getattr(module, part)
    return module


def _context_parameters(model: SGIModel) -> list[torch.Tensor]:
    if model.context.prior is not None:
        return [model.context.prior]
    return list(_module(model, CONTEXT_MODULE).parameters())


def _parameters(model: SGIModel) -> list[tuple[torch.Tensor, bool]]:
    """Every parameter in file order, with whether ``SGW9`` stores it as int8 rows."""
    image = [p for name in model.image_modules() for p in _module(model, name).parameters()]
    if model.context.prior is not None:
        return [(p, p.ndim == 2) for p in image] + [(model.context.prior, False)]
    return [(p, p.ndim == 2) for p in image + _context_parameters(model)]


# -- SGW9: int8 rows ---------------------------------------------------------------------------


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


def rows_size(model: SGIModel) -> int:
    """Bytes of the ``SGW9`` weights section of ``model`` (it depends on the shapes alone).

    Examples
    --------
    >>> from napari_sgi.core.model import ModelConfig
    >>> model = SGIModel(ModelConfig(height=8, width=8, channels=1, feature_dim=4,
    ...                              gaussians_per_seed=2, seed_count=4, grid_levels=1))
    >>> rows_size(model) == len(_store_rows(model)[0])
    True
    """
    size = len(MAGIC)
    for param, as_int8 in _parameters(model):
        size += param.numel() + 2 * param.shape[0] if as_int8 else 2 * param.numel()
    return size


def _store_rows(model: SGIModel) -> tuple[bytes, list[np.ndarray]]:
    """The ``SGW9`` section of ``model`` and each parameter's stored values (file order)."""
    chunks, rounded = [MAGIC], []
    for param, as_int8 in _parameters(model):
        values = param.detach().cpu().float().numpy()
        if as_int8:
            scales, q = _int8_rows(values)
            chunks += [scales.astype("<f2").tobytes(), q.tobytes()]
            rounded.append(_dequantize(scales, q))
        else:
            half = values.astype("<f2")
            chunks.append(half.tobytes())
            rounded.append(half.astype(np.float32))
    return b"".join(chunks), rounded


def _load_rows(model: SGIModel, data: bytes) -> list[np.ndarray]:
    if len(data) != rows_size(model):
        raise ValueError(
            f"weight section holds {len(data)} bytes, the model needs {rows_size(model)}"
        )
    position, values = len(MAGIC), []
    for param, as_int8 in _parameters(model):
        n = param.numel()
        if as_int8:
            rows = param.shape[0]
            scales = np.frombuffer(data, "<f2", rows, position)
            q = np.frombuffer(data, np.int8, n, position + 2 * rows).reshape(rows, -1)
            values.append(_dequantize(scales, q))
            position += 2 * rows + n
        else:
            values.append(np.frombuffer(data, "<f2", n, position).astype(np.float32))
            position += 2 * n
    return values


# -- SGWA: power-of-two steps, entropy-coded -------------------------------------------------


def _coded_tensors(model: SGIModel) -> list[tuple[int, slice, int]]:
    """The tensors ``SGWA`` codes, in file order: (parameter index in :func:`_parameters`,
    rows of it, the least levels of its peak over its step)."""
    outputs = _context_parameters(model)
    outputs = outputs if model.context.prior is not None else outputs[-2:]
    steps = len(GROUPS)  # the context's last outputs: one step logit per attribute group
    tensors = []
    for index, (param, _) in enumerate(_parameters(model)):
        if any(param is output for output in outputs):
            tensors += [(index, slice(0, -steps), COARSE_LEVELS)]
            tensors += [(index, slice(-steps, None), FINE_LEVELS)]
        else:
            tensors.append((index, slice(None), COARSE_LEVELS))
    return tensors


def _exponent(values: np.ndarray, levels: int) -> int:
    """The step 2^e of a tensor: the coarsest on which every value lies exactly, with at most
    ``EXACT_LEVELS`` steps to its peak (weights the refinement trained on a chosen step,
    :mod:`napari_sgi.core.weight_steps`); otherwise the largest with at least ``levels`` steps
    to its peak.

    Examples
    --------
    >>> _exponent(np.array([0.75, -0.5, 0.0]), 63)  # on a step of 2^-2: stored exactly
    -2
    >>> _exponent(np.array([0.7, -0.5, 0.1]), 63)  # 0.7 / 63 = 2^-6.5
    -7
    """
    peak = float(np.abs(values).max()) if values.size else 0.0
    if not peak > 0:
        return EXPONENT_RANGE[0]
    coarsest = min(math.floor(math.log2(peak)), EXPONENT_RANGE[1])
    finest = max(math.floor(math.log2(peak / EXACT_LEVELS)), EXPONENT_RANGE[0])
    wide = values.astype(np.float64)
    for exponent in range(coarsest, finest - 1, -1):
        q = wide / 2.0**exponent
        if np.array_equal(q, np.rint(q)):
            return exponent
    return min(max(math.floor(math.log2(peak / levels)), EXPONENT_RANGE[0]), EXPONENT_RANGE[1])


def _spread_code(symbols: np.ndarray) -> int:
    rms = math.sqrt(float(np.mean(symbols.astype(np.float64) ** 2))) if symbols.size else 0.0
    code = SPREAD_STEPS * (math.log2(max(rms, 2.0**-SPREAD_OFFSET)) + SPREAD_OFFSET)
    return min(max(round(code), 0), 255)


def _sigmas(codes: list[int], sizes: list[int]) -> np.ndarray:
    spreads = [2.0 ** (code / SPREAD_STEPS - SPREAD_OFFSET) for code in codes]
    return np.repeat(np.array(spreads, np.float64), sizes)


def _store_coded(model: SGIModel) -> tuple[bytes, list[np.ndarray]] | None:
    """The ``SGWA`` section of ``model`` and each parameter's stored values; None when a tensor
    is too large for it (a peak beyond 2^40), which the rows layout then stores."""
    params = [p.detach().cpu().float().numpy().copy() for p, _ in _parameters(model)]
    head, symbols, codes, sizes = bytearray(CODED_MAGIC), [], [], []
    rounded = [np.empty_like(values) for values in params]
    for index, rows, levels in _coded_tensors(model):
        values = params[index][rows]
        exponent = _exponent(values, levels)
        q = np.rint(values.astype(np.float64) / 2.0**exponent)
        if q.size and np.abs(q).max() > MAX_CODED_SYMBOL:
            return None
        q = q.astype(np.int64)
        code = _spread_code(q)
        head += np.int8(exponent).tobytes() + bytes([code])
        rounded[index][rows] = q.astype(np.float32) * np.float32(2.0**exponent)
        symbols.append(q.ravel())
        codes.append(code)
        sizes.append(q.size)
    stream = encode_gaussian(np.concatenate(symbols), 0.0, _sigmas(codes, sizes), 1.0)
    return bytes(head) + stream, rounded


def _load_coded(model: SGIModel, data: bytes) -> list[np.ndarray]:
    tensors = _coded_tensors(model)
    head = len(CODED_MAGIC) + 2 * len(tensors)
    if len(data) < head:
        raise ValueError(f"weight section holds {len(data)} bytes, too few for its head ({head})")
    shapes = [tuple(p.shape) for p, _ in _parameters(model)]
    values = [np.empty(shape, np.float32) for shape in shapes]
    pairs = np.frombuffer(data, np.uint8, 2 * len(tensors), len(CODED_MAGIC))
    exponents = pairs[0::2].view(np.int8).astype(int)
    codes = [int(code) for code in pairs[1::2]]
    if exponents.min() < EXPONENT_RANGE[0] or exponents.max() > EXPONENT_RANGE[1]:
        raise ValueError(f"weight section: a step exponent outside {EXPONENT_RANGE}")
    sizes = [values[index][rows].size for index, rows, _ in tensors]
    (*_, count), chunks, _ = unpack_gaussian_head(data[head:])
    if count != sum(sizes) or not all(1 <= chunk[0] <= CHUNK_SYMBOLS for chunk in chunks):
        raise ValueError(f"weight section codes {count} values, the model has {sum(sizes)}")
    q = decode_gaussian(data[head:], 0.0, _sigmas(codes, sizes), 1.0)
    if q.size and np.abs(q).max() > MAX_CODED_SYMBOL:
        raise ValueError("weight section: a coded weight beyond its range")
    start = 0
    for (index, rows, _), exponent, size in zip(tensors, exponents, sizes, strict=True):
        block = values[index][rows]
        block[...] = (
            q[start : start + size].astype(np.float32) * np.float32(2.0**exponent)
        ).reshape(block.shape)
        start += size
    return values


# -- either ----------------------------------------------------------------------------------


def expected_size(model: SGIModel) -> int:
    """Bytes that the weights section of ``model`` is expected to take once fitted: the smaller
    of ``SGW9`` and an estimate of ``SGWA`` at ``CODED_BITS_PER_VALUE`` (for size targets).

    Examples
    --------
    >>> from napari_sgi.core.model import ModelConfig
    >>> model = SGIModel(ModelConfig(height=8, width=8, channels=1, feature_dim=4,
    ...                              gaussians_per_seed=6, seed_count=4, grid_levels=0))
    >>> expected_size(model) < rows_size(model)
    True
    """
    tensors = _coded_tensors(model)
    values = sum(p.numel() for p, _ in _parameters(model))
    coded = len(CODED_MAGIC) + 2 * len(tensors) + CODED_STREAM_HEAD
    coded += math.ceil(values * CODED_BITS_PER_VALUE / 8)
    return min(rows_size(model), coded) if CODED else rows_size(model)


@torch.no_grad()
def store_weights(model: SGIModel) -> bytes:
    """Round the MLP weights of ``model`` in place to what the file holds; return the section:
    ``SGWA`` or ``SGW9``, whichever is smaller."""
    coded = _store_coded(model) if CODED else None
    smaller = coded is not None and len(coded[0]) < rows_size(model)
    data, rounded = coded if smaller else _store_rows(model)
    for (param, _), values in zip(_parameters(model), rounded, strict=True):
        param.copy_(torch.from_numpy(values).reshape(param.shape))
    return data


@torch.no_grad()
def load_weights(model: SGIModel, data: bytes) -> None:
    """Install the weights of a weights section (of :func:`store_weights`) into ``model``.

    Raises
    ------
    ValueError
        If the section is of neither layout, or does not hold what the model's shapes need.
    """
    data = bytes(data)
    if data.startswith(MAGIC):
        values = _load_rows(model, data)
    elif data.startswith(CODED_MAGIC):
        values = _load_coded(model, data)
    else:
        raise ValueError(
            f"weight section starts with {data[:4]!r}, not {MAGIC!r} or {CODED_MAGIC!r}"
        )
    for (param, _), array in zip(_parameters(model), values, strict=True):
        param.copy_(torch.from_numpy(np.ascontiguousarray(array)).reshape(param.shape))
