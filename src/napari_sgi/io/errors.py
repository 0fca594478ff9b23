"""Errors of the ``.sgi`` container."""

from __future__ import annotations

__all__ = ["MissingSectionError", "SGIFormatError"]


class SGIFormatError(ValueError):
    """A file is not a readable ``.sgi`` file: foreign, truncated, corrupt, or from a newer version.

    The message names the problem (and the offending value) so that a user can tell a damaged
    download from a file written by a newer napari-sgi.
    """


class MissingSectionError(SGIFormatError, KeyError):
    """The file has no section of the requested name (also a ``KeyError``, as in a mapping)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
