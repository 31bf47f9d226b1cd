"""Test-wide hygiene: an MPI job that a test kills (SIGKILL, Abort, a rank that raises) leaves MPICH's
shared-memory segment /dev/shm/mpich_shm_* behind (~1-3 MB each); remove those the run left, unmapped."""

import os
import re
import signal

import pytest

SHM = "/dev/shm"
_SEGMENT = re.compile(r"/dev/shm/(mpich_shm_\S+)")


def _segments() -> set:
    try:
        return {name for name in os.listdir(SHM) if name.startswith("mpich_shm_")}
    except OSError:
        return set()


def _mapped() -> set:
    """Segments some live process still maps (a run of another test suite on the machine)."""
    names = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps") as maps:
                names.update(m.group(1) for m in _SEGMENT.finditer(maps.read()))
        except OSError:
            continue
    return names


_BEFORE: set = set()


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the run's own process (pytest-xdist's workers excluded)
        _BEFORE.update(_segments())


def pytest_sessionfinish(session, exitstatus):
    """At the end of the run, not after each test: a test that checks that a job leaks no segment must see it."""
    if hasattr(session.config, "workerinput"):
        return
    for name in _segments() - _BEFORE - _mapped():
        try:
            os.unlink(os.path.join(SHM, name))
        except OSError:
            pass


@pytest.fixture(autouse=True)
def _stop_signal_dispositions():
    """A test that stops a run in-process leaves SIGTERM/SIGUSR1 ignored (hpcflow.stop_signals), and children
    inherit SIG_IGN; one that stops it by Ctrl-C may leave SIGINT to a stop request's handler: give every test the
    dispositions the test before it started with. A command that finished in-process (in a fixture of module or wider
    scope, which runs before this) leaves SIGTERM/SIGUSR1 (and SIGINT, unless called through `hpcflow.cli.main`) to
    `stop_signals.finished`'s handler for the rest of the process, as a finished command should: each test starts
    from the default action instead."""
    from hpcflow import stop_signals

    for sig in (*stop_signals.ENDING, signal.SIGINT):
        if signal.getsignal(sig) is stop_signals._after_the_result:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)
