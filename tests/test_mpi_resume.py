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


def test_a_resumed_run_returns_the_whole_history(tmp_path):
    """fit's resume returns every epoch; MPI's returned the epochs after the restore
    only."""
    X, y = _balanced()
    full, h_full = _fit(X, y, 3, None, validation=0.25)
    ck = tmp_path / "ck.npz"
    _fit(X, y, 2, ck, validation=0.25)
    resumed, h = _fit(X, y, 3, ck, resume=True, validation=0.25)
    np.testing.assert_array_equal(resumed.params, full.params)
    assert h.distributed["resumed_from_epoch"] == 2
    assert h.epochs == h_full.epochs == 3
    for name in ("loss", "val_loss", "batch_loss", "lr"):
        np.testing.assert_allclose(getattr(h, name), getattr(h_full, name), rtol=1e-12,
                                   err_msg=name)
    assert h.metrics.keys() == h_full.metrics.keys()
    for name, values in h_full.metrics.items():
        np.testing.assert_allclose(h.metrics[name], values, rtol=1e-12, err_msg=name)
    assert len(h.epoch_time) == len(h.samples_per_s) == 3


def test_the_command_line_records_every_epoch_of_a_resumed_run(tmp_path, capsys):
    """--output's losses and rank 0's summary after --resume: the epochs of the checkpoint
    too, numbered as the run's (the record held the epochs after the restore only)."""
    ck, record = tmp_path / "ck.npz", tmp_path / "record.npz"
    flags = ["--synthetic", "600", "--layers", "4,6,1", "--dtype", "float64", "--batch-size",
             "64", "--lr", "0.01", "--validation", "0.2", "--no-progress",
             "--checkpoint", str(ck), "--output", str(record)]
    assert mpi.main(flags + ["--epochs", "2"]) == 0
    first = np.load(record)["loss"]
    capsys.readouterr()
    assert mpi.main(flags + ["--epochs", "3", "--resume"]) == 0
    out = capsys.readouterr().out
    loss, val = np.load(record)["loss"], np.load(record)["val_loss"]
    assert len(loss) == len(val) == 3
    np.testing.assert_array_equal(loss[:2], first)
    assert (f"trained 1 epoch on 1 rank after resuming from epoch 2; final loss (epoch 3) "
            f"{loss[-1]:.5f}\n") in out, out
    assert all(f"epoch {e + 1}: val_loss {v:.5f}" in out for e, v in enumerate(val)), out


class _OneRank:
    """A communicator of one rank (allgather of a list of one)."""
    def allgather(self, value):
        return [value]


def test_label_fingerprint_of_a_rank_without_rows():
    """A rank left without rows (a --where that keeps none of its slice) gave reshape(0, -1)
    a (0, k) array: it failed alone while the others waited in allgather -- a hang under
    --checkpoint.  Its sums are zeros."""
    import numpy as np
    from fastmlp.distributed.mpi import label_fingerprint
    X = np.zeros((0, 3))
    for Y in (np.zeros(0), np.zeros((0, 1)), np.zeros((0, 2))):
        got = label_fingerprint(_OneRank(), X, Y)
        k = 1 if Y.ndim == 1 else Y.shape[1]
        assert got["label_mean"] == [0.0] * k
        assert got["label_x_mean"] == [[0.0] * 3] * k
    X = np.arange(6.0).reshape(3, 2)
    got = label_fingerprint(_OneRank(), X, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert got["label_mean"] == [2 / 3, 2 / 3]
    assert got["label_x_mean"] == [[(0 + 4) / 3, (1 + 5) / 3], [(2 + 4) / 3, (3 + 5) / 3]]
