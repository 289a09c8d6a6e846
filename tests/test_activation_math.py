"""The compiled backends' activations: their own exp, expm1, log1p and tanh
(csrc/activation.inc and their copies in _nb_kernels.py), which replaced a libm call per
element in the smooth activations (accuracy against long double, values at the specials),
and C and Numba agreeing bit for bit on every activation's vector loop and scalar tail."""

import numpy as np
import pytest

from fastmlp import backends
from fastmlp.codes import activation_code

COMPILED = [name for name, (ok, _) in backends.available_backends().items()
            if ok and name != "numpy"]
DTYPES = [np.float32, np.float64]


def _sweep(dt):
    """Points that reach every branch: |x| from 1e-6 to 100, the tanh branch point 0.625
    and exp's lower limit with their neighbours, a dense sweep of [-20, 20], the specials."""
    rng = np.random.default_rng(7)
    scales = [rng.standard_normal(4001) * s for s in (1e-6, 1e-3, 0.3, 1, 3, 10, 100)]
    edges = []
    for v in (0.625, 0.3125, 43.6682, 87.33654, 354.195, 708.39):
        e = dt(v)
        edges += [e, np.nextafter(e, dt(0)), np.nextafter(e, dt(np.inf))]
    edges = np.array(edges, dt)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dt).tiny,
                         np.finfo(dt).max, -np.finfo(dt).max], dt)
    return np.concatenate([*[s.astype(dt) for s in scales], edges, -edges,
                           np.linspace(-20, 20, 40001, dtype=dt), specials])


def _run(name, direction, act, z, da):
    out = np.empty_like(z)
    be = backends.get_backend(name)
    if direction == "forward":
        be.activation_forward(out, z, act)
    else:
        be.activation_backward(out, da, z, act)
    return out


def _ulp_error(got, exact, dt):
    """|got - exact| in units of the spacing of dt at exact (exact in long double)."""
    with np.errstate(over="ignore"):   # the spacing at the largest finite value is inf
        spacing = np.spacing(np.abs(exact).astype(dt)).astype(np.longdouble)
    spacing = np.maximum(spacing, np.finfo(dt).tiny)
    return np.abs(got.astype(np.longdouble) - exact) / spacing


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_smooth_activations_are_within_a_few_ulp(name, dt):
    """The bounds hold what was measured on this sweep (float32 / float64): tanh 1.5 / 1.5
    ulp; the sigmoid, exp and then a division, 2.0 / 2.2 (NumPy's exp with the same
    division: 2.9 / 1.9); ELU 1.4 / 3.2 (NumPy's expm1: 0.8); softplus 2.6 / 2.6 (NumPy's
    log1p of its exp: 2.3 / 1.3)."""
    z = _sweep(dt)
    fin = np.isfinite(z)
    zl = z[fin].astype(np.longdouble)
    with np.errstate(over="ignore"):
        exact = {"tanh": np.tanh(zl), "sigmoid": 1 / (1 + np.exp(-zl)),
                 "elu": np.where(zl > 0, zl, np.expm1(np.minimum(zl, 0))),
                 "softplus": np.logaddexp(np.longdouble(0), zl)}
    tiny = np.finfo(dt).tiny
    for act, bound in (("tanh", 2), ("sigmoid", 3), ("elu", 4), ("softplus", 3)):
        want = exact[act]
        got = _run(name, "forward", activation_code(act), z, None)[fin]
        normal = np.abs(want) >= tiny   # below it the kernels flush to zero
        err = _ulp_error(got[normal], want[normal], dt)
        k = int(np.argmax(err))
        at, value, exact_value = z[fin][normal][k], got[normal][k], want[normal][k]
        assert err.max() <= bound, (f"{act}({at!r}) = {value!r}, exact {exact_value!r}: "
                                    f"{err.max():.2f} ulp")
        assert (np.abs(got[~normal]) <= tiny).all()   # flushed, or subnormal off x86


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_smooth_activations_at_the_specials(name, dt):
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan] + [0.0] * 11, dt)  # 16: vector loops too
    tanh = _run(name, "forward", activation_code("tanh"), z, None)
    assert tanh[0] == 0 and not np.signbit(tanh[0])
    assert tanh[1] == 0 and np.signbit(tanh[1])          # odd: tanh(-0) is -0
    assert tanh[2] == 1 and tanh[3] == -1 and np.isnan(tanh[4])
    sig = _run(name, "forward", activation_code("sigmoid"), z, None)
    assert sig[0] == sig[1] == 0.5 and sig[2] == 1 and sig[3] == 0 and np.isnan(sig[4])
    gelu = _run(name, "forward", activation_code("gelu"), z, None)
    assert gelu[0] == 0 and gelu[2] == np.inf and np.isnan(gelu[4])
    elu = _run(name, "forward", activation_code("elu"), z, None)
    assert elu[0] == 0 and elu[2] == np.inf and elu[3] == -1 and np.isnan(elu[4])
    softplus = _run(name, "forward", activation_code("softplus"), z, None)
    assert softplus[0] == np.log(dt(2)) and softplus[2] == np.inf and softplus[3] == 0
    assert np.isnan(softplus[4])
    da = np.ones_like(z)
    dtanh = _run(name, "backward", activation_code("tanh"), z, da)
    assert dtanh[0] == dtanh[1] == 1 and dtanh[2] == dtanh[3] == 0 and np.isnan(dtanh[4])
    dsig = _run(name, "backward", activation_code("sigmoid"), z, da)
    assert dsig[0] == 0.25 and dsig[2] == dsig[3] == 0 and np.isnan(dsig[4])


