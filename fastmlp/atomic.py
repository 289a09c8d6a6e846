"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

The lowest layer of fastmlp's file handling (model files, checkpoints, plots, predictions and
benchmark results all write through ``atomic_write``); it imports nothing of fastmlp.

A writer killed with SIGKILL cannot remove its temporary file, so the temporary file's name
carries the writer's host and pid (``.<name>.<host hash>.<pid>-<random>.tmp``): the next
write to the same target removes the temporary files of writers that are no longer alive
(and, from other hosts or the older pid-less format, those untouched for STALE_SECONDS).

Only a regular file is ever replaced.  A rename over a device, FIFO or socket would put a
regular file in its place (``fastmlp.save(model, "/dev/null")`` run as root replaced the
device node), so such a target is refused before anything is written; a symlink is
followed, so the link stays and the file it points to is replaced.
"""

import hashlib
import os
import re
import socket
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write", "write_target", "stale_temp_files", "STALE_SECONDS", "same_file",
           "refuse_overwrite"]

# A temporary file whose writer cannot be checked (another host, or the pid-less name of
# older versions) is removed only after this long untouched: no save takes an hour.
STALE_SECONDS = 3600.0

_OLD_FORMAT = re.compile(r"[a-z0-9_]{8}")              # tempfile.mkstemp's random part
_NEW_FORMAT = re.compile(r"([0-9a-f]{8})\.([0-9]+)-[a-z0-9_]+")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_tag():
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True   # exists, owned by someone else (or cannot tell): leave it
    return True


def stale_temp_files(path, now=None):
    """The temporary files beside ``path`` left by killed writes to ``path`` (only names
    that atomic_write makes for this very target; never the target itself)."""
    path = Path(os.fspath(path))
    prefix, host = f".{path.name}.", _host_tag()
    now = time.time() if now is None else now
    stale = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return stale
    for e in entries:
        if not (e.name.startswith(prefix) and e.name.endswith(".tmp")):
            continue
        middle = e.name[len(prefix):-len(".tmp")]
        m = _NEW_FORMAT.fullmatch(middle)
        try:
            old = now - e.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
        except OSError:
            continue
        if m is not None:
            dead = m.group(1) == host and not _pid_alive(int(m.group(2)))
            if dead or (m.group(1) != host and old):
                stale.append(Path(e.path))
        elif _OLD_FORMAT.fullmatch(middle) and old:
            stale.append(Path(e.path))
    return stale


def _remove_stale(path):
    for p in stale_temp_files(path):
        try:
            p.unlink()
        except OSError:   # removed by a concurrent writer, or not ours to remove
            pass


def _fsync_dir(d):
    """Make the rename itself durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# what a file that is not regular is, in an error message
_KINDS = [(stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")]

_ATOMIC_ONLY = ("fastmlp writes files atomically (temp file + rename) and will not replace a "
                "device, FIFO or directory")


def _not_regular_kind(path):
    """'a FIFO', 'a directory', ... for an existing path that is not a regular file; None
    for a regular file or a path that does not exist."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for is_kind, kind in _KINDS if is_kind(mode)), "not a regular file")


def write_target(path, what="path"):
    """The file ``atomic_write(path, ...)`` replaces: ``path`` itself, or, when ``path`` is a
    symlink, the file it points to (followed to the end), so that the link stays a link.

    Raises IsADirectoryError for a directory and ValueError for any other existing target
    that is not a regular file (a device, FIFO or socket), FileNotFoundError when the
    target's directory does not exist (a dangling link into a missing directory); ``what``
    names the path in the message (``"--out"`` for the CLI's flag)."""
    path = Path(os.fspath(path))
    target, via = path, ""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        via = f" (a symlink to '{target}')"
        if target.is_symlink():          # realpath stops at a loop of links
            raise OSError(f"{what} '{path}' is a symlink that leads to itself (a loop of "
                          "links); give a file path")
    kind = _not_regular_kind(target)
    if kind == "a directory":
        raise IsADirectoryError(f"{what} '{path}'{via} is a directory, not a regular file: "
                                f"{_ATOMIC_ONLY}")
    if kind is not None:
        raise ValueError(f"{what} '{path}'{via} is {kind}, not a regular file: "
                         f"{_ATOMIC_ONLY}")
    d = target.parent
    if not d.is_dir():
        raise FileNotFoundError(f"{what} '{path}'{via}: directory {d} does not exist")
    return target


def same_file(a, b):
    """Whether paths a and b name one file: the same path once symlinks are resolved, or
    (both existing) the same inode, which catches hard links and bind mounts too."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:                     # one of them does not exist (yet)
        return False


def _given(p):
    return p is not None and not isinstance(p, bool)   # a flag given without a path: True


def refuse_overwrite(out, inputs, what="out", outputs=()):
    """ValueError when the output path ``out`` (named ``what`` in the message) is one of
    the ``inputs`` (through symlinks, hard links or other aliases of an existing file): a
    run never overwrites its own input; or one of the other ``outputs`` ((name, path)
    pairs): one output would overwrite the other.  None (no output) passes."""
    if out is None:
        return
    for p in inputs:
        if _given(p) and same_file(out, p):
            raise ValueError(f"{what} {out} is the same file as the input {p}; refusing to "
                             "overwrite an input (choose another output path)")
    for other, p in outputs:
        if _given(p) and same_file(out, p):
            raise ValueError(f"{what} {out} is the same file as {other} {p}; one would "
                             "overwrite the other (give each output its own path)")


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over
    ``path``.  On any error (or interruption) the temporary file is removed and ``path`` is
    left as it was; temporary files of earlier writes to ``path`` that were killed are
    removed first.  A symlink at ``path`` stays: the file it points to is replaced.  A target
    that is not a regular file (a device, FIFO, socket or directory) is refused before
    anything is written (see ``write_target``).  Returns ``Path(path)``."""
    path = Path(os.fspath(path))
    target = write_target(path)
    d = target.parent
    _remove_stale(target)
    try:    # a read-only directory or a full disk: the error names the temporary file
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_host_tag()}.{os.getpid()}-",
                                   suffix=".tmp", dir=d)
    except OSError as exc:
        named = _naming_the_target(exc, path, exc.filename)
        if named is None:
            raise
        raise named from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        named = _naming_the_target(exc, path, tmp)
        if named is None:
            raise
        raise named from None
    _fsync_dir(d)
    return path


def _naming_the_target(exc, path, tmp):
    """An OSError of the write itself (a full disk, a file-size limit, an I/O error) says
    only "[Errno 28] No space left on device", or names the temporary file: the same error
    naming ``path`` and that it was left as it was.  None for any other error, and for an
    OSError about another file (one that ``write`` itself reads, say), kept as it is."""
    if not isinstance(exc, OSError) or exc.errno is None \
            or exc.filename not in (None, tmp, os.fspath(tmp)):
        return None
    return type(exc)(exc.errno, f"{exc.strerror} while writing (nothing was written: "
                                "the file, if there was one, is as it was)", os.fspath(path))
