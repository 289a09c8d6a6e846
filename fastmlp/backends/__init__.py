"""Backend registry: one name -> one module exposing the same kernel names.

``get_backend("numba").adam_update`` and ``get_backend("numpy").adam_update`` are
interchangeable.  A backend whose module fails to import (Numba missing, the C extension not
built) is reported unavailable with the reason, and ``"auto"`` skips it.

The default backend is ``"auto"``, or the ``FASTMLP_BACKEND`` environment variable, or what
``set_backend()`` chose last.

Threads: ``set_num_threads(n)`` sets the process default, ``with threads(n):`` overrides it
for the calling Python thread only (see ``_threads.py``); every kernel call reads the count
then, so the setting is never left changed by a call and concurrent fits do not interfere.
"""

import importlib
import os

from . import _threads
from ._threads import max_threads, threads  # noqa: F401  (public: fastmlp.threads)

# Fastest first: "auto" takes the first available one.
_MODULES = {
    "c": "fastmlp.backends.c",
    "numba": "fastmlp.backends.numba",
    "numpy": "fastmlp.backends.reference",
}
BACKENDS = ("numpy", "numba", "c")
_AUTO_ORDER = ("c", "numba", "numpy")

_default = None


def load_optional(module):
    """(the imported backend module, "") or (None, why not): any import failure, or the
    module's own AVAILABLE = False, means "unavailable", never a crash."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not getattr(mod, "AVAILABLE", True):
        return None, getattr(mod, "UNAVAILABLE_REASON", "")
    return mod, ""


class Registry:
    """Backends of one kind (the kernels, the batched kernels): each module loaded once on
    first use, "auto" resolved to the first available in ``auto_order``."""

    def __init__(self, modules, auto_order, what="backend"):
        self.modules, self.auto_order, self.what = dict(modules), tuple(auto_order), what
        self._loaded = {}

    def load(self, name):
        """(module or None, reason it is unavailable)."""
        if name not in self._loaded:
            self._loaded[name] = load_optional(self.modules[name])
        return self._loaded[name]

    def available(self):
        """{name: (available, reason_if_not)} for every known backend."""
        return {name: (self.load(name)[0] is not None, self.load(name)[1])
                for name in self.modules}

    def resolve(self, name):
        """The concrete available backend for a known name or "auto"."""
        if name == "auto":
            for cand in self.auto_order:
                if self.load(cand)[0] is not None:
                    return cand
        mod, reason = self.load(name)
        if mod is None:
            raise RuntimeError(f"{self.what} {name!r} is not available: {reason}")
        return name


_registry = Registry({n: _MODULES[n] for n in BACKENDS}, _AUTO_ORDER)   # listed in BACKENDS order


def _load(name):
    return _registry.load(name)


def available_backends():
    """{name: (available, reason_if_not)} for every known backend."""
    return _registry.available()


def check_backend_name(name):
    """A known backend name or "auto" (not resolved: an unavailable backend passes), else
    ValueError listing the names; MLP and the optimizers check their ``backend`` with it."""
    if name != "auto" and name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of: auto, "
                         + ", ".join(BACKENDS))


def requested(name=None):
    """The backend name asked for: ``name``, else set_backend's, else $FASTMLP_BACKEND,
    else "auto" (checked, not yet resolved)."""
    if name is None:
        name = _default or os.environ.get("FASTMLP_BACKEND", "auto") or "auto"
    check_backend_name(name)
    return name


def resolve(name=None):
    """The concrete backend name that ``name`` (None = the default) stands for."""
    return _registry.resolve(requested(name))


def get_backend(name=None):
    """The kernel module for ``name`` ("numpy", "numba", "c", "auto" or None)."""
    return _load(resolve(name))[0]


def check_optimizer_hyper(opt_name, named):
    """The check every backend's update runs on an optimizer's named hyper-parameters
    (ranges, finiteness, the nesterov rule), with the same message; the optimizers run it
    when a value changes (fastmlp.optim.Optimizer.step)."""
    from ._contract import hyper_values
    hyper_values(opt_name, named)


def set_backend(name):
    """Set the process-wide default backend (``"auto"`` restores automatic choice)."""
    global _default
    check_backend_name(name)
    if name != "auto":
        resolve(name)  # fail now, not at the first training step
    _default = name


def set_num_threads(n):
    """The default thread count of the fastmlp kernels of every backend (an integer in
    [1, max_threads()]; NumPy integers accepted).  ``threads(n)`` overrides it in a block."""
    _threads.set_default(n)


def get_num_threads():
    """The count in force for this Python thread: the innermost ``threads(n)`` block, else
    the ``set_num_threads`` default (None: each backend's own default)."""
    return _threads.requested()
