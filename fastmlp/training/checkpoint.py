"""Training checkpoints written atomically: the Dask and MPI paths' round checkpoints, and
fit / fit_stream's exact-resume checkpoints (FitCheckpointer): a run killed at any point and
resumed from its last checkpoint ends bit-identical to an uninterrupted run (same backend and
thread count).
"""

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, write_target


def atomic_savez(path, **arrays):
    """Write an .npz so that ``path`` is always either the old or the new complete file
    (fastmlp.io.atomic_write: temporary file, fsync, rename); creates the directory."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))



def optimizer_identity(opt):
    """The optimizer's hyper-parameters (the learning rate included) as JSON-able entries of
    a run's identity: a resumed run continues at the checkpointed rates or not at all."""
    return {f"optimizer {k}": (bool(v) if isinstance(v, (bool, np.bool_)) else float(v))
            for k, v in opt.hyper().items()}


def run_identity(model, opt, loss, batch_size, schedule, **fields):
    """What must not change between a run and its resumption (JSON-able), as fit, Dask and
    MPI all need it: the architecture, loss, optimizer and its hyper-parameters, the batch
    size and a schedule given as text (a callable one cannot be compared: it is taken on
    trust), plus each path's own ``fields``."""
    return dict({"layer_sizes": list(model.layer_sizes), "activation": model.activation,
                 "dtype": model.dtype.name, "loss": loss, "optimizer": opt.name,
                 "batch_size": int(batch_size),
                 "schedule": schedule if isinstance(schedule, str) else None},
                **optimizer_identity(opt), **fields)


def column_identity(standardization):
    """A catalog's column statistics as identity fields (a distributed catalog is known by
    them and its shape: hashing it would cost a pass over it)."""
    mean, std = (None, None) if standardization is None else standardization
    return {"column_mean": None if mean is None else [float(v) for v in mean],
            "column_std": None if std is None else [float(v) for v in std]}


def checked_run_checkpoint(path, now, what, ck=None):
    """The arrays of the checkpoint at path (written with ``run=`` its identity), refused
    unless that identity is ``now``; ``what`` names the kind of run in the error.  ``ck``:
    the arrays already read from ``path`` (read_run_checkpoint), not read again."""
    ck = read_run_checkpoint(path, what) if ck is None else ck
    try:
        saved = json.loads(str(ck["run"]))
    except (ValueError, KeyError) as exc:
        raise ValueError(f"resume: {path} is not a checkpoint of {what} "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"resume: {path} is not a checkpoint of {what} (its run identity "
                         "is not a JSON object)")
    refuse_another_run(path, saved, now)
    return ck


def read_run_checkpoint(path, what):
    """The arrays of the checkpoint at ``path``, or a ValueError naming it (``what``: the
    kind of run) when it cannot be read."""
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise ValueError(f"resume: {exc}") from None
    except OSError as exc:
        raise ValueError(f"resume: {path} is not a checkpoint of {what} "
                         f"({type(exc).__name__}: {exc})") from None


def same_identity_value(a, b):
    """Whether two identity entries agree: equal, floats to 1e-12 relative (a catalog's
    column statistics summed in another order -- another rank count, a re-read -- differ in
    their last bits, and a refusal listing 0.44964065660694175 against 0.4496406566069418
    looked like no difference at all), lists and dicts entry by entry."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        if a and b and all(isinstance(v, float) for v in a + b):
            # to the list's largest magnitude: a mean of ~1e-17 summed in another order
            # may change sign beside entries of 1
            scale = 1e-12 * max(max(map(abs, a)), max(map(abs, b)))
            return len(a) == len(b) and all(x == y or abs(x - y) <= scale
                                            for x, y in zip(a, b))
        return len(a) == len(b) and all(map(same_identity_value, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_identity_value(a[k], b[k]) for k in a)
    return a == b


def refuse_another_run(source, saved, now):
    """ValueError naming every entry in which the identity ``saved`` with a checkpoint and
    the run's own, ``now``, differ (dicts of JSON-able values)."""
    diff = sorted(k for k in set(saved) | set(now) if not same_identity_value(saved.get(k),
                                                                              now.get(k)))
    if diff:
        raise ValueError(f"resume: {source} was written by a different run ("
                         + "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
                                     for k in diff)
                         + "); resume with the same model, data and settings")


