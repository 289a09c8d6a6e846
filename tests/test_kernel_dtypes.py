"""One dtype and layout rule, every kernel x every float array x every backend.

The rule (fastmlp/backends/_contract.py, "Dtypes and layout"): the model dtype of a call is
the dtype of its parameter-like array (params, w, p; z for the activations; the network
output for the losses), float32 or float64.  Every other float array must have exactly that
dtype (lrs and batch_losses: float64), and every float array must be C-contiguous; arrays
the kernel writes must be writable.  Otherwise TypeError (dtype) or ValueError (layout)
with a message naming the argument, and the SAME type and message on every backend: the
kernels never convert (NumPy and Numba used to promote or cast what C refused).

Each row of KERNELS gives a valid call (built in the model dtype) and its arrays; the tests
spoil one array at a time.  Rows, not test code, grow with the kernels.  The tail checks
that the high-level API still takes float64 data for a float32 model (it converts once,
above the kernels).
"""

import re

import numpy as np
import pytest

import fastmlp
from fastmlp import backends, codes
from fastmlp.backends.batched import available_batched_backends, get_batched_backend

BACKENDS = [n for n, (ok, _) in backends.available_backends().items() if ok]
BATCHED = [n for n, (ok, _) in available_batched_backends().items() if ok]
DTYPES = (np.float32, np.float64)
SIZES, ACTS = np.array([3, 4, 3]), np.array([1, 0])
N_PARAMS = 3 * 4 + 4 + 4 * 3 + 3


def _r():
    return np.random.default_rng(0)


def _labels(n):
    return (np.arange(n) % 3).astype(np.float64)[:, None]


