"""Progress reporting for long work: a tqdm bar on a terminal, one plain line per step in a
log.

``progress_bar(total, desc, unit, enabled)`` returns a :class:`Progress`; call
``update(line=..., **postfix)`` once per step (epoch, lr candidate, fold, chunk) and
``close()`` at the end (or use it as a context manager).

Where the output goes (``mode``):

* ``"bar"``: a tqdm bar on stderr (count, rate, ETA and the postfix, e.g. the loss and
  samples/s); each step's ``line`` is written above the bar with ``tqdm.write`` so the
  per-epoch record stays on screen while the bar moves.
* ``"lines"``: each step's ``line`` printed to stderr (the log-file form: no carriage
  returns), e.g. ``epoch 2/10  loss 0.12345  ...  1,234,567 samples/s``.
* ``"auto"`` (default): ``"bar"`` when tqdm is installed and stderr is a terminal,
  ``"lines"`` otherwise (pipes, log files, CI, pytest's capture).  The environment variable
  ``FASTMLP_PROGRESS`` = ``bar`` | ``lines`` | ``off`` overrides ``auto``.

``enabled=False`` (``progress=False``, ``--quiet``) prints nothing at all.  tqdm is optional:
without it ``"bar"`` falls back to ``"lines"``.
"""

import os
import sys

__all__ = ["Progress", "progress_bar", "have_tqdm", "resolve_mode"]

MODES = ("auto", "bar", "lines", "off")


def have_tqdm():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _isatty(f):
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):
        return False


def resolve_mode(enabled=True, mode="auto", file=None):
    """The mode actually used: "bar", "lines" or "off"."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    if isinstance(enabled, str):          # progress="bar" / "lines" / "off" / "auto"
        if enabled not in MODES:
            raise ValueError(f"progress must be True, False or one of {MODES}, got "
                             f"{enabled!r}")
        return resolve_mode(True, enabled, file)
    if not enabled or mode == "off":
        return "off"
    if mode == "auto":
        env = os.environ.get("FASTMLP_PROGRESS", "").strip().lower()
        if env in ("bar", "lines", "off"):
            mode = env
        else:
            mode = "bar" if _isatty(file if file is not None else sys.stderr) else "lines"
    if mode == "bar" and not have_tqdm():
        mode = "lines"
    return mode


class Display:
    """What every progress display shares: an optional tqdm bar, closed once, and use as a
    context manager."""

    _bar = None

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Progress(Display):
    """One progress display (see the module docstring)."""

    def __init__(self, total=None, desc="", unit="it", enabled=True, mode="auto", file=None,
                 leave=True):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self._file = file
        self.mode = resolve_mode(enabled, mode, file)
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=leave,
                             file=self.file, dynamic_ncols=True, mininterval=0.1)

    @property
    def file(self):
        # looked up at write time, so that a redirected sys.stderr (pytest's capsys) is used
        return self._file if self._file is not None else sys.stderr

    def update(self, n=1, line=None, **postfix):
        """Advance by ``n``; ``line``: this step's record (printed in "lines" mode, written
        above the bar in "bar" mode); ``postfix``: short key=value shown on the bar (in
        "lines" mode, and only when no ``line`` is given, appended to "desc i/total")."""
        self.n += n
        if self.mode == "off":
            return
        if self.mode == "bar":
            if line:
                self._bar.write(line, file=self.file)
            if postfix:
                self._bar.set_postfix_str(_fmt_postfix(postfix), refresh=False)
            self._bar.update(n)
            return
        if line is None:
            tot = f"/{self.total}" if self.total is not None else ""
            line = f"{self.desc} {self.n}{tot}".strip()
            if postfix:
                line += "  " + _fmt_postfix(postfix, sep="  ", eq=" ")
        print(line, file=self.file, flush=True)

    def write(self, line):
        """A message that does not advance the count (above the bar in "bar" mode)."""
        if self.mode == "bar":
            self._bar.write(line, file=self.file)
        elif self.mode == "lines":
            print(line, file=self.file, flush=True)



def _fmt_postfix(postfix, sep=", ", eq="="):
    parts = []
    for k, v in postfix.items():
        if k.endswith("_s"):                 # samples_s=... reads "samples/s=..."
            k = k[:-2] + "/s"
        if isinstance(v, float):
            v = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.5g}"
        parts.append(f"{k}{eq}{v}")
    return sep.join(parts)


def progress_bar(total=None, desc="", unit="it", enabled=True, mode="auto", file=None,
                 leave=True):
    """A :class:`Progress` (a no-op when ``enabled`` is False)."""
    return Progress(total, desc, unit, enabled, mode, file, leave)
