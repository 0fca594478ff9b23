"""Arithmetic decoding of torchac's streams: the compiled decoder when it is built, else torchac.

The compiled decoder (``_kernels/arith_decoder.c``, built by ``pip install`` as the shared
library ``napari_sgi.codec._arith_decoder``) is torchac's decoder, operation for operation, called
through ctypes: every stream, valid or corrupt, decodes to the same symbols either way. It runs
without the GIL (decode threads overlap; torchac's coder holds it), and it needs neither torchac
nor its build (``torch.utils.cpp_extension``): a reader that finds it never imports torchac.
Without it (a source tree that was not built, or ``$NAPARI_SGI_TORCHAC_DECODE`` set), torchac
decodes, and is built on first use like for encoding.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os

import numpy as np

from napari_sgi.codec.cdf import expand_rows
from napari_sgi.codec.torchac_backend import load_torchac
from napari_sgi.errors import CodingError

__all__ = ["TORCHAC_DECODE_ENV", "arithmetic_decode", "uses_native_decoder"]

TORCHAC_DECODE_ENV = "NAPARI_SGI_TORCHAC_DECODE"  # set (not "0"): decode with torchac


@functools.cache
def native_library() -> ctypes.CDLL | None:
    """The compiled decoder's shared library, or None when it is not built or does not load."""
    spec = importlib.util.find_spec("napari_sgi.codec._arith_decoder")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.sgi_ac_decode.argtypes = [pointer, i64, ctypes.c_int32, pointer, i64, pointer, i64, pointer]
    lib.sgi_ac_decode.restype = ctypes.c_int
    return lib


def uses_native_decoder() -> bool:
    """Whether streams are decoded by the compiled decoder (else by torchac).

    ``$NAPARI_SGI_TORCHAC_DECODE`` (read at every call) set to anything but ``0`` asks for
    torchac, to compare the two.
    """
    if os.environ.get(TORCHAC_DECODE_ENV, "").strip() not in ("", "0"):
        return False
    return native_library() is not None


def arithmetic_decode(
    rows: np.ndarray, row_index: np.ndarray | None, n: int, code: bytes
) -> np.ndarray:
    """``n`` symbols of a torchac stream, symbol i coded with CDF row ``rows[row_index[i]]``.

    Parameters
    ----------
    rows : numpy.ndarray of int16, shape [R, Lp]
        Distinct CDF rows in torchac's layout (counts out of 2**16 as 16-bit patterns).
    row_index : numpy.ndarray of int, shape [n], or None
        The row of every symbol; None: row 0 for every symbol.
    n : int
        Number of symbols.
    code : bytes
        The arithmetic-coded stream.

    Returns
    -------
    numpy.ndarray of int16, shape [n]

    Raises
    ------
    CodingError
        Sizes or row indices out of range (compiled decoder).
    """
    rows = np.ascontiguousarray(rows, dtype=np.int16)
    if not uses_native_decoder():
        import torch

        table = expand_rows(rows, np.zeros(n, np.int64) if row_index is None else row_index)
        return load_torchac().decode_int16_normalized_cdf(torch.from_numpy(table), code).numpy()
    out = np.empty(n, dtype=np.int16)
    index = None if row_index is None else np.ascontiguousarray(row_index, dtype=np.int32)
    buffer = np.frombuffer(code, dtype=np.uint8)
    status = native_library().sgi_ac_decode(
        rows.ctypes.data,
        len(rows),
        rows.shape[1],
        None if index is None else index.ctypes.data,
        n,
        buffer.ctypes.data if len(buffer) else None,
        len(buffer),
        out.ctypes.data,
    )
    if status:
        raise CodingError(f"arithmetic decoder: sizes or row indices out of range ({status})")
    return out
