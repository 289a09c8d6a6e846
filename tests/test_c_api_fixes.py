"""The C API's own checks, called straight from cffi past the Python wrappers:

- an array a kernel writes that overlaps another array of the call is refused with
  FASTMLP_EINVAL and nothing is written (the rule of fastmlp/backends/_contract.py's apart:
  an in-place activation stays allowed, and adjacent slices of one buffer are fine);
- fastmlp_strerror explains the model-file status codes too;
- libfastmlp.so exports exactly the header's functions (no internal fm_* kernel), and the
  header with its FASTMLP_API mark compiles as C89 / C99 -pedantic and C++.
"""

import ctypes
import importlib
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, codes
from fastmlp.backends import batched_c
from fastmlp.backends import c as cb

pytestmark = pytest.mark.skipif(not cb.AVAILABLE,
                                reason=f"C backend unavailable: {cb.UNAVAILABLE_REASON}")

HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "csrc", "fastmlp.h")
EINVAL, OK = 1, 0


def f32(a):
    return cb._ffi.from_buffer("float[]", a)


def f64(a):
    return cb._ffi.from_buffer("double[]", a)


def i64(a):
    return cb._ffi.cast("int64_t *", cb._ffi.from_buffer(a))


# ---------------------------------------------------------------------------------------
# Overlap
# ---------------------------------------------------------------------------------------

def _adam(p, g, m, v, n):
    return cb._lib.fastmlp_adam_update_f32(f32(p), f32(g), f32(m), f32(v), cb._ffi.NULL, n,
                                           1, 0.1, 0.9, 0.999, 1e-8, 0.0, 0, 0, 0)


def test_adam_update_refuses_p_over_m_and_m_over_v():
    n = 6
    buf = np.linspace(-1, 1, 4 * n).astype(np.float32)
    before = buf.copy()
    p, g, m, v = buf[:n], buf[n:2 * n], buf[2 * n:3 * n], buf[3 * n:]
    assert _adam(p, g, p, v, n) == EINVAL                    # p == m
    assert _adam(p, g, m, m, n) == EINVAL                    # m == v
    assert _adam(p, g, buf[2 * n + 1:3 * n + 1], v, n) == EINVAL  # m overlapping v by one
    assert _adam(buf[1:n + 1], g, m, v, n) == EINVAL         # p overlapping g by one
    assert np.array_equal(buf, before)                       # nothing written
    # adjacent slices of one buffer touch but do not overlap: accepted and updated
    assert _adam(p, g, m, v, n) == OK
    assert not np.array_equal(buf[:n], before[:n])
    # the Python wrapper keeps its own message (it checks first)
    with pytest.raises(ValueError, match="p must not overlap m"):
        cb.adam_update(p, g, p, v, None, 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False, False)


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "rmsprop", "adam"])
def test_optimizer_update_refuses_p_over_g_or_state(opt):
    n = 5
    rows = codes.N_STATE[opt]
    h = codes.hyper_vector(opt, lr=0.1, **({"momentum": 0.9} if opt == "sgd" else {}))
    code = codes.optimizer_code(opt)
    buf = np.linspace(0.5, 1.5, (2 + rows) * n).astype(np.float32)
    before = buf.copy()
    p, g, st = buf[:n], buf[n:2 * n], buf[2 * n:]
    upd = cb._lib.fastmlp_optimizer_update_f32
    assert upd(code, f32(p), f32(p), f32(st), n, 1, f64(h)) == EINVAL       # p == g
    assert upd(code, f32(buf[n + 2:]), f32(g), f32(st), n, 1, f64(h)) == EINVAL  # p in state
    assert upd(code, f32(p), f32(g), f32(buf[n - 1:]), n, 1, f64(h)) == EINVAL   # state over p
    assert np.array_equal(buf, before)
    assert upd(code, f32(p), f32(g), f32(st), n, 1, f64(h)) == OK
    assert not np.array_equal(buf[:n], before[:n])