# (kernel, builder(dtype) -> kwargs, anchor: the array that fixes the model dtype,
#  arrays of a fixed dtype (float64 whatever the model's))
KERNELS = [
    ("activation_forward", lambda dt: dict(out=np.empty((4, 3), dt),
                                           z=_r().standard_normal((4, 3)).astype(dt), act=1),
     "z", ()),
    ("sigmoid_pair", lambda dt: dict(out=np.empty((5, 2), dt),
                                     z=_r().standard_normal(5).astype(dt)), "z", ()),
    ("activation_backward", lambda dt: dict(dz=np.empty((4, 3), dt), da=np.ones((4, 3), dt),
                                            z=_r().standard_normal((4, 3)).astype(dt), act=4),
     "z", ()),
    ("dense_forward", lambda dt: dict(out=np.empty((4, 2), dt), z=np.empty((4, 2), dt),
                                      x=_r().standard_normal((4, 3)).astype(dt),
                                      w=_r().standard_normal((3, 2)).astype(dt),
                                      b=np.zeros(2, dt), act=1), "w", ()),
    ("dense_backward", lambda dt: dict(dx=np.empty((4, 3), dt), dw=np.empty((3, 2), dt),
                                       db=np.empty(2, dt), dout=np.ones((4, 2), dt),
                                       x=np.ones((4, 3), dt), w=np.ones((3, 2), dt),
                                       z=np.ones((4, 2), dt), act=1), "w", ()),
    ("loss_grad", lambda dt: dict(dout=np.empty((4, 3), dt),
                                  out=_r().standard_normal((4, 3)).astype(dt),
                                  y=_labels(4).astype(dt), sw=np.ones(4, dt), loss=1),
     "out", ()),
    ("mse_loss_grad", lambda dt: dict(dout=np.empty((4, 2), dt),
                                      out=_r().standard_normal((4, 2)).astype(dt),
                                      y=np.zeros((4, 2), dt), sw=np.ones(4, dt)), "out", ()),
    ("sgd_update", lambda dt: dict(p=np.ones(5, dt), g=np.ones(5, dt), buf=np.zeros(5, dt),
                                   step=1, lr=0.1, momentum=0.9, dampening=0.0,
                                   weight_decay=0.0, nesterov=False, maximize=False), "p", ()),
    ("adagrad_update", lambda dt: dict(p=np.ones(5, dt), g=np.ones(5, dt),
                                       state_sum=np.zeros(5, dt), step=1, lr=0.1,
                                       lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                                       maximize=False), "p", ()),
    ("rmsprop_update", lambda dt: dict(p=np.ones(5, dt), g=np.ones(5, dt),
                                       square_avg=np.zeros(5, dt), grad_avg=np.zeros(5, dt),
                                       momentum_buffer=np.zeros(5, dt), step=1, lr=1e-2,
                                       alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.5,
                                       centered=True, maximize=False), "p", ()),
    ("adam_update", lambda dt: dict(p=np.ones(5, dt), g=np.ones(5, dt), m=np.zeros(5, dt),
                                    v=np.zeros(5, dt), vmax=np.zeros(5, dt), step=1, lr=1e-3,
                                    beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                    amsgrad=True, maximize=False, decoupled=False), "p", ()),
    ("optimizer_update", lambda dt: dict(opt=codes.optimizer_code("adam"), p=np.ones(5, dt),
                                         g=np.ones(5, dt), state=np.zeros((3, 5), dt), step=1,
                                         hyper=codes.hyper_vector("adam")), "p", ()),
    ("mlp_forward", lambda dt: dict(out=np.empty((6, 3), dt),
                                    params=(_r().standard_normal(N_PARAMS) * 0.3).astype(dt),
                                    x=_r().standard_normal((6, 3)).astype(dt),
                                    sizes=SIZES.copy(), acts=ACTS.copy()), "params", ()),
    ("mlp_loss_grad", lambda dt: dict(grad=np.empty(N_PARAMS, dt),
                                      params=(_r().standard_normal(N_PARAMS) * .3).astype(dt),
                                      x=_r().standard_normal((6, 3)).astype(dt),
                                      y=_labels(6).astype(dt), sw=np.ones(6, dt),
                                      sizes=SIZES.copy(), acts=ACTS.copy(), loss=1),
     "params", ()),
    ("train_epoch", lambda dt: dict(params=(_r().standard_normal(N_PARAMS) * .3).astype(dt),
                                    grad=np.empty(N_PARAMS, dt),
                                    state=np.zeros((3, N_PARAMS), dt),
                                    batch_losses=np.zeros(3),
                                    x=_r().standard_normal((6, 3)).astype(dt),
                                    y=_labels(6).astype(dt), sw=np.ones(6, dt),
                                    perm=np.arange(6), batch_size=2, lrs=np.full(3, 0.01),
                                    step0=0, opt=codes.optimizer_code("adam"),
                                    hyper=codes.hyper_vector("adam"), sizes=SIZES.copy(),
                                    acts=ACTS.copy(), loss=1),
     "params", ("batch_losses", "lrs")),
]
# what each kernel writes (the rest it only reads)
WRITES = {"activation_forward": {"out"}, "sigmoid_pair": {"out"},
          "activation_backward": {"dz"}, "dense_forward": {"out", "z"},
          "dense_backward": {"dx", "dw", "db"}, "loss_grad": {"dout"},
          "mse_loss_grad": {"dout"}, "sgd_update": {"p", "buf"},
          "adagrad_update": {"p", "state_sum"},
          "rmsprop_update": {"p", "square_avg", "grad_avg", "momentum_buffer"},
          "adam_update": {"p", "m", "v", "vmax"}, "optimizer_update": {"p", "state"},
          "mlp_forward": {"out"}, "mlp_loss_grad": {"grad"},
          "train_epoch": {"params", "grad", "state", "batch_losses"}}
_NOT_FLOATS = ("sizes", "acts", "perm", "hyper")   # integer arrays; hyper: 8 converted values


def _floats(kwargs):
    return [k for k, v in kwargs.items() if isinstance(v, np.ndarray) and k not in _NOT_FLOATS]


def _other(dt):
    return np.float64 if np.dtype(dt) == np.float32 else np.float32


def _noncontig(a):
    """a's values in a view with every second element of its last axis (not C-contiguous)."""
    w = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)[..., ::2]
    w[...] = a
    assert not w.flags.c_contiguous
    return w


