"""An optimizer-benchmarking user's findings: arguments that were silently dropped (kwargs with
an Optimizer object, an lr beside a schedule object), RMSprop(alpha=0, centered=True) taking
lr * g / eps steps, schedules refusing NumPy numbers, hyper-parameters set after construction
checked by other rules than the constructor's, and optimizer names in torch's case."""

import numpy as np
import pytest

import fastmlp
from fastmlp import backends, codes, optim, schedules
from fastmlp.cli.args import build_parser
from fastmlp.training import ModelBatch, cross_validate


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.float64)


def _fit(model, **kw):
    X, y = _data()
    kw = {"epochs": 1, "batch_size": 32, "validation": None, "progress": False, **kw}
    return fastmlp.fit(model, X, y, **kw)


# 1. keyword arguments beside an existing Optimizer object ------------------------------

def test_fit_refuses_optimizer_kwargs_beside_an_optimizer_object():
    m = fastmlp.MLP([3, 4, 1], seed=0)
    o = optim.SGD(m.params, lr=0.1)
    p0 = m.params.copy()
    with pytest.raises(ValueError, match=r"existing SGD object, so momentum=0.9, "
                                         r"nesterov=True \(optimizer_kwargs\) would be ignored; "
                                         r"set them on the object"):
        _fit(m, optimizer=o, optimizer_kwargs={"momentum": 0.9, "nesterov": True})
    assert (o.momentum, o.nesterov, o.step_count) == (0.0, False, 0)
    assert np.array_equal(m.params, p0)


def test_make_optimizer_refuses_kwargs_beside_an_optimizer_object():
    p = np.zeros(4)
    o = optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match=r"existing SGD object, so lr=5.0 .* would be ignored"):
        optim.make_optimizer(o, p, lr=5.0)
    assert o.lr == 0.1
    assert optim.make_optimizer(o, p) is o     # without kwargs: the object as it is


# 2. an explicit lr beside a schedule object; the optimizer's lr after fit ---------------

@pytest.mark.parametrize("schedule", [
    schedules.Cosine(0.5, T=6), schedules.Warmup(schedules.Step(0.5, step_size=2), 2)])
def test_fit_refuses_an_lr_that_disagrees_with_the_schedule_objects(schedule):
    m = fastmlp.MLP([3, 4, 1], seed=0)
    p0 = m.params.copy()
    with pytest.raises(ValueError, match=r"lr=0.01 disagrees with the schedule's own lr 0.5 "
                                         r"\(.*\): a schedule object sets the learning rate"):
        _fit(m, lr=0.01, schedule=schedule)
    with pytest.raises(ValueError, match=r"lr=0.01 disagrees with the schedule's own lr 0.5"):
        _fit(m, optimizer_kwargs={"lr": 0.01}, schedule=schedule)
    assert np.array_equal(m.params, p0)
    # the same rate given twice, or given once, is fine
    assert _fit(m, lr=0.5, schedule=schedule, epochs=2).lr == [schedule(t) for t in range(6)]


