"""fastmlp: multi-layer perceptrons trained as fast as a multicore CPU allows.

Every hot kernel exists as a NumPy reference (``fastmlp.backends.reference``, the spec), a
Numba version and a C version under the same name; pick one with ``backend=`` or
``set_backend()``.
"""

from ._version import __version__  # noqa: E402,F401

from . import codes, data, metrics, optim, schedules  # noqa: E402,F401
from .backends import (available_backends, get_backend, set_backend,  # noqa: E402,F401
                       set_num_threads, threads)
from .model import MLP  # noqa: E402
from .features import FeatureSpec  # noqa: E402
from .data import Catalog, Standardizer, load_catalog, make_photometric_catalog  # noqa: E402
from .training import (Ensemble, History, ModelBatch, TrainingDiverged,  # noqa: E402
                       compare_optimizers, cross_validate, fit, fit_batch, fit_ensemble,
                       fit_stream, lr_sweep)
from .io import load, save, to_onnx  # noqa: E402
from . import distributed, plot  # noqa: E402,F401  (no dask, mpi4py, matplotlib)

# scikit-learn is optional: its estimators are imported on first use, not with fastmlp; the
# C API locators too (importing c_config here would make `python -m fastmlp.c_config` warn)
_LAZY = {"MLPClassifier": "fastmlp.sklearn", "MLPRegressor": "fastmlp.sklearn",
         "c_include_dir": "fastmlp.c_config", "c_library_path": "fastmlp.c_config"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = ["MLP", "FeatureSpec", "fit", "fit_stream", "ModelBatch", "fit_batch", "fit_ensemble",
           "Ensemble", "History", "TrainingDiverged", "lr_sweep",
           "cross_validate", "compare_optimizers", "load", "save", "to_onnx", "optim",
           "schedules", "metrics", "codes", "data", "distributed", "plot", "Catalog",
           "Standardizer", "load_catalog", "make_photometric_catalog", "set_backend",
           "get_backend", "available_backends", "set_num_threads", "threads", "c_include_dir",
           "c_library_path", "__version__"]