# What a damaged .npz makes the zip and .npy readers raise, besides the usual OSError,
# ValueError, EOFError and BadZipFile: a flipped flag bit in a zip header gives
# NotImplementedError ("compression method is not supported") or RuntimeError ("encrypted,
# password required"), a damaged .npy header can give MemoryError or OverflowError.
_DAMAGE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, NotImplementedError,
           RuntimeError, MemoryError, OverflowError, UnicodeError, IndexError, TypeError)
# ...of which these say the file could not be opened at all (not that it is damaged)
_NOT_OPENED = (FileNotFoundError, PermissionError, IsADirectoryError)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: truncated, damaged, or not an .npz at all;
    ``path`` and ``reason`` (what the reader found) are kept for callers' own messages."""

    def __init__(self, path, reason):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"checkpoint {self.path} is truncated, damaged or not a checkpoint "
                         f"({reason})")


def load_checkpoint(path):
    """The arrays of a checkpoint written by fastmlp.distributed (a dict).  A file that is
    missing or cannot be opened raises the usual OSError; a truncated or damaged one a
    CheckpointError (a ValueError) naming the path and what the reader found."""
    try:
        # opened here: np.load(path) leaves its own handle open on a truncated archive
        with open(os.fspath(path), "rb") as f, np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except _NOT_OPENED:
        raise
    except _DAMAGE as exc:
        reason = "not an .npz archive" if not zipfile.is_zipfile(path) else \
            f"{type(exc).__name__}: {exc}"
        raise CheckpointError(path, reason) from None



def save_training_checkpoint(path, model, opt, round_index, epoch, mean=None, scale=None,
                             **extra):
    arrays = dict(params=model.params, state=opt.state, step=np.int64(opt.step_count),
                  round=np.int64(round_index), epoch=np.int64(epoch),
                  layer_sizes=np.asarray(model.layer_sizes, np.int64),
                  optimizer=np.array(opt.name))
    if mean is not None:
        arrays["mean"], arrays["scale"] = mean, scale
    arrays.update(extra)
    atomic_savez(path, **arrays)



def restore_training_checkpoint(path, model, opt, ck=None):
    """Load params, optimizer state and step from ``path`` into model / opt; returns the
    checkpoint dict (round, epoch, ...).  ``ck``: its arrays already read, not read again."""
    ck = load_checkpoint(path) if ck is None else ck
    missing = sorted({"params", "state", "step", "layer_sizes", "optimizer"} - set(ck))
    if missing:
        raise ValueError(f"checkpoint {path} is damaged or not a training checkpoint (no "
                         f"{', '.join(missing)} entries)")
    if tuple(ck["layer_sizes"]) != tuple(model.layer_sizes):
        raise ValueError(f"checkpoint {path} is for layer sizes {tuple(ck['layer_sizes'])}, "
                         f"the model has {model.layer_sizes}")
    if str(ck["optimizer"]) != opt.name or ck["state"].shape != opt.state.shape:
        raise ValueError(f"checkpoint {path} holds {str(ck['optimizer'])} state, the optimizer "
                         f"is {opt.name}")
    model.params[...] = ck["params"]
    opt.state[...] = ck["state"]
    opt.step_count = int(ck["step"])
    return ck


#: the History's lists a checkpoint keeps (per epoch or per step)
HISTORY_LISTS = ("loss", "val_loss", "lr", "batch_loss", "samples_per_s", "epoch_time")


def history_arrays(hist):
    """The History so far as checkpoint arrays (hist_* lists, metric_* metrics and their
    names in hist_metrics), so that a resumed run returns every epoch, as fit's does."""
    arrays = {"hist_" + k: np.asarray(getattr(hist, k), dtype=np.float64)
              for k in HISTORY_LISTS}
    arrays.update({"metric_" + k: np.asarray(v, dtype=np.float64)
                   for k, v in hist.metrics.items()})
    arrays["hist_metrics"] = np.array(json.dumps(sorted(hist.metrics)))
    return arrays


