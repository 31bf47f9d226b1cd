"""Stop requests (SIGTERM, SIGUSR1: Slurm's notice before a time limit or preemption) and their handlers.

A request is often delivered twice: `scancel --full --signal=USR1` signals each task directly and through srun
(which the batch step forwards it to). A process that has honoured the first (checkpoint written, stopping) must
not be killed by the repeat while it writes its summary and leaves, so where it restores a default action it
ignores the signal instead."""

from __future__ import annotations

import signal
import threading

#: the stop requests: SIGTERM (scancel, preemption) and SIGUSR1 (`--signal=USR1@120` before a time limit)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


def install(handler) -> dict:
    """Set `handler` for SIGNALS; return the handlers it replaced, for `restore` ({} off the main thread, where
    Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


def restore(handlers: dict, *, stopping: bool) -> None:
    """Put back `handlers` ({signal: handler} as signal.signal returned them); when `stopping`, a default action
    (SIG_DFL, which ends the process) becomes SIG_IGN: the process is already on its way out."""
    for sig, old in handlers.items():
        signal.signal(sig, signal.SIG_IGN if stopping and old in (signal.SIG_DFL, None) else old)
