"""Stop requests (SIGTERM, SIGUSR1: Slurm's notice before a time limit or preemption; SIGINT: Ctrl-C) and their
handlers.

A request is often delivered twice: `scancel --full --signal=USR1` signals each task directly and through srun
(which the batch step forwards it to). A process that has honoured the first (checkpoint written, stopping) must
not be killed by the repeat while it writes its summary and leaves, so where it restores a default action it
ignores the signal instead. Ctrl-C is the exception: a second SIGINT, while the first is still being honoured or
after, interrupts at once (KeyboardInterrupt), so a user at a terminal is never stuck waiting for a step boundary.
A SIGINT ignored when a handler is installed (a job started in the background by a non-interactive shell) stays
ignored.
"""

from __future__ import annotations

import signal
import threading

#: the stop requests: SIGTERM (scancel, preemption), SIGUSR1 (`--signal=USR1@120` before a time limit) and SIGINT
#: (Ctrl-C at a terminal; mpiexec forwards it to every rank)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))

#: whether a SIGINT reached an installed handler since the outermost `install`: the next one interrupts
_asked = False


def _first_interrupt(handler):
    """`handler` for the first SIGINT; a later one raises KeyboardInterrupt (Python's own action) instead."""

    def on_sigint(signum, frame):
        global _asked
        if _asked:
            raise KeyboardInterrupt
        _asked = True
        handler(signum, frame)

    on_sigint.stop_request = True
    return on_sigint


def install(handler) -> dict:
    """Set `handler` for SIGNALS (SIGINT: only its first delivery, and not where it is ignored); return the handlers
    it replaced, for `restore` ({} off the main thread, where Python cannot set handlers)."""
    global _asked
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for sig in SIGNALS:
        if sig == signal.SIGINT:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue
            if not getattr(current, "stop_request", False):  # the outermost handler: no Ctrl-C seen yet
                _asked = False
            old[sig] = signal.signal(sig, _first_interrupt(handler))
        else:
            old[sig] = signal.signal(sig, handler)
    return old


def restore(handlers: dict, *, stopping: bool) -> None:
    """Put back `handlers` ({signal: handler} as signal.signal returned them); when `stopping`, a default action
    (SIG_DFL, which ends the process) becomes SIG_IGN: the process is already on its way out. SIGINT's becomes
    Python's KeyboardInterrupt instead: a second Ctrl-C interrupts."""
    for sig, old in handlers.items():
        if stopping and old in (signal.SIG_DFL, None):
            old = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_IGN
        signal.signal(sig, old)

