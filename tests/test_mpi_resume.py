"""Resuming an MPI run: another run's checkpoint (other labels, or standardize switched)
is refused, and the resumed run returns the whole History, as fit's resume does.  One
rank: COMM_WORLD of a plain python, no mpirun needed."""

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.distributed import mpi

pytestmark = pytest.mark.skipif(not mpi.AVAILABLE, reason="mpi4py is not importable "
                                f"({mpi.UNAVAILABLE_REASON}); pip install fastmlp[mpi]")

N = 400


def _balanced():
    """Two classes of exactly N/2 rows each: the mean of y is 0.5 for y and for 1 - y."""
    rng = np.random.default_rng(6)
    y = rng.permutation(np.repeat([0, 1], N // 2))
    X = rng.normal(size=(N, 3)) + 1.5 * y[:, None]
    return X, y


def _fit(X, y, epochs, ck, **kw):
    model = MLP([3, 6, 1], seed=0, dtype="float64")
    kw = dict(dict(batch_size=50, lr=1e-2, standardize=True, progress=False), **kw)
    return model, mpi.mpi_fit(model, X, y, epochs=epochs, checkpoint=ck, **kw)


def test_a_checkpoint_of_other_labels_is_refused(tmp_path):
    """The same inputs with the classes swapped (balanced: the same share of 1s) resumed
    on, the first epoch trained on y and the rest on 1 - y."""
    X, y = _balanced()
    ck = tmp_path / "ck.npz"
    _fit(X, y, 1, ck)
    with pytest.raises(ValueError, match=r"written by a different run \(labels: checkpoint "):
        _fit(X, 1 - y, 2, ck, resume=True)
    _, h = _fit(X, y, 2, ck, resume=True)          # the same labels resume
    assert h.distributed["resumed_from_epoch"] == 1


def test_a_checkpoint_with_standardize_switched_is_refused(tmp_path):
    """Written with standardize=True, resumed with False: one epoch on standardised inputs,
    the rest on raw ones, and a model without any standardisation at the end."""
    X, y = _balanced()
    ck = tmp_path / "ck.npz"
    _fit(X, y, 1, ck)
    with pytest.raises(ValueError, match=r"different run \(.*standardize: checkpoint True, "
                                         r"now False"):
        _fit(X, y, 3, ck, resume=True, standardize=False)