def test_per_optimizer_updates_check_only_the_buffers_they_use():
    n = 4
    buf = np.ones(3 * n, np.float32)
    p, g, s = buf[:n], buf[n:2 * n], buf[2 * n:]
    lib = cb._lib
    # momentum 0: buf is never touched, so it may be anything (as in Python)
    assert lib.fastmlp_sgd_update_f32(f32(p), f32(g), f32(g), n, 1, 0.1, 0.0, 0.0, 0.0, 0,
                                      0) == OK
    before = buf.copy()
    assert lib.fastmlp_sgd_update_f32(f32(p), f32(g), f32(g), n, 1, 0.1, 0.9, 0.0, 0.0, 0,
                                      0) == EINVAL
    assert lib.fastmlp_adagrad_update_f32(f32(p), f32(g), f32(p), n, 1, 0.1, 0.0, 0.0, 1e-10,
                                          0) == EINVAL
    assert lib.fastmlp_rmsprop_update_f32(f32(p), f32(g), f32(s), f32(s), cb._ffi.NULL, n, 1,
                                          0.1, 0.99, 1e-8, 0.0, 0.0, 1, 0) == EINVAL
    assert np.array_equal(buf, before)


def _net():
    m = MLP([4, 8, 1], dtype="float32", seed=1, loss="bce")
    return m, m.sizes_array, m.acts_array


def _epoch(params, grad, state, x, y, perm, lrs, bl, h, sizes, acts):
    done = cb._ffi.new("int64_t *")
    st = cb._lib.fastmlp_train_epoch_f32(
        done, f32(params), f32(grad), f32(state), f64(bl), f32(x), f32(y), cb._ffi.NULL,
        x.shape[0], i64(perm), perm.size, 8, f64(lrs), 0, codes.optimizer_code("adam"),
        f64(h), i64(sizes), i64(acts), sizes.size - 1, codes.LOSSES.index("bce"))
    return st


def test_train_epoch_refuses_grad_over_params():
    m, sizes, acts = _net()
    n = m.params.size
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (rng.random((32, 1)) < 0.5).astype(np.float32)
    perm, lrs, h = np.arange(32), np.full(4, 0.01), codes.hyper_vector("adam", lr=0.01)
    buf = np.zeros(5 * n, np.float32)
    buf[:n] = m.params
    before = buf.copy()
    params, grad, state = buf[:n], buf[n:2 * n], buf[2 * n:]
    assert _epoch(params, params, state, x, y, perm, lrs, np.zeros(4), h, sizes,
                  acts) == EINVAL                                            # grad == params
    assert _epoch(params, grad, buf[n:4 * n], x, y, perm, lrs, np.zeros(4), h, sizes,
                  acts) == EINVAL                                            # state over grad
    assert _epoch(params, grad, state, x, y, perm, lrs, lrs, h, sizes,
                  acts) == EINVAL                                            # losses over lrs
    xp = np.zeros(32 * 4 + n, np.float32)                                    # params in x
    xp[:32 * 4] = x.ravel()
    assert _epoch(xp[32 * 4 - 1:32 * 4 - 1 + n], grad, state, xp[:32 * 4].reshape(32, 4), y,
                  perm, lrs, np.zeros(4), h, sizes, acts) == EINVAL
    assert np.array_equal(buf, before)
    bl = np.zeros(4)
    assert _epoch(params, grad, state, x, y, perm, lrs, bl, h, sizes, acts) == OK
    assert not np.array_equal(buf[:n], before[:n]) and np.isfinite(bl).all() and bl.all()


