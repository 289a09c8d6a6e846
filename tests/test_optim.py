"""Optimizers on small cases derived by hand, state_dict round trips, and their errors."""

import math

import numpy as np
import pytest

from fastmlp import optim


# eps must be > 0 (eps = 0 steps a never-moved coordinate by 0/0); this one vanishes next to
# the gradients below, so the hand-derived steps hold to the last bit.
TINY_EPS = 1e-300


def run(cls, grads, p0=1.0, **kw):
    p = np.array([p0], dtype=np.float64)
    opt = cls(p, **kw)
    for g in grads:
        opt.step(np.array([g]))
    return p[0], opt


def test_sgd_plain():
    p, _ = run(optim.SGD, [0.5], lr=0.1)
    assert p == pytest.approx(1 - 0.1 * 0.5)


def test_sgd_momentum_is_the_lecture_form_at_constant_lr():
    # lecture: v <- gamma v - lr g; theta <- theta + v (v0 = 0)
    grads, lr, gamma = [0.5, -0.2, 0.3, 0.1], 0.1, 0.9
    theta, v = 1.0, 0.0
    for g in grads:
        v = gamma * v - lr * g
        theta += v
    p, _ = run(optim.SGD, grads, lr=lr, momentum=gamma)
    assert p == pytest.approx(theta, rel=1e-14)


def test_sgd_nesterov_two_steps():
    # buf1 = g1; d1 = g1 + mu buf1; buf2 = mu buf1 + g2; d2 = g2 + mu buf2
    g1, g2, mu, lr = 0.5, 0.25, 0.9, 0.1
    b1 = g1
    b2 = mu * b1 + g2
    expect = 1 - lr * (g1 + mu * b1) - lr * (g2 + mu * b2)
    p, _ = run(optim.SGD, [g1, g2], lr=lr, momentum=mu, nesterov=True)
    assert p == pytest.approx(expect, rel=1e-14)


def test_sgd_weight_decay_and_maximize():
    p, _ = run(optim.SGD, [0.5], lr=0.1, weight_decay=0.2, maximize=True)
    assert p == pytest.approx(1 - 0.1 * (-0.5 + 0.2 * 1.0))


def test_adagrad_first_steps():
    # step 1: sum = g^2 -> p -= lr g / (|g| + eps) = lr sign(g)
    p, opt = run(optim.Adagrad, [0.5], lr=0.1, eps=TINY_EPS)
    assert p == pytest.approx(0.9)
    # lr_decay: second step uses lr / (1 + lr_decay)
    p, opt = run(optim.Adagrad, [0.5, 0.5], lr=0.1, lr_decay=1.0, eps=TINY_EPS)
    assert p == pytest.approx(1 - 0.1 - 0.05 * 0.5 / math.sqrt(0.5))
    assert opt.state[0][0] == pytest.approx(0.5)


def test_adagrad_rate_falls_faster_along_the_steep_direction():
    p = np.array([1.0, 1.0])
    opt = optim.Adagrad(p, lr=0.1)
    for _ in range(5):
        opt.step(np.array([10.0, 0.1]))  # steep along x, flat along y
    eff = 0.1 / (np.sqrt(opt.state[0]) + opt.eps)  # effective per-coordinate rates
    assert eff[0] < eff[1] / 50


def test_rmsprop_first_step():
    # v = (1 - alpha) g^2 -> p -= lr g / sqrt(0.01 g^2) = 10 lr sign(g)
    p, _ = run(optim.RMSprop, [0.5], lr=0.01, alpha=0.99, eps=TINY_EPS)
    assert p == pytest.approx(1 - 0.1)


def test_adam_first_step_is_lr_times_sign():
    p, _ = run(optim.Adam, [0.5], lr=0.01, eps=TINY_EPS)
    assert p == pytest.approx(0.99, rel=1e-14)
    p, _ = run(optim.Adam, [-3.0], lr=0.01, eps=TINY_EPS)
    assert p == pytest.approx(1.01, rel=1e-14)


