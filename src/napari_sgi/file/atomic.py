"""Atomic file replacement: write a temporary file beside the destination, fsync, ``os.replace``.

Readers of the destination see either the old file or the complete new one, never a partial
write; on any exception (KeyboardInterrupt included) the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from pathlib import Path
from typing import BinaryIO

__all__ = ["AtomicFile"]


def _umask() -> int:
    # os.umask can only be read by setting it (racy with threads): prefer /proc on Linux.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _discard(file: BinaryIO, tmp: str) -> None:
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp)


class AtomicFile:
    """A temporary file that becomes ``path`` on :meth:`commit` and vanishes on :meth:`abort`.

    Parameters
    ----------
    path : str or path-like
        Destination. Its directory must exist; the destination is not opened before commit.
    overwrite : bool
        If False, raise ``FileExistsError`` when the destination exists (checked at both ends).

    Examples
    --------
    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> f = AtomicFile(target)
    >>> _ = f.file.write(b"data")
    >>> f.commit()
    >>> open(target, "rb").read()
    b'data'
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory")
        if not overwrite and self.path.exists():
            raise FileExistsError(f"{self.path} exists")
        fd, self.tmp_path = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self.file: BinaryIO = os.fdopen(fd, "w+b")
        # If the owner is garbage-collected without commit/abort, the temp file still goes away.
        self._finalizer = weakref.finalize(self, _discard, self.file, self.tmp_path)
        self.done = False

    def commit(self) -> None:
        """Flush, fsync and move the temporary file onto the destination."""
        if self.done:
            raise ValueError("the file was already committed or aborted")
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            os.chmod(self.tmp_path, 0o666 & ~_umask())  # mkstemp made it 0600
            self.file.close()
            if not self.overwrite and self.path.exists():
                raise FileExistsError(f"{self.path} exists")
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        self._finalizer.detach()
        self._fsync_dir()

    def abort(self) -> None:
        """Close and remove the temporary file; the destination is left as it was."""
        self.done = True
        self._finalizer()

    def _fsync_dir(self) -> None:
        # Makes the rename itself durable; best effort (not every platform opens directories).
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
