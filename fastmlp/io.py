"""Save and load models: one versioned ``.npz`` file with JSON metadata, written atomically.

``save_model(model, path, ...)`` writes

* ``params``: the flat parameter buffer (the model's dtype, bit for bit);
* ``optimizer_state``: the optimizer's ``(n_state, n_params)`` state matrix, when given;
* ``standardization_mean`` / ``standardization_std``: float64 feature scaling, when given;
* ``metadata``: a JSON document (a 0-d unicode array, so that no pickle is ever needed)::

    {"format": "fastmlp-model", "format_version": 1, "fastmlp_version": "0.1.0",
     "architecture": {"layer_sizes": [...], "activation": "relu", "dtype": "float32",
                      "loss": "bce", "n_params": 4545},
     "feature_names": [...] | null, "class_names": [...] | null,
     "standardization": true | false, "training_config": {...} | null,
     "optimizer": {"name": "adam", "hyper": {...}, "step": 1234,
                   "state_rows": ["exp_avg", ...]} | null,
     "arrays": {"params": {"dtype": "float32", "shape": [4545], "sha256": "..."}, ...}}

The file is written to a temporary file in the destination's directory, flushed to disk and
renamed over ``path`` with ``os.replace``: a reader sees the old file or the new one, never a
half-written one, and a failure leaves no temporary file behind.

``load(path)`` checks the format and version, every array's shape, dtype and SHA-256, the
architecture against the parameter count, and refuses anything else with a ``ValueError``
naming the path and the problem.  It returns the :class:`fastmlp.MLP` with extra attributes
``feature_names``, ``standardization`` ((mean, std) or None), ``class_names``,
``optimizer`` (rebuilt on ``model.params`` with its state and step count, or None),
``training_config`` and ``metadata``.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .codes import ACTIVATIONS, LOSSES, N_STATE
from .model import MLP
from .optim import Optimizer, make_optimizer

__all__ = ["save_model", "load", "FORMAT", "FORMAT_VERSION", "atomic_write"]

FORMAT = "fastmlp-model"
FORMAT_VERSION = 1


def _version():
    from . import __version__
    return __version__


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over
    ``path``.  On any error (or interruption) the temporary file is removed and ``path`` is
    left as it was.  Returns ``Path(path)``."""
    path = Path(os.fspath(path))
    d = path.parent
    if not d.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _jsonable(value, what):
    """``value`` with NumPy scalars/arrays turned into plain Python, checked to be JSON."""
    def conv(v):
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        return v
    value = conv(value)
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): "
                         f"{exc}") from None
    return value


