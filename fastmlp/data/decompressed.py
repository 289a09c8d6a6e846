"""A gzip-compressed catalog read in any chunk order without decompressing it again and
again.

A gzip stream cannot seek: ``GzipFile.seek`` backwards starts decompressing from the first
byte again, so reading the chunks of a ``.csv.gz`` in a shuffled order (``fit_stream``
visits the chunks of each epoch in a random order) costs a decompression from the start of
the file per chunk: time quadratic in the file's length.  :class:`SeekableSource` reads a
plain file directly, a compressed one sequentially from the gzip stream (a pass in file
order, e.g. ``scan`` or ``predict``, seeks forwards only), and decompresses it once into a
temporary file the first time chunks are asked for out of order; that copy is removed
when the source is closed, garbage-collected or the interpreter exits.  It lives in
``tempfile.gettempdir()`` (``TMPDIR``) and takes the uncompressed size on disk.
"""

import gzip
import shutil
import tempfile
import weakref
from pathlib import Path


class SeekableSource:
    """Binary file objects over the (decompressed) bytes of ``path``."""

    def __init__(self, path):
        self.path = path
        self.compressed = str(path).lower().endswith(".gz")
        self.copy = None                     # the decompressed copy, once made
        self._cleanup = None

    def open(self, order=None):
        """A binary file object; ``order``: the chunk indices about to be read (None or
        ascending: a sequential read, which a gzip stream serves without a copy)."""
        if not self.compressed:
            return open(self.path, "rb")
        if self.copy is None and (order is None or _ascending(order)):
            return gzip.open(self.path, "rb")
        if self.copy is None:
            self._decompress()
        return open(self.copy, "rb")

    def _decompress(self):
        tmp = tempfile.mkdtemp(prefix="fastmlp-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
        copy = Path(tmp) / Path(str(self.path)).name[:-3]
        try:
            with gzip.open(self.path, "rb") as src, open(copy, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
        except BaseException:   # disk full, a corrupt stream, Ctrl-C: no partial copy kept
            self.close()
            raise
        self.copy = copy

    def close(self):
        """Remove the decompressed copy, if one was made."""
        if self._cleanup is not None:
            self._cleanup()
        self.copy = self._cleanup = None


def _ascending(order):
    order = list(order)
    return all(a < b for a, b in zip(order, order[1:]))
