"""The ``.sgi`` container: a JSON header and named byte sections, each readable on its own.

Writing streams: :class:`SGIWriter` writes each section as it comes (into a temporary file beside
the destination) and the header and index at :meth:`SGIWriter.close`, then atomically replaces
the destination. Section bytes are never held; the index keeps ~50 bytes per section.
Reading is lazy: :class:`SGIReader` reads the preamble and footer when opened, and one section's
byte range (CRC-checked) per :meth:`SGIReader.read_section`. Any problem with the file itself is
an :class:`~napari_sgi.errors.SGIFormatError` naming it; every length is checked against the
file size before anything is allocated or read. The layout is in ``docs/format.md``.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "demo.sgi")
>>> with SGIWriter(path, {"shape": [64, 64], "axes": "YX"}) as w:
...     w.add_section("slice/0/mlp", b"\\x00" * 10)
>>> with SGIReader(path) as r:
...     r.header["axes"], r.section_names, r.read_section("slice/0/mlp")[:2]
('YX', ['slice/0/mlp'], b'\\x00\\x00')
>>> sgi_info(path).total == os.path.getsize(path)
True
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from napari_sgi.errors import MissingSectionError, SGIFormatError
from napari_sgi.file.atomic import AtomicFile
from napari_sgi.file.format import Format, SectionEntry, check_section_name, detect_format
from napari_sgi.file.header import MAX_HEADER_BYTES, decode_header, encode_header

__all__ = ["SGIReader", "SGIWriter", "SizeBreakdown", "sgi_info"]

Source = str | os.PathLike | BinaryIO


class SGIWriter:
    """Stream sections into a new ``.sgi`` file; the header and index are written at close.

    Parameters
    ----------
    path : str or path-like
        Destination, replaced atomically at :meth:`close` (untouched if anything fails).
    header : mapping, optional
        JSON-serialisable header (validated now and at close); ``writer.header`` is a dict that
        may be updated until close, e.g. with the measured quality.
    overwrite : bool
        If False, refuse to replace an existing file.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "stream.sgi")
    >>> with SGIWriter(path, {"axes": "ZYX", "shape": [2, 8, 8]}) as w:
    ...     for z in range(2):
    ...         w.add_section(f"slice/{z}/features", bytes([z]) * 4)
    ...     w.header["quality"] = {"psnr": 41.2}
    >>> SGIReader(path).header["quality"]
    {'psnr': 41.2}
    """

    def __init__(
        self,
        path: str | os.PathLike,
        header: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = True,
    ) -> None:
        self.header: dict[str, Any] = dict(header or {})
        encode_header(self.header)  # fail before creating anything
        self._format = Format()
        self._entries: list[SectionEntry] = []
        self._names: set[str] = set()
        self._atomic = AtomicFile(path, overwrite=overwrite)
        self.path = self._atomic.path
        try:
            # Placeholder preamble (no footer): patched at close, never visible at the path.
            self._atomic.file.write(self._format.pack_preamble(0))
        except BaseException:
            self._atomic.abort()
            raise
        self._offset = self._format.preamble_size

    @property
    def closed(self) -> bool:
        return self._atomic.done

    @property
    def bytes_written(self) -> int:
        """Bytes written so far (the preamble and the sections)."""
        return self._offset

    def add_section(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Append a section. ``name``: 1..255 chars of ``[A-Za-z0-9_.-]`` in ``/``-parts."""
        if self.closed:
            raise ValueError("the writer is closed")
        check_section_name(name)
        if name in self._names:
            raise ValueError(f"section {name!r} was already added")
        view = memoryview(data).cast("B")
        try:
            self._atomic.file.write(view)
        except BaseException:
            self.abort()
            raise
        self._entries.append(SectionEntry(name, self._offset, len(view), zlib.crc32(view)))
        self._names.add(name)
        self._offset += len(view)

    def close(self, header_update: Mapping[str, Any] | None = None) -> None:
        """Write the header (updated with ``header_update``) and index, then replace the file."""
        if self.closed:
            raise ValueError("the writer is closed")
        try:
            if header_update:
                self.header.update(header_update)
            footer = self._format.encode_footer(encode_header(self.header), self._entries)
            f = self._atomic.file
            f.write(footer)
            f.seek(0)
            f.write(self._format.pack_preamble(len(footer)))
            self._atomic.commit()  # flush, fsync, os.replace (aborts itself on failure)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discard everything written; the destination is left as it was."""
        self._atomic.abort()

    def __enter__(self) -> SGIWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # KeyboardInterrupt included
            self.abort()
        elif not self.closed:
            self.close()


