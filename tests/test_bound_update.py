"""bound_update(opt, p, state): optimizer_update with p and state checked once.

Optimizer.step runs every update through it (fastmlp/optim.py), so it must step exactly as
optimizer_update does and refuse exactly what it refuses, whatever changes between steps:
the hyper-parameters (a new vector, or the same one changed in place), the gradient array
(a new one, or the same one refilled or reshaped), the flags of p.
"""

import copy
import pickle

import numpy as np
import pytest

from fastmlp import backends, codes, optim

BACKENDS = [n for n, (ok, _) in backends.available_backends().items() if ok]
CONFIGS = [("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
           ("adagrad", dict(lr=0.1, lr_decay=0.01)),
           ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True)),
           ("adam", dict(lr=1e-2, amsgrad=True)),
           ("adamw", dict(lr=1e-2, weight_decay=0.05))]


def _arrays(opt, dt, n=1027, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(dt)
    grads = rng.standard_normal((12, n)).astype(dt)
    return p, np.zeros((codes.N_STATE[opt], n), dt), grads


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt,hyper", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_steps_exactly_as_optimizer_update(backend, opt, hyper, dt):
    k = backends.get_backend(backend)
    p1, s1, grads = _arrays(opt, dt)
    p2, s2 = p1.copy(), s1.copy()
    code = codes.optimizer_code(opt)
    update = k.bound_update(code, p2, s2)
    h = codes.hyper_vector(opt, **hyper)
    g_buf = np.empty_like(grads[0])     # one gradient buffer refilled, as model.grad is
    for i, g in enumerate(grads):
        if i == 4:
            h = codes.hyper_vector(opt, **{**hyper, "lr": hyper["lr"] / 3})   # a new vector
        if i == 8:
            h[0] *= 5                   # the same vector changed in place
        k.optimizer_update(code, p1, g, s1, i + 1, h)
        if i % 2:
            g_buf[:] = g
            update(g_buf, i + 1, h)
        else:
            update(g.copy(), i + 1, h)
        assert np.array_equal(p1, p2) and np.array_equal(s1, s2), f"step {i + 1}"


def _refusal(fn):
    try:
        fn()
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    return None, "accepted"


def _bad_calls(opt, p, s, g, h):
    """(name, arguments of optimizer_update / update after (p, s) are bound, set-up)."""
    n = p.size
    return [
        ("grad_float64", lambda: (g.astype(np.float64), 1, h), None),
        ("grad_short", lambda: (g[:-1].copy(), 1, h), None),
        ("grad_is_p", lambda: (p, 1, h), None),
        ("grad_in_state", lambda: (s[1], 1, h), None),
        ("step_0", lambda: (g, 0, h), None),
        ("step_float", lambda: (g, 1.0, h), None),
        ("lr_negative", lambda: (g, 1, codes.hyper_vector(opt, lr=-1.0)), None),
        ("hyper_short", lambda: (g, 1, h[:-1].copy()), None),
        ("p_read_only", lambda: (g, 1, h), lambda: p.setflags(write=False)),
        ("grad_reshaped", lambda: (g, 1, h), lambda: setattr(g, "shape", (n, 1))),
        ("lr_negative_in_place", lambda: (g, 1, h), lambda: h.__setitem__(0, -1.0)),
        ("p_reshaped_in_place", lambda: (g, 1, h), lambda: setattr(p, "shape", (n, 1))),
        ("state_reshaped_in_place", lambda: (g, 1, h), lambda: setattr(s, "shape", (-1,))),
        ("grad_dtype_in_place", lambda: (g, 1, h), lambda: setattr(g, "dtype", np.int32)),
        ("hyper_strided", lambda: (g, 1, np.repeat(h, 2)[::2]), None),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(15))
def test_refuses_what_optimizer_update_refuses_and_changes_nothing(backend, case):
    """Each call after a good step: refused with optimizer_update's exception and message,
    nothing changed; or (a strided hyper vector, which optimizer_update converts) taken by
    both with the same result."""
    k = backends.get_backend(backend)
    opt = "adam"
    code = codes.optimizer_code(opt)
    got, after = [], []
    for bound in (False, True):
        p, s, grads = _arrays(opt, np.float32)
        g, h = grads[0], codes.hyper_vector(opt, lr=1e-2)
        update = k.bound_update(code, p, s)
        update(g, 1, h)              # a good step first: the bound checks have run once
        p0, s0 = p.copy(), s.copy()
        name, args, setup = _bad_calls(opt, p, s, g, h)[case]
        if setup:
            setup()
        a = args()
        got.append(_refusal(lambda: update(*a) if bound else
                            k.optimizer_update(code, p, a[0], s, a[1], a[2])))
        after.append((p.ravel().copy(), s.ravel().copy()))
        if got[-1][0] is not None:
            assert np.array_equal(after[-1][0], p0) and np.array_equal(after[-1][1],
                                                                       s0.ravel()), name
    assert got[1] == got[0], f"{name}: bound {got[1]} vs optimizer_update {got[0]}"
    if name == "hyper_strided":
        assert got[0] == (None, "accepted")
        assert all(np.array_equal(x, y) for x, y in zip(after[0], after[1]))
    else:
        assert got[0][0] is not None, f"{name}: optimizer_update accepted it"


@pytest.mark.parametrize("backend", BACKENDS)
def test_binding_refuses_what_optimizer_update_refuses(backend):
    k = backends.get_backend(backend)
    p, s, grads = _arrays("sgd", np.float32)
    code = codes.optimizer_code("sgd")
    h = codes.hyper_vector("sgd", lr=0.1)
    p.setflags(write=False)
    with pytest.raises(ValueError, match="p is written by the kernel but is read-only"):
        k.bound_update(code, p, s)
    with pytest.raises(ValueError, match="p is written by the kernel but is read-only"):
        k.optimizer_update(code, p, grads[0], s, 1, h)
    with pytest.raises(ValueError, match="state must have shape"):
        k.bound_update(code, np.zeros(5, np.float32), np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="must not overlap"):
        big = np.zeros(10, np.float32)
        k.bound_update(code, big[:5], big.reshape(2, 5))


def _reference_run(opt, hyper, p, grads, lrs):
    """Each step through the NumPy reference's optimizer_update, lr per step."""
    p = p.copy()
    s = np.zeros((codes.N_STATE[opt], p.size), p.dtype)
    for i, g in enumerate(grads):
        h = codes.hyper_vector(opt, **{**hyper, "lr": lrs[i]})
        backends.get_backend("numpy").optimizer_update(codes.optimizer_code(opt), p, g, s,
                                                      i + 1, h)
    return p, s


@pytest.mark.parametrize("opt,hyper", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_optimizer_step_follows_lr_backend_state_and_pickling(opt, hyper):
    """An Optimizer keeps its binding between steps: a changed lr, another backend per
    step, a pickled or copied optimizer and a reassigned state array are all followed."""
    p, _, grads = _arrays(opt, np.float64)
    lrs = [hyper["lr"] * (0.5 if i >= 3 else 1.0) for i in range(len(grads))]
    want_p, want_s = _reference_run(opt, hyper, p, grads, lrs)
    params = p.copy()
    o = optim.make_optimizer(opt, params, **hyper)
    for i, g in enumerate(grads):
        if i == 3:
            o.lr = lrs[3]
        if i == 5:          # pickled and copied optimizers carry on from the same state
            o = pickle.loads(pickle.dumps(o))
            params = o.params
        if i == 7:
            o = copy.deepcopy(o)
            params = o.params
        if i == 9:          # a new state array with the same values
            o.state = o.state.copy()
        o.step(g, backend=BACKENDS[i % len(BACKENDS)])
    assert o.step_count == len(grads)
    np.testing.assert_allclose(params, want_p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(o.state, want_s, rtol=1e-12, atol=1e-15)


def test_optimizer_step_refuses_a_bad_lr_set_later_with_the_kernels_message():
    p = np.ones(8, np.float32)
    o = optim.SGD(p, lr=0.1)
    o.step(np.ones(8, np.float32))
    for value, msg in ((-1.0, "lr must be >= 0, got -1.0"),
                       (float("nan"), "lr must be a finite number, got nan")):
        o.lr = value
        with pytest.raises(ValueError, match=msg):
            o.step(np.ones(8, np.float32))
        assert o.step_count == 1 and np.all(p == np.float32(0.9))
    o.lr = 0.1
    o.step(np.ones(8, np.float32))
    assert o.step_count == 2 and np.allclose(p, 0.8)


def _moved(a, values):
    """``a`` given a new buffer holding ``values`` in place (ndarray.__setstate__, as
    unpickling into an existing array does): same object, its memory elsewhere."""
    a.__setstate__(np.ascontiguousarray(values, dtype=a.dtype).__reduce__()[2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_arrays_whose_memory_moved_in_place_are_followed(backend):
    """The bound update takes no pointer from one call to the next: the C backend kept
    the grad's, the params' and the state's, and stepped into freed memory after
    __setstate__ (a segmentation fault)."""
    k = backends.get_backend(backend)
    code = codes.optimizer_code("sgd")
    h = codes.hyper_vector("sgd", lr=0.1, momentum=0.9)
    p1, s1, grads = _arrays("sgd", np.float32)
    p2, s2 = p1.copy(), s1.copy()
    g2 = grads[0].copy()
    update = k.bound_update(code, p2, s2)
    k.optimizer_update(code, p1, grads[0], s1, 1, h)
    update(g2, 1, h)
    _moved(g2, grads[1])
    _moved(p2, p2.copy())
    _moved(s2, s2.copy())
    k.optimizer_update(code, p1, grads[1], s1, 2, h)
    update(g2, 2, h)
    assert np.array_equal(p1, p2) and np.array_equal(s1, s2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hyper_vector_inside_p_or_state_is_refused(backend):
    k = backends.get_backend(backend)
    code = codes.optimizer_code("sgd")
    p, s, grads = _arrays("sgd", np.float64)
    update = k.bound_update(code, p, s)
    for h in (p[:codes.N_HYPER], s[0, 8:8 + codes.N_HYPER]):
        h[:] = codes.hyper_vector("sgd", lr=0.1)
        want = _refusal(lambda: k.optimizer_update(code, p, grads[0], s, 1, h))
        assert want[0] is ValueError and "overlap" in want[1]
        assert _refusal(lambda: update(grads[0], 1, h)) == want


def test_optimizer_keeps_no_grad_alive():
    import gc
    import weakref
    for backend in BACKENDS:
        o = optim.SGD(np.ones(1000, np.float32), lr=0.1, backend=backend)
        big = np.ones((4, 1000), np.float32)
        o.step(big[1])
        ref = weakref.ref(big)
        del big
        gc.collect()
        assert ref() is None, backend


class _WarmUp(optim.SGD):
    """A subclass whose hyper() scales lr by the step: step() must follow hyper()."""

    def hyper(self):
        named = super().hyper()
        named["lr"] = named["lr"] * (self.step_count + 1)
        return named


def test_optimizer_steps_with_what_hyper_returns():
    p = np.zeros(4, np.float64)
    o = _WarmUp(p, lr=0.25)
    for _ in range(3):
        o.step(np.ones(4))
    assert np.all(p == -(0.25 + 0.5 + 0.75))


def test_a_value_equal_to_the_last_but_refused_is_refused():
    """The hyper-parameters are checked again when a value is another object, not only
    when it compares unequal: lr = True after lr = 1 is refused as before."""
    p = np.zeros(4, np.float64)
    o = optim.SGD(p, lr=1)
    o.step(np.ones(4))
    for bad in (True, np.array(1.0)):
        o.lr = bad
        with pytest.raises(ValueError, match="lr must be a finite number"):
            o.step(np.ones(4))
    assert o.step_count == 1 and np.all(p == -1)
