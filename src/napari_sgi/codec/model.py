"""A fitted model to the byte sections of a `.sgi` file and back (sgi-method §9, our format).

What is stored per slice: the MLP weights (matrices as int8 rows, biases float16: see
:mod:`.weights`), the binarised hash grid (one Bernoulli-coded bit per entry,
:mod:`.bit_stream`) and the quantised seed attributes (discretised-Gaussian coded,
:mod:`.gaussian_stream`, with means, scales and steps from the context model). Seed positions
are regenerated from the model configuration.

Exactness: the encoder installs in its model exactly the values the decoder will rebuild (stored
weights, +-1 grid, ``symbol * step``) before it renders and measures, so the decoded image is the
render the encoder measured. The context model that gives means, scales and steps is evaluated in
float64 on one thread and the steps are snapped to a dyadic grid, so that the decoder's values are
bit-identical to the encoder's; the coder's per-chunk checksums catch what could still differ.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import numpy as np
import torch

from napari_sgi.codec.bit_stream import decode_bits, encode_bits
from napari_sgi.codec.gaussian_stream import _unpack_head as unpack_gaussian_head
from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian
from napari_sgi.codec.weights import load_weights, store_weights
from napari_sgi.core.entropy import GROUPS
from napari_sgi.core.model import Attributes, ModelConfig, SGIModel
from napari_sgi.errors import CodingError
from napari_sgi.file.budget import CHUNK_SYMBOLS, check_section_sizes, stream_symbols

STEP_SNAP_BITS = 16  # steps are multiples of 2^-16 of their base step


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """torch on one thread in the calling thread, for reproducible float64 results (split across
    threads, element-wise kernels give a range's last elements to scalar tail loops, whose
    transcendental functions may differ in the last bit).

    torch's count is per thread (another thread's setting does not change this one's), so decode
    threads may use this side by side; the count that threads started later begin with is the
    last one set anywhere, which :meth:`SGIFile._render_all` gives back after its threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def round_to_stored(model: SGIModel) -> bytes:
    """Round the MLPs and the hash grid in place as the file stores them; the weights section."""
    weights = store_weights(model)
    if model.context.grid is not None:
        with torch.no_grad():
            grid = model.context.grid.table
            grid.copy_(torch.where(grid >= 0, 1.0, -1.0))
    return weights


def _grid_section(model: SGIModel) -> bytes:
    """The binarised hash grid's section; empty for a model without a grid."""
    if model.context.grid is None:
        return b""
    return encode_bits((model.context.grid.table.detach() >= 0).numpy().ravel())


def coding_distributions(model: SGIModel) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Mean, scale and step (float64, flattened per group) of every stored value.

    Evaluated on a float64 copy of the context model on one thread, and the steps snapped, so the
    encoder and the decoder compute the same numbers.
    """
    context = copy.deepcopy(model.context).double().cpu()
    size = torch.tensor([model.config.width, model.config.height], dtype=torch.float64)
    coords = model.anchors.detach().double().cpu() / size
    with torch.no_grad(), _single_thread():
        groups = context(coords, level=0)
    out = {}
    for name in GROUPS:
        g = groups[name]
        step = torch.round(g.step * 2.0**STEP_SNAP_BITS) / 2.0**STEP_SNAP_BITS
        step = torch.clamp(step, min=2.0**-STEP_SNAP_BITS)
        shape = (len(coords), g.mean.shape[1])  # shared distributions come as one row
        out[name] = tuple(t.detach().expand(shape).numpy().ravel() for t in (g.mean, g.scale, step))
    return out


def _install(model: SGIModel, groups: dict[str, np.ndarray]) -> Attributes:
    shapes = {
        "features": model.features.shape,
        "log_scaling": model.log_scaling.shape,
        "offsets": model.offsets.shape,
    }
    with torch.no_grad():
        for name, values in groups.items():
            getattr(model, name).copy_(
                torch.from_numpy(values.astype(np.float32)).reshape(shapes[name])
            )
    return model.attributes()


def encode_model(model: SGIModel) -> dict[str, bytes]:
    """Quantise ``model`` in place to what the file holds and return its sections.

    After the call, ``model.render(0)`` is exactly the image a decoder of these sections renders.
    """
    sections = {"weights": round_to_stored(model)}
    sections["hash_grid"] = _grid_section(model)
    distributions = coding_distributions(model)
    decoded = {}
    with torch.no_grad():
        values = {
            name: v.detach().double().cpu().numpy()
            for name, v in model.attributes().as_groups().items()
        }
    for name in GROUPS:
        mean, scale, step = distributions[name]
        symbols = np.rint(values[name].ravel() / step).astype(np.int64)
        sections[name] = encode_gaussian(symbols, mean, scale, step)
        decoded[name] = symbols * step
    _install(model, decoded)
    return sections


def check_sections(config: ModelConfig, sections: dict[str, bytes]) -> None:
    """Refuse sections that ``config`` cannot have, before a model is built or a symbol decoded.

    Their lengths (:func:`napari_sgi.file.budget.check_section_sizes`), then each Gaussian
    stream's header: as many symbols as the model has values of its group, in chunks of at most
    2^18 symbols (as every encoder writes them). A claimed seed count thus costs bytes.

    Raises
    ------
    ValueError
        (:class:`~napari_sgi.errors.SGIFormatError` or
        :class:`~napari_sgi.errors.CodingError`) naming the section.
    """
    model = config.to_dict()
    sizes = {part: len(data) for part, data in sections.items()}
    check_section_sizes(model, sizes, "model")
    for part, symbols in stream_symbols(model).items():
        (*_, count), chunks, _ = unpack_gaussian_head(sections[part])
        if count != symbols:
            raise CodingError(f"the {part} stream holds {count} symbols, its model has {symbols}")
        if not all(1 <= chunk[0] <= CHUNK_SYMBOLS for chunk in chunks):
            raise CodingError(f"the {part} stream has a chunk of more than {CHUNK_SYMBOLS} symbols")


def decode_model(config: ModelConfig, sections: dict[str, bytes]) -> SGIModel:
    """Rebuild the model that :func:`encode_model` left behind, from its sections alone.

    The sections are checked against ``config`` first (:func:`check_sections`), and the weights
    must be finite; any problem is a ``ValueError``.
    """
    check_sections(config, sections)
    with torch.random.fork_rng(devices=[]):
        model = SGIModel(config, initialize_scaling=False)
    load_weights(model, sections["weights"])
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise CodingError("the weights section holds NaN or infinite values")
    if model.context.grid is not None:
        with torch.no_grad():
            table = model.context.grid.table
            bits = decode_bits(sections["hash_grid"], table.numel())
            table.copy_(torch.from_numpy(bits.astype(np.float32) * 2 - 1).reshape(table.shape))
    distributions = coding_distributions(model)
    decoded = {}
    for name in GROUPS:
        mean, scale, step = distributions[name]
        symbols = decode_gaussian(sections[name], mean, scale, step).astype(np.int64)
        decoded[name] = symbols * step
    _install(model, decoded)
    return model
