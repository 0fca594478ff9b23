"""napari-sgi's exceptions, in one torch-free module that any part (the widget included) imports.

Examples
--------
>>> issubclass(SGIFormatError, ValueError), issubclass(CodingError, ValueError)
(True, True)
"""

from __future__ import annotations

__all__ = [
    "CodingError",
    "CodingMismatchError",
    "ComparisonCancelled",
    "FitCancelled",
    "MissingSectionError",
    "SGIFormatError",
]


class SGIFormatError(ValueError):
    """A file is not a readable ``.sgi`` file: foreign, truncated, corrupt, or from a newer version.

    The message names the problem (and the offending value) so that a user can tell a damaged
    download from a file written by a newer napari-sgi.
    """


class MissingSectionError(SGIFormatError, KeyError):
    """The file has no section of the requested name (also a ``KeyError``, as in a mapping)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CodingError(ValueError):
    """A coded stream is malformed (truncated, corrupt, or not a stream of this kind)."""


class CodingMismatchError(CodingError):
    """Decoding produced symbols whose checksum differs from the encoder's.

    Almost always the decoder was given a different ``mean``/``scale``/``step`` than the encoder
    (e.g. a context model that is not evaluated bit-identically), or the stream is corrupt.
    """


class FitCancelled(Exception):
    """A fit or a compression was asked to stop (its ``cancel`` check returned True)."""


class ComparisonCancelled(Exception):
    """A comparison with the classic codecs was asked to stop (its ``cancel`` check)."""