def _call(module, kernel, args):
    """(exception type, message), or (None, "accepted"); a refused call changes nothing."""
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    try:
        getattr(module, kernel)(**args)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        for k, v in before.items():
            assert np.array_equal(args[k], v, equal_nan=True), f"a refused call modified {k}"
        return type(exc), str(exc)
    return None, "accepted"


def _everywhere(kernel, build, dt, change, names=BACKENDS, get=backends.get_backend):
    got = {}
    for b in names:
        args = build(dt)
        change(args)
        got[b] = _call(get(b), kernel, args)
    return got


def _same(got, exc, pattern):
    for b, (typ, msg) in got.items():
        assert typ is exc, f"{b}: expected {exc.__name__}, got {typ} {msg!r}"
        assert re.search(pattern, msg), f"{b}: message {msg!r} does not match {pattern!r}"
    assert len({m for _, m in got.values()}) == 1, f"messages differ: {got}"


def _cases(what):
    out = []
    for kernel, build, anchor, fixed in KERNELS:
        for name in _floats(build(np.float32)):
            if what == "written" and name not in WRITES[kernel]:
                continue
            out.append(pytest.param(kernel, build, anchor, fixed, name,
                                    id=f"{kernel}-{name}"))
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kernel,build,anchor,fixed,name", _cases("all"))
def test_another_float_dtype_is_refused_alike_naming_the_argument(kernel, build, anchor,
                                                                  fixed, name, dtype):
    """float64 x with float32 params (and the reverse), for every float array: TypeError
    naming it, the dtype expected and the one given.  Changing the anchor itself makes
    every other array the odd one: the first of them checked is named, alike everywhere."""
    given = _other(dtype) if name not in fixed else np.float32

    def change(a):
        a[name] = a[name].astype(given)
    got = _everywhere(kernel, build, dtype, change)
    if name == anchor:
        _same(got, TypeError, rf"\w+ must have dtype {np.dtype(given).name} \(the dtype of "
                              rf"{anchor}\), got {np.dtype(dtype).name}")
    else:
        want = "float64" if name in fixed else np.dtype(dtype).name
        of = "" if name in fixed else rf" \(the dtype of {anchor}\)"
        _same(got, TypeError, rf"^{name} must have dtype {want}{of}, got "
                              rf"{np.dtype(given).name}$")


@pytest.mark.parametrize("kernel,build,anchor,fixed,name", [
    c for c in _cases("all") if c.values[2] == c.values[4]])
def test_a_model_dtype_other_than_float32_or_float64_is_refused_alike(kernel, build, anchor,
                                                                      fixed, name):
    def change(a):
        a[name] = a[name].astype(np.int64)
    _same(_everywhere(kernel, build, np.float32, change), TypeError,
          rf"^{anchor} must be a float32 or float64 array, got dtype int64$")


@pytest.mark.parametrize("kernel", ["loss_grad", "mlp_loss_grad", "train_epoch"])
def test_integer_class_labels_are_refused_alike(kernel):
    """Class indices travel in the model dtype (what the C kernels read)."""
    build = {k: b for k, b, *_ in KERNELS}[kernel]

    def change(a):
        a["y"] = a["y"].astype(np.int64)
    _same(_everywhere(kernel, build, np.float32, change), TypeError,
          r"^y must have dtype float32 \(the dtype of \w+\), got int64$")


@pytest.mark.parametrize("kernel,build,anchor,fixed,name", _cases("all"))
def test_a_non_contiguous_array_is_refused_alike(kernel, build, anchor, fixed, name):
    def change(a):
        a[name] = _noncontig(a[name])
    _same(_everywhere(kernel, build, np.float32, change), ValueError,
          rf"^{name} must be C-contiguous \(np.ascontiguousarray\), got strides")


@pytest.mark.parametrize("kernel,build,anchor,fixed,name", _cases("written"))
def test_a_read_only_output_is_refused_alike(kernel, build, anchor, fixed, name):
    def change(a):
        a[name].flags.writeable = False
    _same(_everywhere(kernel, build, np.float32, change), ValueError,
          rf"^{name} is written by the kernel but is read-only$")