def checkpoint_history(ck, metric_names=None):
    """{"lists": {name: values}, "metrics": {name: values}} of the History in the checkpoint
    arrays ``ck`` (history_arrays'), or None when it holds none.  ``metric_names``: the
    metrics' names when the caller keeps them (fit's checkpoint, in its meta)."""
    if metric_names is None and "hist_metrics" not in ck:
        return None
    names = json.loads(str(ck["hist_metrics"])) if metric_names is None else metric_names
    lists = {k: ck["hist_" + k].tolist() for k in HISTORY_LISTS}
    metrics = {k: ck["metric_" + k].tolist() for k in names}
    return {"lists": lists, "metrics": metrics}


def restore_history(hist, history):
    """Put a History read by checkpoint_history back into ``hist`` (nothing for None)."""
    if history is None:
        return
    for k, values in history["lists"].items():
        getattr(hist, k)[:] = values
    hist.metrics = history["metrics"]


def stopping_identity(stopper):
    """Early stopping's settings (a training.loop.EarlyStopping) as JSON-able values, None
    when it is off: part of a run's identity (a patience changed on resume would judge the
    epochs before it by another rule)."""
    if stopper.patience is None:
        return None
    return {"patience": int(stopper.patience), "min_delta": float(stopper.min_delta)}


#: the checkpoint arrays of early stopping's state (stopper_arrays)
STOPPER_KEYS = ("best_loss", "since_best", "best_epoch", "stopped_early", "best_params")


def stopper_arrays(stopper, hist):
    """Early stopping's state as checkpoint arrays (none when it is off): the best loss and
    parameters, the epochs since, and the History's best_epoch and stopped_early."""
    if stopper.patience is None:
        return {}
    out = dict(best_loss=np.float64(stopper.best_loss), since_best=np.int64(stopper.since_best),
               best_epoch=np.int64(-1 if hist.best_epoch is None else hist.best_epoch),
               stopped_early=np.bool_(hist.stopped_early))
    if stopper.best_params is not None:
        out["best_params"] = stopper.best_params
    return out


def restore_stopper(state, stopper, hist):
    """Put early stopping's state (stopper_arrays' entries of a checkpoint, or None) back
    into ``stopper`` and ``hist``: a run that had stopped early trains no further."""
    if not state:
        return
    stopper.best_loss, stopper.since_best = float(state["best_loss"]), int(state["since_best"])
    best = state.get("best_params")
    stopper.best_params = None if best is None else np.array(best)
    hist.best_epoch = None if int(state["best_epoch"]) < 0 else int(state["best_epoch"])
    hist.stopped_early = bool(state["stopped_early"])


def label_identity(rows, y_sum, yx_sum):
    """A catalog's labels as a checkpoint's identity knows them (the "labels" entry), from
    the sums over its ``rows`` rows of y per output (``y_sum``) and of y times each raw input
    column (``yx_sum``, outputs x columns): per output the mean of y and of y x.  The column
    statistics alone resumed a run on other labels of the same inputs (1 - y); the means of
    y x tell those apart even when the classes are balanced."""
    rows = max(float(rows), 1.0)
    yx = np.asarray(yx_sum, dtype=np.float64)
    return {"label_mean": [float(v) for v in np.asarray(y_sum, np.float64).ravel() / rows],
            "label_x_mean": [[float(v) for v in r] for r in yx.reshape(yx.shape[0], -1) / rows]}


# -- exact resume of fit / fit_stream ----------------------------------------------------
FIT_CHECKPOINT = "fastmlp-fit-checkpoint"
FIT_CHECKPOINT_VERSION = 1


