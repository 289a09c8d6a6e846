"""Save and load models: one versioned ``.npz`` file with JSON metadata, written atomically.

``save(model, path)`` writes the model's whole input-to-output contract and, when the model
has one, its optimizer (so that training resumes exactly):

* ``params``: the flat parameter buffer (the model's dtype, bit for bit);
* ``optimizer_state``: the optimizer's ``(n_state, n_params)`` state matrix, when present;
* ``standardization_mean`` / ``standardization_std``: float64 feature scaling, when present;
* ``metadata``: a JSON document (a 0-d unicode array, so that no pickle is ever needed)::

    {"format": "fastmlp-model", "format_version": 2, "fastmlp_version": "0.1.0",
     "architecture": {"layer_sizes": [...], "activation": "relu", "dtype": "float32",
                      "n_params": 4545},
     "contract": {"features": [...] | null, "standardization": true | false,
                  "class_names": [...] | null, "positive": 1 | null, "loss": "bce" | null,
                  "output": null | "sigmoid" | ..., "threshold": 0.41 | null,
                  "temperature": 1.0, "target_transform": null | "log1p"},
     "training_config": {...} | null,
     "optimizer": {"name": "adam", "hyper": {...}, "step": 1234,
                   "state_rows": ["exp_avg", ...]} | null,
     "arrays": {"params": {"dtype": "float32", "shape": [4545], "sha256": "..."}, ...}}

Version 1 files (feature_names / class_names / loss at the top level) are still read.
Version 3 adds ``"feature_fill": {column: value}`` to the contract, the values that replace a
missing raw value before the features are formed (FeatureSpec.fill, stored by ``fastmlp
train --missing impute-median``); a model without them is written as version 2, which
older fastmlp versions read, and a version 2 file loads with no fill.

The file is written to a temporary file in the destination's directory, flushed to disk and
renamed over ``path``: a reader sees the old file or the new one, never a half-written one.

``load(path)`` checks the format and version, every field against the arrays BEFORE anything
is allocated (a crafted file declaring huge layers is refused from its metadata), every
array's shape, dtype and SHA-256, and the contract fields with the same checks as
``MLP(...)``; it refuses anything else with a ``ValueError`` naming the path and the problem.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .._version import __version__
from ..atomic import atomic_write
from ..codes import ACTIVATIONS, N_STATE
from ..model import CONTRACT_FIELDS, MLP, FeatureNames, require_mlp
from ..optim import make_optimizer

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION", "FORMAT_VERSION_FILL"]

FORMAT = "fastmlp-model"
#: the version written for a model whose features have no fill values (older fastmlp
#: versions read it)
FORMAT_VERSION = 2
#: the version written with fill values (contract "feature_fill"), the newest read
FORMAT_VERSION_FILL = 3


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
    try:
        value = conv(value)
        json.dumps(value, allow_nan=False)   # the file's JSON holds no NaN / inf
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to save") from None
    except (TypeError, ValueError) as exc:
        detail = ("it holds NaN or inf, which JSON cannot store"
                  if "Out of range float" in str(exc) else str(exc))
        raise ValueError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): "
                         f"{detail}") from None
    return value


def save(model, path, *, training_config=None):
    """Write ``model`` (a fastmlp.MLP) with its contract and its optimizer (``model.optimizer``,
    when set) to ``path``; ``training_config``: any JSON-serialisable dict (default: the
    model's own).  Returns the Path written.  Read it back with fastmlp.load(path)."""
    require_mlp(model)
    # the parameters or the contract's arrays may have been changed in place since they
    # were set: never write what load refuses (the user would lose the model)
    model.check_finite_params("save")
    model.check_contract()
    arrays = {"params": np.ascontiguousarray(model.params)}
    if model.standardization is not None:
        arrays["standardization_mean"], arrays["standardization_std"] = model.standardization
    opt_meta = None
    optimizer = model.optimizer
    if optimizer is not None:
        if optimizer.params is not model.params:
            raise ValueError("model.optimizer was built on another parameter buffer than "
                             "model.params")
        sd = optimizer.state_dict()
        opt_meta = {"name": optimizer.name, "step": int(sd["step"]),
                    "hyper": _jsonable(sd["hyper"], "optimizer hyper-parameters"),
                    "state_rows": list(optimizer.state_rows)}
        arrays["optimizer_state"] = np.ascontiguousarray(optimizer.state)
    config = model.training_config if training_config is None else training_config
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"training_config must be a dict or None, got {type(config).__name__}")
    c = model.contract()
    contract = dict(c, features=None if c["features"] is None else list(c["features"].names),
                    standardization=c["standardization"] is not None,
                    class_names=None if c["class_names"] is None else list(c["class_names"]))
    fill = None if c["features"] is None else c["features"].fill
    if fill:
        contract["feature_fill"] = dict(fill)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION_FILL if fill else FORMAT_VERSION,
        "fastmlp_version": __version__,
        "architecture": {"layer_sizes": list(model.layer_sizes),
                         "activation": model.activation, "dtype": model.dtype.name,
                         "n_params": int(model.n_params)},
        "contract": contract,
        "training_config": _jsonable(config, "training_config"),
        "optimizer": opt_meta,
        "arrays": {k: {"dtype": a.dtype.name, "shape": list(a.shape), "sha256": _sha256(a)}
                   for k, a in arrays.items()},
    }
    arrays["metadata"] = np.array(json.dumps(meta, allow_nan=False))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


