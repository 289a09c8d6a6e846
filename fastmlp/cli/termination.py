"""SIGTERM in the ``fastmlp`` command: a clean stop, as Ctrl-C gives.

SIGTERM's default action ends the process at once: no ``finally`` block runs, so a write in
progress (``fastmlp predict`` streaming a large catalog into Parquet) leaves its hidden
temporary file beside the output, and the command says nothing.  While a command runs,
``sigterm_raises()`` turns SIGTERM into the ``Terminated`` exception instead: the clean-up of
``fastmlp.atomic.atomic_write`` removes the temporary file, and ``main`` reports the stop in
one line and exits with 143 (128 + SIGTERM, what a shell reports for a process SIGTERM
ended).  Only the command installs this: a library must not take over its host process's
signals.
"""

import contextlib
import signal
import threading

__all__ = ["Terminated", "sigterm_raises", "TERMINATED_STATUS"]

TERMINATED_STATUS = 128 + int(signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM arrived while a command ran.  A BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` on the way up mistakes it for an error and carries on."""


def _raise_terminated(signum, frame):
    # a second SIGTERM (the clean-up hangs, or an impatient supervisor) ends the process
    # at once, as it would without this handler
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises():
    """Within the block SIGTERM raises Terminated (in the main thread, where Python runs
    signal handlers); the previous handler is restored after it.  Left as it is when SIGTERM
    is ignored (the parent asked for that) or when not called from the main thread (only it
    may set handlers: e.g. main() called from a worker thread of a test)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