def test_a_list_for_an_array_is_refused_alike():
    build = {k: b for k, b, *_ in KERNELS}["mlp_forward"]

    def change(a):
        a["x"] = a["x"].tolist()
    _same(_everywhere("mlp_forward", build, np.float64, change), TypeError,
          r"^x must be a NumPy array of dtype float64, got list$")


@pytest.mark.parametrize("kernel,build", [(k, b) for k, b, *_ in KERNELS])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_the_valid_calls_are_accepted_everywhere(kernel, build, dtype):
    got = _everywhere(kernel, build, dtype, lambda a: None)
    assert all(r == (None, "accepted") for r in got.values()), got


# ---------------------------------------------------------------------------------------
# Batched kernels: the same rule through the same check.
# ---------------------------------------------------------------------------------------

B_PARAMS = 4 * 4 + 5 * 1   # sizes [3, 4, 1]


def batched_epoch_args(dt):
    p = np.zeros((2, B_PARAMS), dt)
    return dict(params=p, grads=np.zeros_like(p), states=np.zeros((2, 3, B_PARAMS), dt),
                batch_losses=np.zeros((2, 1)), done=np.zeros(2, np.int64),
                x=np.zeros((10, 3), dt), y=np.zeros((10, 1), dt), sw=np.ones((1, 10), dt),
                perm=np.zeros((1, 10), np.int64), n_rows=np.full(2, 10),
                batch_size=np.full(2, 10), lrs=np.zeros((2, 1)),
                step0=np.zeros(2, np.int64), opts=np.zeros(2, np.int64),
                hypers=np.zeros((2, 8)), sizes=np.array([3, 4, 1]), acts=np.array([1, 0]),
                loss=0)


def batched_forward_args(dt):
    return dict(out=np.empty((2, 5, 1), dt), params=np.zeros((2, B_PARAMS), dt),
                x=np.ones((5, 3), dt), sizes=np.array([3, 4, 1]), acts=np.array([1, 0]))


BATCHED_KERNELS = [("batched_train_epoch", batched_epoch_args, ("batch_losses", "lrs")),
                   ("batched_forward", batched_forward_args, ())]
_BATCHED_INTS = ("done", "perm", "n_rows", "batch_size", "step0", "opts", "hypers", "sizes",
                 "acts")


def _batched_cases():
    return [pytest.param(k, b, f, n, id=f"{k}-{n}") for k, b, f in BATCHED_KERNELS
            for n, v in b(np.float32).items()
            if isinstance(v, np.ndarray) and n not in _BATCHED_INTS and n != "params"]


@pytest.mark.parametrize("kernel,build,fixed,name", _batched_cases())
def test_batched_kernels_refuse_another_dtype_and_a_layout_alike(kernel, build, fixed, name):
    given = np.float32 if name in fixed else np.float64
    want = "float64" if name in fixed else "float32"
    of = "" if name in fixed else r" \(the dtype of params\)"

    def dtype(a):
        a[name] = a[name].astype(given)

    def layout(a):
        a[name] = _noncontig(a[name])
    kw = dict(names=BATCHED, get=get_batched_backend)
    _same(_everywhere(kernel, build, np.float32, dtype, **kw), TypeError,
          rf"^{name} must have dtype {want}{of}, got {np.dtype(given).name}$")
    _same(_everywhere(kernel, build, np.float32, layout, **kw), ValueError,
          rf"^{name} must be C-contiguous")


def test_batched_integer_arguments_refuse_floats_alike():
    def change(a):
        a["perm"] = a["perm"].astype(np.float64)
    _same(_everywhere("batched_train_epoch", batched_epoch_args, np.float32, change,
                      names=BATCHED, get=get_batched_backend), TypeError,
          r"^perm must be an integer array, got float64 with shape \(1, 10\)$")


