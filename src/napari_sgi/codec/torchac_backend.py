"""torchac, the arithmetic coder that writes every stream, loaded once and quietly.

torchac compiles its C++ coder with ninja the first time it is imported (about 25 s), into a
torch-extensions folder, and the build prints its log on the terminal. :func:`load_torchac`
imports it once per process, into a folder of this Python environment's own, with the log out of
the user's terminal unless the build fails (then the log's end is in the error).

Only encoding needs torchac: decoding uses the compiled decoder
(:mod:`napari_sgi.codec.native_decoder`) whenever it is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator

__all__ = ["extensions_dir", "load_torchac", "quiet_fds"]

_torchac = None
_torchac_lock = threading.Lock()


def extensions_dir() -> str:
    """A torch-extensions build folder of this Python environment's own.

    torchac builds its coder into ``~/.cache/torch_extensions`` by default, a folder that every
    environment shares; two environments then rebuild it in turn (about a minute each time).

    Examples
    --------
    >>> extensions_dir() == extensions_dir() and "torch_extensions" in extensions_dir()
    True
    """
    tag = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "napari-sgi", "torch_extensions", tag)


def load_torchac():
    """The ``torchac`` module, imported (and built, the first time) once per process.

    ``$TORCH_EXTENSIONS_DIR`` defaults to :func:`extensions_dir`. Thread-safe.

    Raises
    ------
    ImportError
        torchac failed to build or load; the message ends with the build log.
    """
    global _torchac
    if _torchac is None:
        with _torchac_lock:
            if _torchac is None:
                os.environ.setdefault("TORCH_EXTENSIONS_DIR", extensions_dir())
                with quiet_fds() as log:
                    try:
                        import torchac
                    except Exception as exc:  # noqa: BLE001 - re-raised with the build log
                        raise ImportError(
                            f"torchac failed to load (it needs g++ and ninja): {exc}\n{log()}"
                        ) from exc
                _torchac = torchac
    return _torchac


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def quiet_fds() -> Iterator[Callable[[], str]]:
    """Send file descriptors 1 and 2 to a temporary file for the duration of the block.

    The build runs in a subprocess that writes to the fds themselves, so redirecting
    ``sys.stdout`` would not catch it. Yields a function that returns the last 4000 characters
    written so far. Without real fds (an embedded interpreter) the output goes through unchanged.
    """
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = []
        _flush_std()  # what was printed before goes where it was going
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no real fds (embedded interpreter): just let the log through
            pass

        def log() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")[-4000:]

        try:
            yield log
        finally:
            _flush_std()  # what the import printed goes to the sink
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
