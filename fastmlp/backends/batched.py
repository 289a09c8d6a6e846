"""Registry of the batched kernels (K models of one architecture in one pass).

``get_batched_backend(name)`` returns the module for "numpy" (the reference, the spec),
"numba" or "c" (when the C extension is built with csrc/batched.c), "auto" (or None:
Numba, then C, then NumPy - Numba's batch trains whole models per thread, while the C
batch makes one fused single-model call per model and chunk of rows).  The training layer
(fastmlp.training.batch.batched_kernels) prefers the twin of the single-model backend a
serial run would use, so that batched and serial results are equal bit for bit.  The batched kernels have their own registry because not every
single-model backend has a batched twin; a name without one is reported with the reason.
"""

from . import Registry

_MODULES = {
    "numpy": "fastmlp.backends.batched_reference",
    "numba": "fastmlp.backends.batched_numba",
    "c": "fastmlp.backends.batched_c",
}
BATCHED_BACKENDS = ("numpy", "numba", "c")
_AUTO_ORDER = ("numba", "c", "numpy")
_registry = Registry(_MODULES, _AUTO_ORDER, "batched backend")


def available_batched_backends():
    """{name: (available, reason_if_not)} for every batched backend."""
    return _registry.available()


def resolve_batched(name=None):
    """The concrete batched backend ``name`` stands for (None / "auto": fastest available)."""
    name = "auto" if name is None else name
    if name != "auto" and name not in _MODULES:
        raise ValueError(f"unknown batched backend {name!r}; expected one of: auto, "
                         + ", ".join(BATCHED_BACKENDS))
    return _registry.resolve(name)


def get_batched_backend(name=None):
    """The batched kernel module for ``name`` ("numpy", "numba", "c", "auto" or None)."""
    return _registry.load(resolve_batched(name))[0]
