"""The format versions this napari-sgi reads, and the one it writes (``CurrentFormat``).

Examples
--------
>>> CurrentFormat.version
4
>>> detect_format(b"\\x89PNG\\r\\n\\x1a\\n....", 100)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
napari_sgi.errors.SGIFormatError: not an .sgi file ...; it looks like a PNG image
"""

from __future__ import annotations

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.format_v1 import MAGIC, PREFIX, FormatV1, describe_foreign
from napari_sgi.file.format_v2 import FormatV2
from napari_sgi.file.format_v3 import FormatV3
from napari_sgi.file.format_v4 import FormatV4

__all__ = ["CurrentFormat", "FORMATS", "MAX_PREAMBLE", "detect_format"]

CurrentFormat = FormatV4
FORMATS = {1: FormatV1, 2: FormatV2, 3: FormatV3, 4: FormatV4}
MAX_PREAMBLE = max(f.PREAMBLE.size for f in FORMATS.values())


def detect_format(prefix: bytes, file_size: int) -> FormatV1:
    """The format class for a file starting with ``prefix`` (at least its first 12 bytes).

    Raises :class:`SGIFormatError` for foreign files, truncated files and newer versions.
    """
    if len(prefix) < PREFIX.size:
        if MAGIC.startswith(prefix[: len(MAGIC)]) and file_size > 0:
            raise SGIFormatError(f"truncated file: {file_size} bytes, shorter than the preamble")
        raise SGIFormatError(
            f"not an .sgi file ({file_size} bytes, no SGI signature){describe_foreign(prefix)}"
        )
    magic, version = PREFIX.unpack_from(prefix)
    if magic != MAGIC:
        raise SGIFormatError(
            f"not an .sgi file (starts with {prefix[:8]!r}){describe_foreign(prefix)}"
        )
    if CurrentFormat.version < version < 1 << 16:  # larger values are bit flips, not releases
        raise SGIFormatError(
            f"the file was written by a newer napari-sgi (format version {version}; this "
            f"napari-sgi reads versions up to {CurrentFormat.version}): upgrade napari-sgi"
        )
    if version not in FORMATS:
        raise SGIFormatError(f"unknown .sgi format version {version} (corrupt file?)")
    return FORMATS[version]()
