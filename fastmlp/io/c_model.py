"""Model files for C: a trained :class:`fastmlp.MLP` with its whole contract, for
``fastmlp_model_load`` (``csrc/fastmlp.h``, implemented in ``csrc/model_file.c``).

``write_c_model(model, path)`` writes the file (atomically: a temporary file beside ``path``,
then ``os.replace``); ``read_c_model(path)`` reads it back into an MLP (the same checks as the
C loader).  In C, ``fastmlp_model_predict_proba`` on raw features gives model.predict_proba's
probabilities: every step is computed in the model's dtype as model.py does (float32 models
agree to an ulp or two of exp, well within 1e-6 relative; float64 to ~1e-15).

Layout, format versions 1 and 2 (2 only for a model with fill values, FeatureSpec.fill; a
model without them is written as version 1, which older C loaders read).  Integers and
floats little-endian (IEEE 754), no padding; a
``str`` is a u32 byte length (<= 4096) then that many UTF-8 bytes (no NUL)::

    header (24 bytes)
      0  8 bytes  magic b"FMLPMODL"
      8  u32      format version (1, or 2 with fill values)
     12  u32      CRC-32 of the payload (zlib.crc32)
     16  u64      payload length in bytes (the file is exactly 24 + this long)
    payload
      u32 n_layers L (1..64)
      u32 dtype: 0 float32, 1 float64
      u32 hidden activation: index in fastmlp.codes.ACTIVATIONS (last layer identity)
      u32 link in use: 0 sigmoid, 1 softmax, 2 identity (model.link)
      i32 loss: -1 None, else index in fastmlp.codes.LOSSES
      i32 output: -1 None (derived from loss / outputs), else as link
      u32 target_transform: 0 None, 1 "log1p"
      i32 positive class (-1 None)
      f64 threshold (NaN: None)
      f64 temperature
      u64 layer_sizes[L + 1]
      u32 has_features; if 1, per input: str name, str a, str b (FeatureSpec.terms():
          column a, minus column b when b != ""; a column named like the feature wins)
      u32 has_standardization; if 1: f64 mean[n_inputs], then f64 std[n_inputs]
      u32 n_class_names (0 or the class count), then that many str
      version 2 only: u32 n_fills, then per fill: str column, f64 value (FeatureSpec.fill:
          fastmlp_model_gather_features replaces a missing value of that raw column by it)
      params: per layer W (n_in, n_out) row-major then b (n_out), as float32 or float64;
          the payload ends there.

A reader refuses a format version newer than it reads; a change to the layout gets a new
version.
"""

import math
import os
import struct
import zlib

import numpy as np

from .._validate import counted
from ..atomic import atomic_write
from ..codes import ACTIVATIONS, LOSSES, activation_code
from ..model import CONTRACT_FIELDS, MLP, FeatureNames, require_mlp

__all__ = ["write_c_model", "read_c_model", "c_model_bytes", "MAGIC", "FORMAT_VERSION",
           "FORMAT_VERSION_FILL"]

MAGIC = b"FMLPMODL"
FORMAT_VERSION = 1
#: the version written for a model with fill values (the newest read)
FORMAT_VERSION_FILL = 2
HEADER = struct.Struct("<8sIIQ")          # magic, version, crc32, payload length
SCALARS = struct.Struct("<IIIIiiIidd")    # L, dtype, activation, link, loss, output,
#                                           target_transform, positive, threshold, temperature
MAX_STR = 4096
MAX_LAYERS = 64
MAX_SIZE = 1 << 24                        # widest layer the C loader accepts
LINKS = ("sigmoid", "softmax", "identity")
DTYPES = ("float32", "float64")
TARGET_TRANSFORMS = (None, "log1p")


def _index(choices, value):
    return -1 if value is None else choices.index(value)


