"""Test-wide hygiene: an MPI job that a test kills (SIGKILL, Abort, a rank that raises) leaves MPICH's
shared-memory segment /dev/shm/mpich_shm_* behind (~1-3 MB each); remove those the run left, unmapped. And the order
in which pytest-xdist's workers take the test files (`pytest_collection_modifyitems`)."""

import os
import re
import signal
from collections import Counter

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


@pytest.fixture(autouse=True)
def _environment_kept():
    """Each test leaves os.environ as it found it: a command run in-process exports the threads it chose
    (HPCFLOW_THREADS, OMP_NUM_THREADS, ...) for the processes it starts, and a later test's command took them for
    the user's (hpcflow submit then warned of an exported HPCFLOW_THREADS above --cpus-per-task)."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)

#: Test files whose few tests take long (MPI jobs, Slurm, torch: 10-40 s, one file at `-n 0` on the 2-core
#: machine), the longest first. `--dist loadfile` hands the workers one file at a time in the order of the workers'
#: collection, which pytest-xdist sorts by number of tests (most first) unless `--no-loadscope-reorder`: these files
#: then came last, and the run ended with one worker still in such a file while the other had nothing left to take.
#: With `--no-loadscope-reorder` (make test) the workers take them first, then the others, most tests first.
FIRST = (
    "test_slurm.py",
    "test_tune_study.py",
    "test_mpi.py",
    "test_late_stop_signal.py",
    "test_ctrl_c.py",
    "test_nn_mpi.py",
    "test_delta_memory.py",
    "test_mpi_faults.py",
    "test_abort_mpi.py",
    "test_force_keeps_results.py",
    "test_distributed_sampling.py",
    "test_report_leg_ranks.py",
    "test_nn_one_point_batch.py",
    "test_bad_input_properties.py",
    "test_nn_spectra_signal.py",
    "test_flow_args_mpi.py",
    "test_collective_errors.py",
    "test_out_trailing_slash.py",
    "test_nn_stop_sweep.py",
    "test_resume_ended.py",
    "test_pmix_launch.py",
    "test_cli_pipes.py",
    "test_nn_run_messages.py",
    "test_nn_post_training_stop.py",
    "test_halo_train_only.py",
    "test_tune_continue_mpi.py",
    "test_birch_flow.py",
    "test_tune_setup_signal.py",
    "test_arguments_agree_mpi.py",
    # last: taken while the other worker is still in test_slurm.py, its jobs would queue behind those for the node
    "test_slurm_script.py",
)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist with `--no-loadscope-reorder`, the workers' collection in the order the files are to be
    taken in: FIRST, then the others by number of tests (most first, as xdist's own reorder); each file's tests keep
    their order. A run without xdist, or with its reorder, keeps the order it had."""
    if not hasattr(config, "workerinput") or config.getoption("loadscopereorder", True):
        return
    files = [item.nodeid.split("::", 1)[0] for item in items]
    count = Counter(files)
    rank = {name: k for k, name in enumerate(FIRST)}
    order = {id(item): (rank.get(os.path.basename(f), len(FIRST)), -count[f]) for item, f in zip(items, files)}
    items.sort(key=lambda item: order[id(item)])  # stable: files stay whole, and ties keep the collection's order


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