def data_sha256(*arrays):
    """One SHA-256 over the shapes, dtypes and bytes of ``arrays`` (None skipped): resume
    refuses other training data than the checkpoint's run."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def check_checkpoint_args(checkpoint, checkpoint_every, resume):
    """The checkpoint / checkpoint_every / resume arguments of fit, checked before any
    training (a typo in a directory must not cost a whole run).  Returns the path to resume
    from or None: resume=True means ``checkpoint`` if it exists (a restarted script picks up
    where it was killed), a path must exist."""
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer (epochs), got "
                         f"{checkpoint_every!r}")
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path or None, got {type(checkpoint).__name__}")
        try:    # what atomic_write will replace: a regular file in an existing directory
            write_target(checkpoint, "checkpoint")
        except OSError as exc:      # a directory, a missing directory, a loop of links
            raise ValueError(str(exc)) from None
    if resume is None or resume is False:
        return None
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True resumes from checkpoint=..., which is None")
        return Path(os.fspath(checkpoint)) if Path(os.fspath(checkpoint)).exists() else None
    if not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"resume must be a path, True or None, got {type(resume).__name__}")
    p = Path(os.fspath(resume))
    if not p.is_file():
        raise FileNotFoundError(f"resume: no checkpoint file at {p}")
    return p


def _not_a_checkpoint(path, exc):
    """What the file given to resume is instead: not an .npz (NumPy's own text for that
    suggests loading pickled data unsafely), a saved model (written by fastmlp.save, with
    its 'metadata' entry), or whatever the reader said."""
    if not zipfile.is_zipfile(path):
        return "not an .npz archive"
    if isinstance(exc, KeyError):
        with zipfile.ZipFile(path) as z:
            if "metadata.npy" in z.namelist():
                return ("it is a model saved by fastmlp.save or fastmlp train --out; resume "
                        "from the file that checkpoint= (--checkpoint) wrote")
        return f"an .npz without a {exc.args[0]!r} entry"
    return f"{type(exc).__name__}: {exc}"


def read_fit_checkpoint(path):
    """The contents of a checkpoint written by fit / fit_stream (``meta`` dict and arrays),
    or a ValueError naming the path and the problem."""
    try:
        ck = load_checkpoint(path)
        meta = json.loads(str(ck.pop("meta")))
    except _NOT_OPENED:
        raise
    except CheckpointError as exc:
        raise ValueError(f"resume: {path} is not a fastmlp fit checkpoint "
                         f"({exc.reason})") from None
    except (OSError, ValueError, KeyError, RecursionError) as exc:
        raise ValueError(f"resume: {path} is not a fastmlp fit checkpoint "
                         f"({_not_a_checkpoint(path, exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FIT_CHECKPOINT:
        raise ValueError(f"resume: {path} is not a fastmlp fit checkpoint")
    if meta.get("version") != FIT_CHECKPOINT_VERSION:
        raise ValueError(f"resume: {path} has checkpoint version {meta.get('version')!r}; "
                         f"this fastmlp reads version {FIT_CHECKPOINT_VERSION}")
    kinds = {"epochs_done": int, "step": int, "since_best": int, "rng": dict,
             "fingerprint": dict, "metrics": list, "stopped": bool, "stopped_early": bool}
    bad = [k for k, t in kinds.items() if not isinstance(meta.get(k), t)]
    need = {"params", "opt_state"} | {"hist_" + k for k in HISTORY_LISTS} \
        | {"metric_" + str(k) for k in meta.get("metrics") or ()}
    missing = sorted(need - set(ck))
    if not isinstance(meta.get("position"), (dict, type(None))):
        bad.append("position")
    if bad or missing or meta["epochs_done"] < 0 or meta["step"] < 0:
        raise ValueError(f"resume: {path} is a damaged fit checkpoint (bad fields {bad}, "
                         f"missing arrays {missing})")
    ck["meta"] = meta
    return ck


def checkpoint_standardization(ck):
    """The standardisation the checkpoint's run computed (its contract), or None."""
    if ck is None or "std_mean" not in ck:
        return None
    return ck["std_mean"], ck["std_std"]