class _Refuse(ValueError):
    pass


# What a file that is not a zip archive (an .npz) probably is, from its first bytes.
_MAGIC = ((b"PAR1", "a Parquet file"), (b"\x93NUMPY", "a .npy array"),
          (b"SIMPLE  =", "a FITS file"), (b"\x89HDF", "an HDF5 file"),
          (b"\x80", "a Python pickle"), (b"\x08", "an ONNX / protobuf file"),
          (b"FMLPMODL", "a C model file (fastmlp export --c; fastmlp.io.read_c_model "
                        "reads it back)"))


def _check_zip_magic(path):
    """A model file is an .npz (a zip archive); anything else is named, not unpickled."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return
    if not head:
        raise _Refuse("the file is empty")
    what = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    raise _Refuse("not a fastmlp model file (" + (f"it looks like {what}" if what else
                  "not an .npz archive") + "); pass a file written by fastmlp.save or "
                  "fastmlp train --out")


def _entry(z, k):
    try:
        return z[k]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _Refuse(f"entry {k!r} holds Python objects; a fastmlp model file holds only "
                          "numeric arrays and a JSON string (not a model file?)") from None
        raise


def _read(path):
    """(metadata dict, {name: array}) from the file, or _Refuse with the problem."""
    import zipfile
    _check_zip_magic(path)
    try:
        # the file opened here, not by np.load: np.load leaves its own handle open when the
        # zip directory is unreadable (a truncated file), a leaked descriptor per attempt
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            names = set(z.files)
            if "metadata" not in names:
                raise _Refuse(f"not a fastmlp model file (an .npz without a 'metadata' entry; "
                              f"it holds {sorted(names)[:5]})")
            arrays = {k: _entry(z, k) for k in names}
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
    except RecursionError:
        raise _Refuse("the metadata JSON is nested too deeply") from None
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
    version = _check_format(meta)
    _check_arrays(meta, arrays)
    sizes, act, dtype = _architecture(meta)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    params = arrays.get("params")
    if params is None or params.shape != (n_params,) or params.dtype.name != dtype:
        raise _Refuse(f"params has shape {None if params is None else params.shape}, but "
                      f"layer_sizes {sizes} ({dtype}) need ({n_params},) {dtype}")
    if not np.isfinite(params).all():
        raise _Refuse("params holds NaN or inf")
    contract = _contract(meta, arrays, version)
    # only now, with every size checked against the arrays, is anything allocated
    model = MLP(sizes, activation=act, dtype=dtype, seed=None)
    model.set_params(params)
    try:
        model.set_contract(**contract)
    except (TypeError, ValueError) as exc:
        raise _Refuse(f"bad contract field: {exc}") from None
    model.optimizer = _optimizer(meta, arrays, model)
    config = meta.get("training_config")
    model.training_config = config if isinstance(config, dict) else None
    return model


def _check_format(meta):
    if meta.get("format") != FORMAT:
        raise _Refuse(f"not a fastmlp model file (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Refuse(f"format_version is missing or not an integer ({version!r})")
    if version > FORMAT_VERSION_FILL:
        raise _Refuse(f"format version {version} is newer than this fastmlp "
                      f"({__version__}) reads (up to {FORMAT_VERSION_FILL}); upgrade fastmlp")
    if version < 1:
        raise _Refuse(f"unknown format version {version}")
    return version


def _check_arrays(meta, arrays):
    """Every array is listed with its dtype, shape and checksum, and nothing else is present."""
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


def _architecture(meta):
    arch = _need(meta, "architecture", dict)
    sizes = _need(arch, "layer_sizes", list, "architecture")
    act = _need(arch, "activation", str, "architecture")
    dtype = _need(arch, "dtype", str, "architecture")
    if act not in ACTIVATIONS:
        raise _Refuse(f"unknown activation {act!r}")
    if dtype not in ("float32", "float64"):
        raise _Refuse(f"unsupported dtype {dtype!r}")
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in sizes):
        raise _Refuse(f"layer_sizes {sizes!r} is not a list of at least two positive integers")
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if arch.get("n_params", n_params) != n_params:
        raise _Refuse(f"n_params {arch.get('n_params')} does not match layer_sizes {sizes}")
    return sizes, act, dtype


def _contract(meta, arrays, version):
    """The contract fields from the metadata (version 1 kept them at the top level)."""
    if version == 1:
        c = {"features": _need(meta, "feature_names", (list, type(None))),
             "class_names": _need(meta, "class_names", (list, type(None))),
             "loss": _need(meta["architecture"], "loss", (str, type(None)), "architecture"),
             "standardization": _need(meta, "standardization", bool)}
    else:
        c = dict(_need(meta, "contract", dict))
    fill = c.pop("feature_fill", None) if version >= 3 else None
    unknown = set(c) - set(CONTRACT_FIELDS)
    if unknown:
        raise _Refuse(f"unknown contract fields {sorted(unknown)}")
    for key in ("features", "class_names"):
        names = c.get(key)
        if names is not None and not (isinstance(names, list)
                                      and all(isinstance(v, str) for v in names)):
            raise _Refuse(f"{key} must be a list of strings, got {names!r}")
    if fill is not None and c.get("features") is None:
        raise _Refuse("feature_fill is set but the contract has no features")
    if c.get("features") is not None:
        # the names as saved (already expanded), literally: "weight, kg" stays one column
        try:
            c["features"] = FeatureNames(c["features"], fill=fill)
        except ValueError as exc:
            raise _Refuse(f"bad contract field: {exc}") from None
    if _need(c, "standardization", bool, "contract"):
        for k in ("standardization_mean", "standardization_std"):
            if k not in arrays:
                raise _Refuse(f"the {k!r} array is missing")
        c["standardization"] = (arrays["standardization_mean"], arrays["standardization_std"])
    else:
        c["standardization"] = None
    return c


def _optimizer(meta, arrays, model):
    """The optimizer rebuilt on model.params with its state and step count, or None."""
    opt_meta = _need(meta, "optimizer", (dict, type(None)))
    if opt_meta is None:
        return None
    name = _need(opt_meta, "name", str, "optimizer metadata")
    if name not in N_STATE:
        raise _Refuse(f"unknown optimizer {name!r}")
    hyper = _need(opt_meta, "hyper", dict, "optimizer metadata")
    step = _need(opt_meta, "step", int, "optimizer metadata")
    if step < 0:
        raise _Refuse(f"optimizer step {step} is negative")
    state = arrays.get("optimizer_state")
    if state is None or state.shape != (N_STATE[name], model.n_params) \
            or state.dtype != model.dtype:
        raise _Refuse(f"optimizer_state has shape {None if state is None else state.shape}, "
                      f"expected ({N_STATE[name]}, {model.n_params}) {model.dtype.name}")
    try:
        optimizer = make_optimizer(name, model.params, **hyper)
    except (TypeError, ValueError) as exc:
        raise _Refuse(f"bad optimizer hyper-parameters {hyper!r}: {exc}") from None
    optimizer.state[...] = state
    optimizer.step_count = step
    return optimizer
