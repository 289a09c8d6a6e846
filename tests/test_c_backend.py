"""The C backend's boundary: argument checks before C sees a pointer, status codes turned
into exceptions, behaviour when the extension is missing, and the C-level tests (plain,
under AddressSanitizer + UBSan, portable build), the generated vector code and the
embedding example, run through make.

Numerical agreement with the reference is tests/test_conformance.py's job (it picks up
"c" automatically)."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastmlp import backends, codes
from fastmlp.backends import c as cb
from fastmlp.backends import reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_ext = pytest.mark.skipif(not cb.AVAILABLE, reason=f"C backend unavailable: "
                               f"{cb.UNAVAILABLE_REASON}")


def _toolchain_reason():
    if shutil.which("make") is None:
        return "make not found"
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return f"no C compiler ({cc}) found"
    return None


needs_make = pytest.mark.skipif(_toolchain_reason() is not None,
                                reason=f"C toolchain unavailable: {_toolchain_reason()}")


def _make(*args, timeout=600):
    res = subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"make {' '.join(args)} failed:\n{res.stdout[-4000:]}\n" \
                                f"{res.stderr[-4000:]}"
    return res.stdout


# ---------------------------------------------------------------------------------------
# The C program level: make targets CI runs through pytest.
# ---------------------------------------------------------------------------------------

@needs_make
def test_c_unit_tests(tmp_path):
    """The C tests; where the CPU has AVX2, also the ymm-only build (an AVX2 CPU's path,
    FASTMLP_NO_AVX512), which must pass them too and train one epoch to the same bits (the
    C tests print a digest of the trained parameters)."""
    import re
    out = _make("-C", "csrc", "test", f"BUILD={tmp_path / 'default'}")
    assert " 0 failures" in out
    if not _host_has_avx2():
        return   # both builds would be the portable path
    ymm = _make("-C", "csrc", "test", f"BUILD={tmp_path / 'ymm'}",
                "CFLAGS=-DFASTMLP_NO_AVX512")
    assert " 0 failures" in ymm and "avx2 1, avx512 0" in ymm
    digests = [re.search(r"training digest ([0-9a-f]{16})", o).group(1) for o in (out, ymm)]
    assert digests[0] == digests[1]


@needs_make
def test_c_unit_tests_portable_path(tmp_path):
    """No -march=native, no OpenMP: the scalar path is checked by the same C tests."""
    out = _make("-C", "csrc", "portable", f"BUILD={tmp_path}")
    assert " 0 failures" in out and "avx2 0" in out


def _sanitizer_reason(tmp_path):
    src = tmp_path / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    res = subprocess.run([os.environ.get("CC", "cc"), "-fsanitize=address,undefined",
                          str(src), "-o", str(tmp_path / "probe")], capture_output=True,
                         text=True)
    return None if res.returncode == 0 else f"compiler lacks ASan/UBSan: {res.stderr[-300:]}"


@needs_make
def test_c_unit_tests_under_asan_ubsan(tmp_path):
    reason = _sanitizer_reason(tmp_path)
    if reason:
        pytest.skip(reason)
    out = _make("-C", "csrc", "sanitize", f"BUILD={tmp_path}")
    assert " 0 failures" in out


@needs_make
def test_c_example_trains_through_the_header_alone(tmp_path):
    out = _make("-C", "examples/c", "run", f"BUILD={tmp_path}")
    assert "training accuracy 800/800" in out and "\nOK\n" in out


def _host_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _host_has_avx2():
    flags = _host_flags()
    return " avx2" in flags and " fma" in flags


@needs_make
@pytest.mark.skipif(not _host_has_avx2(), reason="host CPU has no AVX2/FMA")
def test_generated_code_uses_ymm_fma(tmp_path):
    _make("-C", "csrc", "asm", f"BUILD={tmp_path}")
    gemm = (tmp_path / "gemm.s").read_text()
    optim = (tmp_path / "optim.s").read_text()
    import re
    assert len(re.findall(r"vfmadd\d+ps\s+[^\n]*%ymm", gemm)) >= 8   # float32 micro-kernel
    assert len(re.findall(r"vfmadd\d+pd\s+[^\n]*%ymm", gemm)) >= 8   # float64 micro-kernel
    assert re.search(r"vsqrtps\s+[^\n]*%ymm", optim)                  # vectorised Adam
    if " avx512f" in _host_flags():   # -march=native gives the zmm micro-kernel as well
        assert len(re.findall(r"vfmadd\d+ps\s+[^\n]*%zmm", gemm)) >= 8
        assert len(re.findall(r"vfmadd\d+pd\s+[^\n]*%zmm", gemm)) >= 8


# ---------------------------------------------------------------------------------------
# The extension: constants, checks, status codes.
# ---------------------------------------------------------------------------------------

@needs_ext
def test_codes_match_fastmlp_codes():
    lib = cb._lib
    for i, name in enumerate(codes.ACTIVATIONS):
        assert getattr(lib, "FASTMLP_ACT_" + name.upper()) == i
    for i, name in enumerate(codes.LOSSES):
        assert getattr(lib, "FASTMLP_LOSS_" + name.upper()) == i
    for i, name in enumerate(codes.OPTIMIZERS):
        assert getattr(lib, "FASTMLP_OPT_" + name.upper()) == i
        assert lib.fastmlp_optimizer_state_rows(i) == codes.N_STATE[name]
    assert lib.fastmlp_optimizer_state_rows(len(codes.OPTIMIZERS)) == -1


@needs_ext
def test_registered_and_auto_prefers_c():
    assert backends.get_backend("c") is cb
    assert backends.available_backends()["c"] == (True, "")
    assert backends.resolve("auto") == "c" or os.environ.get("FASTMLP_BACKEND")
    info = cb.build_info()
    assert info["available"] and info["threads"] >= 1


@needs_ext
def test_status_codes_become_exceptions_with_strerror_text():
    lib, ffi = cb._lib, cb._ffi
    assert lib.fastmlp_set_num_threads(0) == lib.FASTMLP_ESIZE
    msg = ffi.string(lib.fastmlp_strerror(lib.FASTMLP_ECODE)).decode()
    with pytest.raises(ValueError, match="unknown activation, loss or optimizer code"):
        cb.raise_status(lib.FASTMLP_ECODE, "fastmlp_x")
    assert "unknown" in msg
    with pytest.raises(MemoryError, match="out of memory"):
        cb.raise_status(lib.FASTMLP_ENOMEM, "fastmlp_x")
    with pytest.raises(cb.CBackendError, match="unknown fastmlp status"):
        cb.raise_status(99, "fastmlp_x")
    # a class index out of range straight into C: EVALUE -> ValueError with strerror's text
    logits, y = np.zeros((2, 3)), np.array([[0.0], [3.0]])
    value = ffi.new("double *")
    st = lib.fastmlp_cross_entropy_loss_grad_f64(
        value, ffi.from_buffer("double[]", np.empty_like(logits)),
        ffi.from_buffer("double[]", logits), ffi.from_buffer("double[]", y),
        ffi.from_buffer("double[]", np.ones(2)), 2, 3)
    assert st == lib.FASTMLP_EVALUE
    with pytest.raises(ValueError, match="out of range"):
        cb.raise_status(st, "fastmlp_cross_entropy_loss_grad_f64")
    # through the wrapper the shared contract names the label first
    with pytest.raises(ValueError, match=r"y must hold class indices in 0..2 .* y\[1\] = 3.0"):
        cb.cross_entropy_loss_grad(np.empty_like(logits), logits, y, np.ones(2))
    # NULL pointers straight into the C API are refused, not dereferenced
    assert lib.fastmlp_adam_update_f64(ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, 4, 1,
                                       0.1, 0.9, 0.999, 1e-8, 0, 0, 0, 0) == lib.FASTMLP_EINVAL


@needs_ext
@pytest.mark.parametrize("opt, changes", [
    ("adam", {"beta1": 1.0}), ("adamw", {"beta2": 1.5}), ("adam", {"eps": -1e-8}),
    ("sgd", {"nesterov": 1.0, "momentum": 0.0}), ("sgd", {"nesterov": 1.0, "dampening": 0.1}),
    ("sgd", {"momentum": -0.5}), ("adagrad", {"lr_decay": -1.0}),
    ("rmsprop", {"alpha": -0.1}), ("rmsprop", {"weight_decay": -1.0}),
    # torch.optim allows these, but they give NaN (eps = 0: 0/0 where every gradient was 0;
    # alpha > 1: sqrt of a negative square_avg) or lr * g / eps steps (alpha = 1)
    ("adam", {"eps": 0.0}), ("adagrad", {"eps": 0.0}), ("rmsprop", {"eps": 0.0}),
    ("rmsprop", {"alpha": 1.0}), ("rmsprop", {"alpha": 1.5}),
    ("rmsprop", {"alpha": 0.0, "centered": 1.0}),    # lr * g / eps steps, then NaN
    # flags are 0 or 1: anything else ran as on
    ("adam", {"maximize": -1.0}), ("adamw", {"amsgrad": 2.0}), ("adagrad", {"maximize": 0.5}),
    ("sgd", {"momentum": 0.9, "nesterov": 0.5}), ("rmsprop", {"centered": 0.5}),
])
def test_the_c_api_refuses_hyper_parameters_out_of_range(opt, changes):
    # straight into C, past the Python checks: EVALUE and nothing changed (beta1 = 1 gave NaN
    # parameters before)
    from fastmlp import MLP
    from fastmlp.backends import batched_c
    lib, ffi = cb._lib, cb._ffi
    h = codes.hyper_vector(opt, lr=0.01, **changes)
    p0 = np.linspace(-1, 1, 8)
    p, g, st = p0.copy(), np.ones(8), np.zeros((3, 8))
    dbl = lambda a: ffi.from_buffer("double[]", a)    # noqa: E731
    code = codes.optimizer_code(opt)
    assert lib.fastmlp_optimizer_update_f64(code, dbl(p), dbl(g), dbl(st), 8, 1,
                                            dbl(h)) == lib.FASTMLP_EVALUE
    # train_epoch (its lr from lrs) and the batched epoch check the same ranges up front
    m = MLP([3, 2, 1], dtype="float64", seed=0)
    x, y, n = np.zeros((4, 3)), np.zeros((4, 1)), m.params.size
    done, bl = ffi.new("int64_t *"), np.zeros(1)
    st = lib.fastmlp_train_epoch_f64(
        done, dbl(m.params), dbl(np.zeros(n)), dbl(np.zeros((3, n))), dbl(bl), dbl(x), dbl(y),
        ffi.NULL, 4, ffi.cast("int64_t *", ffi.from_buffer(np.arange(4))), 4, 4,
        dbl(np.full(1, 0.01)), 0, code, dbl(h), ffi.cast("int64_t *", ffi.from_buffer(
            m.sizes_array)), ffi.cast("int64_t *", ffi.from_buffer(m.acts_array)), 2, 0)
    assert st == lib.FASTMLP_EVALUE
    # two models, the bad one second: the first must not train either
    P = np.tile(m.params, (2, 1))
    st = batched_c._call_kernel(
        batched_c._lib.fastmlp_batched_train_epoch_f64, "double[]", np.zeros(2, np.int64), P,
        np.zeros_like(P), np.zeros((2, 3, n)), np.zeros((2, 1)), x[None], y + 1,
        np.ones((1, 4)), 4, np.arange(4)[None], np.array([4, 4]), np.array([4, 4]),
        np.full((2, 1), 0.01), np.zeros(2, np.int64), np.array([0, code]),
        np.stack([codes.hyper_vector("sgd", lr=0.01), h]), 2, m.sizes_array, m.acts_array, 0)
    assert st == lib.FASTMLP_EVALUE
    assert np.array_equal(p, p0) and np.array_equal(P, np.tile(m.params, (2, 1)))


@needs_ext
def test_dtype_errors_name_the_argument():
    p = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match=r"\bg\b.*float32"):
        cb.sgd_update(p, np.zeros(4, np.float64), np.zeros(4, np.float32), 1, 0.1, 0, 0, 0,
                      False, False)
    with pytest.raises(TypeError, match="p must be a float32 or float64"):
        cb.sgd_update(np.zeros(4, np.int64), np.zeros(4), None, 1, 0.1, 0, 0, 0, False, False)
    with pytest.raises(TypeError, match="z must be a NumPy array"):
        cb.activation_forward(np.zeros(3), [1.0, 2.0, 3.0], 1)
    x = np.zeros((3, 2), np.float32)   # the layer's weights fix the dtype: x is the odd one
    with pytest.raises(TypeError, match=r"x must have dtype float64 \(the dtype of w\), got "
                                        r"float32"):
        cb.dense_forward(np.zeros((3, 4), np.float32), np.zeros((3, 4), np.float32), x,
                         np.zeros((2, 4)), np.zeros(4, np.float32), 1)


@needs_ext
def test_contiguity_shape_and_writability_errors():
    z = np.zeros((4, 6))
    with pytest.raises(ValueError, match="z must be C-contiguous"):
        cb.activation_forward(np.zeros((4, 3)), z[:, ::2], 1)
    with pytest.raises(ValueError, match=r"out must have shape \(4, 6\)"):
        cb.activation_forward(np.zeros((4, 5)), z, 1)
    ro = np.zeros((4, 6))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is written by the kernel but is read-only"):
        cb.activation_forward(ro, z, 1)
    with pytest.raises(ValueError, match="unknown activation code 8"):
        cb.activation_forward(np.zeros((4, 6)), z, 8)
    params = np.zeros(10)
    with pytest.raises(ValueError, match=r"params must have shape \(9,\)"):
        cb.mlp_forward(np.zeros((2, 1)), params, np.zeros((2, 2)), [2, 2, 1], [1, 0])
    with pytest.raises(ValueError, match=r"acts must hold one activation code per layer \(2\)"):
        cb.mlp_forward(np.zeros((2, 1)), np.zeros(9), np.zeros((2, 2)), [2, 2, 1], [1])
    with pytest.raises(ValueError,
                       match="state must have shape \\(>= 3, 9\\) for optimizer 'adam'"):
        cb.optimizer_update(3, np.zeros(9), np.zeros(9), np.zeros((1, 9)), 1, np.zeros(8))
    with pytest.raises(ValueError, match="step must be an integer >= 1"):
        cb.adam_update(*(np.zeros(3) for _ in range(5)), 0, 0.1, 0.9, 0.999, 1e-8, 0, False,
                       False, False)
    with pytest.raises(ValueError, match=r"perm must hold row indices of x in \[0, 4\)"):
        cb.train_epoch(np.zeros(2), np.zeros(2), np.zeros((3, 2)), np.zeros(1),
                       np.zeros((4, 1)), np.zeros((4, 1)), np.ones(4), np.array([0, 4]), 2,
                       np.ones(1), 0, 3, np.zeros(8), [1, 1], [0], 0)
    # C checks perm's range itself; with a bad lr or l2 too, perm is still reported first,
    # as by the reference (which checks it before the others)
    for lrs, l2 in ((np.full(1, np.nan), 0.0), (np.ones(1), -1.0)):
        with pytest.raises(ValueError, match=r"perm must hold row indices of x in \[0, 4\)"):
            cb.train_epoch(np.zeros(2), np.zeros(2), np.zeros((3, 2)), np.zeros(1),
                           np.zeros((4, 1)), np.zeros((4, 1)), np.ones(4), np.array([0, 4]),
                           2, lrs, 0, 3, np.zeros(8), [1, 1], [0], 0, l2=l2)


@needs_ext
def test_buffers_are_updated_in_place_without_copies():
    rng = np.random.default_rng(0)
    state = np.zeros((3, 50), np.float32)
    p = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    p_ref, st_ref = p.copy(), state.copy()
    hyper = np.array([0.01, 0.9, 0.999, 1e-8, 0.0, 0, 0, 0])
    ptr = p.__array_interface__["data"][0]
    cb.optimizer_update(3, p, g, state, 1, hyper)          # rows of state are views
    ref.optimizer_update(3, p_ref, g, st_ref, 1, hyper)
    assert p.__array_interface__["data"][0] == ptr
    np.testing.assert_allclose(p, p_ref, rtol=1e-6)
    np.testing.assert_allclose(state, st_ref, rtol=1e-6, atol=1e-12)


@needs_ext
def test_train_epoch_stops_before_a_non_finite_update_and_is_deterministic():
    rng = np.random.default_rng(1)
    # wide enough that each batch of 128 is cut into 2 parts at 2 threads
    sizes, acts = np.array([3, 64, 32, 1]), np.array([1, 1, 0])
    n_params = 3 * 64 + 64 + 64 * 32 + 32 + 32 + 1
    x = rng.standard_normal((900, 3))
    y = (x[:, :1] > 0).astype(np.float64)
    sw = np.ones(900)
    perm = rng.permutation(900).astype(np.int64)
    p0 = 0.3 * rng.standard_normal(n_params)
    hyper = np.array([0.0, 0.9, 0.999, 1e-8, 0, 0, 0, 0])

    def run(xx, n_threads):
        cb.set_num_threads(n_threads)
        params, state = p0.copy(), np.zeros((3, n_params))
        losses = np.zeros(8)
        done = cb.train_epoch(params, np.zeros(n_params), state, losses, xx, y, sw, perm, 128,
                              np.full(8, 0.01), 0, 3, hyper, sizes, acts, 0)
        return done, params, losses

    try:
        d1, pa, _ = run(x, 2)
        d2, pb, _ = run(x, 2)
        assert d1 == d2 == 8 and np.array_equal(pa, pb)  # bit-identical at a thread count
        d3, pc, _ = run(x, 1)
        np.testing.assert_allclose(pc, pa, rtol=1e-12, atol=1e-14)
        bad = x.copy()
        bad[perm[2 * 128 + 3], 1] = np.nan                # in batch 2
        d4, pd, losses = run(bad, 2)
        assert d4 == 2 and np.isnan(losses[2]) and np.isfinite(losses[:2]).all()
        params = p0.copy()                                # == exactly two batches
        state = np.zeros((3, n_params))
        cb.train_epoch(params, np.zeros(n_params), state, np.zeros(2), x, y, sw, perm[:256],
                       128, np.full(2, 0.01), 0, 3, hyper, sizes, acts, 0)
        assert np.array_equal(pd, params)
    finally:
        cb.set_num_threads(backends.get_num_threads() or os.cpu_count() or 1)


def test_missing_extension_leaves_fastmlp_importable_and_auto_skips_c():
    """Simulate an install without a compiler: the extension module cannot be imported."""
    code = textwrap.dedent("""
        import sys
        sys.modules["fastmlp._fastmlp_c"] = None      # import of it raises ImportError
        import fastmlp
        from fastmlp import backends
        from fastmlp.backends import c
        assert c.AVAILABLE is False and "not built" in c.UNAVAILABLE_REASON, c.UNAVAILABLE_REASON
        ok, reason = backends.available_backends()["c"]
        assert not ok and "fastmlp._fastmlp_c" in reason
        assert backends.resolve("auto") != "c"
        try:
            backends.get_backend("c")
        except RuntimeError as exc:
            assert "not available" in str(exc) and "not built" in str(exc)
        else:
            raise AssertionError("get_backend('c') should fail")
        m = fastmlp.MLP([2, 3, 1])
        print("OK", backends.resolve("auto"))
    """)
    env = dict(os.environ)
    env.pop("FASTMLP_BACKEND", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("OK")


def test_cdef_is_read_from_the_header():
    from fastmlp._build_ffi import read_cdef
    cdef = read_cdef()
    assert "fastmlp_train_epoch_f32" in cdef and "fastmlp_adam_update_f64" in cdef
    assert not any(line.lstrip().startswith("#") for line in cdef.splitlines())


# ---------------------------------------------------------------------------------------
# Models beyond the C kernels' fixed tables: the reference's answer, never an error.
# ---------------------------------------------------------------------------------------

def _deep_net(n_layers, width=3, n_in=4, n_out=2):
    sizes = np.array([n_in] + [width] * (n_layers - 1) + [n_out])
    acts = np.array([4] * (n_layers - 1) + [0])   # tanh keeps a deep net's signal alive
    _, n_params = ref.layer_offsets(sizes)
    rng = np.random.default_rng(7)
    return sizes, acts, rng.standard_normal(n_params) * 0.6, rng


@needs_ext
def test_more_layers_than_c_supports_runs_on_the_reference():
    n_layers = cb._lib.FASTMLP_MAX_LAYERS + 6
    sizes, acts, params, rng = _deep_net(n_layers)
    x = rng.standard_normal((9, 4))
    y = rng.integers(0, 2, (9, 1)).astype(float)
    sw = np.ones(9)
    for mod in {backends.get_backend("c"), backends.get_backend("auto")}:
        out, want = np.empty((9, 2)), np.empty((9, 2))
        mod.mlp_forward(out, params, x, sizes, acts)
        ref.mlp_forward(want, params, x, sizes, acts)
        assert np.array_equal(out, want)
        g, gw = np.empty_like(params), np.empty_like(params)
        assert mod.mlp_loss_grad(g, params, x, y, sw, sizes, acts, 1) == \
            ref.mlp_loss_grad(gw, params, x, y, sw, sizes, acts, 1)
        assert np.array_equal(g, gw) and np.abs(g).max() > 0
        runs = []
        for fn in (mod.train_epoch, ref.train_epoch):
            p = params.copy()
            done = fn(p, np.empty_like(p), np.zeros((3, p.size)), np.zeros(3), x, y, sw,
                      np.arange(9), 4, np.full(3, 0.01), 0, 3, codes.hyper_vector("adam"),
                      sizes, acts, 1)
            runs.append((done, p))
        assert runs[0][0] == runs[1][0] == 3 and np.array_equal(runs[0][1], runs[1][1])
    # the C library itself refuses such a network with a size error, it never overruns
    c_sizes, c_acts = np.ascontiguousarray(sizes), np.ascontiguousarray(acts)
    assert cb._lib.fastmlp_mlp_forward_f64(
        cb._ffi.from_buffer("double[]", np.empty((9, 2))), cb._ffi.from_buffer(
            "double[]", params), cb._ffi.from_buffer("double[]", x), 9,
        cb._ffi.from_buffer("int64_t[]", c_sizes), cb._ffi.from_buffer("int64_t[]", c_acts),
        n_layers) == cb._lib.FASTMLP_ESIZE


@needs_ext
def test_a_batch_of_more_layers_than_c_supports_runs_on_the_reference():
    """The batched C kernel as each model's train_epoch alone: a net beyond C's tables is
    trained by the reference (the C library would refuse it with a size error)."""
    from fastmlp.backends.batched import get_batched_backend
    sizes, acts, params, rng = _deep_net(cb._lib.FASTMLP_MAX_LAYERS + 6)
    x = rng.standard_normal((9, 4))
    y = rng.integers(0, 2, (9, 1)).astype(float)
    runs = []
    for name in ("c", "numpy"):
        p = np.stack([params, params * 0.5])
        done = np.zeros(2, np.int64)
        got = get_batched_backend(name).batched_train_epoch(
            p, np.zeros_like(p), np.zeros((2, 3, p.shape[1])), np.zeros((2, 3)), done, x, y,
            np.ones((1, 9)), np.arange(9)[None], np.full(2, 9), np.full(2, 4),
            np.full((2, 3), 0.01), np.zeros(2, np.int64), np.full(2, 3),
            np.stack([codes.hyper_vector("adam")] * 2), sizes, acts, 1)
        assert got is None or got is done
        runs.append((done, p))
    assert runs[0][0].tolist() == runs[1][0].tolist() == [3, 3]
    assert np.array_equal(runs[0][1], runs[1][1]) and not np.array_equal(runs[0][1][0], params)


@needs_ext
def test_the_width_limit_sends_a_model_to_the_reference():
    """A layer wider than FASTMLP_MAX_WIDTH (2^24; a real one needs gigabytes) is routed to
    the reference; the C tests check that the library refuses it with FASTMLP_ESIZE."""
    limit = cb._lib.FASTMLP_MAX_WIDTH
    assert limit == 2 ** 24
    assert cb.net_fits_c(np.array([4, limit, 1]))
    assert not cb.net_fits_c(np.array([4, limit + 1, 1]))
    assert not cb.net_fits_c(np.array([4] * (cb._lib.FASTMLP_MAX_LAYERS + 2)))


@needs_ext
def test_the_c_api_refuses_a_next_order_overlapping_perm():
    """fastmlp_train_epoch_i32_next writes next_order on its threads while the epoch reads
    perm.  Given the same buffer (the header said "must not overlap", the C call did not
    check), it returned FASTMLP_OK with perm rewritten by the next order: indices up to
    n_next - 1, past the N rows of x, for the epoch to gather from."""
    lib, ffi = cb._lib, cb._ffi
    sizes, acts = np.array([2, 4, 1]), np.array([1, 0])
    n_p, N, n_next = 2 * 4 + 4 + 4 + 1, 8, 64
    params, grad, state = np.zeros(n_p), np.zeros(n_p), np.zeros((3, n_p))
    x, y = np.zeros((N, 2)), np.zeros((N, 1))
    rows = np.arange(n_next, dtype=np.int32) % N   # valid rows wherever perm starts
    order = rows.copy()
    hyper = np.array([0.01, 0.9, 0.999, 1e-8, 0, 0, 0, 0.0])
    f = lambda a: ffi.from_buffer("double[]", a)   # noqa: E731
    done = ffi.new("int64_t *")
    for perm_at, next_at in ((0, 0), (0, 4), (4, 0)):
        order[:] = rows
        st = lib.fastmlp_train_epoch_i32_next_f64(
            done, f(params), f(grad), f(state), f(np.zeros(4)), f(x), f(y), ffi.NULL, N,
            ffi.from_buffer("int32_t[]", order[perm_at:]), N, 2, f(np.full(4, 0.1)), 0, 3,
            f(hyper), ffi.from_buffer("int64_t[]", sizes), ffi.from_buffer("int64_t[]", acts),
            2, 0, 0.0, ffi.from_buffer("int32_t[]", order[next_at:]), n_next - next_at, 5)
        assert st == lib.FASTMLP_EINVAL, (perm_at, next_at, st)
        np.testing.assert_array_equal(order, rows)   # nothing written
    assert "overlaps" in ffi.string(lib.fastmlp_strerror(lib.FASTMLP_EINVAL)).decode()


@needs_ext
def test_next_order_overlapping_any_array_of_the_epoch_is_refused():
    """next_order is written by threads during the epoch: apart from perm was checked, but
    an out inside x or params returned FASTMLP_OK from C (x, a const input, overwritten)
    and ran through the Python wrapper."""
    lib, ffi = cb._lib, cb._ffi
    sizes, acts = np.array([2, 4, 1]), np.array([1, 0])
    n_p, N = 2 * 4 + 4 + 4 + 1, 8
    params, grad, state = np.zeros(n_p), np.zeros(n_p), np.zeros((3, n_p))
    x, y = np.arange(2.0 * N).reshape(N, 2), np.zeros((N, 1))
    perm = np.arange(N, dtype=np.int32)
    hyper = np.array([0.01, 0.9, 0.999, 1e-8, 0, 0, 0, 0.0])
    lrs, losses = np.full(4, 0.1), np.zeros(4)
    f = lambda a: ffi.from_buffer("double[]", a)   # noqa: E731
    done = ffi.new("int64_t *")
    for target in (x, params):
        before = target.copy()
        out = target.reshape(-1).view(np.int32)[:8]
        st = lib.fastmlp_train_epoch_i32_next_f64(
            done, f(params), f(grad), f(state), f(losses), f(x), f(y), ffi.NULL, N,
            ffi.from_buffer("int32_t[]", perm), N, 2, f(lrs), 0, 3, f(hyper),
            ffi.from_buffer("int64_t[]", sizes), ffi.from_buffer("int64_t[]", acts), 2, 0,
            0.0, ffi.from_buffer("int32_t[]", out), out.size, 5)
        assert st == lib.FASTMLP_EINVAL
        np.testing.assert_array_equal(target, before)
        with pytest.raises(ValueError, match="next_order's out must not overlap"):
            cb.train_epoch(params, grad, state, losses, x, y, None, perm, 2, lrs, 0, 3,
                           hyper, sizes, acts, 0, next_order=(out, 5))
        np.testing.assert_array_equal(target, before)
