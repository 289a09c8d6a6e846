"""Optimizers with torch.optim's names, defaults, equations and step counting.

Each optimizer keeps its state in ONE (n_state, n_params) array, rows laid out like the flat
``params`` buffer, and ``step(grad)`` updates ``params`` in place through a pure kernel
(``fastmlp.backends.<backend>.optimizer_update``, bound to ``params`` and the state once:
``bound_update``); the NumPy kernels in
``fastmlp/backends/reference.py`` are the specification and are tested step for step against
``torch.optim`` (tests/test_vs_torch.py).

The lecture's momentum form ``v <- gamma v - lr g; theta <- theta + v`` is torch's SGD momentum
at constant lr: with ``buf = -v / lr``, ``buf <- gamma buf + g`` and ``theta <- theta - lr buf``.
"""

import collections
import inspect
import operator

import numpy as np

from . import backends
from .buffers import aligned_zeros
from ._validate import check_bool, check_centered, check_hyper, check_nesterov
from .codes import (HYPER_NAMES, N_HYPER, N_STATE, OPTIMIZERS, hyper_vector, optimizer_code,
                    optimizer_key)


_FLAGS = ("nesterov", "maximize", "amsgrad", "centered")

#: an optimizer's update bound to its arrays on one backend (Optimizer._bound_update)
_Binding = collections.namedtuple("_Binding", "name kernels params state update")


def _checked(owner, named):
    """{name: checked value} of the named hyper-parameters of optimizer ``owner`` (numbers:
    fastmlp._validate.check_hyper against codes.HYPER_RANGES, the one table of these rules,
    as floats; flags: check_bool, True or False only, as every flag of the API): a
    ValueError names the optimizer and the argument, as in
    'RMSprop: alpha must be in [0, 1), got 1.5'."""
    return {key: check_bool(value, key, owner) if key in _FLAGS else
            check_hyper(key, value, owner=owner) for key, value in named.items()}


_INIT_GETTERS = {}


def _init_getter(names):
    """operator.attrgetter of these constructor names, made once per tuple of names."""
    got = _INIT_GETTERS.get(names)
    if got is None:
        got = _INIT_GETTERS[names] = operator.attrgetter(*names)
    return got

