"""Optimizer state never holds a subnormal number (reference._flush says why: on Intel CPUs
each vector with one costs a microcode assist, and the exp_avg of a unit with zero gradient
decays through that range), and the flush moves no parameter: parameters stay those of
torch.optim while torch's own state goes subnormal."""

import numpy as np
import pytest

from fastmlp import backends, optim

TINY = np.finfo(np.float32).tiny
AVAILABLE = [name for name, (ok, _) in backends.available_backends().items() if ok]

# (class, kwargs): every optimizer with a state row that decays (or, for Adagrad, grows
# from a tiny gradient), with each optional row in use
CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(lr=0.05)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, centered=True, momentum=0.5)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
]
IDS = [f"{n}-{'-'.join(k)}" for n, k in CASES]


def subnormal(a):
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


def gradient(name, s, rng, n, warm=20):
    """Step s's float32 gradient: random for `warm` steps, then zero for every other
    coordinate (a ReLU unit that stopped firing).  Adagrad's sum only grows: there, the
    odd coordinates get 1e-20 throughout, whose square is subnormal."""
    g = (rng.standard_normal(n) * 1e-3).astype(np.float32)
    dead = np.arange(n) % 2 == 0
    if s >= warm:
        g[dead] = 0
    if name == "Adagrad":
        g[~dead] = 1e-20
    return g


def decay_run(name, kwargs, backend, n=257, steps=1020, seed=0):
    """Returns (params, state, number of steps after which a stored state value was
    subnormal)."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    opt = getattr(optim, name)(p, backend=backend, **kwargs)
    hits = 0
    for s in range(steps):
        opt.step(gradient(name, s, rng, n))
        hits += bool(subnormal(opt.state).any())
    return p, opt.state, hits


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_state_is_flushed_and_backends_agree(name, kwargs, backend):
    p, state, hits = decay_run(name, kwargs, backend)
    assert hits == 0, f"a subnormal state value was stored in {hits} steps"
    p_ref, state_ref, _ = decay_run(name, kwargs, "numpy")
    # the same values flushed on every backend, the rest within the conformance tolerance
    assert np.array_equal(state == 0, state_ref == 0)
    np.testing.assert_allclose(state, state_ref, rtol=1e-5, atol=0)
    np.testing.assert_allclose(p, p_ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_flush_moves_no_parameter_against_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    n = 257
    p0 = rng.standard_normal(n).astype(np.float32)
    p = p0.copy()
    opt = getattr(optim, name)(p, backend="numpy", **kwargs)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = getattr(torch.optim, name)([tp], foreach=False, **kwargs)
    torch_subnormal = 0
    for s in range(1020):
        g = gradient(name, s, rng, n)
        opt.step(g)
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        torch_subnormal += any(subnormal(v.numpy()).any() for v in topt.state[tp].values()
                               if torch.is_tensor(v) and v.numel() == n)
    # the case is one where torch's state does go subnormal: else it would test nothing
    assert torch_subnormal > 0
    assert not subnormal(opt.state).any()
    theirs = tp.detach().numpy()
    assert np.abs(p - theirs).max() <= 1e-6 * np.abs(theirs).max()
