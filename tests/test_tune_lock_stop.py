"""A process asked to stop (SIGTERM, Ctrl-C) that waits for the journal's lock held by a stopped live process of its
host (SIGSTOP, a suspended job) gives up that wait after STOP_WAIT s, without taking the lock over and without
writing: it ends with one line naming the holder, instead of sleeping until the holder is continued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcflow.errors import EXIT_NUMERICAL, EXIT_PREEMPTED

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import os, signal, sys\nfrom hpcflow.tune.storage import file_lock\n"
        "lock = file_lock(sys.argv[1])\nlock.acquire()\nos.kill(os.getpid(), signal.SIGSTOP)\n"
        "lock.release()\nprint('released')\n")
#: a holder of the lock that runs (not stopped) until a line comes on its stdin; it says "held" once it holds it
HOLD_RUNNING = ("import sys\nfrom hpcflow.tune.storage import file_lock\nlock = file_lock(sys.argv[1])\n"
                "lock.acquire()\nprint('held', flush=True)\nsys.stdin.readline()\nlock.release()\n"
                "print('released', flush=True)\n")
#: a waiter under a stop handler (`requests`, as a tune worker's); argv: journal, "before" (a Ctrl-C handled before
#: the wait), "during" (the test signals it while it waits) or "inner" (a request, argv[3]: SIGTERM by default, taken
#: before the wait by an inner handler, as a trial's checkpoint writer takes it, whose block has ended since)
WAIT = """
import signal, sys, time
from hpcflow.stop_signals import install, requests, restore
from hpcflow.tune import storage
storage.STOP_WAIT = 2.0
lock = storage.file_lock(sys.argv[1], log=lambda line: print(line, flush=True))
with requests() as asked:
    if sys.argv[2] == "before":
        signal.raise_signal(signal.SIGINT)
        assert asked.is_set()
    if sys.argv[2] == "inner":
        taken, sig = [], signal.Signals[sys.argv[3] if len(sys.argv) > 3 else "SIGTERM"]
        old = install(lambda signum, frame: taken.append(signum))
        signal.raise_signal(sig)
        restore(old, stopping=True)
        assert taken == [sig] and not asked.is_set()
    t0 = time.monotonic()
    try:
        lock.acquire()
    except Exception as exc:
        print(type(exc).__name__, exc.signum, exc.pid, round(time.monotonic() - t0, 1), flush=True)
        print(exc.stopped(7), flush=True)
        print("status", exc.stopped(7).exit_status, flush=True)
        sys.exit(0)
print("acquired after", round(time.monotonic() - t0, 1), flush=True)
lock.release()
sys.exit(1)
"""
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _stopped_holder(journal: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(journal)], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _, status = os.waitpid(p.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    return p


def _gives_up(tmp_path: Path, when: str, signum: int, status: int | None = None) -> None:
    """The waiter (WAIT, `when`, request `signum`) gives up its wait for a stopped holder after STOP_WAIT s, with
    exit status `status` (128 + `signum` where None)."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    holder = _stopped_holder(journal)
    link = os.readlink(f"{journal}.lock")
    waiter = subprocess.Popen([sys.executable, "-c", WAIT, str(journal), when, signal.Signals(signum).name], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = waiter.stdout.readline()  # said after LOCAL_LOOK s: the waiter is in its wait
        assert first.startswith(f"hpcflow: waiting for lock {journal}.lock: held by pid {holder.pid} of this host, "
                                "which is alive (stopped"), first
        t0 = time.monotonic()
        if when == "during":
            os.kill(waiter.pid, signum)
        out, err = waiter.communicate(timeout=30)
        took = time.monotonic() - t0
        assert waiter.returncode == 0, (out, err)
        assert took < 2.0 + 8.0, took  # STOP_WAIT, and a sleep's 0.5 s, with room for a loaded machine
        lines = out.splitlines()
        assert len(lines) == 3, lines
        assert lines[0].split()[:3] == ["LockAbandoned", str(int(signum)), str(holder.pid)], lines
        assert lines[1].startswith(f"stopped by {signal.Signals(signum).name}; trial 7 was left RUNNING in the "
                                   f"journal: pid {holder.pid} of this host holds the journal's lock {journal}.lock "
                                   "while stopped"), lines
        assert lines[2] == f"status {128 + signum if status is None else status}", lines
        assert err == "", err
        assert os.readlink(f"{journal}.lock") == link  # not taken over: the holder's link stays
    finally:
        if waiter.poll() is None:  # (one that never gave up)
            waiter.kill()
            waiter.communicate()
        os.kill(holder.pid, signal.SIGCONT)
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0 and out == "released\n" and err == "", err
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]


