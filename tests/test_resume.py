"""Exact resume: fit / fit_stream with checkpoint= write the whole state of the run; a run
interrupted at any point and resumed with resume= ends bit-identical to an uninterrupted one
(parameters, optimizer state, History).  The SIGKILL version runs in subprocesses on every
available backend."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp.data import make_photometric_catalog

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    X, y = make_photometric_catalog(500, seed=4)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


class Crash(Exception):
    pass


def _crash_at(epoch):
    def cb(e, hist, model):   # runs before that epoch's checkpoint is written
        if e == epoch:
            raise Crash
    return cb


RUNS = {
    "adam": dict(optimizer="adam", lr=0.01),
    "schedule+val": dict(optimizer="momentum", lr=0.05, schedule="warmup=5+cosine:T=60",
                         validation=0.2),
    "early_stopping": dict(optimizer="adam", lr=0.05, validation=0.3,
                           early_stopping={"patience": 2, "min_delta": 1e9}),
    "float64+class_weight": dict(optimizer="rmsprop", lr=0.003, class_weight="balanced",
                                 dtype="float64"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_interrupted_and_resumed_run_equals_uninterrupted(data, tmp_path, name):
    kw = dict(RUNS[name])
    dtype = kw.pop("dtype", "float32")
    X, y = data
    common = dict(batch_size=64, epochs=6, seed=3, progress=False, standardize=True, **kw)
    common.setdefault("validation", None)
    ref = fastmlp.MLP([4, 12, 1], seed=1, dtype=dtype)
    h_ref = fastmlp.fit(ref, X, y, **common)

    ck = tmp_path / "run.ckpt"
    first = fastmlp.MLP([4, 12, 1], seed=1, dtype=dtype)
    crash_epoch = 4 if not h_ref.stopped_early else h_ref.epochs
    with pytest.raises(Crash):
        fastmlp.fit(first, X, y, checkpoint=ck, callbacks=[_crash_at(crash_epoch)], **common)
    # a fresh model (another init, no standardisation): everything comes from the file
    again = fastmlp.MLP([4, 12, 1], seed=99, dtype=dtype)
    h = fastmlp.fit(again, X, y, checkpoint=ck, resume=ck, **common)

    np.testing.assert_array_equal(again.params, ref.params)
    np.testing.assert_array_equal(again.optimizer.state, ref.optimizer.state)
    assert again.optimizer.step_count == ref.optimizer.step_count
    for a, b in zip(again.standardization, ref.standardization):
        np.testing.assert_array_equal(a, b)
    assert h.loss == h_ref.loss and h.val_loss == h_ref.val_loss and h.lr == h_ref.lr
    assert h.batch_loss == h_ref.batch_loss and h.metrics == h_ref.metrics
    assert (h.best_epoch, h.stopped_early) == (h_ref.best_epoch, h_ref.stopped_early)
    assert not np.array_equal(ref.params, fastmlp.MLP([4, 12, 1], seed=1, dtype=dtype).params)
    if name == "early_stopping":
        assert h_ref.stopped_early and h_ref.epochs < 6


def test_resume_true_starts_fresh_without_a_file_and_continues_with_one(data, tmp_path):
    X, y = data
    kw = dict(batch_size=50, seed=0, progress=False, validation=None)
    ref = fastmlp.MLP([4, 8, 1], seed=2)
    fastmlp.fit(ref, X, y, epochs=5, **kw)
    ck = tmp_path / "c.ckpt"
    m = fastmlp.MLP([4, 8, 1], seed=2)
    fastmlp.fit(m, X, y, epochs=3, checkpoint=ck, resume=True, **kw)   # no file yet: fresh
    m2 = fastmlp.MLP([4, 8, 1], seed=2)
    h = fastmlp.fit(m2, X, y, epochs=5, checkpoint=ck, resume=True, **kw)  # epochs 4..5
    np.testing.assert_array_equal(m2.params, ref.params)
    assert h.epochs == 5 and len(h.batch_loss) == 5 * 10


def test_checkpoint_every_n_epochs(data, tmp_path):
    X, y = data
    ck = tmp_path / "c.ckpt"
    seen = []

    def cb(e, hist, model):
        if ck.exists():
            seen.append((e, json.loads(str(np.load(ck)["meta"]))["epochs_done"]))
    fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, epochs=7, checkpoint=ck, checkpoint_every=3,
                callbacks=[cb], progress=False, validation=None)
    # the callback of epoch e runs before epoch e's checkpoint
    assert seen == [(4, 3), (5, 3), (6, 3), (7, 6)]
    assert json.loads(str(np.load(ck)["meta"]))["epochs_done"] == 7   # and the last one


def test_resume_refuses_other_data_settings_and_bad_files(data, tmp_path):
    X, y = data
    ck = tmp_path / "c.ckpt"
    kw = dict(epochs=2, progress=False, validation=None)
    fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, checkpoint=ck, **kw)
    with pytest.raises(ValueError, match="different run.*data_sha256"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X[:-1], y[:-1], resume=ck, **kw)
    with pytest.raises(ValueError, match="different run.*batch_size"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=ck, batch_size=32, **kw)
    with pytest.raises(ValueError, match="different run.*layer_sizes"):
        fastmlp.fit(fastmlp.MLP([4, 9, 1]), X, y, resume=ck, **kw)
    with pytest.raises(ValueError, match="different run.*optimizer"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=ck, optimizer="sgd", **kw)
    # the rates too: a resumed run with another lr or schedule is not the checkpointed run
    with pytest.raises(ValueError, match=r"different run \(optimizer lr: checkpoint 0.001, "
                                         r"now 0.01\)"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=ck, lr=0.01, **kw)
    with pytest.raises(ValueError, match="different run.*optimizer beta2"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=ck,
                    optimizer_kwargs={"betas": (0.9, 0.99)}, **kw)
    with pytest.raises(ValueError, match="different run.*schedule: checkpoint None, now 'cos"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=ck, schedule="cosine:T=50", **kw)
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint file"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=tmp_path / "nope", **kw)
    junk = tmp_path / "junk.npz"
    np.savez(junk, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastmlp fit checkpoint"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=junk, **kw)
    (tmp_path / "trunc").write_bytes(ck.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a fastmlp fit checkpoint"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=tmp_path / "trunc", **kw)
    for bad, match in [(0, "checkpoint_every"), (2.5, "checkpoint_every"),
                       (True, "checkpoint_every")]:
        with pytest.raises(ValueError, match=match):
            fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, checkpoint=ck, checkpoint_every=bad, **kw)
    with pytest.raises(ValueError, match="directory .* does not exist"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, checkpoint=tmp_path / "no" / "c", **kw)
    with pytest.raises(ValueError, match="is a directory"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, checkpoint=tmp_path, **kw)
    os.mkfifo(tmp_path / "fifo")     # atomic_write would replace it: refused before training
    with pytest.raises(ValueError, match="checkpoint .*fifo' is a FIFO, not a regular file"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, checkpoint=tmp_path / "fifo", **kw)
    with pytest.raises(ValueError, match="resume=True .* None"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=True, **kw)


def test_fit_stream_resume_is_exact(tmp_path):
    X, y = make_photometric_catalog(900, seed=5)
    path = tmp_path / "cat.npy"
    arr = np.zeros(len(y), dtype=[(c, "f8") for c in ("a", "b", "c", "d")] + [("label", "i8")])
    for i, c in enumerate("abcd"):
        arr[c] = X[:, i]
    arr["label"] = y
    np.save(path, arr)
    kw = dict(epochs=5, batch_size=40, seed=8, progress=False, chunk_rows=200, lr=0.01)
    ref = fastmlp.MLP([4, 8, 1], seed=1)
    h_ref = fastmlp.fit_stream(ref, path, **kw)
    ck = tmp_path / "s.ckpt"
    with pytest.raises(Crash):
        fastmlp.fit_stream(fastmlp.MLP([4, 8, 1], seed=1), path, checkpoint=ck,
                           callbacks=[_crash_at(3)], **kw)
    again = fastmlp.MLP([4, 8, 1], seed=50)
    h = fastmlp.fit_stream(again, path, resume=ck, **kw)
    np.testing.assert_array_equal(again.params, ref.params)
    assert h.loss == h_ref.loss and h.batch_loss == h_ref.batch_loss


# ---------------------------------------------------------------------------------------
# SIGKILL at a random point, then resume: bit-identical on every backend
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import fastmlp
    from fastmlp.data import make_photometric_catalog
    backend, ck, out, resume = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    stream = sys.argv[5] == "stream"
    X, y = make_photometric_catalog(1500, seed=11)
    model = fastmlp.MLP([4, 16, 16, 1], seed=5)

    def tell(epoch, hist, model):
        print(epoch, flush=True)
        sys.stdin.readline()   # the parent's go-ahead (immediate EOF when not piped)
    kw = dict(epochs=20, batch_size=32, lr=3e-3, seed=2, schedule="cosine:T=850",
              backend=backend, n_threads=2, checkpoint=ck if ck != "-" else None,
              resume=resume, progress=False, callbacks=[tell])
    if stream:   # a chunked catalog file: the chunk order is drawn from the same rng
        cat = np.zeros(len(y), dtype=[(c, "f8") for c in "abcd"] + [("label", "i8")])
        for i, c in enumerate("abcd"):
            cat[c] = X[:, i]
        cat["label"] = y
        np.save("cat.npy", cat)
        fastmlp.fit_stream(model, "cat.npy", chunk_rows=400, **kw)
    else:
        fastmlp.fit(model, X, y, validation=0.1, standardize=True, **kw)
    np.save(out, model.params)
""")