def test_adamw_decays_weights_independently_of_gradient():
    p, _ = run(optim.AdamW, [0.0], lr=0.1, weight_decay=0.5)
    assert p == pytest.approx(1 - 0.1 * 0.5)  # g = 0: only the decoupled decay acts
    p, _ = run(optim.Adam, [0.0], lr=0.1, weight_decay=0.5, eps=TINY_EPS)
    assert p == pytest.approx(0.9)  # Adam: decay enters g, then the step is lr*sign


def test_amsgrad_keeps_the_max():
    _, opt = run(optim.Adam, [1.0, 0.0, 0.0], lr=0.01, amsgrad=True)
    v, vmax = opt.state[1][0], opt.state[2][0]
    assert vmax > v and vmax == pytest.approx(0.001)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam,
                                 optim.AdamW])
def test_state_dict_round_trip_continues_identically(cls):
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(10, 5))
    kw = {"momentum": 0.9} if cls in (optim.SGD, optim.RMSprop) else {}
    a = np.ones(5)
    opt_a = cls(a, lr=0.01, **kw)
    for g in grads[:5]:
        opt_a.step(g)
    b = a.copy()
    opt_b = cls(b, lr=0.01, **kw)
    opt_b.load_state_dict(opt_a.state_dict())
    for g in grads[5:]:
        opt_a.step(g)
        opt_b.step(g)
    assert np.array_equal(a, b)
    assert opt_b.step_count == 10