def test_batched_runs_refuse_an_lr_that_disagrees_with_the_schedule_objects():
    base = fastmlp.MLP([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match=r"lr=0.01 disagrees with the schedule's own lr 0.5"):
        ModelBatch(base, n_models=2, optimizer_kwargs={"lr": 0.01},
                   schedule=schedules.Cosine(0.5, T=24))
    X, y = _data()
    with pytest.raises(ValueError, match=r"lr=0.01 disagrees with the schedule's own lr 0.5"):
        cross_validate(lambda: fastmlp.MLP([3, 4, 1], seed=0), X, y, k=2, epochs=1,
                       lr=0.01, schedule=schedules.Cosine(0.5, T=24))


def test_the_optimizers_lr_is_the_base_rate_and_a_continued_fit_schedules_from_it():
    m = fastmlp.MLP([3, 4, 1], seed=0)
    hist = _fit(m, epochs=2, schedule=schedules.Cosine(0.5, T=6, final_lr=0.01))
    assert len(hist.lr) == 6 and hist.lr[0] == 0.5
    assert m.optimizer.lr == 0.5      # the schedule object's own: the rate the run started at
    # a spec string starts from lr; continuing the same optimizer carries on from step 3,
    # from the same base (once decayed, not twice)
    m = fastmlp.MLP([3, 4, 1], seed=0)
    opt = optim.make_optimizer("adam", m.params, lr=0.2)
    first = _fit(m, optimizer=opt, schedule="exponential:gamma=0.5")
    again = _fit(m, optimizer=opt, schedule="exponential:gamma=0.5")
    assert opt.lr == 0.2 and first.lr == [0.2, 0.1, 0.05]
    assert again.lr == [0.025, 0.0125, 0.00625]


def test_a_refused_schedule_lr_leaves_the_optimizer_as_it_was():
    m = fastmlp.MLP([3, 4, 1], seed=0)
    opt = optim.make_optimizer("adam", m.params, lr=0.5)
    with pytest.raises(ValueError, match="disagrees with the schedule's own lr"):
        _fit(m, optimizer=opt, lr=0.01, schedule=schedules.Cosine(0.5, T=8))
    assert opt.lr == 0.5 and opt.step_count == 0


def test_a_schedule_lr_equal_up_to_float32_rounding_is_the_same_rate():
    m = fastmlp.MLP([3, 4, 1], seed=0)
    hist = _fit(m, lr=0.1, schedule=schedules.Cosine(np.float32(0.1), T=3))
    assert hist.lr[0] == float(np.float32(0.1))


# 3. RMSprop(alpha=0, centered=True) ----------------------------------------------------

_CENTERED = r"centered needs alpha > 0, got alpha 0.0; with alpha = 0 .* lr \* g / eps"


def test_rmsprop_refuses_alpha_0_with_centered():
    with pytest.raises(ValueError, match="RMSprop: " + _CENTERED):
        optim.RMSprop(np.zeros(3), lr=0.01, alpha=0, centered=True)
    optim.RMSprop(np.zeros(3), lr=0.01, alpha=0)              # not centered: fine
    optim.RMSprop(np.zeros(3), lr=0.01, alpha=0.5, centered=True)


def _backend_names():
    return [n for n, (ok, _) in backends.available_backends().items() if ok]


@pytest.mark.parametrize("backend", _backend_names())
def test_every_kernel_refuses_rmsprop_alpha_0_with_centered(backend):
    k = backends.get_backend(backend)
    p0 = np.linspace(-1, 1, 8)
    p, st = p0.copy(), np.zeros((3, 8))
    h = codes.hyper_vector("rmsprop", lr=0.01, alpha=0.0, centered=True)
    with pytest.raises(ValueError, match=_CENTERED):
        k.optimizer_update(codes.optimizer_code("rmsprop"), p, np.full(8, 3.0), st, 1, h)
    assert np.array_equal(p, p0) and not st.any()


def test_the_c_api_refuses_rmsprop_alpha_0_with_centered():
    cb = pytest.importorskip("fastmlp.backends.c")
    if not getattr(cb, "AVAILABLE", False):
        pytest.skip("the C extension is not built")
    lib, ffi = cb._lib, cb._ffi
    dbl = lambda a: ffi.from_buffer("double[]", a)    # noqa: E731
    p0 = np.linspace(-1, 1, 8)
    p, st = p0.copy(), np.zeros((3, 8))
    code = codes.optimizer_code("rmsprop")
    bad = codes.hyper_vector("rmsprop", lr=0.01, alpha=0.0, centered=True)
    assert lib.fastmlp_optimizer_update_f64(code, dbl(p), dbl(np.full(8, 3.0)), dbl(st), 8, 1,
                                            dbl(bad)) == lib.FASTMLP_EVALUE
    assert np.array_equal(p, p0)
    ok = codes.hyper_vector("rmsprop", lr=0.01, alpha=0.0)     # not centered: a step
    assert lib.fastmlp_optimizer_update_f64(code, dbl(p), dbl(np.full(8, 3.0)), dbl(st), 8, 1,
                                            dbl(ok)) == lib.FASTMLP_OK


# 4. schedules take NumPy numbers ------------------------------------------------------

def test_schedules_take_numpy_integers_and_floats():
    c = schedules.Cosine(np.float32(0.5), T=np.int64(100))
    assert c.T == 100 and type(c.T) is int and c.lr == float(np.float32(0.5))
    assert schedules.Step(0.1, step_size=np.int64(10))(10) == pytest.approx(0.01)
    assert schedules.LinearDecay(np.float64(0.1), np.float32(0.0), np.int32(4))(4) == 0.0
    w = schedules.Warmup(schedules.Constant(0.1), np.int64(10))
    assert w.warmup_steps == 10 and w(0) == pytest.approx(0.01)
    assert schedules.Exponential(0.1, np.float32(0.5))(1) == pytest.approx(0.05)
    # still not bools, nor a float where steps are counted
    for make in (lambda: schedules.Cosine(0.1, T=True), lambda: schedules.Step(0.1, 2.0),
                 lambda: schedules.Constant(np.bool_(True))):
        with pytest.raises(ValueError, match=r"must be a positive"):
            make()


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.Cosine(0.1, T=np.int64(0)), r"T must be a positive integer number of "
                                                   r"steps, got 0$"),
    (lambda: schedules.Cosine(0.1, T=np.bool_(True)), r"T must be .* got True"),
    (lambda: schedules.Constant(np.float32(-0.1)), r"lr must be a positive number, got -0.1"),
])
def test_schedules_name_a_refused_numpy_number_as_written(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# 5. hyper-parameters changed after construction -----------------------------------------

@pytest.mark.parametrize("make, change, match", [
    (lambda p: optim.Adam(p), {"betas": (0.9, 1.0)}, r"^Adam: betas\[1\] must be in \[0, 1\), "
                                                     r"got 1.0"),
    (lambda p: optim.AdamW(p), {"betas": 0.9}, r"^AdamW: betas must be a pair"),
    (lambda p: optim.Adam(p), {"amsgrad": 1}, r"^Adam: amsgrad must be True or False, got 1$"),
    (lambda p: optim.SGD(p, lr=0.1), {"nesterov": True}, r"^SGD: nesterov needs momentum > 0"),
    (lambda p: optim.RMSprop(p), {"centered": True, "alpha": 0}, "^RMSprop: " + _CENTERED),
    (lambda p: optim.Adagrad(p), {"eps": 0.0}, r"^Adagrad: eps must be > 0, got 0.0"),
])
def test_a_step_checks_changed_hyper_parameters_as_the_constructor(make, change, match):
    p = np.linspace(-1, 1, 6)
    o = make(p)
    o.step(np.ones(6))
    p1, st1 = p.copy(), o.state.copy()
    for k, v in change.items():
        setattr(o, k, v)
    with pytest.raises(ValueError, match=match):
        o.step(np.ones(6))
    assert o.step_count == 1 and np.array_equal(p, p1) and np.array_equal(o.state, st1)
    with pytest.raises(ValueError, match=match):     # the constructor says the same
        type(o)(np.zeros(6), **{**{k: getattr(o, k) for k in o._init_names}, **change})


def test_a_value_set_after_construction_is_kept_as_the_constructor_keeps_it():
    p = np.zeros(4)
    o = optim.Adam(p, lr=1e-3)
    betas = [0.8, 0.9]
    o.betas, o.lr = betas, np.float32(0.5)
    o.step(np.ones(4))
    assert o.betas == (0.8, 0.9) and type(o.lr) is float
    betas[1] = 1.5          # the caller's list changes later: the optimizer does not
    o.step(np.ones(4))
    assert o.betas == (0.8, 0.9) and o.step_count == 2


# 6. optimizer names in any case ----------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("Adam", optim.Adam), ("AdamW", optim.AdamW),
                                       ("RMSprop", optim.RMSprop), ("SGD", optim.SGD),
                                       ("Adagrad", optim.Adagrad), ("Nesterov", optim.SGD)])
