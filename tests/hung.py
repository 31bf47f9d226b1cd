"""What a test says when a process tree it started does not end in time: each process of the given process groups
(its command, state and kernel wait channel) and, for the Python ones (started with PYTHONFAULTHANDLER=1, `FAULTS`),
the stack of every thread, dumped by SIGABRT on the process's stderr."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

#: the environment entry that makes a Python child dump its threads' stacks on SIGABRT (faulthandler)
FAULTS = {"PYTHONFAULTHANDLER": "1"}


def _members(pgids) -> list:
    """(pid, pgid) of every live process whose process group is one of `pgids`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            pgid = os.getpgid(int(entry))
            if pgid in pgids:
                out.append((int(entry), pgid))
    return out


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def describe(proc: subprocess.Popen, *pgids: int, wait: float = 10.0) -> str:
    """The processes of `proc`'s process group and of `pgids`, then `proc`'s further output after a SIGABRT to each
    (its stderr merged into stdout as text); every one of them is killed (SIGKILL) after."""
    groups = {proc.pid, *pgids}
    lines = []
    for pid, pgid in _members(groups):
        state = next((line.split(None, 1)[1] for line in _read(f"/proc/{pid}/status").splitlines()
                      if line.startswith("State:")), "?")
        lines.append(f"pid {pid} (group {pgid}) state {state} waiting in {_read(f'/proc/{pid}/wchan')}: "
                     f"{_read(f'/proc/{pid}/cmdline')}")
    for pid, _ in _members(groups):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGABRT)
    try:
        more, _ = proc.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        more = "(no end of output after SIGABRT)"
    finally:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    return "\n".join(["processes still running:", *lines, "their output after SIGABRT:", more or ""])