class SGIReader:
    """Lazy reader of a ``.sgi`` file: header and index at open, sections on demand.

    Parameters
    ----------
    source : str, path-like or binary file object
        A file object (seekable) is read but not closed by :meth:`close`.

    Attributes
    ----------
    header : dict
        The JSON header (a copy per access is not made: do not modify it).
    format_version : int
    file_size : int

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "b.sgi")
    >>> with SGIWriter(path, {"axes": "YX"}) as w:
    ...     w.add_section("a", b"xy")
    ...     w.add_section("b", b"z")
    >>> with SGIReader(path) as r:
    ...     r.section_sizes, r.read_section("b")
    ({'a': 2, 'b': 1}, b'z')
    """

    def __init__(self, source: Source) -> None:
        if isinstance(source, str | os.PathLike):
            self._file: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed by close()
            self._owns = True
        else:
            self._file, self._owns = source, False
        self._lock = threading.Lock()  # seek + read pairs from several threads
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self.file_size = self._file.seek(0, os.SEEK_END)
        prefix = self._read_at(0, min(self.file_size, Format.PREAMBLE.size))
        fmt = detect_format(prefix, self.file_size)
        self.format_version = fmt.version
        footer_offset, footer_length = fmt.unpack_preamble(prefix, self.file_size)
        footer = self._read_at(footer_offset, footer_length)
        header_json, entries = fmt.decode_footer(footer, footer_offset, MAX_HEADER_BYTES)
        self.header: dict[str, Any] = decode_header(header_json)
        self._entries = {e.name: e for e in entries}
        self._overhead = fmt.overhead(footer_length)

    def _read_at(self, offset: int, length: int) -> bytes:
        # Callers have checked offset + length <= file_size; a shorter read means the file
        # shrank under us (or a lying file object).
        with self._lock:
            self._file.seek(offset)
            data = self._file.read(length)
        if len(data) != length:
            raise SGIFormatError(
                f"truncated file: {length} bytes expected at offset {offset}, got {len(data)}"
            )
        return data

    @property
    def section_names(self) -> list[str]:
        """Section names in file order."""
        return list(self._entries)

    @property
    def section_sizes(self) -> dict[str, int]:
        """Bytes per section, in file order."""
        return {name: e.length for name, e in self._entries.items()}

    def section_entry(self, name: str) -> SectionEntry:
        """Offset, length and CRC32 of a section."""
        try:
            return self._entries[name]
        except KeyError:
            raise MissingSectionError(f"the file has no section {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def read_section(self, name: str, *, verify: bool = True) -> bytes:
        """Read one section (only its byte range), checking its CRC32 unless ``verify=False``."""
        entry = self.section_entry(name)
        data = self._read_at(entry.offset, entry.length)
        if verify and zlib.crc32(data) != entry.crc32:
            raise SGIFormatError(f"section {name!r} is corrupt (CRC32 mismatch)")
        return data

    def verify(self) -> None:
        """Read every section and check its CRC32 (raises :class:`SGIFormatError`)."""
        for name in self._entries:
            self.read_section(name)

    def info(self) -> SizeBreakdown:
        """Bytes per section and container overhead; they add up to :attr:`file_size`."""
        return SizeBreakdown(self.file_size, self.section_sizes, dict(self._overhead))

    def close(self) -> None:
        if self._owns and not self._file.closed:
            self._file.close()

    def __enter__(self) -> SGIReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class SizeBreakdown:
    """Where the bytes of a file go. ``sum(sections) + sum(overhead) == file_size``.

    ``overhead`` has ``preamble`` (16 bytes) and ``header+index``: the footer, that is the JSON
    header and the index deflated into one stream, and its CRC32.
    """

    file_size: int
    sections: dict[str, int]
    overhead: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.sections.values()) + sum(self.overhead.values())

    def grouped(self, part: int = -1) -> dict[str, int]:
        """Section bytes summed by one ``/``-part of the name (default: the last, e.g. ``mlp``)."""
        out: dict[str, int] = {}
        for name, size in self.sections.items():
            parts = name.split("/")
            key = parts[part] if -len(parts) <= part < len(parts) else name
            out[key] = out.get(key, 0) + size
        return out

    def __str__(self) -> str:
        rows = [(k, v) for k, v in self.sections.items()]
        rows += [(f"({k})", v) for k, v in self.overhead.items()]
        width = max([len(k) for k, _ in rows] + [5])
        lines = [
            f"{k:<{width}}  {v:>12,d}  {100 * v / max(self.file_size, 1):6.2f} %" for k, v in rows
        ]
        lines.append(f"{'total':<{width}}  {self.file_size:>12,d}  100.00 %")
        return "\n".join(lines)


def sgi_info(path: Source) -> SizeBreakdown:
    """Bytes per section plus container overhead, adding up exactly to the file size.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "c.sgi")
    >>> with SGIWriter(path) as w:
    ...     w.add_section("slice/0/mlp", b"12")
    ...     w.add_section("slice/1/mlp", b"345")
    >>> sgi_info(path).grouped()
    {'mlp': 5}
    """
    with SGIReader(path) as reader:
        return reader.info()