def test_mlp_forward_and_loss_grad_refuse_outputs_over_inputs():
    m, sizes, acts = _net()
    n, lib = m.params.size, cb._lib
    x = np.linspace(-1, 1, 16 * 4).astype(np.float32).reshape(16, 4)
    before = x.copy()
    # out (16, 1) over x: the rows of x are read by threads while out is written
    assert lib.fastmlp_mlp_forward_f32(f32(x), f32(m.params), f32(x), 16, i64(sizes),
                                       i64(acts), 2) == EINVAL
    assert np.array_equal(x, before)
    out = np.zeros((16, 1), np.float32)
    assert lib.fastmlp_mlp_forward_f32(f32(out), f32(m.params), f32(x), 16, i64(sizes),
                                       i64(acts), 2) == OK
    # grad overlapping params by one element, then params and grad adjacent
    buf = np.zeros(2 * n + 1, np.float32)
    buf[:n] = m.params
    y, loss = np.ones((16, 1), np.float32), cb._ffi.new("double *")
    b0 = buf.copy()
    assert lib.fastmlp_mlp_loss_grad_f32(loss, f32(buf[n - 1:]), f32(buf[:n]), f32(x), f32(y),
                                         cb._ffi.NULL, 16, i64(sizes), i64(acts), 2,
                                         0) == EINVAL
    assert np.array_equal(buf, b0)
    assert lib.fastmlp_mlp_loss_grad_f32(loss, f32(buf[n:2 * n]), f32(buf[:n]), f32(x),
                                         f32(y), cb._ffi.NULL, 16, i64(sizes), i64(acts), 2,
                                         0) == OK
    assert np.array_equal(buf[:n], m.params) and buf[n:2 * n].any()


def test_loss_and_activation_pairs():
    lib, n = cb._lib, 8
    z = np.linspace(-2, 2, 2 * n).astype(np.float32)
    before = z.copy()
    # sigmoid_pair writes (n, 2) over its own z: refused
    assert lib.fastmlp_sigmoid_pair_f32(f32(z), f32(z), n) == EINVAL
    # cross-entropy gradient over its logits, and a softmax over the next-door half
    logits = z.reshape(n, 2)
    y, sw, loss = np.zeros((n, 1), np.float32), np.ones(n, np.float32), cb._ffi.new("double *")
    assert lib.fastmlp_loss_grad_f32(loss, f32(logits), f32(logits), f32(y), f32(sw), n, 2,
                                     1) == EINVAL
    assert lib.fastmlp_activation_forward_f32(f32(z[1:]), f32(z), 2 * n - 1, 4) == EINVAL
    assert lib.fastmlp_activation_backward_f32(f32(z[:n]), f32(z[1:n + 1]), f32(z[n:]), n,
                                               4) == EINVAL
    assert np.array_equal(z, before)
    # exactly in place stays allowed (as _contract.apart's in_place pairs)
    a = z.copy()
    assert lib.fastmlp_activation_forward_f32(f32(a), f32(a), 2 * n, 4) == OK
    assert np.allclose(a, np.tanh(z), rtol=1e-6)
    assert lib.fastmlp_activation_backward_f32(f32(a), f32(a), f32(z), 2 * n, 4) == OK
    out = np.zeros(2 * n * 2, np.float32)
    assert lib.fastmlp_sigmoid_pair_f32(f32(out[:2 * n]), f32(out[2 * n:2 * n + n]), n) == OK
    # dense_forward: out may be exactly z; z over w refused
    x, w, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32), np.zeros(4, np.float32)
    zz = np.zeros((3, 4), np.float32)
    assert lib.fastmlp_dense_forward_f32(f32(zz), f32(zz), f32(x), f32(w), f32(b), 3, 2, 4,
                                         1) == OK
    assert np.all(zz == 2)
    big = np.zeros(12 + 8, np.float32)
    assert lib.fastmlp_dense_forward_f32(f32(big[:12]), f32(big[:12]), f32(x), f32(big[11:19]),
                                         f32(b), 3, 2, 4, 1) == EINVAL
    assert not big.any()


