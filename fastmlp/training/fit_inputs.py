"""fit's inputs, checked and made into what the kernels train on: the argument checks, the
raw training rows (a table through the model's features; NaN/inf rows dropped or refused),
the network inputs, the loss and targets the network learns, per-row weights from
sample_weight and class_weight, and a validation pair.  fit, fit_batch, the recipes and the
Dask fit share them, so every path refuses the same bad input with the same message."""

import math
import numbers

import numpy as np

from .._validate import (DROP_THEM_FIRST, all_finite, check_array, check_bool, check_positive,
                         check_sample_weight, check_seed, check_targets, counted, invalid_rows,
                         sample_weight_array)
from ..codes import loss_code
from ..features import table_columns
from ..model import MLP
from .loop import column_text


def check_fit_args(model, epochs, batch_size, lr, callbacks, seed=None, standardize=False):
    """Refuse, before any work, the training arguments fit, fit_stream and the Dask fit
    share: model an MLP, epochs a positive integer, batch_size one or None, lr positive or
    None, a valid seed, standardize a bool and callbacks a list of callables.  Returns
    None."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a fastmlp.MLP, got {type(model).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None (full batch), "
                             f"got {batch_size!r}")
    if lr is not None:
        check_positive(lr, "lr")
    check_seed(seed)
    check_bool(standardize, "standardize")
    if callable(callbacks) or isinstance(callbacks, (str, bytes)) \
            or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"callbacks must be a list of callables cb(epoch, history, model), "
                        f"got {callbacks!r}" + (f"; pass [{getattr(callbacks, '__name__', 'cb')}]"
                                                if callable(callbacks) else ""))
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {cb!r}")


def raw_training_rows(model, X, y, sample_weight, drop_invalid,
                      remedy="clean them or pass drop_invalid=True"):
    """(X raw, y, sample_weight) with rows holding NaN/inf dropped (drop_invalid) or
    refused; a table becomes its feature matrix through the model's features.  X keeps a
    float32 or float64 dtype (other numbers become float64): the standardisation widens it
    to float64 block by block, so a float32 catalog is never copied whole to float64."""
    check_bool(drop_invalid, "drop_invalid")
    X = check_array(_feature_matrix(model, X, "X"), "X", model.n_inputs, None,
                    allow_nonfinite=drop_invalid, remedy=remedy,
                    column_text=_named_columns(model))
    y_arr = np.asarray(y)
    if y_arr.ndim == 0 or y_arr.shape[0] != X.shape[0]:
        raise ValueError(f"X has {counted(X.shape[0], 'sample')} but y has "
                         f"{y_arr.shape[0] if y_arr.ndim else 0}; they must match")
    if sample_weight is not None:
        sample_weight = sample_weight_array(sample_weight)
    if drop_invalid:
        bad = invalid_rows(X)
        if bad.any():
            X, y_arr = X[~bad], y_arr[~bad]
            if sample_weight is not None and sample_weight.shape[:1] == bad.shape:
                sample_weight = sample_weight[~bad]
    if X.shape[0] == 0:
        raise ValueError("X is empty: need at least one training sample")
    return X, y_arr, sample_weight


def _named_columns(model):
    """j -> "column j ('name')" for a model with feature names (a table or a features spec),
    as the other messages name columns; None (indices) for a model without."""
    return None if not model.feature_names else (lambda j: column_text(model, j))


def _feature_matrix(model, X, name):
    """X itself, or a table's feature columns through the model's features spec."""
    if table_columns(X) is None:
        return X
    if model.features is None:
        raise ValueError(f"{name} is a table with named columns but the model has no features "
                         "spec; set features=... or pass an array in feature order")
    # the model's dtype decides which values are missing (1e39 is for a float32 model), as
    # in its predictions: otherwise fit refused rows that predict_proba imputes
    return model.features.transform(X, model_dtype=model.dtype)


def network_inputs(model, X, what):
    """model.transform_inputs(X) for finite raw rows, refusing values that overflow the
    model's dtype once standardised (3e38 in a float32 model would otherwise train on inf
    and fail as 'training diverged, try a smaller lr')."""
    with np.errstate(over="ignore", invalid="ignore"):
        Xn = model.transform_inputs(X)
    if all_finite(Xn):                  # blockwise in the common case
        return Xn
    bad = ~np.isfinite(Xn).all(axis=1)
    if bad.any():
        n_bad = int(bad.sum())
        raise ValueError(f"{what}: {counted(n_bad, 'row overflows', 'rows overflow')} the "
                         f"model's {model.dtype.name} inputs once standardised (first row "
                         f"{int(np.flatnonzero(bad)[0])}); "
                         "such values (|x| beyond the dtype's range) cannot be trained on: "
                         "rescale them, drop them, or use dtype='float64'")
    return Xn


def loss_and_targets(model, X, y, loss):
    """(loss name, targets as the network learns them): ``loss`` or the model's default
    loss, checked, and ``y`` (through trained_target) checked against the rows of the
    network inputs X as that loss's labels or targets, in the model's dtype."""
    loss = loss if loss is not None else model.default_loss()
    loss_code(loss)
    if model.target_transform is not None and loss != "mse":   # else: "y ... 0.693" (log 2)
        raise ValueError(f"target_transform={model.target_transform!r} is for a regression: "
                         f"train with loss='mse', not loss={loss!r}")
    return loss, check_targets(trained_target(model, y), X.shape[0], loss, model.n_outputs,
                               model.dtype)


def trained_target(model, y):
    """The target the network learns: log(1 + y) for target_transform="log1p" (predict
    applies expm1), else y."""
    if model.target_transform != "log1p":
        return y
    y = np.asarray(y, dtype=np.float64)
    if not (y > -1).all():
        raise ValueError("target_transform='log1p' needs every target > -1")
    return np.log1p(y)


def sample_weights(model, loss, Y, sample_weight, class_weight):
    """Per-row training weights (N,): ``sample_weight`` (checked) times the weight of each
    row's class from ``class_weight`` (classifiers only, single-label targets only); ones
    in the model's dtype when both are None."""
    if sample_weight is None and class_weight is None:
        return np.ones(Y.shape[0], dtype=model.dtype)
    sw = check_sample_weight(sample_weight, Y.shape[0], np.float64)
    if loss == "bce" and Y.shape[1] > 1 and class_weight is not None:
        raise ValueError("class_weight applies to single-label targets, not multilabel ones "
                         f"(a 0/1 column per output, {Y.shape[1]} here); weight the rows "
                         "through sample_weight")
    if loss != "mse":
        labels = Y[:, 0].astype(np.int64)
        cw = class_weights(class_weight, labels, max(2, model.n_outputs), sw)
        if cw is not None:
            sw = sw * cw
    elif class_weight is not None:
        raise ValueError("class_weight applies to classifiers, not loss='mse'")
    check_weight_range(sw, model.dtype)
    return sw


