"""Scale-out: Dask (sweeps, cross-validation, data-parallel training with model averaging)
and MPI (exact synchronous data parallelism with one Allreduce per mini-batch).

Both are optional: ``pip install "fastmlp[dask]"`` / ``"fastmlp[mpi]"``.  Importing this
package never needs them; calling a function that does raises an ImportError naming the extra.

- ``fit(model, ddf, features=..., label=..., client=..., sync_every=K, ...)`` -> History
- ``dask_lr_sweep(make_model, X, y, client, ...)`` -> SweepResult
- ``dask_cross_validate(make_model, X, y, client, ...)`` -> CVResult
- ``mpi_fit(model, X, y, ...)`` under ``mpirun -n P`` (or ``python -m fastmlp.distributed.mpi``)
- ``ShardClassMixWarning``: fit's shards hold very different class mixes (importable, to
  filter it, without Dask)
"""

from ..training.checkpoint import atomic_savez, load_checkpoint  # noqa: F401
from ._common import ShardClassMixWarning  # noqa: F401  (no Dask needed to filter it)


def fit(model, data, y=None, **kwargs):
    """Data-parallel training on Dask; see fastmlp.distributed.dask.fit."""
    from .dask import fit as _fit
    return _fit(model, data, y, **kwargs)


def dask_lr_sweep(make_model, X, y, client="local", **kwargs):
    """fastmlp.lr_sweep with candidates as Dask tasks; see fastmlp.distributed.dask."""
    from .dask import dask_lr_sweep as _f
    return _f(make_model, X, y, client, **kwargs)


def dask_cross_validate(make_model, X, y, client="local", **kwargs):
    """fastmlp.cross_validate with folds as Dask tasks; see fastmlp.distributed.dask."""
    from .dask import dask_cross_validate as _f
    return _f(make_model, X, y, client, **kwargs)


def mpi_fit(model, X=None, y=None, **kwargs):
    """Synchronous data-parallel training with MPI; see fastmlp.distributed.mpi.mpi_fit."""
    from .mpi import mpi_fit as _f
    return _f(model, X, y, **kwargs)


__all__ = ["fit", "dask_lr_sweep", "dask_cross_validate", "mpi_fit", "atomic_savez",
           "load_checkpoint", "ShardClassMixWarning"]
