"""fastmlp: multi-layer perceptrons trained as fast as a multicore CPU allows.

Every hot kernel exists as a NumPy reference (``fastmlp.backends.reference``, the spec), a
Numba version and a C version under the same name; pick one with ``backend=`` or
``set_backend()``.
"""

__version__ = "0.1.0"

from . import datasets, metrics, optim, schedules  # noqa: E402,F401
from .backends import available_backends, get_backend, set_backend, set_num_threads  # noqa
from .model import MLP  # noqa: E402
from .train import History, TrainingDiverged, fit  # noqa: E402
from .recipes import cross_validate, lr_sweep  # noqa: E402
from .io import load  # noqa: E402
from .datasets import Catalog, load_catalog, make_photometric_catalog  # noqa: E402
from . import distributed, plot, stream  # noqa: E402,F401  (no dask, mpi4py, matplotlib)

# scikit-learn is optional: its estimators are imported on first use, not with fastmlp
_LAZY = {"MLPClassifier": "fastmlp.sklearn", "MLPRegressor": "fastmlp.sklearn"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = ["MLP", "fit", "History", "TrainingDiverged", "lr_sweep", "cross_validate", "load",
           "optim", "schedules", "metrics", "datasets", "distributed", "plot", "stream", "Catalog", "load_catalog",
           "make_photometric_catalog", "set_backend", "get_backend", "available_backends",
           "set_num_threads", "__version__"]