SMOOTH = [(direction, act) for direction in ("forward", "backward")
          for act in ("elu", "tanh", "sigmoid", "softplus", "gelu")]


@pytest.mark.skipif(len(COMPILED) < 2, reason="needs two compiled backends")
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("direction, act", SMOOTH, ids=[f"{a}-{d}" for d, a in SMOOTH])
def test_compiled_smooth_activations_agree_bit_for_bit(direction, act, dt):
    """Both backends evaluate the same operations in the same order without fused
    multiply-adds, in their vector bodies and their scalar tails alike (the sweep's length
    is no multiple of a vector)."""
    z = _sweep(dt)
    da = np.random.default_rng(3).standard_normal(z.size).astype(dt)
    got = {name: _run(name, direction, activation_code(act), z, da).view(f"u{z.itemsize}")
           for name in COMPILED}
    first, *rest = COMPILED
    for name in rest:
        differ = np.flatnonzero(got[name] != got[first])
        assert differ.size == 0, f"{name} vs {first} differ at z={z[differ][:8]}"


@pytest.mark.skipif(len(COMPILED) < 2, reason="needs two compiled backends")
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("direction, act", [("backward", 1), ("backward", 2), ("forward", 1),
                                            ("forward", 2)],
                         ids=["relu-backward", "leaky_relu-backward", "relu-forward",
                              "leaky_relu-forward"])
def test_compiled_relu_kernels_agree_bit_for_bit(direction, act, dt):
    """da * f'(z), and f(z), on every pair of zero, infinite, NaN, normal and subnormal
    values (and 37 more, so that vector loops and their scalar tails both run): the
    compiled backends agree bit for bit.  In the backward pass a multiply under DAZ
    flushes a subnormal da also where f'(z) = 1 (C's scalar branch once stored that da
    unflushed).  ReLU's forward gives +0 for -0 and for a negative subnormal in both (C
    once returned z unless z < 0, passing both through)."""
    tiny = np.finfo(dt).tiny
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, tiny / 8, -tiny / 8],
                       dtype=dt)
    z, da = np.repeat(special, special.size), np.tile(special, special.size)
    rng = np.random.default_rng(0)
    z = np.concatenate([z, rng.standard_normal(37).astype(dt)])
    da = np.concatenate([da, rng.standard_normal(37).astype(dt)])
    got = {name: _run(name, direction, act, z, da).view(f"u{z.itemsize}") for name in COMPILED}
    first, *rest = COMPILED
    for name in rest:
        differ = np.flatnonzero(got[name] != got[first])
        assert differ.size == 0, (f"{name} vs {first}: z={z[differ]}, da={da[differ]}")