def test_make_optimizer_takes_torchs_class_names(name, cls):
    o = optim.make_optimizer(name, np.zeros(3))
    assert type(o) is cls
    if name != "Nesterov":     # a shorthand of fastmlp.optim's, not a kernel's name
        assert codes.optimizer_code(name) == codes.optimizer_code(o.name)


@pytest.mark.filterwarnings("ignore:the chosen lr")
def test_fit_and_lr_sweep_take_an_optimizer_name_in_any_case():
    m = fastmlp.MLP([3, 4, 1], seed=0)
    _fit(m, optimizer="AdamW")
    assert type(m.optimizer) is optim.AdamW
    X, y = _data()
    sweep = fastmlp.lr_sweep(lambda: fastmlp.MLP([3, 4, 1], seed=0), X, y, lrs=[1e-3, 1e-2],
                             iterations=3, batch_size=32, optimizer="RMSprop")
    assert len(sweep.lrs) == 2
    with pytest.raises(ValueError, match=r"unknown optimizer 'Adamax'"):
        optim.make_optimizer("Adamax", np.zeros(3))


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_the_command_line_takes_an_optimizer_name_in_any_case(command):
    args = build_parser().parse_args([command, "--optimizer", "RMSprop"])
    assert args.optimizer == "rmsprop"


def test_cli_an_unknown_optimizer_is_shown_as_typed(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--optimizer", "Adamax"])
    assert "invalid choice: 'Adamax'" in capsys.readouterr().err