def _zero_width(a):
    """sizes [3, 0, 1] with the arrays it implies (one parameter per model)."""
    a.update(sizes=np.array([3, 0, 1]), params=a["params"][:, :1].copy(),
             grads=a["grads"][:, :1].copy(), states=a["states"][:, :, :1].copy())


def _label(v):
    def change(a):
        a["loss"] = 1
        a["y"][3, 0] = v
    return change


@pytest.mark.parametrize("change,exc,pattern", [
    (lambda a: a.update(sizes=a["sizes"].astype(np.float64)), TypeError,
     r"^sizes must be a 1-D integer array, got float64 with shape \(3,\)$"),
    (_zero_width, ValueError,
     r"^sizes must hold at least two positive layer widths, got \[3, 0, 1\]$"),
    (lambda a: a.update(acts=np.array([1, 0, 0])), ValueError,
     r"^acts must hold one activation code per layer \(2\), got 3$"),
    (lambda a: a.update(acts=np.array([1, codes.N_ACTIVATIONS])), ValueError,
     rf"^acts must hold activation codes in \[0, {codes.N_ACTIVATIONS}\), got "
     rf"\[1, {codes.N_ACTIVATIONS}\]$"),
    (lambda a: a.update(loss=0.5), ValueError,
     r"^unknown loss code 0.5; expected an integer in \[0, 3\)$"),
    (_label(0.5), ValueError,
     r"^y must hold class indices in 0..0 for cross_entropy, got y\[3\] = 0.5$"),
    (_label(np.nan), ValueError,
     r"^y must hold class indices in 0..0 for cross_entropy, got y\[3\] = nan$"),
], ids=["float-sizes", "zero-width", "acts-count", "acts-code", "loss-code", "label-0.5",
        "label-nan"])
def test_batched_epochs_refuse_a_bad_net_loss_or_label_alike(change, exc, pattern):
    """What the batched C wrapper once checked its own way (or truncated: float sizes, loss
    0.5, label 0.5 were taken) is refused by the same checks as everywhere, naming the
    argument, before any model trains."""
    _same(_everywhere("batched_train_epoch", batched_epoch_args, np.float32, change,
                      names=BATCHED, get=get_batched_backend), exc, pattern)


@pytest.mark.parametrize("kernel,build", [(k, b) for k, b, _ in BATCHED_KERNELS])
def test_batched_valid_calls_are_accepted_everywhere(kernel, build):
    got = _everywhere(kernel, build, np.float32, lambda a: None, names=BATCHED,
                      get=get_batched_backend)
    assert all(r == (None, "accepted") for r in got.values()), got


# ---------------------------------------------------------------------------------------
# Above the kernels: float64 user data for a float32 model is converted once, by the API.
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_the_api_takes_float64_data_for_a_float32_model(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))               # float64, as users have it
    y = (X[:, 0] > 0).astype(np.int64)
    m = fastmlp.MLP([3, 8, 1], dtype="float32", backend=backend)
    fastmlp.fit(m, X, y, epochs=2, batch_size=16, progress=False, validation=0.25)
    assert m.params.dtype == np.float32
    p = m.predict_proba(X)
    assert p.shape == (64, 2) and np.isfinite(p).all()
    assert m.predict(np.asfortranarray(X)).shape == (64,)   # any layout, converted above
    assert m.forward(X).dtype == np.float32
    value, grad = m.loss_and_grad(X, y.astype(np.float64), sample_weight=np.ones(64))
    assert np.isfinite(value) and grad.dtype == np.float32


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_sklearn_wrapper_and_batch_api_take_float64_data_for_a_float32_model():
    from fastmlp.sklearn import MLPClassifier
    from fastmlp.training.batch import ModelBatch, fit_batch
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, dtype="float32",
                        random_state=0).fit(X, y)
    assert clf.predict(X).shape == (64,)
    base = fastmlp.MLP([3, 8, 1], dtype="float32")
    batch = ModelBatch(base, 2)
    fit_batch(batch, X, y, epochs=2, batch_size=16, progress=False)
    assert batch.params.dtype == np.float32 and np.isfinite(batch.params).all()