class FitCheckpointer:
    """Writes (every ``every`` epochs, at the last one and when training stops early) and
    restores everything that decides the rest of a run: parameters, optimizer state and step
    count (the schedule's position), the Generator's state (the shuffle orders to come),
    the epoch, early-stopping state, the History so far and the model's standardisation.
    ``fingerprint`` (a JSON-able dict: architecture, loss, optimizer, batch size, data
    hash) must match on resume.  Writes are atomic: a kill leaves the previous checkpoint."""

    def __init__(self, path, every, epochs, *, model, opt, rng, stopper, hist, fingerprint):
        self.path = None if path is None else Path(os.fspath(path))
        self.every, self.epochs = int(every), int(epochs)
        self.model, self.opt, self.rng = model, opt, rng
        self.stopper, self.hist, self.fingerprint = stopper, hist, fingerprint
        self.position = None   # where a resumed epoch restarts (fit_stream: chunk-wise)

    def save_position(self, epoch, position):
        """A checkpoint inside epoch ``epoch`` (0-based): ``position`` (JSON-able) says how
        far the epoch got, for the training path to restart there (take_position)."""
        if self.path is not None:
            self.save(epoch, position=position)

    def take_position(self, epoch):
        """The restored position inside ``epoch``, once (None: start the epoch afresh)."""
        pos, self.position = self.position, None
        return pos if pos is not None and pos.get("epoch") == epoch else None

    def after_epoch(self, epoch, stop=False):
        done = epoch + 1
        if self.path is not None and (stop or done % self.every == 0 or done == self.epochs):
            self.save(done, stop)

    def save(self, epochs_done, stopped=False, position=None):
        m, h, st = self.model, self.hist, self.stopper
        if position is not None:
            position = dict(position, epoch=int(epochs_done))
        meta = {"format": FIT_CHECKPOINT, "version": FIT_CHECKPOINT_VERSION,
                "epochs_done": int(epochs_done), "stopped": bool(stopped),
                "position": position,
                "step": int(self.opt.step_count), "optimizer": self.opt.name,
                "rng": self.rng.bit_generator.state, "fingerprint": self.fingerprint,
                "best_loss": float(st.best_loss), "since_best": int(st.since_best),
                "best_epoch": h.best_epoch, "stopped_early": bool(h.stopped_early),
                "metrics": sorted(h.metrics)}
        arrays = {"meta": np.array(json.dumps(meta)), "params": m.params,
                  "opt_state": self.opt.state}
        if st.best_params is not None:
            arrays["best_params"] = st.best_params
        if m.standardization is not None:
            arrays["std_mean"], arrays["std_std"] = m.standardization
        arrays.update(history_arrays(h))
        atomic_savez(self.path, **arrays)

    def restore(self, ck, source):
        """Put the checkpoint ``ck`` (read_fit_checkpoint) back; returns the epoch to start
        from (``epochs`` when the run had already stopped early)."""
        meta = ck["meta"]
        refuse_another_run(source, meta["fingerprint"], self.fingerprint)
        m, opt = self.model, self.opt
        if ck["params"].shape != m.params.shape or ck["opt_state"].shape != opt.state.shape:
            raise ValueError(f"resume: {source} holds arrays of other shapes than the model")
        m.params[...] = ck["params"]
        opt.state[...] = ck["opt_state"]
        opt.step_count = int(meta["step"])
        self.rng.bit_generator.state = meta["rng"]
        restore_history(self.hist, checkpoint_history(ck, meta["metrics"]))
        # fit keeps early stopping's state in its meta (stopper_arrays' entries elsewhere)
        best_epoch = -1 if meta["best_epoch"] is None else meta["best_epoch"]
        restore_stopper(dict(best_loss=meta["best_loss"], since_best=meta["since_best"],
                             best_epoch=best_epoch, stopped_early=meta["stopped_early"],
                             best_params=ck.get("best_params")), self.stopper, self.hist)
        self.position = meta.get("position")
        done = int(meta["epochs_done"])
        return max(done, self.epochs) if meta["stopped"] else done