def check_weight_range(sw, dtype, name="sample_weight (times class_weight)"):
    """Refuse weights that the kernels, in the model's dtype, cannot sum: a total that
    overflows (1e308, or 1e38 in float32: the loss was NaN and the advice 'a smaller lr')
    or weights below the dtype's normal range (flushed to 0 in the kernels, 1e-40 in
    float32).  The loss is a weighted mean, so rescaling the weights changes nothing.
    ``name``: the user's argument(s) the weights came from, for the message."""
    info = np.finfo(dtype)
    pos = sw[sw > 0]
    if not pos.size:
        return                              # all zero: refused where the batches are made
    lo, hi = float(pos.min()), float(pos.max())
    # the largest times the row count, not the real total: the kernels multiply each
    # weight by its row's loss and gradient in the dtype (one 3e38 among ones of a float32
    # batch made the loss inf, and the advice 'a smaller lr')
    top = float(info.max) / sw.size         # Python floats: no float32 cast of 1e308
    if hi <= top and lo >= float(info.tiny):
        return
    what = (f"their total overflows (judged as the largest times their count, {sw.size}: "
            "the kernels multiply each weight by its row's loss and gradient)") \
        if hi > top else "the smallest lie below its normal range (the kernels take them for 0)"
    raise ValueError(f"{name} ranges from {lo:.3g} to {hi:.3g}: in the model's "
                     f"{np.dtype(dtype).name} {what}; the loss is a weighted mean, so rescale "
                     "the weights (e.g. divide them by their mean)")


def class_weights(class_weight, labels, n_classes, sample_weight=None, classes=None):
    """Per-sample weights (the weight of each row's class in ``labels``, indices
    0..n_classes-1) from None | "balanced" | {class: weight}; None for None.  "balanced" is
    scikit-learn's (>= 1.6) n_samples / (n_classes * count) over the classes present, the
    samples and counts summed by ``sample_weight`` when given (integer weights act as
    repeated rows; a class whose rows all weigh 0 gets 0).  A dict's keys are class
    indices, or the labels ``classes`` (classes[i] names index i) when given."""
    if class_weight is None:
        return None
    if isinstance(class_weight, dict):
        return _dict_class_weights(class_weight, n_classes, classes)[labels]
    if not (isinstance(class_weight, str) and class_weight == "balanced"):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got "
                         f"{class_weight!r}")
    counts = np.bincount(labels, weights=sample_weight, minlength=n_classes)
    n_present = np.count_nonzero(np.bincount(labels, minlength=n_classes))
    weighted = np.flatnonzero(counts > 0)   # not inf, whose product with weight 0 is NaN
    w = np.zeros(n_classes)
    w[weighted] = counts.sum() / (n_present * counts[weighted])
    return w[labels]


def _dict_class_weights(class_weight, n_classes, classes):
    """Each class's weight from a {class: weight} dict (absent classes weigh 1)."""
    w = np.ones(n_classes)
    for c, v in class_weight.items():
        if classes is None:
            at = [c] if isinstance(c, (int, np.integer)) and not isinstance(c, bool) \
                and 0 <= c < n_classes else []
        elif np.ndim(c) != 0:     # (0, 1) == classes broadcast: class 0 got its weight
            at = []
        else:
            at = np.flatnonzero(classes == c)
        if not len(at):
            known = f"0..{n_classes - 1}" if classes is None else f"classes_: {classes.tolist()}"
            raise ValueError(f"class_weight key {c!r} is not a class ({known})")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) \
                or not (math.isfinite(v) and v >= 0):
            raise ValueError(f"class_weight[{c!r}] must be a finite number >= 0, got {v!r}")
        w[at[0]] = v
    return w


def validation_pair(model, loss, X_val, y_val):
    """(X, Y, sw) network inputs of a raw (X_val, y_val) pair, made as fit makes its
    training rows' (raw_training_rows, network_inputs); an empty one is refused.  Checked
    once, under the names X_val / y_val (transform_inputs and check_targets would say X / y,
    the training data's names)."""
    X = check_array(_feature_matrix(model, X_val, "X_val"), "X_val", model.n_inputs, None,
                    remedy=DROP_THEM_FIRST, column_text=_named_columns(model))
    if X.shape[0] == 0:
        raise ValueError("validation: X_val is empty; pass validation=None to train without")
    Xv = network_inputs(model, X, "X_val")
    Yv = check_targets(trained_target(model, y_val), Xv.shape[0], loss, model.n_outputs,
                       model.dtype, names=("X_val", "y_val"))
    return Xv, Yv, np.ones(Xv.shape[0], dtype=model.dtype)