def _str(text, what):
    data = text.encode("utf-8")
    if len(data) > MAX_STR or b"\0" in data:
        raise ValueError(f"{what} {text!r} cannot be stored: at most {MAX_STR} UTF-8 bytes "
                         "and no NUL character")
    return struct.pack("<I", len(data)) + data


def c_model_bytes(model):
    """The whole file (header + payload) for ``model`` as bytes."""
    require_mlp(model)
    # changed in place since they were set?  The C loader refuses a bad contract, and NaN
    # parameters would predict NaN for every object
    model.check_finite_params("write")
    model.check_contract()
    if model.n_layers > MAX_LAYERS or max(model.layer_sizes) > MAX_SIZE:
        raise ValueError(f"model {list(model.layer_sizes)} does not fit a C model file: at "
                         f"most {MAX_LAYERS} layers of at most {MAX_SIZE} units")
    threshold = math.nan if model.threshold is None else model.threshold
    parts = [SCALARS.pack(model.n_layers, DTYPES.index(model.dtype.name),
                          activation_code(model.activation), LINKS.index(model.link),
                          _index(LOSSES, model.loss), _index(LINKS, model.output),
                          TARGET_TRANSFORMS.index(model.target_transform),
                          -1 if model.positive is None else model.positive, threshold,
                          model.temperature),
             struct.pack(f"<{model.n_layers + 1}Q", *model.layer_sizes)]
    parts.append(struct.pack("<I", model.features is not None))
    if model.features is not None:
        for name, (a, b) in zip(model.features.names, model.features.terms()):
            parts += [_str(name, "feature name"), _str(a, "feature term"),
                      _str(b, "feature term")]
    parts.append(struct.pack("<I", model.standardization is not None))
    if model.standardization is not None:
        parts += [np.asarray(v, dtype="<f8").tobytes() for v in model.standardization]
    names = model.class_names or ()
    parts.append(struct.pack("<I", len(names)))
    parts += [_str(c, "class name") for c in names]
    fill = model.features.fill if model.features is not None else None
    if fill:
        parts.append(struct.pack("<I", len(fill)))
        for column, value in fill.items():
            parts += [_str(column, "fill column"), struct.pack("<d", value)]
    parts.append(model.params.astype(model.dtype.newbyteorder("<"), copy=False).tobytes())
    payload = b"".join(parts)
    version = FORMAT_VERSION_FILL if fill else FORMAT_VERSION
    return HEADER.pack(MAGIC, version, zlib.crc32(payload), len(payload)) + payload


def write_c_model(model, path):
    """Write ``model`` (weights and whole contract) as a C model file at ``path``,
    atomically: readers see the old file or the new one, never half of one.
    Returns ``Path(path)``."""
    data = c_model_bytes(model)
    return atomic_write(path, lambda f: f.write(data))