def _child(tmp_path, backend, ck, out, resume, mode, paced=False):
    """The CHILD script; ``paced``: it waits for a line on stdin after each epoch, so that
    the parent decides in which epoch the kill lands whatever the machine's load."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", CHILD, backend, str(ck), str(out),
                             "1" if resume else "0", mode], stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE if paced else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


BACKENDS = [b for b, (ok, _) in fastmlp.available_backends().items() if ok]


@pytest.mark.parametrize("backend, mode", [(b, "fit") for b in BACKENDS]
                         + [(BACKENDS[-1], "stream")])
def test_sigkill_at_a_random_point_then_resume_is_bit_identical(tmp_path, backend, mode):
    rnd = random.Random()                    # a new random point every run
    ref = _child(tmp_path, backend, "-", tmp_path / "ref.npy", False, mode)
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err

    ck = tmp_path / "run.ckpt"
    run = _child(tmp_path, backend, ck, tmp_path / "killed.npy", True, mode, paced=True)
    kill_after = rnd.randint(2, 17)          # epochs seen, then a random delay
    for line in run.stdout:
        run.stdin.write("\n")
        run.stdin.flush()
        if int(line) >= kill_after:
            break
    delay = rnd.uniform(0.0, 0.02)            # inside the next epoch or its checkpoint write
    time.sleep(delay)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.npy").exists()
    done = json.loads(str(np.load(ck)["meta"]))["epochs_done"]
    assert 1 <= done < 20

    resumed = _child(tmp_path, backend, ck, tmp_path / "resumed.npy", True, mode)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert int(out.split()[0]) == done + 1        # it continued, it did not start over
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"),
                                  np.load(tmp_path / "ref.npy"),
                                  err_msg=f"killed after epoch {kill_after} + {delay:.3f} s")


def test_resuming_a_run_that_stopped_early_trains_nothing_more(data, tmp_path):
    X, y = data
    kw = dict(epochs=30, batch_size=64, optimizer="adam", lr=0.05, validation=0.3, seed=1,
              early_stopping={"patience": 1, "min_delta": 1e9}, progress=False)
    ck = tmp_path / "c.ckpt"
    ref = fastmlp.MLP([4, 8, 1], seed=0)
    h_ref = fastmlp.fit(ref, X, y, checkpoint=ck, **kw)
    assert h_ref.stopped_early and h_ref.epochs < 30
    again = fastmlp.MLP([4, 8, 1], seed=3)
    h = fastmlp.fit(again, X, y, resume=ck, **kw)
    assert h.epochs == h_ref.epochs and h.stopped_early
    assert again.optimizer.step_count == ref.optimizer.step_count
    np.testing.assert_array_equal(again.params, ref.params)   # the restored best epoch


def test_damaged_checkpoints_are_refused_by_name(data, tmp_path):
    X, y = data
    kw = dict(epochs=2, progress=False, validation=None)
    ck = tmp_path / "c.ckpt"
    fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, checkpoint=ck, **kw)
    good = dict(np.load(ck))
    for change in (lambda z: z.pop("params"), lambda z: z.pop("hist_loss"),
                   lambda z: z.__setitem__("meta", np.array(str(z["meta"]).replace(
                       '"step": ', '"step": -'))),
                   lambda z: z.__setitem__("meta", np.array(str(z["meta"]).replace(
                       '"fingerprint": {', '"fingerprint": [1], "x": {')))):
        z = dict(good)
        change(z)
        np.savez(tmp_path / "bad.npz", **z)
        with pytest.raises(ValueError, match="damaged fit checkpoint"):
            fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, resume=tmp_path / "bad.npz", **kw)


def test_fit_stream_resumes_inside_an_epoch_at_the_next_chunk(tmp_path):
    X, y = make_photometric_catalog(1000, seed=6)
    path = tmp_path / "cat.npy"
    arr = np.zeros(len(y), dtype=[(c, "f8") for c in "abcd"] + [("label", "i8")])
    for i, c in enumerate("abcd"):
        arr[c] = X[:, i]
    arr["label"] = y
    np.save(path, arr)
    kw = dict(epochs=3, batch_size=32, seed=4, progress=False, chunk_rows=100, lr=0.01,
              schedule="cosine:T=120")
    ref = fastmlp.MLP([4, 8, 1], seed=1)
    h_ref = fastmlp.fit_stream(ref, path, **kw)

    ck = tmp_path / "s.ckpt"
    stream = fastmlp.data.stream.CatalogStream(path, chunk_rows=100)
    real_chunks, served = stream.chunks, []

    def chunks_then_crash(order, *a, **k):   # dies inside epoch 2, after its 7th chunk
        for ch in real_chunks(order, *a, **k):
            served.append(ch.index)
            if len(served) == 10 + 7 + 1:
                raise Crash
            yield ch
    stream.chunks = chunks_then_crash
    with pytest.raises(Crash):
        fastmlp.fit_stream(fastmlp.MLP([4, 8, 1], seed=1), stream, checkpoint=ck,
                           checkpoint_chunks=3, **kw)
    meta = json.loads(str(np.load(ck)["meta"]))
    assert meta["epochs_done"] == 1 and meta["position"]["next"] == 6   # chunks 0-5 done
    again = fastmlp.MLP([4, 8, 1], seed=50)
    h = fastmlp.fit_stream(again, path, resume=ck, checkpoint=ck, checkpoint_chunks=3, **kw)
    np.testing.assert_array_equal(again.params, ref.params)
    assert h.loss == h_ref.loss and h.batch_loss == h_ref.batch_loss and h.lr == h_ref.lr
    assert json.loads(str(np.load(ck)["meta"]))["position"] is None     # the final one


def test_fit_resumes_inside_an_epoch_at_the_next_segment(data, tmp_path):
    X, y = data
    kw = dict(epochs=3, batch_size=20, seed=2, progress=False, validation=0.1,
              standardize=True, optimizer="adam", lr=0.01, schedule="cosine:T=70")
    ref = fastmlp.MLP([4, 8, 1], seed=1)
    h_ref = fastmlp.fit(ref, X, y, **kw)          # 450 rows: 23 batches per epoch
    ck = tmp_path / "c.ckpt"
    first = fastmlp.MLP([4, 8, 1], seed=1)
    h_seg = fastmlp.fit(first, X, y, checkpoint=ck, checkpoint_steps=5, **kw)
    np.testing.assert_array_equal(first.params, ref.params)    # segments change nothing
    assert h_seg.loss == h_ref.loss

    # crash in epoch 2 after its 3rd segment's checkpoint (batches 0-14 done)
    from fastmlp.training import checkpoint as ckmod
    real_save, saves = ckmod.FitCheckpointer.save_position, []

    def save_then_crash(self, epoch, position):
        real_save(self, epoch, position)
        saves.append((epoch, position["next"]))
        if (epoch, position["next"]) == (1, 15):
            raise Crash
    ckmod.FitCheckpointer.save_position = save_then_crash
    try:
        with pytest.raises(Crash):
            fastmlp.fit(fastmlp.MLP([4, 8, 1], seed=1), X, y, checkpoint=ck,
                        checkpoint_steps=5, **kw)
    finally:
        ckmod.FitCheckpointer.save_position = real_save
    assert saves == [(0, 5), (0, 10), (0, 15), (0, 20), (1, 5), (1, 10), (1, 15)]
    meta = json.loads(str(np.load(ck)["meta"]))
    assert meta["epochs_done"] == 1 and meta["position"]["next"] == 15
    again = fastmlp.MLP([4, 8, 1], seed=9)
    h = fastmlp.fit(again, X, y, checkpoint=ck, checkpoint_steps=5, resume=ck, **kw)
    np.testing.assert_array_equal(again.params, ref.params)
    assert h.loss == h_ref.loss and h.batch_loss == h_ref.batch_loss and h.lr == h_ref.lr
    assert h.val_loss == h_ref.val_loss and h.metrics == h_ref.metrics
