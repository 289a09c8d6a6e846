"""train_epoch with sw=None: every row weighs 1.

fit passes None when it is given no sample or class weights; the C kernel then gathers no
weight per row (and its weight sum is the row count).  Every backend must give the bits an
array of ones gives, in both dtypes, for every loss, with int64 and int32 row orders; and fit
without weights must end where fit with sample_weight=ones does."""

import numpy as np
import pytest

import fastmlp
from fastmlp import backends

AVAILABLE = [name for name, (ok, _) in backends.available_backends().items() if ok]

# (sizes, loss code, targets): bce, cross-entropy over 3 classes, mse with 2 outputs
CASES = {
    "bce": ([4, 16, 1], 0, lambda X: (X[:, :1] > 0).astype(float)),
    "cross_entropy": ([4, 16, 3], 1, lambda X: np.digitize(X[:, :1], [-0.5, 0.5])),
    "mse": ([4, 16, 2], 2, lambda X: np.stack([X[:, 0] * X[:, 1], X[:, 2]], 1)),
}


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("order_dtype", [np.int64, np.int32])
def test_no_weights_train_exactly_as_an_array_of_ones(backend, dtype, case, order_dtype):
    sizes, code, target = CASES[case]
    k = backends.get_backend(backend)
    m = fastmlp.MLP(sizes, seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 4)).astype(dtype)
    Y = np.ascontiguousarray(target(X), dtype=dtype)
    order = rng.permutation(700)[:650].astype(order_dtype)   # not every row, shuffled
    nb = -(-650 // 48)
    opt = fastmlp.optim.Adam(m.params, lr=1e-2)
    ends = []
    for sw in (np.ones(700, dtype), None):
        p, st, bl = m.params.copy(), np.zeros_like(opt.state), np.empty(nb)
        done = k.train_epoch(p, np.empty_like(p), st, bl, X, Y, sw, order, 48,
                             np.full(nb, 1e-2), 0, opt.code, opt.hyper_vector(), m.sizes_array,
                             m.acts_array, code)
        ends.append((done, p, st, bl))
    assert ends[0][0] == ends[1][0] == nb
    assert not np.array_equal(ends[0][1], m.params)   # it trained
    for a, b in zip(ends[0][1:], ends[1][1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_no_weights_still_refuse_a_wrong_weight_array(backend):
    k = backends.get_backend(backend)
    m = fastmlp.MLP([2, 4, 1], seed=0, dtype="float32")
    X = np.zeros((10, 2), np.float32)
    opt = fastmlp.optim.SGD(m.params, lr=0.1)
    with pytest.raises(ValueError, match="sw"):
        k.train_epoch(m.params.copy(), np.empty_like(m.params), opt.state, np.empty(1), X,
                      np.zeros((10, 1), np.float32), np.ones(9, np.float32), np.arange(10), 10,
                      np.full(1, 0.1), 0, opt.code, opt.hyper_vector(), m.sizes_array,
                      m.acts_array, 0)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_fit_without_weights_ends_where_fit_with_unit_weights_does(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
    params = []
    for sample_weight in (None, np.ones(3000)):
        m = fastmlp.MLP([4, 16, 1], seed=0, dtype="float32")
        fastmlp.fit(m, X, y, epochs=2, batch_size=64, backend=backend, progress=False,
                    validation=0.1, sample_weight=sample_weight, seed=5)
        params.append(m.params)
    np.testing.assert_array_equal(params[0], params[1])