def test_load_state_dict_rejects_other_optimizer():
    opt = optim.Adam(np.ones(3))
    with pytest.raises(ValueError, match="not for a adam optimizer"):
        opt.load_state_dict(optim.SGD(np.ones(3)).state_dict())
    sd = opt.state_dict()
    sd["state"]["exp_avg"] = np.ones(4)
    with pytest.raises(ValueError, match="exp_avg.*shape"):
        opt.load_state_dict(sd)


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-1), "SGD: lr must be >= 0, got -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "SGD: nesterov needs momentum > 0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=0.9), "betas must be a pair"),
    (lambda p: optim.RMSprop(p, eps=float("nan")), "eps must be"),
    (lambda p: optim.make_optimizer("adamax", p), "unknown optimizer 'adamax'.*sgd.*adamw"),
    (lambda p: optim.Adam([1.0, 2.0]), "params must be a model's flat parameter buffer"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(np.ones(3))


NAN, INF = float("nan"), float("inf")

# (optimizer, kwargs, message, does torch.optim 2.x refuse it too?).  fastmlp refuses more
# than torch where torch's value gives NaN or garbage: eps = 0 (a coordinate whose gradients
# were all 0 steps by 0/0), RMSprop alpha >= 1 (square_avg stuck at 0 or negative),
# non-finite values (torch takes lr=inf), bools for numbers and strings for flags (torch
# takes both); SGD's dampening < 0 torch never checks.
BAD_HYPERS = [
    ("RMSprop", {"alpha": 1.5}, r"RMSprop: alpha must be in \[0, 1\), got 1.5; alpha = 1 ", False),
    ("RMSprop", {"alpha": 1.0}, r"RMSprop: alpha must be in \[0, 1\), got 1.0", False),
    ("RMSprop", {"alpha": -0.1}, r"RMSprop: alpha must be in \[0, 1\), got -0.1$", True),
    ("Adam", {"eps": 0.0}, r"Adam: eps must be > 0, got 0.0; eps = 0 makes .* = NaN", False),
    ("AdamW", {"eps": 0}, r"AdamW: eps must be > 0, got 0;", False),
    ("Adagrad", {"eps": 0.0}, r"Adagrad: eps must be > 0, got 0.0", False),
    ("RMSprop", {"eps": 0.0}, r"RMSprop: eps must be > 0, got 0.0", False),
    ("Adam", {"eps": -1e-8}, r"Adam: eps must be > 0, got -1e-08$", True),
    ("Adam", {"betas": (1.0, 0.999)}, r"Adam: betas\[0\] must be in \[0, 1\), got 1.0", True),
    ("AdamW", {"betas": (0.9, -0.1)}, r"AdamW: betas\[1\] must be in \[0, 1\), got -0.1", True),
    ("AdamW", {"betas": (0.9, NAN)}, r"AdamW: betas\[1\] must be a finite number, got nan",
     True),
    ("Adam", {"betas": 0.9}, r"Adam: betas must be a pair \(beta1, beta2\), got 0.9", True),
    ("SGD", {"lr": -0.1}, r"SGD: lr must be >= 0, got -0.1", True),
    ("SGD", {"momentum": -0.9}, r"SGD: momentum must be >= 0, got -0.9", True),
    ("SGD", {"weight_decay": -1}, r"SGD: weight_decay must be >= 0, got -1", True),
    ("SGD", {"dampening": -0.5}, r"SGD: dampening must be >= 0, got -0.5", False),
    ("SGD", {"momentum": 0.9, "dampening": 0.1, "nesterov": True},
     r"SGD: nesterov needs momentum > 0 and dampening = 0, got momentum 0.9, dampening 0.1",
     True),
    ("SGD", {"nesterov": True}, r"SGD: nesterov needs momentum > 0", True),
    ("Adagrad", {"lr_decay": -1.0}, r"Adagrad: lr_decay must be >= 0, got -1.0", True),
    ("Adagrad", {"initial_accumulator_value": -1.0},
     r"Adagrad: initial_accumulator_value must be >= 0, got -1.0", True),
    ("RMSprop", {"momentum": -0.5}, r"RMSprop: momentum must be >= 0, got -0.5", True),
    ("RMSprop", {"weight_decay": -0.5}, r"RMSprop: weight_decay must be >= 0", True),
    ("Adam", {"lr": NAN}, r"Adam: lr must be a finite number, got nan", True),
    ("Adam", {"lr": INF}, r"Adam: lr must be a finite number, got inf", False),
    ("Adam", {"weight_decay": INF}, r"Adam: weight_decay must be a finite number, got inf",
     False),
    ("Adam", {"lr": "0.01"}, r"Adam: lr must be a finite number, got '0.01'", True),
    ("SGD", {"momentum": True}, r"SGD: momentum must be a finite number, got True", False),
    ("Adam", {"amsgrad": "no"}, r"Adam: amsgrad must be True or False, got 'no'", False),
    ("RMSprop", {"centered": 2}, r"RMSprop: centered must be True or False, got 2", False),
]


@pytest.mark.parametrize("name, kwargs, match, torch_refuses", BAD_HYPERS,
                         ids=[f"{c[0]}-{c[1]}" for c in BAD_HYPERS])
def test_every_optimizer_refuses_bad_hyperparameters_by_name(name, kwargs, match,
                                                             torch_refuses):
    p = np.ones(3)
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)(p, **kwargs)
    assert np.array_equal(p, np.ones(3))
    torch = pytest.importorskip("torch")
    try:   # the torch column of the table is torch's own constructor's answer
        getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(3))], **kwargs)
        refused = False
    except (ValueError, TypeError):
        refused = True
    assert refused == torch_refuses


def _numeric_hypers(cls):
    import inspect
    sig = inspect.signature(cls.__init__)
    return [k for k, v in sig.parameters.items()
            if k not in ("self", "params", "backend", "betas")
            and not isinstance(v.default, bool)]


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
@pytest.mark.parametrize("value", [NAN, INF, -INF, "1e-3", True, None, [0.1]])
def test_every_numeric_hyperparameter_must_be_a_finite_number(name, value):
    cls = getattr(optim, name)
    keys = _numeric_hypers(cls)
    assert "lr" in keys and len(keys) >= 3
    for key in keys:
        with pytest.raises(ValueError, match=rf"^{name}: {key} must be a finite number, got "):
            cls(np.ones(2), **{key: value})