class Optimizer:
    """Base class: flat state, step counting, state_dict / load_state_dict."""

    name = None
    state_rows = ()

    def __init__(self, params, backend=None):
        if not isinstance(params, np.ndarray) or params.ndim != 1 or \
                params.dtype not in (np.float32, np.float64) or not params.flags.c_contiguous:
            raise TypeError("params must be a model's flat parameter buffer (a contiguous 1-D "
                            "float32/float64 NumPy array, e.g. model.params), got "
                            f"{type(params).__name__}"
                            + (f" {params.dtype} {params.shape}" if isinstance(params, np.ndarray)
                               else ""))
        if backend is not None:
            backends.check_backend_name(backend)
        self.params = params
        self.backend = backend
        self.state = aligned_zeros((N_STATE[self.name], params.size), params.dtype)
        self.step_count = 0

    @property
    def code(self):
        return optimizer_code(self.name)

    def hyper(self):
        """{name: value} of the hyper-parameters the kernels read (fastmlp.codes.HYPER_NAMES)."""
        return {k: getattr(self, k) for k in HYPER_NAMES[self.name]}

    def hyper_vector(self):
        """Hyper-parameters as the float64 vector the fused kernels take, built by name
        (fastmlp.codes.hyper_vector): the only place it is positional is the kernel call."""
        return hyper_vector(self.name, **self.hyper())

    def step(self, grad, backend=None):
        """One update of ``params`` in place from the flat gradient ``grad`` (not kept)."""
        p = self.params
        if not (type(grad) is np.ndarray and grad.dtype == p.dtype and grad.shape == p.shape
                and grad.flags.c_contiguous):
            if not isinstance(grad, np.ndarray) or grad.shape != p.shape:
                raise ValueError(f"grad must be an array of shape {p.shape}, got "
                                 f"{getattr(grad, 'shape', type(grad).__name__)}")
            grad = np.ascontiguousarray(grad, dtype=p.dtype)
        update = self._bound_update(backend if backend is not None else self.backend)
        hyper = self._kernel_hyper()
        self.step_count += 1
        try:
            update(grad, self.step_count, hyper)
        except (ValueError, TypeError):    # refused by the kernel's checks: no step taken
            self.step_count -= 1
            raise

    # What step() keeps between calls (never pickled: __getstate__), rebuilt when stale.
    # Why: a step's Python work runs with cold caches after a large update (or anything
    # else that streams memory) and cost ~200 us of a 2.4 ms step of 1e7 parameters.
    _bound = None          # a _Binding
    _hyper_cache = None    # (constructor values, hyper() values, their float64 vector)

    def _bound_update(self, name):
        """The backend's optimizer update bound to this optimizer's params and state (their
        checks done once: fastmlp.backends.<backend>.bound_update), made again when the
        backend or either array changes.  None and "auto" are resolved at every step (the
        default can change); a named backend's module never changes."""
        b = self._bound
        if b is not None and b.name == name and name is not None and name != "auto":
            kernels = b.kernels
        else:
            kernels = backends.get_backend(name)
        if b is None or b.kernels is not kernels or b.params is not self.params or \
                b.state is not self.state:
            b = self._bound = _Binding(name, kernels, self.params, self.state,
                                       kernels.bound_update(self.code, self.params,
                                                            self.state))
        return b.update

    @classmethod
    def validated(cls, **named):
        """{name: value} of the constructor's hyper-parameters (``_init_names``) as the
        constructor keeps them (floats and bools), after its checks, with its messages
        ('Adam: betas[1] must be in [0, 1), got 1.0'); run again at a step when a value
        was changed after construction (_kernel_hyper)."""
        return _checked(cls.__name__, named)

    def _kernel_hyper(self):
        """The kernels' vector of hyper(), built and checked again only when a value is
        another object than at the last step (a schedule sets lr between steps; the values
        kept are numbers and tuples, which never change in place).  A constructor value set
        since (``opt.betas = (0.9, 1.0)``) is checked by the constructor's rules, with its
        messages (validated), and kept as the constructor would keep it (a list of betas as
        a tuple: changing the caller's list later changes nothing); a hyper() of a subclass
        that changes by itself, by the kernels' check (backends.check_optimizer_hyper)."""
        names = self._init_names
        # attrgetter and map(is_): C-level, a per-step cost of ~1 us less than generators
        # (10-15 % of a step of 1e3 parameters)
        init = _init_getter(names)(self)
        if len(names) == 1:
            init = (init,)
        c = self._hyper_cache
        fresh = c is None or not all(map(operator.is_, c[0], init))
        if fresh:
            checked = self.validated(**dict(zip(names, init)))
            self.__dict__.update(checked)
            init = tuple(checked[k] for k in names)
        named = self.hyper()
        values = tuple(named.values())
        if fresh or not all(map(operator.is_, c[1], values)):
            if not fresh:
                backends.check_optimizer_hyper(self.name, named)
            # checked numbers: set straight into the vector (hyper_vector's own checks again
            # cost ~10 % of a small step)
            h = np.zeros(N_HYPER)
            h[:len(values)] = [float(v) for v in values]
            c = self._hyper_cache = (init, values, h)
        return c[2]

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_bound", None)
        d.pop("_hyper_cache", None)
        return d

    def state_dict(self):
        """A copy of everything needed to resume: hyper-parameters, step, state rows."""
        return {"name": self.name, "step": self.step_count,
                "hyper": {k: getattr(self, k) for k in self._init_names},
                "state": {r: self.state[i].copy() for i, r in enumerate(self.state_rows)}}

    def load_state_dict(self, sd):
        """Restore state_dict() output.  Everything is checked before anything changes: the
        hyper-parameters through this optimizer's own constructor (so lr=-5 is refused as
        it would be there), unknown names, the state rows' shapes and the step."""
        if not isinstance(sd, dict) or sd.get("name") != self.name:
            raise ValueError(f"state_dict is not for a {self.name} optimizer "
                             f"(name={sd.get('name') if isinstance(sd, dict) else None!r})")
        hyper = dict(sd.get("hyper", {}))
        unknown = set(hyper) - set(self._init_names)
        if unknown:
            raise ValueError(f"state_dict has unknown hyper-parameters {sorted(unknown)} for "
                             f"{self.name}; expected some of {list(self._init_names)}")
        current = {k: getattr(self, k) for k in self._init_names}
        type(self)(np.zeros(1, dtype=self.params.dtype), **{**current, **hyper})  # checks
        step = sd.get("step", 0)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"state_dict step must be a non-negative integer, got {step!r}")
        rows = sd.get("state", {})
        new = []
        for r in self.state_rows:
            a = np.asarray(rows.get(r))
            if a.shape != (self.params.size,):
                raise ValueError(f"state_dict row {r!r} has shape {a.shape}, expected "
                                 f"({self.params.size},)")
            new.append(a)
        for i, a in enumerate(new):
            self.state[i] = a
        for k, v in hyper.items():
            setattr(self, k, v)
        self.step_count = int(step)

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._init_names)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent, torch.optim.SGD.

    .. math::
        g_t &= \nabla f(\theta_{t-1}) \;(\times -1 \text{ if maximize}) + \lambda \theta_{t-1} \\
        b_t &= g_t \text{ if } t = 1 \text{ else } \mu b_{t-1} + (1 - \tau) g_t \\
        g_t &\leftarrow g_t + \mu b_t \text{ if nesterov else } b_t \quad(\text{if } \mu \ne 0)\\
        \theta_t &= \theta_{t-1} - \gamma g_t

    with lr gamma, momentum mu, dampening tau, weight_decay lambda.
    """

    name = "sgd"
    state_rows = ("momentum_buffer",)
    _hyper_names = HYPER_NAMES["sgd"]
    _init_names = _hyper_names

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, maximize=False, backend=None):
        self.__dict__.update(self.validated(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize))
        super().__init__(params, backend)

    @classmethod
    def validated(cls, **named):
        v = super().validated(**named)
        check_nesterov(v["nesterov"], v["momentum"], v["dampening"], cls.__name__)
        return v


class Adagrad(Optimizer):
    r"""Adagrad, torch.optim.Adagrad.

    .. math::
        g_t &= \nabla f(\theta_{t-1}) \;(\times -1 \text{ if maximize}) + \lambda \theta_{t-1} \\
        \tilde\gamma &= \gamma / (1 + (t - 1) \eta) \\
        s_t &= s_{t-1} + g_t^2, \quad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &= \theta_{t-1} - \tilde\gamma \, g_t / (\sqrt{s_t} + \epsilon)

    with lr gamma, lr_decay eta.  The effective rate of a coordinate falls as its squared
    gradients accumulate: fastest along the steep directions.
    """

    name = "adagrad"
    state_rows = ("sum",)
    _hyper_names = HYPER_NAMES["adagrad"]
    _init_names = _hyper_names + ("initial_accumulator_value",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, maximize=False, backend=None):
        self.__dict__.update(self.validated(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize))
        super().__init__(params, backend)
        self.state[0] = self.initial_accumulator_value


class RMSprop(Optimizer):
    r"""RMSprop, torch.optim.RMSprop.

    .. math::
        g_t &= \nabla f(\theta_{t-1}) \;(\times -1 \text{ if maximize}) + \lambda \theta_{t-1} \\
        v_t &= \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &= \bar g_{t-1} + (1 - \alpha)(g_t - \bar g_{t-1}) \quad\text{(centered)} \\
        d_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered) else } \sqrt{v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g_t / d_t,\; \theta_t = \theta_{t-1} - \gamma b_t \quad(\mu > 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t / d_t \quad(\mu = 0)
    """

    name = "rmsprop"
    state_rows = ("square_avg", "grad_avg", "momentum_buffer")
    _hyper_names = HYPER_NAMES["rmsprop"]
    _init_names = _hyper_names

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, maximize=False, backend=None):
        self.__dict__.update(self.validated(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, maximize=maximize))
        super().__init__(params, backend)

    @classmethod
    def validated(cls, **named):
        v = super().validated(**named)
        check_centered(v["centered"], v["alpha"], cls.__name__)
        return v


class Adam(Optimizer):
    r"""Adam, torch.optim.Adam (L2 weight decay added to the gradient).

    .. math::
        g_t &= \nabla f(\theta_{t-1}) \;(\times -1 \text{ if maximize}) + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ if amsgrad else } v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
                    \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}
    """

    name = "adam"
    state_rows = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _hyper_names = HYPER_NAMES["adam"]
    _init_names = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, maximize=False, backend=None):
        self.__dict__.update(self.validated(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize))
        super().__init__(params, backend)

    @classmethod
    def validated(cls, betas, **named):
        owner = cls.__name__
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got "
                             f"{betas!r}") from None
        return {"betas": (check_hyper("beta1", b1, "betas[0]", owner),
                          check_hyper("beta2", b2, "betas[1]", owner)),
                **super().validated(**named)}

    beta1 = property(lambda self: self.betas[0])
    beta2 = property(lambda self: self.betas[1])


class AdamW(Adam):
    r"""AdamW, torch.optim.AdamW: Adam with decoupled weight decay.

    .. math::
        \theta_{t-1} &\leftarrow \theta_{t-1} (1 - \gamma \lambda) \\
        &\text{then Adam's update with } \lambda = 0 \text{ in the gradient.}
    """

    name = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False, backend=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize, backend)


_CLASSES = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
assert tuple(_CLASSES) == OPTIMIZERS


def make_optimizer(name, params, **kwargs):
    """Build an optimizer by name, in any case ("adam", or torch's class name "Adam":
    codes.optimizer_key; "sgd", "momentum" and "nesterov" are SGD shorthands).  An existing
    Optimizer is returned as it is; keyword arguments with it are refused, since it was
    built with its own (they were silently dropped)."""
    if isinstance(name, Optimizer):
        if kwargs:
            raise ValueError(
                f"optimizer is an existing {type(name).__name__} object, so "
                f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())} (optimizer_kwargs) "
                f"would be ignored; set them on the object instead (e.g. "
                f"{type(name).__name__}(model.params, ...), or opt.{next(iter(kwargs))} = "
                "...), or pass the optimizer's name")
        return name
    key = optimizer_key(name)
    if key == "momentum":
        key, kwargs = "sgd", {"momentum": 0.9, **kwargs}
    elif key == "nesterov":
        key, kwargs = "sgd", {"momentum": 0.9, "nesterov": True, **kwargs}
    if key not in _CLASSES:
        raise ValueError(f"unknown optimizer {name!r}; expected one of: "
                         + ", ".join(OPTIMIZER_NAMES) + " (in any case)")
    cls = _CLASSES[key]
    # said here, with the names that would do, rather than as Python's "__init__() got an
    # unexpected keyword argument" (fit's and the recipes' optimizer_kwargs land here)
    takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]
    unknown = [k for k in kwargs if k not in takes]
    if unknown:
        raise TypeError(f"{cls.__name__} has no hyper-parameter "
                        f"{', '.join(map(repr, unknown))} (optimizer_kwargs); it takes "
                        + ", ".join(takes))
    return cls(params, **kwargs)


OPTIMIZER_NAMES = OPTIMIZERS + ("momentum", "nesterov")
