"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

The lowest layer of fastmlp's file handling (model files, checkpoints, plots, predictions and
benchmark results all write through ``atomic_write``); it imports nothing of fastmlp."""

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask



def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over
    ``path``.  On any error (or interruption) the temporary file is removed and ``path`` is
    left as it was.  Returns ``Path(path)``."""
    path = Path(os.fspath(path))
    d = path.parent
    if not d.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