def test_fit_refuses_a_bad_optimizer_kwarg_before_training():
    import fastmlp
    m = fastmlp.MLP([2, 3, 1], seed=0)
    before = m.params.copy()
    with pytest.raises(ValueError, match=r"RMSprop: alpha must be in \[0, 1\), got 1.5"):
        fastmlp.fit(m, np.zeros((8, 2)), np.zeros(8, int), optimizer="rmsprop",
                    optimizer_kwargs={"alpha": 1.5}, epochs=1, progress=False)
    assert np.array_equal(m.params, before)


def test_step_rejects_wrong_gradient_shape():
    opt = optim.Adam(np.ones(3))
    with pytest.raises(ValueError, match=r"grad must be an array of shape \(3,\)"):
        opt.step(np.ones(4))


def test_load_state_dict_checks_everything_before_changing_anything():
    p = np.zeros(4)
    opt = optim.Adam(p, lr=1e-3)
    sd = opt.state_dict()
    for key, value, match in (("lr", -5, "lr"), ("nope", 1.0, "unknown hyper-parameters")):
        bad = {**sd, "hyper": {**sd["hyper"], key: value}}
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(bad)
        assert opt.lr == 1e-3 and opt.step_count == 0
    with pytest.raises(ValueError, match="step must be a non-negative integer"):
        opt.load_state_dict({**sd, "step": -1})


# every on/off option of each optimizer, set on (SGD's nesterov needs momentum)
FLAGS_ON = [(optim.SGD, {"momentum": 0.9, "nesterov": True, "maximize": True}),
            (optim.Adagrad, {"maximize": True}),
            (optim.RMSprop, {"momentum": 0.5, "centered": True, "maximize": True}),
            (optim.Adam, {"amsgrad": True, "maximize": True}),
            (optim.AdamW, {"amsgrad": True, "maximize": True})]


@pytest.mark.parametrize("cls, flags", FLAGS_ON, ids=[c.__name__ for c, _ in FLAGS_ON])
def test_flags_are_bools_in_and_back_out(cls, flags, tmp_path):
    """A flag is True or False, as every flag of the API (fit(standardize=1) is refused):
    1 and 0 are refused by name.  The flags set round-trip as bools, through state_dict /
    load_state_dict and through a model file, and the restored optimizer continues
    identically (the kernels read them as 1.0 in the hyper vector)."""
    import fastmlp
    from fastmlp import io as fio
    for key in ("nesterov", "maximize", "amsgrad", "centered"):
        if key in flags:
            with pytest.raises(ValueError, match=rf"^{cls.__name__}: {key} must be True or "
                                                 rf"False, got 1$"):
                cls(np.ones(3), **{**flags, key: 1})
    model = fastmlp.MLP([3, 4, 1], seed=0, dtype="float64")
    opt = cls(model.params, lr=0.01, **flags)
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(6, model.n_params))
    for g in grads[:3]:
        opt.step(g)
    hyper = opt.state_dict()["hyper"]
    assert all(hyper[k] is True for k in flags if k != "momentum")
    twin_params = model.params.copy()
    twin = cls(twin_params, lr=0.01, **{k: v for k, v in flags.items() if k == "momentum"})
    twin.load_state_dict(opt.state_dict())
    model.optimizer = opt
    loaded = fio.load(fio.save(model, tmp_path / "m.npz"))
    assert loaded.optimizer.state_dict()["hyper"] == hyper
    for g in grads[3:]:
        for o in (opt, twin, loaded.optimizer):
            o.step(g)
    np.testing.assert_array_equal(twin_params, model.params)
    np.testing.assert_array_equal(loaded.params, model.params)