# (sizes, rows): C's ReLU in the hand-written tiles' epilogue (8-16), the sparse layer
# (8-16-16, 8-64-64) and after a BLAS product (5-512-512 at 2048 rows, with the static
# crossover of FASTMLP_NO_TUNE=1, as the test suite runs)
RELU_NETS = [([8, 16], 64), ([8, 16, 16], 64), ([8, 64, 64], 300), ([5, 512, 512], 2048)]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("x0", [-0.0, 0.0])
@pytest.mark.parametrize("sizes, rows", RELU_NETS, ids=lambda v: str(v))
def test_relu_of_minus_zero_is_plus_zero_in_every_forward_path(name, sizes, rows, x0):
    """np.maximum(-0, 0) is +0, and so is each compiled ReLU, in its fused paths too.
    Inputs of zero, weights 1 and biases -0 give pre-activations of -0 in the kernels that
    start a sum from the bias; with ReLU on every layer, the last one included, a ReLU that
    passed -0 through shows it in the output (C once did on the first three nets; the BLAS
    product of the fourth starts its sums from +0)."""
    from fastmlp.backends import reference
    sz, acts = np.array(sizes, np.int64), np.ones(len(sizes) - 1, np.int64)   # 1 = relu
    params = np.ones(reference.layer_offsets(sizes)[1], np.float32)
    for (_, bias), n_out in zip(reference.layer_offsets(sizes)[0], sizes[1:]):
        params[bias:bias + n_out] = -0.0
    x = np.full((rows, sizes[0]), x0, dtype=np.float32)
    want = np.empty((rows, sizes[-1]), np.float32)
    reference.mlp_forward(want, params, x, sz, acts)
    got = np.empty_like(want)
    backends.get_backend(name).mlp_forward(got, params, x, sz, acts)
    assert (want == 0).all() and not np.signbit(want).any()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
        f"{name}: {np.signbit(got).sum()} outputs of -0"


def _pair(name, z):
    out = np.empty((z.size, 2), z.dtype)
    backends.get_backend(name).sigmoid_pair(out, z)
    return out


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sigmoid_pair_is_within_a_few_ulp_and_exact_at_the_edges(name, dt):
    """predict_proba's link in the compiled backends: both columns within the sigmoid's
    bounds of long double (exp, then one division each), and at the edges: 1/2 at +-0, 0
    and 1 at +-inf and where exp(-|z|) drops below the smallest normal number (NumPy's exp
    keeps a subnormal there: the reference's probability, below 1.2e-38 in float32, is
    then the larger), NaN in both columns for NaN."""
    z = _sweep(dt)
    p = _pair(name, z)
    fin = np.isfinite(z)
    zl = z[fin].astype(np.longdouble)
    tiny = np.finfo(dt).tiny
    for col, sign in ((0, -1), (1, 1)):
        with np.errstate(over="ignore"):
            want = 1 / (1 + np.exp(-sign * zl))
        got = p[fin, col]
        normal = want >= tiny
        err = _ulp_error(got[normal], want[normal], dt)
        at = z[fin][normal][np.argmax(err)]
        assert err.max() <= 3, f"column {col}: {err.max():.2f} ulp at z={at!r}"
        assert (got[~normal] == 0).all()
    assert np.isnan(p[np.isnan(z)]).all()
    s = _pair(name, np.array([0.0, -0.0, np.inf, -np.inf, 800.0, -800.0, 88.0, -88.0], dt))
    assert s[:6].tolist() == [[0.5, 0.5], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0],
                              [1.0, 0.0]]
    # sigmoid(-88) = 6.1e-39 is below float32's smallest normal number, not float64's
    assert s[6, 1] == s[7, 0] == 1 and s[6, 0] == s[7, 1]
    assert (s[6, 0] == 0) if dt == np.float32 else (0 < s[6, 0] < 1e-38)


@pytest.mark.skipif(len(COMPILED) < 2, reason="needs two compiled backends")
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_compiled_sigmoid_pairs_agree_bit_for_bit(dt):
    """C (its vector body and scalar tail) and Numba compute the same quotients of the same
    exp: the same bits, NaN rows included."""
    z = _sweep(dt)
    u = f"u{z.itemsize}"
    first, *rest = COMPILED
    want = _pair(first, z).view(u)
    for name in rest:
        differ = np.flatnonzero((_pair(name, z).view(u) != want).any(axis=1))
        assert differ.size == 0, f"{name} vs {first} differ at z={z[differ][:8]}"