class _Reader:
    """Little-endian fields of the payload; running out of bytes is a format error."""

    def __init__(self, data, where):
        self.data, self.pos, self.where = data, 0, where

    def take(self, n):
        if n > len(self.data) - self.pos:
            raise ValueError(f"{self.where}: truncated C model file (a field runs past the end)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def str(self):
        (n,) = self.unpack("<I")
        if n > MAX_STR:
            raise ValueError(f"{self.where}: a string of {counted(n, 'byte')} (at most {MAX_STR})")
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:   # the C loader refuses it too (FASTMLP_EFORMAT)
            raise ValueError(f"{self.where}: a string field is not valid UTF-8 ({exc.reason} "
                             f"at byte {exc.start} of {counted(n, 'byte')}): the C model "
                             "file is corrupt") from None


def _check_header(data, where):
    if len(data) < HEADER.size or data[:8] != MAGIC:
        raise ValueError(f"{where}: not a fastmlp C model file (no {MAGIC!r} magic)")
    _, version, crc, length = HEADER.unpack_from(data)
    if not FORMAT_VERSION <= version <= FORMAT_VERSION_FILL:
        raise ValueError(f"{where}: C model file format version {version}; this fastmlp "
                         f"reads versions {FORMAT_VERSION} to {FORMAT_VERSION_FILL}")
    if length != len(data) - HEADER.size:
        raise ValueError(f"{where}: the header says {counted(length, 'payload byte')}, the file "
                         f"has {len(data) - HEADER.size} (truncated or extended)")
    if zlib.crc32(data[HEADER.size:]) != crc:
        raise ValueError(f"{where}: checksum mismatch: the C model file is corrupt")


def read_c_model(path):
    """The MLP stored in a C model file (weights and contract).  ValueError naming the file
    for a wrong magic, version, length or checksum, or inconsistent fields."""
    with open(path, "rb") as f:
        data = f.read()
    where = os.fspath(path)
    _check_header(data, where)
    version = HEADER.unpack_from(data)[1]
    r = _Reader(data[HEADER.size:], where)
    L, dt, act, link, loss, output, target, positive, threshold, temperature = \
        r.unpack(SCALARS.format)
    if not 1 <= L <= MAX_LAYERS or dt > 1 or act >= len(ACTIVATIONS) or link > 2 \
            or not -1 <= loss < len(LOSSES) or not -1 <= output <= 2 or target > 1:
        raise ValueError(f"{where}: a code out of range in the C model file")
    sizes = r.unpack(f"<{L + 1}Q")
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if min(sizes) < 1 or max(sizes) > MAX_SIZE or n_params * (4 << dt) > len(data):
        raise ValueError(f"{where}: layer sizes {list(sizes)} do not fit the file")
    model = MLP(sizes, ACTIVATIONS[act], seed=None, dtype=DTYPES[dt])
    n = model.n_inputs
    # the names as saved (already expanded, taken literally: 'flux ' keeps its space)
    features = FeatureNames([r.str() for _ in range(3 * n)][::3]) if r.unpack("<I")[0] \
        else None
    std = (np.frombuffer(r.take(8 * n), "<f8"), np.frombuffer(r.take(8 * n), "<f8")) \
        if r.unpack("<I")[0] else None
    class_names = [r.str() for _ in range(r.unpack("<I")[0])] or None
    fill = _read_fill(r) if version >= FORMAT_VERSION_FILL else None
    if fill is not None:
        try:
            features = FeatureNames(features, fill=fill)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad fill values in the C model file: {exc}") from None
    params = np.frombuffer(r.take(model.n_params * model.dtype.itemsize),
                           model.dtype.newbyteorder("<"))
    if r.pos != len(r.data):
        raise ValueError(f"{where}: {counted(len(r.data) - r.pos, 'byte')} after the parameters")
    model.set_params(params)
    fields = dict(features=features, standardization=std, loss=_name(LOSSES, loss),
                  output=_name(LINKS, output), class_names=class_names,
                  positive=None if positive < 0 else positive,
                  threshold=None if math.isnan(threshold) else threshold,
                  temperature=temperature, target_transform=TARGET_TRANSFORMS[target])
    try:
        model.set_contract(**{k: fields[k] for k in CONTRACT_FIELDS})
    except ValueError as exc:
        raise ValueError(f"{where}: inconsistent contract in the C model file: {exc}") from None
    if model.link != LINKS[link]:
        raise ValueError(f"{where}: link {LINKS[link]!r} stored, but loss and output give "
                         f"{model.link!r}")
    return model


def _read_fill(r):
    """{column: value} of a version-2 file's fill section, or None when it has none."""
    (n,) = r.unpack("<I")
    if n > len(r.data) // 12:      # each takes at least 12 bytes: checked before reading
        raise ValueError(f"{r.where}: {counted(n, 'fill value')} do not fit the file")
    fill = {}
    for _ in range(n):
        column = r.str()
        fill[column] = r.unpack("<d")[0]
    if len(fill) != n:
        raise ValueError(f"{r.where}: a fill column is given more than once")
    return fill or None


def _name(choices, index):
    return None if index < 0 else choices[index]