def test_a_sigterm_during_the_wait_for_a_stopped_holder_ends_it_without_taking_the_lock(tmp_path):
    _gives_up(tmp_path, "during", signal.SIGTERM)


def test_a_ctrl_c_before_the_wait_for_a_stopped_holder_bounds_it(tmp_path):
    _gives_up(tmp_path, "before", signal.SIGINT)


def test_a_sigterm_an_inner_handler_took_before_the_wait_for_a_stopped_holder_bounds_it(tmp_path):
    """(a request honoured by a trial's checkpoint writer, whose journal writes then wait: before, for ever); the
    worker ends as a preempted one, 4"""
    _gives_up(tmp_path, "inner", signal.SIGTERM, EXIT_PREEMPTED)


def test_a_sigusr1_an_inner_handler_took_before_the_wait_for_a_stopped_holder_bounds_it_as_a_preemption(tmp_path):
    """Slurm's preemption notice, honoured by a trial's checkpoint writer: status 4 (`hpcflow submit` requeues the
    task), not 138"""
    _gives_up(tmp_path, "inner", signal.SIGUSR1, EXIT_PREEMPTED)


@pytest.mark.parametrize("sig", ["SIGUSR1", "SIGTERM"])
def test_a_request_an_inner_handler_took_before_does_not_bound_a_wait_for_a_running_holder(tmp_path, sig):
    """A request honoured before (a trial's checkpoint writer's) bounds waits for stopped holders only: a busy,
    running holder of the journal's lock is waited for past STOP_WAIT (2 s) and the lock taken once it releases it
    (it gave up with 138 after STOP_WAIT, so that a preempted worker was not requeued)."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUNNING, str(journal)], env=ENV, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiter = None
    try:
        assert holder.stdout.readline() == "held\n"
        waiter = subprocess.Popen([sys.executable, "-c", WAIT, str(journal), "inner", sig], env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = waiter.stdout.readline()  # said after LOCAL_LOOK s: the waiter is in its wait
        assert first.startswith(f"hpcflow: waiting for lock {journal}.lock: held by pid {holder.pid} of this host, "
                                "which is alive (running)"), first
        time.sleep(2.0 + 2.0)  # past STOP_WAIT (2 s), and a sleep's 0.5 s, of waiting
        assert waiter.poll() is None, waiter.communicate()
        holder.stdin.write("go\n")
        holder.stdin.flush()
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 1 and out.startswith("acquired after "), (out, err)
        assert float(out.split()[2]) >= 4.0, out
        assert err == "", err
    except BaseException:  # (not once the waiter has the lock: the holder, released, may still be ending)
        for p in (waiter, holder):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
        raise
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0 and out == "released\n" and err == "", err
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]


#: `hpcflow tune` (python -m hpcflow's start) with STOP_WAIT shortened
TUNE = ("import sys\nfrom hpcflow.stop_signals import record_early\nrecord_early()\nimport hpcflow.tune.storage as s\n"
        "s.STOP_WAIT = 2.0\nfrom hpcflow.cli import main\nsys.exit(main())\n")
ARGS = [str(ROOT / "jobs" / "tune_delta.toml"), "--quiet", "--set", "flow.steps=200", "--set", "geometry.n_train=300",
        "--set", "geometry.n_test=300"]


def _ends_leaving_its_trial(worker, t0: float, holder, journal: Path, link: str, signum: int,
                            status: int | None = None) -> int:
    """Worker `worker`, asked to stop by `signum`, ends soon after `t0` with status `status` (the stop's, 128 +
    `signum`, where None) and one line naming its trial, left RUNNING, and `holder`, whose lock link (`link`) stays:
    that trial's number."""
    _, err = worker.communicate(timeout=30)
    took = time.monotonic() - t0
    assert worker.returncode == (128 + signum if status is None else status), err
    assert took < 20, took  # STOP_WAIT (2 s) and the holder's look, with room for a loaded machine (the old worker
    # slept until the holder was continued)
    assert os.readlink(f"{journal}.lock") == link
    last = err.splitlines()[-1]
    assert last.startswith(f"hpcflow tune: stopped by {signal.Signals(signum).name}; trial ") and (
        f" was left RUNNING in the journal: pid {holder.pid} of this host holds the journal's lock {journal}.lock"
        " while stopped") in last, err
    assert "Traceback" not in err, err
    return int(last.split("; trial ")[1].split()[0])


