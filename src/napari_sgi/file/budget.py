"""What one region's model may cost a reader, and what its sections must then hold (torch-free).

A reader sizes its work from a region's ``model`` entry (``ModelConfig``): the box it renders,
the seeds it regenerates and the stored values it decodes. A hostile header can ask for any of
these at almost no cost in bytes (a symbol a stream codes with certainty costs ~1e-4 bit), so
they are bounded against the box before anything is allocated (:func:`check_model_budget`):

- the box renders at most ``MAX_BOX_VALUES`` floats (pixels x channels: 256 MiB of float32);
- at most one Gaussian (seed x K) per pixel of the box, and ``MAX_GAUSSIANS`` in all;
- at most 16 stored values (seed x (F + 4 + 2K)) per pixel of the box, and ``MAX_VALUES`` in all.

The encoder's presets write 0.01-0.07 Gaussians and 0.03-0.5 stored values per pixel, over boxes
of about 1088 x 1088 pixels; the tests go up to 0.25 and 1.3. Decoding takes about 60 bytes per
stored value (the context model's float64 means, scales and steps, the symbols), so a model within
these bounds needs at most about 1 GB to decode and 256 MiB to render, whatever it claims.

Then the sections' lengths must be what the configuration implies (:func:`check_section_sizes`,
from the index alone, before any section is read): the weights section exactly
:func:`weights_bytes` (int8 rows) or within :func:`coded_weights_bytes` (coded); the hash grid
empty without a grid, at least a bit-stream header with one;
each Gaussian stream at least the header and chunk table its symbol count needs, a chunk holding
at most ``CHUNK_SYMBOLS`` (2^18) symbols, as every encoder writes them. So a few kilobytes cannot
claim millions of seeds, and every region of a file costs at least ~100 bytes of sections.

Examples
--------
>>> model = {"height": 64, "width": 96, "channels": 3, "feature_dim": 4,
...          "gaussians_per_seed": 4, "seed_count": 46, "rng_seed": 0, "levels": 3,
...          "grid_levels": 0, "grid_features": 4, "grid_log2_table": 13}
>>> check_model_budget(model)
>>> weights_bytes(model), stream_symbols(model)
(330, {'features': 184, 'log_scaling': 184, 'offsets': 368})
>>> try:
...     check_model_budget({**model, "seed_count": 1 << 20})
... except SGIFormatError as error:
...     print(str(error)[:61])
model field 'seed_count' too large for its 64x96 box: 1048576
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from napari_sgi.errors import SGIFormatError

__all__ = [
    "CHUNK_SYMBOLS",
    "MAX_BOX_VALUES",
    "MAX_GAUSSIANS",
    "MAX_VALUES",
    "check_model_budget",
    "check_section_sizes",
    "coded_weights_bytes",
    "min_stream_bytes",
    "stream_symbols",
    "weights_bytes",
]

MAX_BOX_VALUES = 1 << 26  # pixels x channels of one box: 8192 x 8192 grey, 4096 x 4096 RGBA
MAX_GAUSSIANS = 1 << 22  # per model (seeds x K); and at most one per pixel of its box
MAX_VALUES = 1 << 24  # stored values per model (seeds x (F + 4 + 2K)); and at most 16 per pixel
VALUES_PER_PIXEL = 16
SMALL_BOX_GAUSSIANS = 1 << 12  # a small box may still hold one seed of any K
SMALL_BOX_VALUES = 1 << 16
CHUNK_SYMBOLS = 1 << 18  # symbols per chunk of a Gaussian stream at most (as the encoder writes)
STREAM_HEAD_BYTES = 4  # "G", version, grids, sort block
CHUNK_ENTRY_BYTES = 9  # the smallest chunk-table entry: 5 one-byte varints, a u8, a u32
BIT_STREAM_HEAD_BYTES = 24  # "SGIB", version, 3 reserved, u64 n, u32 c1, u32 chunks
STREAMS = ("features", "log_scaling", "offsets")


def _fail(field: str, message: str) -> SGIFormatError:
    return SGIFormatError(f"model field {field!r} {message}")


def stream_symbols(model: Mapping[str, int]) -> dict[str, int]:
    """Symbols of each Gaussian stream: ``N x F``, ``N x 4`` and ``N x 2K``."""
    n = model["seed_count"]
    return {
        "features": n * model["feature_dim"],
        "log_scaling": n * 4,
        "offsets": n * 2 * model["gaussians_per_seed"],
    }


def check_model_budget(model: Mapping[str, int]) -> None:
    """Refuse a (range-checked) model whose box, Gaussians or stored values exceed the bounds."""
    height, width, channels = model["height"], model["width"], model["channels"]
    pixels = height * width
    box = f"{height}x{width} box"
    if pixels * channels > MAX_BOX_VALUES:
        raise _fail(
            "height",
            f"too large: a {box} of {channels} channel(s) renders {pixels * channels} values, "
            f"at most {MAX_BOX_VALUES}",
        )
    seeds, k = model["seed_count"], model["gaussians_per_seed"]
    gaussians = seeds * k
    if seeds > 1 and gaussians > min(max(pixels, SMALL_BOX_GAUSSIANS), MAX_GAUSSIANS):
        raise _fail(
            "seed_count",
            f"too large for its {box}: {seeds} seeds x {k} Gaussians = {gaussians} Gaussians, "
            f"at most one per pixel ({pixels}) and {MAX_GAUSSIANS} in all",
        )
    values = sum(stream_symbols(model).values())
    if values > min(max(VALUES_PER_PIXEL * pixels, SMALL_BOX_VALUES), MAX_VALUES):
        per_seed = values // seeds
        raise _fail(
            "seed_count" if seeds > 1 else "feature_dim",
            f"too large for its {box}: {seeds} seeds x {per_seed} stored values = {values}, "
            f"at most {VALUES_PER_PIXEL} per pixel and {MAX_VALUES} in all",
        )


def _linear_bytes(n_in: int, n_out: int) -> int:
    """A ``Linear`` in the weights section: int8 matrix, float16 row scales, float16 bias."""
    return n_out * n_in + 2 * n_out + 2 * n_out


def weights_bytes(model: Mapping[str, int]) -> int:
    """Exact length of a weights section in int8 rows (``SGW9``, :mod:`.codec.weights`)."""
    f, k, c = model["feature_dim"], model["gaussians_per_seed"], model["channels"]
    size = 4 + 2 * _linear_bytes(f, f) + _linear_bytes(f, c * k) + _linear_bytes(f, 3 * k)
    if model.get("blend"):
        size += _linear_bytes(f, 2 * k)  # the blend head
    n_out = 2 * (f + 4 + 2 * k) + len(STREAMS)  # means, raw scales, one step logit per group
    if model["grid_levels"] == 0:
        return size + 2 * n_out  # the prior, float16
    grid_dim = model["grid_levels"] * model["grid_features"]
    return size + _linear_bytes(grid_dim, 2 * f) + _linear_bytes(2 * f, n_out)


def _weight_tensors(model: Mapping[str, int]) -> tuple[int, int]:
    """Tensors and values a coded weights section (``SGWA``) holds: each ``Linear``'s weight and
    bias, the context's output split in two (its step logits apart)."""
    f, k, c = model["feature_dim"], model["gaussians_per_seed"], model["channels"]
    tensors, values = 8, 2 * (f * f + f) + (f + 1) * c * k + (f + 1) * 3 * k
    if model.get("blend"):
        tensors, values = tensors + 2, values + (f + 1) * 2 * k
    n_out = 2 * (f + 4 + 2 * k) + len(STREAMS)
    if model["grid_levels"] == 0:
        return tensors + 2, values + n_out
    grid_dim = model["grid_levels"] * model["grid_features"]
    return tensors + 6, values + (grid_dim + 1) * 2 * f + (2 * f + 1) * n_out