def save_model(model, path, *, feature_names=None, standardization=None, class_names=None,
               optimizer=None, training_config=None):
    """Write ``model`` (a fastmlp.MLP) and what is needed to use or resume it to ``path``.

    feature_names: one name per input column.  standardization: (mean, std), each of length
    n_inputs, applied to raw features as (X - mean) / std before the network.  class_names:
    the name of each class (2 for one output, else one per output).  optimizer: the
    Optimizer training ``model`` (built on ``model.params``); its hyper-parameters, step count
    and state are saved so that training resumes exactly.  training_config: any
    JSON-serialisable dict (epochs, lr, seed, ...).  Returns the Path written.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a fastmlp.MLP, got {type(model).__name__}")
    n_in = model.n_inputs
    arrays = {"params": np.ascontiguousarray(model.params)}
    if feature_names is not None:
        feature_names = [str(f) for f in feature_names]
        if len(feature_names) != n_in:
            raise ValueError(f"feature_names has {len(feature_names)} names, the model has "
                             f"{n_in} inputs")
    if standardization is not None:
        try:
            mean, std = standardization
        except (TypeError, ValueError):
            raise ValueError("standardization must be a (mean, std) pair or None") from None
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.shape != (n_in,) or std.shape != (n_in,):
            raise ValueError(f"standardization mean and std must each have {n_in} values (one "
                             f"per input), got {mean.size} and {std.size}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("standardization mean must be finite and std finite and > 0")
        arrays["standardization_mean"] = mean
        arrays["standardization_std"] = std
    if class_names is not None:
        class_names = _jsonable(list(class_names), "class_names")
        n_classes = 2 if model.n_outputs == 1 else model.n_outputs
        if len(class_names) != n_classes:
            raise ValueError(f"class_names has {len(class_names)} names, the model has "
                             f"{n_classes} classes")
    opt_meta = None
    if optimizer is not None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastmlp optimizer, got "
                            f"{type(optimizer).__name__}")
        if optimizer.params is not model.params:
            raise ValueError("optimizer was built on another parameter buffer than "
                             "model.params; save the optimizer that trains this model")
        sd = optimizer.state_dict()
        opt_meta = {"name": optimizer.name, "step": int(sd["step"]),
                    "hyper": _jsonable(sd["hyper"], "optimizer hyper-parameters"),
                    "state_rows": list(optimizer.state_rows)}
        arrays["optimizer_state"] = np.ascontiguousarray(optimizer.state)
    if training_config is not None and not isinstance(training_config, dict):
        raise ValueError(f"training_config must be a dict or None, got "
                         f"{type(training_config).__name__}")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastmlp_version": _version(),
        "architecture": {"layer_sizes": list(model.layer_sizes),
                         "activation": model.activation, "dtype": model.dtype.name,
                         "loss": model.loss, "n_params": int(model.n_params)},
        "feature_names": feature_names,
        "class_names": class_names,
        "standardization": standardization is not None,
        "training_config": _jsonable(training_config, "training_config"),
        "optimizer": opt_meta,
        "arrays": {k: {"dtype": a.dtype.name, "shape": list(a.shape), "sha256": _sha256(a)}
                   for k, a in arrays.items()},
    }
    arrays["metadata"] = np.array(json.dumps(meta, allow_nan=True))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


class _Refuse(ValueError):
    pass


def _read(path):
    """(metadata dict, {name: array}) from the file, or _Refuse with the problem."""
    import zipfile
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if "metadata" not in names:
                raise _Refuse("not a fastmlp model file (no 'metadata' entry)")
            arrays = {k: z[k] for k in names}
    except _Refuse:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise  # not a damaged file: the ordinary error says what is wrong
        raise _Refuse(f"corrupt or truncated file ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # anything the zip / npy readers raise on garbage
        raise _Refuse(f"corrupt or truncated file ({type(exc).__name__}: {exc})") from None
    raw = arrays.pop("metadata")
    if raw.dtype.kind != "U" or raw.shape != ():
        raise _Refuse("the 'metadata' entry is not a JSON string")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise _Refuse(f"the metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _Refuse("the metadata is not a JSON object")
    return meta, arrays


def _need(meta, key, kind, where="metadata"):
    if key not in meta:
        raise _Refuse(f"{where} lacks the required key {key!r}")
    v = meta[key]
    if kind is not None and not isinstance(v, kind):
        raise _Refuse(f"{where} key {key!r} has the wrong type ({type(v).__name__})")
    return v


def load(path):
    """Load a model written by :func:`save_model` (see the module docstring)."""
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        return _load(path)
    except _Refuse as exc:
        raise ValueError(f"cannot load fastmlp model {path}: {exc}") from None


def _load(path):
    meta, arrays = _read(path)
    if meta.get("format") != FORMAT:
        raise _Refuse(f"not a fastmlp model file (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Refuse(f"format_version is missing or not an integer ({version!r})")
    if version > FORMAT_VERSION:
        raise _Refuse(f"format version {version} is newer than this fastmlp "
                      f"({_version()}) reads (up to {FORMAT_VERSION}); upgrade fastmlp")
    if version < 1:
        raise _Refuse(f"unknown format version {version}")

    # every array is listed with its dtype, shape and checksum, and nothing else is present
    listed = _need(meta, "arrays", dict)
    if set(listed) != set(arrays):
        missing = sorted(set(listed) - set(arrays))
        extra = sorted(set(arrays) - set(listed))
        raise _Refuse("arrays do not match the metadata"
                      + (f"; missing {missing}" if missing else "")
                      + (f"; unexpected {extra}" if extra else ""))
    for name, a in arrays.items():
        info = listed[name]
        if not isinstance(info, dict):
            raise _Refuse(f"metadata for array {name!r} is malformed")
        if a.dtype.name != info.get("dtype") or list(a.shape) != info.get("shape"):
            raise _Refuse(f"array {name!r} has dtype {a.dtype.name} shape {list(a.shape)}, the "
                          f"metadata says {info.get('dtype')} {info.get('shape')}")
        if _sha256(a) != info.get("sha256"):
            raise _Refuse(f"array {name!r} is corrupt (its SHA-256 checksum does not match)")

    arch = _need(meta, "architecture", dict)
    sizes = _need(arch, "layer_sizes", list, "architecture")
    act = _need(arch, "activation", str, "architecture")
    dtype = _need(arch, "dtype", str, "architecture")
    loss = _need(arch, "loss", (str, type(None)), "architecture")
    if act not in ACTIVATIONS:
        raise _Refuse(f"unknown activation {act!r}")
    if loss is not None and loss not in LOSSES:
        raise _Refuse(f"unknown loss {loss!r}")
    if dtype not in ("float32", "float64"):
        raise _Refuse(f"unsupported dtype {dtype!r}")
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in sizes):
        raise _Refuse(f"layer_sizes {sizes!r} is not a list of at least two positive integers")
    model = MLP(sizes, activation=act, dtype=dtype)
    if "params" not in arrays:
        raise _Refuse("the 'params' array is missing")
    params = arrays["params"]
    if params.shape != (model.n_params,) or params.dtype != model.dtype:
        raise _Refuse(f"params has shape {params.shape} dtype {params.dtype}, but layer_sizes "
                      f"{sizes} ({dtype}) need ({model.n_params},) {dtype}")
    if arch.get("n_params", model.n_params) != model.n_params:
        raise _Refuse(f"n_params {arch.get('n_params')} does not match layer_sizes {sizes}")
    model.set_params(params)
    model.loss = loss

    n_in = model.n_inputs
    feature_names = _need(meta, "feature_names", (list, type(None)))
    if feature_names is not None and len(feature_names) != n_in:
        raise _Refuse(f"{len(feature_names)} feature_names for {n_in} inputs")
    class_names = _need(meta, "class_names", (list, type(None)))
    n_classes = 2 if model.n_outputs == 1 else model.n_outputs
    if class_names is not None and len(class_names) != n_classes:
        raise _Refuse(f"{len(class_names)} class_names for {n_classes} classes")
    standardization = None
    if _need(meta, "standardization", bool):
        for k in ("standardization_mean", "standardization_std"):
            if k not in arrays:
                raise _Refuse(f"the {k!r} array is missing")
            if arrays[k].shape != (n_in,):
                raise _Refuse(f"{k} has shape {arrays[k].shape}, expected ({n_in},)")
        standardization = (arrays["standardization_mean"], arrays["standardization_std"])

    optimizer = None
    opt_meta = _need(meta, "optimizer", (dict, type(None)))
    if opt_meta is not None:
        name = _need(opt_meta, "name", str, "optimizer metadata")
        if name not in N_STATE:
            raise _Refuse(f"unknown optimizer {name!r}")
        hyper = _need(opt_meta, "hyper", dict, "optimizer metadata")
        step = _need(opt_meta, "step", int, "optimizer metadata")
        if "optimizer_state" not in arrays:
            raise _Refuse("the 'optimizer_state' array is missing")
        state = arrays["optimizer_state"]
        if state.shape != (N_STATE[name], model.n_params) or state.dtype != model.dtype:
            raise _Refuse(f"optimizer_state has shape {state.shape} dtype {state.dtype}, "
                          f"expected ({N_STATE[name]}, {model.n_params}) {dtype}")
        try:
            optimizer = make_optimizer(name, model.params, **hyper)
        except (TypeError, ValueError) as exc:
            raise _Refuse(f"bad optimizer hyper-parameters {hyper!r}: {exc}") from None
        optimizer.state[...] = state
        optimizer.step_count = step

    model.feature_names = feature_names
    model.standardization = standardization
    model.class_names = class_names
    model.optimizer = optimizer
    model.training_config = meta.get("training_config")
    model.metadata = meta
    return model
