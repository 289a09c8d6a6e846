"""fit and fit_stream: train a model in memory or chunk by chunk from a catalog file, both
through the one epoch loop of :mod:`fastmlp.training.loop`."""

import os
import time
import warnings

import numpy as np

from .. import backends
from ..atomic import refuse_overwrite
from ..buffers import aligned_empty_like
from .._validate import check_kwargs, check_positive, check_targets, counted
from ..codes import loss_code
from ..data.far_values import ARRAY_REMEDY, far_in_training
from ..data.standardize import Standardizer
from ..data.stream import CatalogStream, prefetch, stream_with_fill
from ..features import FeatureSpec
from ..progress import resolve_mode
from ..schedules import warn_length
from ..model import LINK_OF_LOSS
from .checkpoint import (FitCheckpointer, check_checkpoint_args, checkpoint_standardization,
                         data_sha256, read_fit_checkpoint, run_identity)
from .fit_inputs import (check_fit_args, class_weights, loss_and_targets, network_inputs,
                         raw_training_rows, sample_weights, validation_pair)
from .loop import (TRAIN_METRIC_ROWS, EarlyStopping, History, EpochOrder, column_text,
                   large_input_text, loss_and_metric, run_epoch, train_epochs, training_setup)


def fit(model, X, y, loss=None, optimizer="adam", lr=None, batch_size=256, epochs=10,
        schedule=None, validation=0.1, early_stopping=None, class_weight=None, seed=0,
        progress=True, callbacks=(), backend=None, n_threads=None, drop_invalid=False,
        sample_weight=None, optimizer_kwargs=None, standardize=False, on_divergence="warn",
        checkpoint=None, checkpoint_every=1, checkpoint_steps=None, resume=None):
    """Train ``model`` in place by mini-batch gradient descent and return a History.

    X: RAW features - an array in feature order, or a table (DataFrame, pyarrow Table,
        structured array) with the raw columns when the model has a ``features`` spec.  The
        model's own contract turns them into network inputs (MLP.transform_inputs), so what
        it learns is what predict_proba applies later.
    standardize: compute the standardisation from the training rows and store it in the
        model (``model.standardization``) when it has none yet.
    loss: "bce" | "cross_entropy" | "mse" (default: bce for 1 output, else cross_entropy).
    optimizer: a name, in any case ("sgd", "momentum", "nesterov", "adagrad", "rmsprop",
        "adam", "adamw"; "Adam" as torch spells it) or an Optimizer built on
        ``model.params`` (to continue training with its state, e.g. ``model.optimizer`` of a
        loaded model); ``optimizer_kwargs`` go to the named optimizer's constructor (beside
        an Optimizer object they are refused: set them on it).  ``lr``: its learning rate
        (default: the optimizer's torch default; a schedule object's own lr when one is
        given, and an ``lr`` that differs from it is refused).
    batch_size: rows per mini-batch (the last one may be smaller); None = full-batch
        gradient descent.  Rows are reshuffled every epoch from ``seed``: the same seed and
        backend (and thread count) give the same result bit for bit.
    schedule: None (constant lr), a callable step -> lr, or a spec string for
        fastmlp.schedules.from_spec (e.g. "linear:final=1e-4,T=2000",
        "warmup=100+cosine:T=4900": after a warm-up T counts the steps that follow it).
    validation: a fraction of the rows held out (stratified by class; 0: none), a (X_val,
        y_val) pair (raw features), or None.  early_stopping: None, a patience in epochs, or
        {"patience": p, "min_delta": d}: stop when the validation loss has not improved by
        min_delta for p epochs, and restore the best parameters.
    class_weight: None | "balanced" | {class: weight}; multiplies sample_weight (single-label
        targets only: refused for multilabel ones); "balanced" counts each class by its
        summed sample_weight (as MLPClassifier and scikit-learn >= 1.6).
    callbacks: callables ``cb(epoch, history, model)``; returning True stops training.
    n_threads: kernel threads for this call only (the previous setting is restored).
    drop_invalid: drop rows with NaN/inf features instead of raising.
    on_divergence: "warn" (default), "raise" or "ignore" for a run that blew up: its loss
        ends more than 10x above where it started, or exploded (1000x) and never came back
        below its start (a classifier that ends below 0.01 nats never counts: a perfect
        fit's 1e-12 jittering up to 1e-4 is not a blow-up).  A non-finite loss or gradient
        always raises
        TrainingDiverged naming the step; the model keeps its last finite parameters.
    checkpoint: a file path; every ``checkpoint_every`` epochs (and at the end) the whole
        state of the run is written there atomically: parameters, optimizer state and step
        (the schedule's position), the random generator's state, the epoch, early-stopping
        state, the History so far and the standardisation.  checkpoint_steps: also every
        this many optimizer steps inside an epoch (long epochs; resume restarts there).
    resume: a checkpoint path (or True: ``checkpoint`` if that file exists) to continue
        from.  Call fit again with the same model architecture, data and arguments: a run
        killed at any point and resumed ends bit-identical to an uninterrupted one (same
        backend and thread count); a checkpoint of other data or settings is refused.
    The optimizer is left in ``model.optimizer`` (fastmlp.save stores it).
    """
    check_fit_args(model, epochs, batch_size, lr, callbacks, seed, standardize)
    check_kwargs(optimizer_kwargs, "optimizer_kwargs")
    n_threads = _thread_count(n_threads)
    resumed = _resume_point(checkpoint, checkpoint_every, resume)
    if checkpoint_steps is not None:
        check_positive(checkpoint_steps, "checkpoint_steps", integer=True)
    X, y_arr, sample_weight = raw_training_rows(model, X, y, sample_weight, drop_invalid)
    warn_far_inputs(model, X)
    if resumed[1] is not None:   # the standardisation of the first run is the contract
        model.set_contract(standardization=checkpoint_standardization(resumed[1]))
    elif standardize and model.standardization is None:
        model.set_contract(standardization=fitted_standardization(model, X))
    X = network_inputs(model, X, "X")
    warn_large_inputs(model, X, "X")
    loss, Y = loss_and_targets(model, X, y_arr, loss)
    code = loss_code(loss)
    sw = sample_weights(model, loss, Y, sample_weight, class_weight)
    rng, row_order = np.random.default_rng(seed), EpochOrder()
    (X, Y, sw), val = _split_validation(model, loss, validation, X, Y, sw, rng)
    sw = _training_weights(sw, model.dtype)
    stopper = EarlyStopping(early_stopping, val is not None)

    n = X.shape[0]
    bs = n if batch_size is None else min(int(batch_size), n)
    metric_rows = np.sort(rng.choice(n, TRAIN_METRIC_ROWS, replace=False)) \
        if n > TRAIN_METRIC_ROWS else np.arange(n)
    set_trained_link(model, loss)
    with backends.threads(n_threads):
        opt, sched, kernels, grad, hist = _session(model, optimizer, lr, optimizer_kwargs,
                                                   schedule, backend, loss, bs,
                                                   steps=epochs * -(-n // bs))
        ckpt, start = _start_checkpoints(
            resumed, checkpoint, checkpoint_every, epochs,
            lambda: _fingerprint(model, "fit", loss, opt, bs, data_sha256(X, Y, sw, *(val or ())),
                                 schedule),
            model=model, opt=opt, rng=rng, stopper=stopper, hist=hist)

        # no weights given: the kernels are told every row weighs 1 (C then gathers none)
        kernel_sw = None if sample_weight is None and class_weight is None else sw

        def run(rows, where, losses, next_order=None):
            dt = run_epoch(kernels, model, opt, sched, grad, X, Y, kernel_sw, rows, bs, hist,
                           code, where, losses, next_order)[1]
            if next_order is not None:
                row_order.filled(next_order)
            return dt

        def one_epoch(epoch):
            pos = ckpt.take_position(epoch) if ckpt is not None else None
            if pos is not None:   # an epoch checkpointed midway: its order, then the rest
                rng.bit_generator.state = pos["rng"]
            state0 = rng.bit_generator.state if checkpoint_steps and ckpt else None
            perm = row_order(rng, n, kernels) if bs < n else np.arange(n)
            # the next epoch's order, built by the kernels during this epoch's one call
            upcoming = row_order.ahead(rng, n, kernels) \
                if bs < n and epoch + 1 < epochs and not (checkpoint_steps and ckpt) else None
            losses = []   # the batch losses of this call's segments
            dt = _epoch_segments(
                perm, bs, 0 if pos is None else pos["next"], checkpoint_steps if ckpt else None,
                lambda rows: run(rows, f"epoch {epoch + 1}", losses, upcoming),
                lambda nxt: ckpt.save_position(epoch, {"rng": state0, "next": nxt}))
            return _epoch_loss_sum(hist, n, bs, losses if pos is None else None), n, dt

        # the fixed training subset of the per-epoch metric, gathered once
        Xm, Ym, swm = X[metric_rows], Y[metric_rows], sw[metric_rows]

        def train_metric():
            return loss_and_metric(model, kernels, Xm, Ym, swm, code, with_loss=False)[1]

        return train_epochs(model, epochs, one_epoch, kernels=kernels, code=code, hist=hist,
                            validation=val, stopper=stopper, callbacks=callbacks,
                            progress=progress, desc="fit", train_metric=train_metric,
                            on_divergence=on_divergence, start_epoch=start,
                            checkpointer=ckpt)


def fit_stream(model, source, epochs=1, batch_size=256, optimizer="adam", lr=None, loss=None,
               schedule=None, seed=0, standardize=True, class_weight=None, validation=None,
               early_stopping=None, callbacks=(), progress=True, backend=None, n_threads=None,
               optimizer_kwargs=None, on_divergence="warn", checkpoint=None,
               checkpoint_every=1, checkpoint_chunks=None, resume=None, **stream_kw):
    """Train ``model`` on a catalog file (or a :class:`CatalogStream`) chunk by chunk, through
    the same epoch loop as fit.

    A first pass (``source.scan()``) finds the classes and, with ``standardize=True``, the
    feature mean / std; the model's contract receives the features, the standardisation (if
    it has none yet) and the class names, so it predicts from raw columns afterwards.
    Each epoch visits the chunks in an order drawn from ``seed``, shuffles each chunk's rows
    and runs the backend's fused ``train_epoch`` on it (mini-batches never straddle chunks;
    the schedule counts optimizer steps across chunks and epochs).
    class_weight: None | "balanced" (from the scan's class counts) | {class: weight}.
    validation: None or (X_val, y_val) in raw feature units.  early_stopping, callbacks,
    n_threads, on_divergence, checkpoint, checkpoint_every, resume: as in fit (the chunk
    order is drawn from the same generator, so a resumed run is exact too);
    checkpoint_chunks: also checkpoint inside an epoch every this many chunks (an epoch over
    a large catalog can take hours; a resumed run restarts at the next chunk).  Returns a
    fastmlp.History (``loss`` per epoch = mean over the epoch's rows; ``epoch_time`` and
    ``samples_per_s`` include the reading that training did not hide; ``hist.stream`` is
    the stream as trained on: a copy of ``source`` reading its ``fill`` with the model's
    dtype, scanned so).  ``source`` itself is not changed while training runs; a stream
    that reads as the model does (its dtype, and fill_dtype if it has fill, the model's
    dtype) is scanned beforehand if it was not, and left so.  The copy reads a feature
    beyond the model's dtype (1e39 for float32) as missing, as load_catalog does, whatever
    the stream's dtype and fill; a label mapping given to ``source`` (use_classes,
    use_targets) is kept; a regression (loss mse) reads float targets, whole numbers too.
    A file path is opened with ``stream_kw`` (CatalogStream's arguments) and, as
    load_catalog and ``train --stream``, ``missing="error"`` by default: a row with a
    missing feature or label is refused, naming it (pass missing="drop" to skip such rows).
    The stream's class names and positive class (given, or its quasar class) go into the
    model's contract; a model naming another positive class is refused.  ``checkpoint``
    must not be the catalog read (through links too): refused before any work.
    """
    check_fit_args(model, epochs, batch_size, lr, callbacks, seed, standardize)
    check_kwargs(optimizer_kwargs, "optimizer_kwargs")
    _check_stream_args(batch_size, checkpoint, source)
    n_threads = _thread_count(n_threads)
    resumed = _resume_point(checkpoint, checkpoint_every, resume, checkpoint_chunks)
    loss = loss if loss is not None else model.default_loss()
    code = loss_code(loss)
    stream = _training_stream(model, source, stream_kw, regression=loss == "mse")
    if resumed[1] is not None:
        model.set_contract(standardization=checkpoint_standardization(resumed[1]))
    _set_stream_contract(model, stream, standardize)
    set_trained_link(model, loss)
    cw = _stream_class_weights(stream, class_weight, loss, model.n_outputs)
    val = _stream_validation(model, loss, validation)
    stopper = EarlyStopping(early_stopping, val is not None)
    rng, row_order = np.random.default_rng(seed), EpochOrder()
    with backends.threads(n_threads):
        opt, sched, kernels, grad, hist = _session(
            model, optimizer, lr, optimizer_kwargs, schedule, backend, loss, int(batch_size),
            steps=epochs * _stream_steps_at_most(stream, int(batch_size)))
        ckpt, start = _start_checkpoints(
            resumed, checkpoint, checkpoint_every, epochs,
            lambda: _fingerprint(model, "fit_stream", loss, opt, int(batch_size),
                                 data_sha256(*(val or ())), schedule,
                                 **_stream_identity(stream, cw)),
            model=model, opt=opt, rng=rng, stopper=stopper, hist=hist)

        warned = []   # the large-input warning: once per fit_stream, at the first chunk

        def one_chunk(epoch, ch):
            m, where = ch.X.shape[0], f"chunk {ch.index} of {stream.path}"
            X = network_inputs(model, ch.X, where)
            if not warned:
                warned.append(warn_large_inputs(model, X, where, stacklevel=5))
            Y = check_targets(ch.y, m, loss, model.n_outputs, model.dtype)
            sw = None if cw is None else cw[ch.y.astype(np.int64)].astype(model.dtype)
            bs = min(int(batch_size), m)
            perm = row_order(rng, m, kernels) if bs < m else np.arange(m)
            return run_epoch(kernels, model, opt, sched, grad, X, Y, sw, perm, bs, hist, code,
                             f"epoch {epoch + 1}, chunk {ch.index}")

        def one_epoch(epoch):
            pos = ckpt.take_position(epoch) if ckpt is not None else None
            order = rng.permutation(stream.n_chunks) if pos is None else np.array(pos["order"])
            total, rows, seconds, first = (0.0, 0, 0.0, 0) if pos is None else \
                (pos["total"], pos["rows"], pos["t_train"], pos["next"])
            # The epoch's seconds (and so its samples/s) run while chunks are read and
            # trained: the rate the catalog is trained at, reading that training does not
            # hide included; not while checkpoints are written (as in fit).
            tick = time.perf_counter()
            # chunk k+1 is read while chunk k trains; a bar over the epoch's rows on a terminal
            chunks = prefetch(stream.chunks(order[first:], progress=bar), depth=2)
            for i, ch in enumerate(chunks, start=first):
                if ch.X.shape[0] > 0:
                    loss_sum, _ = one_chunk(epoch, ch)
                    total, rows = total + loss_sum, rows + ch.X.shape[0]
                now = time.perf_counter()
                seconds, tick = seconds + now - tick, now
                if checkpoint_chunks and ckpt is not None and (i + 1) % checkpoint_chunks == 0 \
                        and i + 1 < order.size:
                    ckpt.save_position(epoch, dict(order=order.tolist(), next=i + 1,
                                                   total=total, rows=rows, t_train=seconds))
                    tick = time.perf_counter()
            return total, rows, seconds

        bar = "bar" if progress and resolve_mode(progress) == "bar" else False
        hist.stream = stream
        with stream:    # a .gz catalog's decompressed copy (shuffled epochs) is not kept
            return train_epochs(model, epochs, one_epoch, kernels=kernels, code=code,
                                hist=hist, validation=val, stopper=stopper,
                                callbacks=callbacks, progress=progress, desc="fit_stream",
                                describe=lambda: f"({counted(stream.n_chunks, 'chunk')})",
                                on_divergence=on_divergence, start_epoch=start,
                                checkpointer=ckpt)


def _epoch_segments(perm, bs, first, every, run, save):
    """Train batches first.. of one epoch's row order ``perm`` through ``run(rows)`` in
    segments of ``every`` batches (the rest at once when every is None), calling
    ``save(next batch)`` between segments; returns the seconds spent.  Segments split at
    batch boundaries and the step count carries over, so the result is the same as one
    call over the whole epoch."""
    n_batches = -(-perm.shape[0] // bs)
    every = every or n_batches
    dt = 0.0
    for b in range(first, n_batches, every):
        dt += run(perm[b * bs:(b + every) * bs])
        if b + every < n_batches:
            save(b + every)
    return dt


def _epoch_loss_sum(hist, n, bs, losses=None):
    """Sum of batch loss x batch rows over the epoch just trained (its batches are the last
    in hist.batch_loss, however many calls trained them).  ``losses``: the same values as
    the arrays this process trained them into, when it trained the whole epoch (the list
    of Python floats is not converted back: ~0.4 ms per 8k batches); the dot product is the
    same either way, so a resumed epoch sums to the same bits."""
    n_batches = -(-n // bs)
    rows = np.full(n_batches, bs, dtype=np.float64)
    rows[-1] = n - bs * (n_batches - 1)
    vals = (np.concatenate(losses) if losses and sum(a.shape[0] for a in losses) == n_batches
            else np.asarray(hist.batch_loss[-n_batches:]))
    return float(np.dot(vals, rows))


# -- the pieces fit and fit_stream share ----------------------------------------------------
def _session(model, optimizer, lr, optimizer_kwargs, schedule, backend, loss, batch_size,
             steps):
    """(optimizer, schedule, kernels, gradient buffer, History) of a training run of at most
    ``steps`` optimizer steps (a schedule longer than that is warned of); the optimizer
    becomes model.optimizer (fastmlp.save stores it)."""
    opt, sched, name, kernels = training_setup(model, optimizer, lr, optimizer_kwargs,
                                               schedule, backend, batch_size)
    warn_length(sched, steps)     # (pointing at the user's line)
    model.optimizer = opt
    return opt, sched, kernels, aligned_empty_like(model.params), History(
        backend=name, loss_name=loss, optimizer=opt)


def _thread_count(n_threads):
    """n_threads as a Python int (NumPy integers work where ints do) or None."""
    if n_threads is None or isinstance(n_threads, bool):
        return n_threads   # True/False: refused by set_num_threads with its message
    if isinstance(n_threads, np.integer):
        return int(n_threads)
    return n_threads


def fitted_standardization(model, X):
    """(mean, std) of the training rows X for standardize=True; a column whose statistics
    overflow float64 (|x| near 1e154 and beyond: its std is inf, so it would be fed to the
    network as zeros) or underflow it (a varying column of |x| below ~1e-154: std 0, taken
    for a constant column's 1, so zeros again) is refused, named."""
    with np.errstate(over="ignore", invalid="ignore"):   # refused by name just below
        st = Standardizer().fit(X)
        mean, std = st.as_tuple()
    # the other end: values so small (|x| below ~1e-154) that their squared deviations
    # underflow to 0 look like a constant column, whose std is taken as 1: the network
    # would get zeros for a column that varies
    for j in np.flatnonzero(st.moments()[2] == 0):
        lo, hi = float(X[:, j].min()), float(X[:, j].max())
        if lo != hi:
            raise ValueError(f"standardize=True: {column_text(model, j)} of X varies (from "
                             f"{lo:.3g} to {hi:.3g}) but its squared deviations underflow the "
                             "float64 statistics (std 0); rescale that column before training")
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        with np.errstate(invalid="ignore"):
            big = float(np.nanmax(np.abs(X[:, j])))
        raise ValueError(f"standardize=True: {column_text(model, j)} of X has mean {mean[j]:.6g} "
                         f"and std {std[j]:.6g}: its values (|x| up to {big:.3g}) overflow "
                         f"the float64 statistics"
                         + (f" ({int(bad.sum())} such columns)" if bad.sum() > 1 else "")
                         + "; rescale that column before training")
    return mean, std


def _training_weights(sw, dtype):
    """The training rows' weights as the kernels take them, refused when all are zero
    (checked before the validation rows' own)."""
    if not sw.sum() > 0:
        raise ValueError("all training sample weights are zero")
    return np.ascontiguousarray(sw, dtype=dtype)


def warn_far_inputs(model, X, stacklevel=3):
    """A UserWarning, before training, when rows of the raw features X lie more than
    FAR_STD robust standard deviations from the bulk (fastmlp.data.far_values, the CLI's
    check) and they look like a sentinel (fastmlp.data.far_values' rule: -9999, 99 seen
    often, the colours of one, a dominant value, a tight cluster): in an array SDSS's -9999
    is a number, and 0.1 % of them moved a stored standardisation enough to cut a quasar
    AUC from 0.996 to 0.913 without a word, while a heavy-tailed column (lognormal, Cauchy)
    is data, not a mistake.
    Returns whether it warned."""
    names = model.feature_names or [f"column {j}" for j in range(X.shape[1])]
    far = far_in_training(X, names)
    text = far.warning(prefix="X: ", remedy=ARRAY_REMEDY) if far.sentinel_like else None
    if text is not None:
        warnings.warn(text, UserWarning, stacklevel=stacklevel)
    return text is not None


def warn_large_inputs(model, X, what, standardize="pass standardize=True", stacklevel=3,
                      largest=None):
    """A UserWarning, before training, when the network inputs X (after the model's own
    preprocessing) reach beyond |x| = 1e6 (fastmlp._validate.LARGE_INPUT): such a run may
    go nowhere with finite losses of 1e28 or overflow the optimizer state; standardising is
    the cure when the model has no standardisation (``standardize``: how the caller's API
    does it).  ``stacklevel`` points the warning at the user's call.  ``largest``: X's
    (column, max |x|) when the caller has it already (X may then be None: a distributed
    run's shards report theirs).  Returns whether it warned."""
    big = large_input_text(model, X, largest)
    if big is None:
        return False
    cure = (f"{standardize} (or rescale that column)" if model.standardization is None
            else "clip or rescale that column's outliers (it is already standardised)")
    warnings.warn(f"{what}: {big} as the network sees it; training on values this large "
                  f"gives huge losses or overflows the optimizer state: {cure}", UserWarning,
                  stacklevel=stacklevel)
    return True


def _resume_point(checkpoint, checkpoint_every, resume, checkpoint_chunks=None):
    """(path, checkpoint contents) to resume from, or (None, None); every argument is
    checked before any training (``checkpoint_chunks``: fit_stream's)."""
    path = check_checkpoint_args(checkpoint, checkpoint_every, resume)
    if checkpoint_chunks is not None:
        check_positive(checkpoint_chunks, "checkpoint_chunks", integer=True)
    return (None, None) if path is None else (path, read_fit_checkpoint(path))


def _start_checkpoints(resumed, checkpoint, every, epochs, fingerprint, **state):
    """(FitCheckpointer or None, the first epoch to run): the state of the run restored
    from ``resumed`` when resuming.  ``fingerprint()`` hashes the data only when needed."""
    path, ck = resumed
    if checkpoint is None and ck is None:
        return None, 0
    run = FitCheckpointer(checkpoint, every, epochs, fingerprint=fingerprint(), **state)
    return run, (0 if ck is None else run.restore(ck, path))


def _fingerprint(model, kind, loss, opt, batch_size, data_hash, schedule=None, **extra):
    """What must not change between a run and its resumption (JSON-able): a resumed run
    continues the checkpointed one exactly, so its learning rate, the optimizer's other
    hyper-parameters and a schedule given as text are compared too (a callable schedule
    cannot be: it is taken on trust)."""
    return run_identity(model, opt, loss, batch_size, schedule, kind=kind,
                        data_sha256=data_hash, **extra)


def _check_stream_args(batch_size, checkpoint, source):
    """fit_stream's own checks, before any work: a batch size (batches never span chunks,
    so None, the whole catalog, cannot be), and ``checkpoint`` not the catalog read
    (through links too; it would replace the catalog, which ``train --stream`` refuses)."""
    if batch_size is None:
        raise ValueError("batch_size must be a positive integer for fit_stream, got None")
    path = source.path if isinstance(source, CatalogStream) else source
    # another kind of checkpoint (or source) is refused by its own check, naming it
    if isinstance(checkpoint, (str, os.PathLike)) and isinstance(path, (str, os.PathLike)):
        refuse_overwrite(checkpoint, [path], what="checkpoint")


def _stream_identity(stream, class_weights_used):
    """A streamed catalog's identity for resume (hashing a file larger than memory would
    cost a whole pass): the resolved path, size, and what the scan found; and what decides
    the rows trained on and their weight in the loss beyond that: the class weights as
    applied (None: unweighted), the ``where`` filter and the ``fill`` values (an entry
    None matches a checkpoint written before it was listed).  Not listed: the missing
    policy (a run under 'error' reads the rows one under 'drop' reads, or refuses) and
    the positive class (it names a class of the contract; the loss is the same)."""
    return {"source": str(stream.path.resolve()), "source_bytes": stream.path.stat().st_size,
            "n_valid": int(stream.n_valid), "n_chunks": int(stream.n_chunks),
            "features": list(stream.feature_names),
            "class_counts": None if stream.class_counts is None else
            {str(k): int(v) for k, v in stream.class_counts.items()},
            "class_weight": None if class_weights_used is None else
            [float(w) for w in class_weights_used],
            "where": None if stream.where is None else stream.where.text,
            "fill": None if not stream.fill else
            {str(k): float(v) for k, v in dict(stream.fill).items()}}


def _stream_validation(model, loss, validation):
    """fit_stream's ``validation``: None, or an (X_val, y_val) pair held in memory (a
    fraction would need the catalog's rows split, which a stream does not hold; 0 holds
    nothing out, as fit's)."""
    if validation is None or _no_fraction(validation):
        return None
    if not (isinstance(validation, tuple) and len(validation) == 2):
        raise ValueError("validation must be None or an (X_val, y_val) pair")
    return validation_pair(model, loss, *validation)


def _no_fraction(validation):
    """Whether ``validation`` is the fraction 0: nothing held out (as None)."""
    return isinstance(validation, (int, float, np.integer, np.floating)) and \
        not isinstance(validation, (bool, np.bool_)) and validation == 0


def _split_validation(model, loss, validation, X, Y, sw, rng):
    """((X, Y, sw) to train on, (X_val, Y_val, sw_val) or None).  A fraction of 0 holds
    nothing out, as the CLI's --validation 0 and mpi_fit's default do."""
    if validation is None or _no_fraction(validation):
        return (X, Y, sw), None
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise ValueError("validation must be a fraction, an (X_val, y_val) pair or None")
        return (X, Y, sw), validation_pair(model, loss, *validation)
    if isinstance(validation, (float, np.floating)) and 0 < validation < 1:
        if X.shape[0] < 2:
            raise ValueError("validation split needs at least 2 samples; pass validation=None")
        classifier = loss != "mse"
        tr, va = stratified_split(Y[:, 0].astype(np.int64) if classifier else Y[:, 0],
                                  float(validation), rng)
        if va.size == 0:
            raise ValueError(f"validation={validation} leaves no validation rows out of "
                             f"{X.shape[0]}; use a larger fraction or validation=None")
        # the validation loss, a weighted mean, would not exist (no weight at all: the
        # training rows' check says so)
        if sw.any() and not sw[va].sum() > 0:
            raise ValueError(f"validation={validation}: the {va.size} validation rows all have "
                             "a sample weight of 0 (sample_weight or class_weight), so their "
                             "weighted loss is undefined; give them weight, pass a (X_val, "
                             "y_val) pair, or validation=None")
        return (X[tr], Y[tr], sw[tr]), (X[va], Y[va], sw[va].astype(model.dtype))
    raise ValueError(f"validation must be a fraction in [0, 1) (0: none), an (X_val, y_val) "
                     f"pair or None, got {validation!r}")


def set_trained_link(model, loss):
    """The trained loss decides the output link of the model's contract: ``output`` left
    None, ``model.link`` follows ``model.loss``, so a model trained again with another loss
    takes that loss's link; a declared ``output`` that is not the loss's link is refused
    (before anything is trained)."""
    if model.output is not None and model.output != LINK_OF_LOSS[loss]:
        raise ValueError(f"loss={loss!r} needs the {LINK_OF_LOSS[loss]!r} link but the model "
                         f"declares output={model.output!r}; train it with that output's loss "
                         "or set model.output = None (the link then follows the loss)")
    model.set_contract(loss=loss)


def _stream_steps_at_most(stream, batch_size):
    """The most optimizer steps an epoch over the stream takes: batches never span two
    chunks, so each chunk may add one to ceil(rows / batch_size)."""
    return -(-stream.n_valid // batch_size) + stream.n_chunks


def _open_stream(model, source, stream_kw):
    stream_kw.setdefault("dtype", model.dtype.name)
    stream_kw.setdefault("missing", "error")    # a path: as load_catalog and train --stream
    stream = source if isinstance(source, CatalogStream) else \
        CatalogStream(source, **stream_kw)
    if stream.label is None:
        raise ValueError(f"{stream.path}: no label column to train on; pass label=<column>")
    if len(stream.feature_names) != model.n_inputs:
        raise ValueError(f"the stream has {counted(len(stream.feature_names), 'feature')} "
                         f"{list(stream.feature_names)}, the model "
                         f"{counted(model.n_inputs, 'input')}")
    return stream


def _training_stream(model, source, stream_kw, regression=False):
    """fit_stream's stream: a copy of the caller's (stream_with_fill, the same file and
    reader) whose fill= rule reads with the model's dtype: a value beyond the model's float
    range (1e39 for float32) is missing to the model's fill, as predict_stream and the
    stored fill read it at prediction.  The caller's stream is never changed while training
    runs (a callback or another reader sees it as opened).  When it reads as the copy does,
    it is scanned itself, once, beforehand (and so left scanned for the caller, as
    before); otherwise only the copy is.  A scan taken reading otherwise (another fill or
    fill_dtype: its counts and standardisation took other values in) is taken again.
    The copy reads with the model's dtype's range too: a feature beyond it (1e39 in a
    float64 stream for a float32 model) is missing, as load_catalog leaves it out, whatever
    the fill.  A label mapping the caller gave (use_classes / use_targets) is kept by the
    scans; a regression (``regression``: loss mse) reads float targets, whole numbers too."""
    stream = _open_stream(model, source, stream_kw)
    reading = _model_reading(model, stream, regression)
    if reading.reading_settings() == stream.reading_settings() and not stream.scanned_as_read:
        stream.scan(progress=False)
        reading = _model_reading(model, stream, regression)
    if not reading.scanned_as_read:
        reading.scan(progress=False)
    return reading


def _model_reading(model, stream, regression):
    """A copy of ``stream`` reading as the model trains: its fill with the model's dtype,
    values beyond that dtype missing, and float targets for a regression (unless the
    caller gave the stream a mapping of its own)."""
    reading = stream_with_fill(stream, stream.fill, model.dtype, range_dtype=model.dtype)
    if regression and not stream.label_mapping_given:
        reading.use_targets()
    return reading


def _set_stream_contract(model, stream, standardize):
    """The stream's features, class names (and standardisation) into the model.  A model
    whose features already have those names keeps its fill values (FeatureSpec.fill, e.g.
    the medians of an earlier --missing impute-median): the same names do not drop them.
    A stream opened with fill= trained on rows imputed with it: the model keeps that fill
    (else its predictions left those rows without one); a model with other fill values is
    refused, naming fill."""
    names = list(stream.feature_names)
    own = model.features.fill if model.features is not None and \
        list(model.features.names) == names else None
    if stream.fill and own and dict(own) != dict(stream.fill):
        raise ValueError(f"the stream's fill {dict(stream.fill)!r} differs from the model's "
                         f"fill {dict(own)!r} (model.features.fill): open the CatalogStream "
                         "with fill=model.features.fill, or without fill")
    fields = {"features": names}
    if own:
        fields["features"] = model.features.with_fill(own)
    elif stream.fill:
        fields["features"] = FeatureSpec(names).with_fill(stream.fill)
    if stream.class_names:
        fields["class_names"] = [str(c) for c in stream.class_names]
    if stream.positive is not None:
        fields["positive"] = _stream_positive(model, stream)
    if standardize and model.standardization is None:
        fields["standardization"] = stream.standardizer.as_tuple()
    model.set_contract(**fields)


def _stream_positive(model, stream):
    """The stream's positive class (given, or its quasar class), for the model's contract
    as train --stream stores it; a model that already names another positive class is
    refused (its threshold and predictions mean that class), naming positive."""
    if model.positive is not None and model.positive != stream.positive:
        names = stream.class_names or ()
        raise ValueError(f"the stream's positive class {stream.positive} "
                         f"({names[stream.positive]!r}) differs from the model's positive "
                         f"{model.positive}: pass positive={model.positive} (to the "
                         "CatalogStream, or to fit_stream with a path), or set "
                         "model.positive = None to take the stream's")
    return stream.positive


def _stream_class_weights(stream, class_weight, loss, n_outputs):
    if class_weight is None:
        return None
    if loss == "mse":
        raise ValueError("class_weight applies to classifiers, not loss='mse'")
    counts = np.array(list(stream.class_counts.values()), dtype=np.float64)
    n_cls = max(2, n_outputs, counts.size)
    if isinstance(class_weight, str) and class_weight == "balanced":
        # fit_inputs.class_weights' rule on the scan's counts (unit weights: the two agree,
        # a class without rows at 0); not that function, which counts a class as present
        # from its rows' labels, which a stream does not hold
        cw = np.zeros(n_cls)               # scikit-learn's n / (n_classes * count)
        present = counts > 0
        cw[:counts.size][present] = counts.sum() / (present.sum() * counts[present])
        return cw
    return class_weights(class_weight, np.arange(n_cls), n_cls)


def stratified_split(labels, fraction, rng):
    """(train_idx, val_idx): ``fraction`` of each class (at least one row of each class with
    two or more rows) goes to validation; float ``labels`` (regression targets) mean a plain
    random split."""
    n = labels.size
    groups = [np.arange(n)] if labels.dtype.kind == "f" else \
        [np.flatnonzero(labels == c) for c in np.unique(labels)]
    val = []
    for g in groups:
        g = rng.permutation(g)
        k = int(round(fraction * g.size))
        if g.size >= 2:
            k = min(max(k, 1), g.size - 1)
        val.append(g[:k])
    val = np.sort(np.concatenate(val))
    mask = np.ones(n, bool)
    mask[val] = False
    return np.flatnonzero(mask), val