def test_batched_epoch_refuses_params_over_grads():
    m = MLP([3, 2, 1], dtype="float64", seed=0)
    n = m.params.size
    x, y = np.zeros((1, 4, 3)), np.zeros((4, 1))
    P = np.zeros((3, n))
    P[0] = m.params
    before = P.copy()
    args = (np.zeros((1, 3, n)), np.zeros((1, 1)), x, y, np.ones((1, 4)), 4,
            np.arange(4)[None], np.array([4]), np.array([4]), np.full((1, 1), 0.01),
            np.zeros(1, np.int64), np.array([0]), codes.hyper_vector("sgd", lr=0.01)[None],
            1, m.sizes_array, m.acts_array, 0)
    call = batched_c._lib.fastmlp_batched_train_epoch_f64
    assert batched_c._call_kernel(call, "double[]", np.zeros(1, np.int64), P[0:1], P[0:1],
                                  *args) == EINVAL
    assert np.array_equal(P, before)
    assert batched_c._call_kernel(call, "double[]", np.zeros(1, np.int64), P[0:1], P[1:2],
                                  *args) == OK


# ---------------------------------------------------------------------------------------
# strerror and the exported symbols
# ---------------------------------------------------------------------------------------

def _libfastmlp():
    try:
        path = fastmlp.c_library_path()
    except Exception as exc:  # an install without the C library
        pytest.skip(f"no libfastmlp: {exc}")
    return path


def test_strerror_knows_the_model_file_codes():
    lib = ctypes.CDLL(_libfastmlp())
    lib.fastmlp_strerror.restype = ctypes.c_char_p
    lib.fastmlp_model_strerror.restype = ctypes.c_char_p
    m = ctypes.c_void_p()
    st = lib.fastmlp_model_load(b"/nonexistent/model.fmlp", ctypes.byref(m))
    assert st == 16
    assert b"cannot open or read" in lib.fastmlp_strerror(st)
    for code in (16, 17, 18, 19):
        text = lib.fastmlp_strerror(code)
        assert b"unknown" not in text and text == lib.fastmlp_model_strerror(code)
    assert b"unknown fastmlp status code" in lib.fastmlp_strerror(20)
    assert cb._ffi.string(cb._lib.fastmlp_strerror(17)).startswith(b"model file:")


def header_functions(path=HEADER):
    """Names of the functions the public header declares (comments removed)."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
    return set(re.findall(r"\b(fastmlp_\w+)\s*\(", text))


def _exported(path):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm on PATH")
    res = subprocess.run([nm, "-D", "--defined-only", path], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return {ln.split()[-1] for ln in res.stdout.splitlines() if ln.strip()}


def test_library_exports_exactly_the_header_functions():
    names = header_functions()
    assert len(names) > 90 and "fastmlp_batched_train_epoch_f32" in names
    got = _exported(_libfastmlp())
    assert got == names, (f"exported, not in the header: {sorted(got - names)}; "
                          f"in the header, not exported: {sorted(names - got)}")
    # the extension: the same API (batched_c opens it by name) and no internal kernel
    ext = _exported(importlib.import_module("fastmlp._fastmlp_c").__file__)
    assert names <= ext and not [s for s in ext if s.startswith("fm_")]


@pytest.mark.parametrize("std, compiler", [("c89", "cc"), ("c99", "cc"), ("c++98", "c++")])
def test_header_export_mark_compiles_pedantically(tmp_path, std, compiler):
    cc = shutil.which(compiler)
    if cc is None:
        pytest.skip(f"no {compiler} on PATH")
    src = tmp_path / ("h.cpp" if compiler == "c++" else "h.c")
    src.write_text('#include "fastmlp.h"\n#ifndef FASTMLP_API\n#error no FASTMLP_API\n#endif\n'
                   "int main(void) { return fastmlp_strerror(0) == 0; }\n")
    res = subprocess.run([cc, f"-std={std}", "-pedantic", "-Wall", "-Werror", "-Wno-long-long",
                          "-I", os.path.dirname(HEADER), "-c", str(src), "-o",
                          str(tmp_path / "h.o")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