def coded_weights_bytes(model: Mapping[str, int]) -> tuple[int, int]:
    """Shortest and longest coded weights section (``SGWA``) of ``model``: its magic, two bytes
    a tensor, and a Gaussian stream of its values: the stream's head and chunk table, and at
    least 1/16 bit a value (the least a value costs at the smallest spread a tensor can have, a
    quarter step: 0.067 bit), at most 9 bytes a value (far above any coder's).

    Examples
    --------
    >>> model = {"feature_dim": 4, "gaussians_per_seed": 6, "channels": 1, "grid_levels": 0}
    >>> coded_weights_bytes(model)
    (41, 1868)
    """
    tensors, values = _weight_tensors(model)
    shortest = 4 + 2 * tensors + min_stream_bytes(values) + values // 128
    return shortest, shortest + 9 * values


def _varint_bytes(value: int) -> int:
    return max(1, math.ceil(value.bit_length() / 7))


def min_stream_bytes(symbols: int) -> int:
    """The shortest Gaussian stream of ``symbols`` symbols: its header and chunk table."""
    chunks = math.ceil(symbols / CHUNK_SYMBOLS)
    return (
        STREAM_HEAD_BYTES
        + _varint_bytes(symbols)
        + _varint_bytes(chunks)
        + CHUNK_ENTRY_BYTES * chunks
    )


def check_section_sizes(model: Mapping[str, int], sizes: Mapping[str, int], where: str) -> None:
    """Refuse sections whose lengths (``sizes``: part -> bytes) the model cannot have."""
    rows, (shortest, longest) = weights_bytes(model), coded_weights_bytes(model)
    if sizes["weights"] != rows and not shortest <= sizes["weights"] <= longest:
        raise SGIFormatError(
            f"{where}: the weights section holds {sizes['weights']} bytes, its model needs "
            f"{rows} (int8 rows) or {shortest} to {longest} (coded)"
        )
    grid = sizes["hash_grid"]
    if (model["grid_levels"] == 0) != (grid == 0) or 0 < grid < BIT_STREAM_HEAD_BYTES:
        raise SGIFormatError(
            f"{where}: a hash-grid section of {grid} bytes for a model of "
            f"{model['grid_levels']} grid levels"
        )
    for part, symbols in stream_symbols(model).items():
        if sizes[part] < min_stream_bytes(symbols):
            raise SGIFormatError(
                f"{where}: the {part} section holds {sizes[part]} bytes, too few for the "
                f"{symbols} symbols of its model (at least {min_stream_bytes(symbols)})"
            )
