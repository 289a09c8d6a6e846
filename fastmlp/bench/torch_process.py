"""The PyTorch peers, in a process of their own that imports torch before anything else.

Why: PyTorch's CPU wheel and fastmlp's C backend load the same ``libgomp.so.1``, and libgomp
reads its wait policy once, when it is first loaded.  fastmlp's C backend loads it with
``OMP_WAIT_POLICY=PASSIVE`` (see backends/c.py), so in a process that imported fastmlp first
PyTorch's threads also sleep between parallel regions.  Measured on the Intel Xeon (2 vCPUs),
torch eager trained 5-32-32-1@256 at 160k samples/s there and at 575k samples/s in a process
of its own; its 5-64-64-1 inference lost 25 %.  Every ratio against torch measured in
fastmlp's process was too flattering, so torch runs here, as a PyTorch user's script would.

``TorchProcess(threads)`` starts ``python -c "import torch; ..."``; ``new(factory, *args)``
builds an object there (``factory``: "module:callable", called with the torch module first)
and returns a proxy whose method calls run in the worker.  Arrays go over a pipe once per
object; ``put(name, value)`` stores a big argument once, and ``Ref(name)`` passes it.
"""

import importlib
import importlib.util
import subprocess
import sys
from multiprocessing.connection import Connection, Pipe

_CHILD = ("import sys, torch; from fastmlp.bench.torch_process import serve; "
          "sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))")


class Ref:
    """An argument stored in the worker by TorchProcess.put."""

    def __init__(self, name):
        self.name = name


class RemoteError(RuntimeError):
    """An exception raised in the worker (its type and message)."""


class TorchProcess:
    def __init__(self, threads):
        parent, child = Pipe()
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(child.fileno()),
                                       str(threads)], pass_fds=(child.fileno(),))
        child.close()
        self._conn = parent
        self._next = 0

    def _ask(self, *msg):
        try:
            self._conn.send(msg)
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise RemoteError(f"the PyTorch worker exited ({self._proc.poll()}): {exc}") \
                from None
        if status != "ok":
            raise RemoteError(value)
        return value

    def put(self, name, value):
        self._ask("put", name, value)
        return Ref(name)

    def new(self, factory, methods, *args, **kwargs):
        """A proxy of factory(torch, *args, **kwargs) built in the worker, with ``methods``
        (names) callable from here."""
        self._next += 1
        self._ask("new", self._next, factory, args, kwargs)
        return RemoteObject(self, self._next, methods)

    def call(self, func, *args, **kwargs):
        """func ("module:callable") called in the worker with torch first."""
        return self._ask("call", func, args, kwargs)

    def drop_all(self):
        """Forget every object built so far (their memory is freed in the worker)."""
        self._ask("drop_all")

    def close(self):
        try:
            self._conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self._conn.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RemoteObject:
    def __init__(self, proc, oid, methods):
        self._proc, self._oid, self._methods = proc, oid, tuple(methods)

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(name)
        return lambda *a, **k: self._proc._ask("method", self._oid, name, a, k)


def _resolve(obj, store):
    if isinstance(obj, Ref):
        return store[obj.name]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(o, store) for o in obj)
    return obj


def _load(path):
    """"module:name", or "/path/to/file.py:name" (a script such as benchmarks/*.py)."""
    mod, name = path.rsplit(":", 1)
    if mod.endswith(".py"):
        spec = importlib.util.spec_from_file_location("_torch_process_script", mod)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, name)
    return getattr(importlib.import_module(mod), name)


def serve(fd, threads):
    """The worker's loop (torch is already imported, before fastmlp)."""
    import torch
    torch.set_num_threads(threads)
    conn = Connection(fd)
    store, objects = {}, {}
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return 0
        if msg[0] == "stop":
            return 0
        try:
            value = None
            if msg[0] == "put":
                store[msg[1]] = msg[2]
            elif msg[0] == "new":
                _, oid, factory, args, kw = msg
                objects[oid] = _load(factory)(torch, *_resolve(args, store), **kw)
            elif msg[0] == "call":
                _, func, args, kw = msg
                value = _load(func)(torch, *_resolve(args, store), **kw)
            elif msg[0] == "method":
                _, oid, name, args, kw = msg
                value = getattr(objects[oid], name)(*_resolve(args, store), **kw)
            elif msg[0] == "drop_all":
                objects.clear()
            conn.send(("ok", value))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which records it
            conn.send(("error", f"{type(exc).__name__}: {str(exc)[:300]}"))


def torch_version(torch):
    return torch.__version__


def imported_before(torch, first, second):
    """Whether module ``first`` was imported before ``second`` in the worker (sys.modules
    keeps import order; ``second`` is imported now if it was not yet)."""
    importlib.import_module(second)
    order = list(sys.modules)
    return first in order and order.index(first) < order.index(second)
