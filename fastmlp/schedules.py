"""Learning-rate schedules: plain callables of the step number (0-based) returning the lr.

``fit`` evaluates the schedule once per optimizer step, so ``schedule(t)`` is the lr used by
the (t+1)-th update.  Any callable ``t -> lr`` works; these are the common recipes.
"""

import math
import numbers
import re
import warnings

from ._validate import check_positive, counted, shown, user_stacklevel

__all__ = ["Constant", "LinearDecay", "Step", "Exponential", "Cosine", "Warmup", "from_spec",
           "SCHEDULES", "ScheduleWarning", "length_problems", "warn_length", "own_lr"]


def _positive(name, v, allow_zero=False):
    """v, a finite real number (a NumPy one too, as a float; not a bool) > 0 (>= 0 with
    allow_zero), else a ValueError naming the argument."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"number, got {shown(v)}")
    return v if type(v) in (int, float) else float(v)


def _steps(name, v, what="a positive integer"):
    """v as an int: a positive integer (a NumPy one too; not a bool: check_positive's rule,
    the API's), else a ValueError naming the argument and saying ``what`` was expected."""
    try:
        check_positive(v, name, integer=True)
    except ValueError:
        raise ValueError(f"{name} must be {what}, got {shown(v)}") from None
    return int(v)


def _power(gamma, n):
    """gamma ** n, infinite when it overflows as IEEE arithmetic would (Python raises
    OverflowError instead): a schedule grown beyond any float is an invalid lr that fit
    refuses by name, not a traceback from the schedule."""
    try:
        return gamma ** n
    except OverflowError:
        return math.inf


def _check_step(t):
    if t < 0:
        raise ValueError(f"schedule step must be >= 0, got {t}")


class Constant:
    """lr(t) = lr."""

    def __init__(self, lr):
        self.lr = _positive("lr", lr)

    def __call__(self, t):
        _check_step(t)
        return float(self.lr)

    def __repr__(self):
        return f"Constant(lr={self.lr})"


class LinearDecay:
    """The lecture's first recipe: decay linearly from ``lr`` to ``final_lr`` over ``T``
    steps, then stay constant:  lr(t) = (1 - t/T) lr + (t/T) final_lr for t < T, final_lr after.
    """

    def __init__(self, lr, final_lr, T):
        self.lr = _positive("lr", lr)
        self.final_lr = _positive("final_lr", final_lr, allow_zero=True)
        self.T = _steps("T", T, "a positive integer number of steps")

    def __call__(self, t):
        _check_step(t)
        if t >= self.T:
            return float(self.final_lr)
        a = t / self.T
        return float((1 - a) * self.lr + a * self.final_lr)

    def __repr__(self):
        return f"LinearDecay(lr={self.lr}, final_lr={self.final_lr}, T={self.T})"


class Step:
    """lr(t) = lr * gamma ** (t // step_size)   (torch StepLR, per optimizer step)."""

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = _positive("lr", lr)
        self.step_size = _steps("step_size", step_size)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, t):
        _check_step(t)
        return float(self.lr * _power(self.gamma, t // self.step_size))

    def __repr__(self):
        return f"Step(lr={self.lr}, step_size={self.step_size}, gamma={self.gamma})"


class Exponential:
    """lr(t) = lr * gamma ** t."""

    def __init__(self, lr, gamma):
        self.lr = _positive("lr", lr)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, t):
        _check_step(t)
        return float(self.lr * _power(self.gamma, t))

    def __repr__(self):
        return f"Exponential(lr={self.lr}, gamma={self.gamma})"


class Cosine:
    """Cosine annealing from lr to final_lr over T steps, then final_lr:
    lr(t) = final_lr + (lr - final_lr) (1 + cos(pi t / T)) / 2."""

    def __init__(self, lr, T, final_lr=0.0):
        self.lr = _positive("lr", lr)
        self.T = _steps("T", T, "a positive integer number of steps")
        self.final_lr = _positive("final_lr", final_lr, allow_zero=True)

    def __call__(self, t):
        _check_step(t)
        if t >= self.T:
            return float(self.final_lr)
        return float(self.final_lr + (self.lr - self.final_lr) * 0.5
                     * (1 + math.cos(math.pi * t / self.T)))

    def __repr__(self):
        return f"Cosine(lr={self.lr}, T={self.T}, final_lr={self.final_lr})"


class Warmup:
    """Linear warm-up composed with any schedule: lr(t) = base(0) (t + 1) / warmup_steps for
    t < warmup_steps, then base(t - warmup_steps)."""

    def __init__(self, schedule, warmup_steps):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.warmup_steps = _steps("warmup_steps", warmup_steps)

    def __call__(self, t):
        _check_step(t)
        if t < self.warmup_steps:
            return float(self.schedule(0) * (t + 1) / self.warmup_steps)
        return float(self.schedule(t - self.warmup_steps))

    def __repr__(self):
        return f"Warmup({self.schedule!r}, warmup_steps={self.warmup_steps})"


def own_lr(schedule):
    """The base lr a schedule object of this module carries (a Warmup's: its inner
    schedule's), as a float; None for any other callable (its rate is unknown)."""
    if isinstance(schedule, Warmup):
        return own_lr(schedule.schedule)
    if isinstance(schedule, (Constant, LinearDecay, Step, Exponential, Cosine)):
        return float(schedule.lr)
    return None


class ScheduleWarning(UserWarning):
    """A schedule that does not fit in the run it drives (length_problems): the run trains,
    but not with the learning rates the schedule describes."""


def length_problems(schedule, total):
    """Sentences for a schedule whose warm-up, T or step_size does not fit in a run of
    ``total`` optimizer steps: the lr never reaches its base, never ends at its final value,
    or never steps down, and nothing else would say so (an empty list when it fits, and for
    a plain callable, whose length is unknown)."""
    warmup = isinstance(schedule, Warmup)
    warm, inner = (schedule.warmup_steps, schedule.schedule) if warmup else (0, schedule)
    if warmup and warm >= total:
        return [f"the warm-up of {counted(warm, 'step')} is as long as the run "
                f"({counted(total, 'step')}) or longer: the lr ends at "
                f"{schedule(total - 1):.3g}, never reaching {inner(0):.3g}"]
    left = total - warm
    after = " after the warm-up" if warm else ""
    if isinstance(inner, (LinearDecay, Cosine)) and inner.T > left:
        return [f"T={inner.T} is longer than the {counted(left, 'step')} the run has{after}: "
                f"the lr ends at {inner(left - 1):.3g}, not at {inner.final_lr:.3g}"]
    if isinstance(inner, Step) and inner.step_size >= left:
        return [f"step_size={inner.step_size} is as long as the {counted(left, 'step')} the "
                f"run has{after} or longer: the lr never steps down from {inner(0):.3g}"]
    return []


def warn_length(schedules, totals, stacklevel=None):
    """A ScheduleWarning ("schedule: ...") for each way a schedule does not fit in its run of
    ``totals`` optimizer steps (length_problems): the run trains, but its lr never reaches
    what the schedule describes (a cosine T of 10,000 in a 500-step run ends near its base
    lr), which nothing else would say.  Several runs (lists): each distinct text once, so
    K models sharing a schedule warn once.  ``stacklevel`` as warnings.warn's, counted from
    the caller; None: the user's line, the first frame outside fastmlp."""
    if not isinstance(schedules, (list, tuple)):
        schedules, totals = [schedules], [totals]
    said = []
    for sched, total in zip(schedules, totals):
        said += [t for t in length_problems(sched, total) if t not in said]
    level = user_stacklevel() if stacklevel is None else stacklevel + 1
    for text in said:
        warnings.warn(f"schedule: {text}", ScheduleWarning, stacklevel=level)


SCHEDULES = ("constant", "linear", "step", "exponential", "cosine")

# spec grammar: "name" or "name:key=value,key=value"; "warmup=N+" prefix composes a warm-up,
# e.g. "warmup=100+cosine:T=5000".
_ARGS = {"constant": {}, "linear": {"final": float, "T": int},
         "step": {"step_size": int, "gamma": float}, "exponential": {"gamma": float},
         "cosine": {"T": int, "final": float}}


def from_spec(spec, lr):
    """Build a schedule from a short text (the CLI's ``--schedule``) and the base lr.

    Examples: ``constant``, ``linear:final=1e-4,T=2000``, ``step:step_size=1000,gamma=0.5``,
    ``exponential:gamma=0.999``, ``cosine:T=5000``, ``warmup=100+cosine:T=4900``,
    ``warmup=100`` (then constant).  After a
    ``warmup=N+`` prefix the schedule starts at step N, so its T counts the steps after the
    warm-up (a run of S steps that should end at ``final``: T = S - N); ``warmup=0+`` means
    no warm-up.
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"schedule must be a callable or a spec string, got {spec!r}")
    warm = None
    # "warmup=N" alone: a warm-up to the base lr, constant after it
    m = re.fullmatch(r"warmup=(\d+)(?:\+(.*))?", spec.strip())
    if m:
        warm, spec = int(m.group(1)), m.group(2) if m.group(2) is not None else "constant"
    name, _, rest = spec.strip().partition(":")
    name = name.strip()         # "cosine : T=10" as "cosine: T=10", whose keys are stripped
    if name not in _ARGS:
        raise ValueError(f"unknown schedule {name!r}; expected one of: {', '.join(SCHEDULES)} "
                         "(optionally prefixed by warmup=N+)")
    kw = {}
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or key not in _ARGS[name]:
            raise ValueError(f"schedule {name!r} takes {sorted(_ARGS[name]) or 'no'} "
                             f"arguments, got {item!r}")
        if key in kw:       # the last one silently won
            raise ValueError(f"schedule {name!r}: argument {key!r} given more than once in "
                             f"{spec!r}")
        try:
            kw[key] = _ARGS[name][key](val)
        except ValueError:
            raise ValueError(f"schedule argument {key}={val!r} is not a valid "
                             f"{_ARGS[name][key].__name__}") from None
    missing = {"linear": ["final", "T"], "step": ["step_size"], "exponential": ["gamma"],
               "cosine": ["T"]}.get(name, [])
    missing = [k for k in missing if k not in kw]
    if missing:
        raise ValueError(f"schedule {name!r} needs {', '.join(missing)} (e.g. "
                         f"{name}:" + ",".join(f"{k}=..." for k in missing) + ")")
    if name == "constant":
        s = Constant(lr)
    elif name == "linear":
        s = LinearDecay(lr, kw["final"], kw["T"])
    elif name == "step":
        s = Step(lr, kw["step_size"], kw.get("gamma", 0.1))
    elif name == "exponential":
        s = Exponential(lr, kw["gamma"])
    else:
        s = Cosine(lr, kw["T"], kw.get("final", 0.0))
    return Warmup(s, warm) if warm else s