def _end(worker, holder) -> None:
    """Kill `worker` where it still runs; continue the stopped `holder`, which releases its lock and ends."""
    if worker.poll() is None:
        worker.kill()
        worker.communicate()
    if holder is not None:
        os.kill(holder.pid, signal.SIGCONT)
        holder.communicate(timeout=60)
        assert holder.returncode == 0


def test_a_worker_stopped_while_a_stopped_process_holds_the_journal_lock_ends_and_its_trial_is_recovered(tmp_path):
    """Two Ctrl-C and a SIGTERM end a worker whose journal writes wait for a stopped holder of the journal's lock:
    status 130 (the Ctrl-C), one line naming its trial, left RUNNING, and the holder; the lock is not taken over.
    Once the holder is continued, the next worker fails that trial (its worker gone)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    out = tmp_path / "D"
    journal = out / "study.journal"
    worker = subprocess.Popen([sys.executable, "-c", TUNE, "tune", *ARGS, "--trials", "15", "--out", str(out)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder = None
    try:
        end = time.monotonic() + 60
        while not (out / "trials" / "0001").is_dir() and worker.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert (out / "trials" / "0001").is_dir()
        holder = _stopped_holder(journal)
        link = os.readlink(f"{journal}.lock")
        time.sleep(2.0)  # the worker waits in a journal write
        t0 = time.monotonic()
        for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
            worker.send_signal(sig)
            time.sleep(0.5)
        number = _ends_leaving_its_trial(worker, t0, holder, journal, link, signal.SIGINT)
    finally:
        _end(worker, holder)

    def state() -> TrialState:
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.load_study(study_name="tune_delta", storage=storage)
        return next(t for t in study.get_trials(deepcopy=False) if t.number == number).state

    assert state() == TrialState.RUNNING
    nxt = subprocess.run([sys.executable, "-m", "hpcflow", "tune", *ARGS, "--trials", "1", "--out", str(out)], env=ENV,
                         capture_output=True, text=True, timeout=120)
    # (its own trial draws flow.dt from the job's space, up to 1e4: it may diverge, status EXIT_NUMERICAL)
    assert nxt.returncode in (0, EXIT_NUMERICAL), nxt.stderr
    assert f"marked stale RUNNING trials [{number}] as failed" in nxt.stdout + nxt.stderr
    assert state() == TrialState.FAIL


def test_a_sigterm_taken_by_a_trials_checkpoint_writer_bounds_its_later_wait_for_a_stopped_holder(tmp_path):
    """A SIGTERM that the flow's checkpoint writer took during a trial (the worker stopped meanwhile, so that it takes
    the request before the holder, stopped, holds the journal's lock) bounds the journal writes that wait for that
    holder after it: status 4 (preempted, as the trial's checkpoint was written), one line naming the trial, left
    RUNNING, and the holder; the lock is not taken over. (The worker slept until the holder was continued.)"""
    out = tmp_path / "D"
    journal = out / "study.journal"
    args = [*ARGS[:-4], "--set", "geometry.n_train=600", "--set", "geometry.n_test=600", "--set", "flow.steps=3000"]
    worker = subprocess.Popen([sys.executable, "-c", TUNE, "tune", *args, "--trials", "15", "--out", str(out)],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    holder = None
    try:
        end = time.monotonic() + 60
        while not (out / "trials" / "0000" / "checkpoint.h5").exists() and worker.poll() is None \
                and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)  # in the trial's flow
        assert worker.poll() is None, worker.communicate()
        for _ in range(50):  # stopped between two journal writes (its own hold would keep the holder out)
            os.kill(worker.pid, signal.SIGSTOP)
            os.waitpid(worker.pid, os.WUNTRACED)
            if not os.path.lexists(f"{journal}.lock"):
                break
            os.kill(worker.pid, signal.SIGCONT)
            time.sleep(0.01)
        else:
            raise AssertionError("the worker always held the journal's lock")
        worker.send_signal(signal.SIGTERM)  # taken once continued: by the trial's checkpoint writer
        holder = _stopped_holder(journal)
        link = os.readlink(f"{journal}.lock")
        t0 = time.monotonic()
        os.kill(worker.pid, signal.SIGCONT)
        _ends_leaving_its_trial(worker, t0, holder, journal, link, signal.SIGTERM, EXIT_PREEMPTED)
    finally:
        _end(worker, holder)
