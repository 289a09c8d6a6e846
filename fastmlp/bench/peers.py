"""The systems that train: fastmlp on one backend, PyTorch eager (Adam default or fused) and
scikit-learn's MLPClassifier, each starting from the same flat parameters p0.

Every trainer has ``run(n, bs, epochs) -> [seconds per epoch]``; the fastmlp and torch ones
also ``losses_in_order(bs, k)``: the first k batch losses with batches in row order, which the
loss check compares before any speed is reported.
"""

import warnings

import numpy as np

from .common import LR, now


def torch_activation(torch, name):
    """The torch module of a fastmlp hidden activation (GELU in its tanh form, as ours)."""
    nn = torch.nn
    return {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "tanh": nn.Tanh,
            "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
            "gelu": lambda: nn.GELU(approximate="tanh")}[name]()


def torch_model(torch, sizes, p0, activation="relu"):
    """nn.Sequential of Linear and the activation (ReLU by default) with fastmlp's flat
    params copied in (Linear.weight = W.T)."""
    from ..backends.reference import layer_offsets
    layers = []
    offs, _ = layer_offsets(sizes)
    for i, ((wo, bo), n_in, n_out) in enumerate(zip(offs, sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            W = p0[wo:bo].reshape(n_in, n_out)
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(p0[bo:bo + n_out])))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch_activation(torch, activation))
    return torch.nn.Sequential(*layers)


def torch_label(fused):
    return "torch eager fused" if fused else "torch eager"


class TorchTrainer:
    def __init__(self, torch, sizes, p0, X, y, fused=False, seed=0, activation="relu"):
        self.torch = torch
        self.model = torch_model(torch, sizes, p0, activation)
        kw = {"fused": True} if fused else {}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR, **kw)
        self.Xt = torch.from_numpy(X)
        self.Yt = torch.from_numpy(y.astype(np.float32).reshape(-1, 1))
        self.gen = torch.Generator().manual_seed(seed)

    def step(self, xb, yb):
        F = self.torch.nn.functional
        self.opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def losses_in_order(self, bs, k):
        return [self.step(self.Xt[i * bs:(i + 1) * bs], self.Yt[i * bs:(i + 1) * bs]).item()
                for i in range(k)]

    def run(self, n, bs, epochs):
        torch = self.torch
        times = []
        nb = -(-n // bs)
        for _ in range(epochs):
            t0 = now()
            perm = torch.randperm(n, generator=self.gen)
            for i in range(nb):
                idx = perm[i * bs:(i + 1) * bs]
                self.step(self.Xt.index_select(0, idx), self.Yt.index_select(0, idx))
            times.append(now() - t0)
        return times


class FastmlpTrainer:
    """fastmlp through fit() (the public API; use_fit=False: backend.train_epoch directly).
    backend may be "auto": what a user who names no backend gets."""

    def __init__(self, backend, sizes, p0, X, y, use_fit=True, seed=0, activation="relu"):
        from .. import optim
        from ..model import MLP
        from ..training import fit
        self.backend = backend
        self.model = MLP(list(sizes), seed=0, dtype="float32", backend=backend,
                         activation=activation)
        self.model.set_params(p0)
        self.X, self.y = X, y
        self.opt = optim.Adam(self.model.params, lr=LR, backend=backend)
        self.fit = fit if use_fit else None
        self.method = "fastmlp.fit" if use_fit else "backend.train_epoch"
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.kernel_times = None
        self.setup_times = []   # fit's per-call set-up, seconds (run with use_fit)

    def _train_epoch(self, X, y, order, bs):
        """One backend.train_epoch call over the rows of X in `order`; the number of steps."""
        from .. import backends
        kern = backends.get_backend(self.backend)
        m = self.model
        n = X.shape[0]
        nb = -(-n // bs)
        bl = np.empty(nb)
        done = kern.train_epoch(m.params, np.empty_like(m.params), self.opt.state, bl, X,
                                y.astype(np.float32).reshape(-1, 1),
                                np.ones(n, dtype=np.float32), order, bs, np.full(nb, LR),
                                self.opt.step_count, self.opt.code, self.opt.hyper_vector(),
                                m.sizes_array, m.acts_array, 0)
        self.opt.step_count += int(done)
        return bl[:done]

    def losses_in_order(self, bs, k_steps):
        """The first k_steps batch losses, batches in row order, through train_epoch."""
        n = bs * k_steps
        return self._train_epoch(self.X[:n], self.y[:n], np.arange(n, dtype=np.int64),
                                 bs).tolist()

    def run(self, n, bs, epochs):
        if self.fit is None:
            times = []
            for _ in range(epochs):
                t0 = now()
                self._train_epoch(self.X[:n], self.y[:n], self.rng.permutation(n), bs)
                times.append(now() - t0)
            return times
        marks = []
        t0 = now()
        self.seed += 1
        hist = self.fit(self.model, self.X[:n], self.y[:n], loss="bce", optimizer=self.opt,
                        batch_size=bs, epochs=epochs + 1, validation=None, progress=False,
                        callbacks=[lambda e, h, m: marks.append(now())],
                        backend=self.backend, seed=self.seed)
        walls, kernel = np.diff([t0] + marks), np.array(hist.epoch_time)
        # The first epoch of a call also holds fit's per-call set-up (input checks, the
        # standardised copy, buffers): it is timed apart, as torch's model set-up is not
        # timed at all, and the epochs after it are the call's epochs.
        self.setup_times.append(float(walls[0] - kernel[0]
                                      - np.median(walls[1:] - kernel[1:])))
        self.kernel_times = kernel[1:].tolist()   # fit's own: the train_epoch call alone
        return walls[1:].tolist()


class SklearnTrainer:
    def __init__(self, sklearn_nn, sizes, p0, X, y, bs, seed=0):
        from ..backends.reference import layer_offsets
        self.X, self.y = X, y
        self.clf = sklearn_nn.MLPClassifier(
            hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam", alpha=0.0,
            batch_size=bs, learning_rate_init=LR, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(X[:bs], y[:bs], classes=np.array([0, 1]))
        offs, _ = layer_offsets(sizes)
        self.clf.coefs_ = [p0[wo:bo].reshape(a, b).copy()
                           for (wo, bo), a, b in zip(offs, sizes[:-1], sizes[1:])]
        self.clf.intercepts_ = [p0[bo:bo + b].copy() for (wo, bo), b in zip(offs, sizes[1:])]

    def proba(self, X):
        return self.clf.predict_proba(X)[:, 1]

    def run(self, n, bs, epochs):
        times = []
        X, y = self.X[:n], self.y[:n]
        for _ in range(epochs):
            t0 = now()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.clf.partial_fit(X, y)
            times.append(now() - t0)
        return times
