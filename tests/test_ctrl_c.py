"""Ctrl-C (SIGINT) on the commands that run work: the first is a stop request like SIGTERM where the run has
checkpoints (checkpoint of the step it stops at, exit 4, --resume continues bit for bit), a second interrupts at
once; anywhere else, and after a second one, the command ends in one line with status 130, no traceback, and no
partial file left. The processes get the signal as from a terminal: SIGINT's default action restored in the child
(a non-interactive shell starts background jobs with it ignored, and hpcflow leaves an ignored SIGINT ignored), and
under mpiexec sent to mpiexec, which forwards it to every rank."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hpcflow import stop_signals
from hpcflow.atomic import TMP_MARK
from hpcflow.jobs.output import is_result
from jobtexts import GAUSSIAN_KERNEL, NN_POINTS, SMALL_NET
from test_parallel import mpiexec

HERE = os.path.dirname(__file__)
DRIVER = os.path.join(HERE, "mpi", "ctrl_c_driver.py")
SEQUENCE = os.path.join(HERE, "mpi", "cli_sequence.py")
PAUSE = os.path.join(HERE, "mpi", "ctrl_c_pause.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1")
STEPS, SEEN = 300, 20  # the flow's steps; Ctrl-C once its progress line of step SEEN is out
FLOW = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 240
n_test = 90
seed = 3
""" + GAUSSIAN_KERNEL + f"""[flow]
dt = 1.0
steps = {STEPS}
loss = "ultralocal"
[clustering]
method = "batched"
n_clusters = 12
batch_size = 80
halo_cutoff = 0.3
[checkpoint]
every = {STEPS}
"""
EPOCHS = 150
NN = NN_POINTS + SMALL_NET + f"""[training]
epochs = {EPOCHS}
batch_size = 20
lr = 3e-3
threads = 1
[ntk]
enabled = false
[checkpoint]
every = {EPOCHS}
"""


def _ctrl_c_default():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the child's Python then raises KeyboardInterrupt, as at a terminal


def _start(cmd, log):
    """`cmd` as the leader of a new process group (start_new_session), stdout to the file `log`, stderr piped,
    SIGINT as at a terminal."""
    with open(log, "w", encoding="utf-8") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True,
                                preexec_fn=_ctrl_c_default)


def _wait_for(proc, log, pattern, timeout=60):
    """Wait until the file `log` holds a match of `pattern` (the process still running)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, log.read_text(encoding="utf-8")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"no {pattern!r} in time"
        time.sleep(0.01)


def _ctrl_c(proc, timeout=60, *, sig=signal.SIGINT):
    """SIGINT (or `sig`) to the process (mpiexec: it forwards it to every rank); (exit status, stderr)."""
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def _resume_and_uninterrupted(cmd, again, out, monkeypatch):
    """The command line `again` (said by the stopped run of `cmd`, `python -m hpcflow ...` under mpiexec or not) and
    the uninterrupted run of `cmd` into `out`: on one rank in this process (hpcflow.cli.main, the environment of the
    subprocesses; the uninterrupted run first), which spares two starts of Python (and torch); under mpiexec both
    in one launch of the ranks on the same ranks (tests/mpi/cli_sequence.py), the command line said first."""
    args = [*cmd[cmd.index("-m") + 2:], "--out", str(out)]
    if cmd[0] == sys.executable:
        from hpcflow.cli import main

        monkeypatch.setenv("HPCFLOW_THREADS", ENV["HPCFLOW_THREADS"])
        assert main(args) == 0
        assert main(shlex.split(again)[1:]) == 0
        return
    seq = [*cmd[:cmd.index("-m")], SEQUENCE, *shlex.split(again)[1:], "--next", *args]
    r = subprocess.run(["timeout", "120", *seq], capture_output=True, text=True, timeout=150, env=ENV)
    assert r.returncode == 0, r.stderr
    assert re.findall(r"cli_sequence: command \d+ status \d+", r.stdout) == [
        "cli_sequence: command 0 status 0", "cli_sequence: command 1 status 0"], r.stdout


def _debris(out) -> list:
    """The atomic writer's temporaries left in `out` (none: an interrupted write removes its own)."""
    return [name for name in os.listdir(out) if TMP_MARK in name] if os.path.isdir(out) else []


def test_the_first_sigint_is_a_stop_request_and_a_second_interrupts():
    """In one process: the first SIGINT calls the stop request's handler, the second raises KeyboardInterrupt; once
    the handlers are restored after a stop, SIGINT interrupts again (SIGTERM's repeat is ignored instead). A SIGINT
    ignored when the handler is installed stays ignored."""
    seen = []
    old = stop_signals.install(lambda signum, frame: seen.append(signum))
    try:
        try:
            signal.raise_signal(signal.SIGINT)  # raise_signal runs the Python handler before it returns
        except KeyboardInterrupt:
            pytest.fail("the first SIGINT interrupted instead of asking the run to stop")
        assert seen == [signal.SIGINT]
        signal.raise_signal(signal.SIGTERM)  # SIGTERM's repeats are requests, not interrupts
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGINT, signal.SIGTERM, signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert len(seen) == 3
    finally:
        stop_signals.restore(old, stopping=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    # a new run in this process: its first SIGINT is a request again; from SIG_DFL a stop leaves KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    old = stop_signals.install(lambda signum, frame: seen.append(signum))
    signal.raise_signal(signal.SIGINT)
    stop_signals.restore(old, stopping=True)
    assert seen[3:] == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    old = stop_signals.install(lambda signum, frame: seen.append(signum))
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.SIGINT not in old
    stop_signals.restore(old, stopping=False)


@pytest.mark.parametrize("ranks", [1, 2])
def test_ctrl_c_mid_flow_checkpoints_its_step_and_resume_is_bitwise_the_uninterrupted_run(tmp_path, ranks,
                                                                                          monkeypatch):
    """Ctrl-C after step 20 of a flow with no periodic checkpoint due before its end: the checkpoint of the step it
    stops at (none of the steps since the start lost), summary.json "preempted", exit 4 on every rank and one line
    naming the command line that continues it, which ends with every dataset and summary number of the uninterrupted
    run, bit for bit."""
    job = tmp_path / "job.toml"
    job.write_text(FLOW)
    cut, whole, log = tmp_path / "cut", tmp_path / "whole", tmp_path / "cut.log"
    run = [*([mpiexec(), "-n", str(ranks)] if ranks > 1 else []), sys.executable, "-m", "hpcflow", "run", str(job),
           "--quiet"]
    # the run waits for its Ctrl-C after step SEEN (the rest of it takes about a second: a test held up that long
    # used to see it finish first)
    at = run.index("-m")
    proc = _start([*run[:at], PAUSE, "step", str(SEEN), *run[at + 2:], "--out", str(cut)], log)
    _wait_for(proc, log, rf"step\s+{SEEN} ")
    status, err = _ctrl_c(proc)
    assert status == 4, err  # mpiexec: the ranks' statuses ORed, so a rank's 1 or 130 would show
    lines = err.splitlines()
    again = shlex.join(["hpcflow", "run", str(job), "--out", str(cut), "--quiet", "--resume"])
    lead = "under mpiexec (2 ranks, or any other number), " if ranks > 1 else ""  # the launch it is to be run with
    said = re.fullmatch(r"hpcflow run: stopped: signal received: checkpoint of step (\d+) written to \S+; "
                        rf"{re.escape(lead)}continue with: {re.escape(again)}", lines[0])
    assert len(lines) == 1 and said, err
    with h5py.File(cut / "checkpoint.h5") as f:
        step = int(f.attrs["step"])
        assert f.attrs["status"] == "preempted" and f["history/sigma_train"].shape == (step + 1,)
    assert step == int(said.group(1)) and SEEN <= step < STEPS
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == step and summary["ranks"] == ranks
    assert not _debris(cut)
    _resume_and_uninterrupted(run, again, whole, monkeypatch)  # the command line said, on the same ranks
    a, b = (json.loads((d / "summary.json").read_text()) for d in (cut, whole))
    for key in ("sigma_train_final", "sigma_test_final", "gain_train", "gain_test", "steps_taken", "test_held",
                "rejected_steps", "checkpoint_step", "status"):
        assert a[key] == b[key], key
    with h5py.File(cut / "checkpoint.h5") as f, h5py.File(whole / "checkpoint.h5") as g:
        for key in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g", "cluster/labels"):
            np.testing.assert_array_equal(f[key][()], g[key][()], err_msg=key)
        assert f["history/step_seconds"].shape == (STEPS, ranks)


@pytest.mark.parametrize("when", ["step", "fsync"])
def test_a_second_ctrl_c_while_stopping_ends_in_one_line_with_130_and_keeps_the_last_checkpoint(tmp_path, when,
                                                                                                 monkeypatch):
    """A second SIGINT before the step boundary that honours the first, or while the stop's checkpoint is being
    synced (tests/mpi/ctrl_c_driver.py): exit 130, the one line "hpcflow run: interrupted", no traceback, the
    checkpoint of step 4 (every 2 steps) as it was, no temporary left; --resume finishes the run from it."""
    job = tmp_path / "job.toml"
    job.write_text(FLOW.replace(f"every = {STEPS}", "every = 2").replace(f"steps = {STEPS}", "steps = 8"))
    out = tmp_path / "out"
    cmd = [sys.executable, DRIVER, "5", when, "run", str(job), "--out", str(out), "--quiet"]
    r = subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90, env=ENV,
                       preexec_fn=_ctrl_c_default)
    assert r.returncode == 130 and r.stderr == "hpcflow run: interrupted\n", (r.returncode, r.stderr)
    with h5py.File(out / "checkpoint.h5") as f:
        assert f.attrs["step"] == 4 and f.attrs["status"] == "running"
    assert not _debris(out) and not (out / "summary.json").exists()
    from hpcflow.cli import main  # the resume in this process (the environment of the subprocesses)

    monkeypatch.setenv("HPCFLOW_THREADS", ENV["HPCFLOW_THREADS"])
    assert main(["run", str(job), "--out", str(out), "--resume", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 8
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # an in-process caller keeps its Ctrl-C


@pytest.mark.parametrize("when", ["summary", "exit"])
def test_a_ctrl_c_once_the_stop_is_complete_leaves_its_status_4(tmp_path, when):
    """A second SIGINT once the stop's checkpoint is written and its status decided, while summary.json is being
    written or once the command has returned (a real SIGINT from here, sent after the stop line is out), changes
    nothing: exit 4, the stop line alone, summary.json "preempted", the checkpoint of the step it stopped at."""
    job = tmp_path / "job.toml"
    job.write_text(FLOW.replace(f"every = {STEPS}", "every = 2").replace(f"steps = {STEPS}", "steps = 8"))
    out = tmp_path / "out"
    cmd = [sys.executable, DRIVER, "5", when, "run", str(job), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True, preexec_fn=_ctrl_c_default)
    try:
        lines = []
        if when == "exit":
            lines = [proc.stderr.readline() for _ in range(2)]  # the stop line, then the driver's "returned"
            assert lines[1] == "returned\n", lines
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = "".join(lines[:1]) + err
    assert proc.returncode == 4, (proc.returncode, err)
    assert re.fullmatch(r"hpcflow run: stopped: signal received: checkpoint of step 5 written to \S+; continue with: "
                        r".* --resume\n", err), err
    with h5py.File(out / "checkpoint.h5") as f:
        assert f.attrs["step"] == 5 and f.attrs["status"] == "preempted"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == 5
    assert not _debris(out)


def test_ctrl_c_mid_training_writes_checkpoint_pt_and_resume_is_bitwise_the_uninterrupted_run(tmp_path,
                                                                                               monkeypatch):
    """`hpcflow nn`: Ctrl-C after epoch 2 of a training with no periodic checkpoint due: checkpoint.pt of where it
    stopped, summary.json "preempted", exit 4 and one line naming the command line that continues it (the --set
    values too), which gives the uninterrupted run's nn.h5."""
    pytest.importorskip("torch")
    from h5data import NN_TIMINGS, datasets
    from hpcflow.nn.checkpoint import load_checkpoint

    job = tmp_path / "job.toml"
    job.write_text(NN)
    cut, whole, log = tmp_path / "cut", tmp_path / "whole", tmp_path / "cut.log"
    nn = [sys.executable, "-m", "hpcflow", "nn", str(job), "--quiet", "--set", "training.lr=3e-3"]
    proc = _start([sys.executable, PAUSE, "epoch", "2", *nn[3:], "--out", str(cut)], log)  # waits for its Ctrl-C
    _wait_for(proc, log, r"epoch\s+2 ")
    status, err = _ctrl_c(proc)
    assert status == 4, err
    lines = err.splitlines()
    again = shlex.join(["hpcflow", "nn", str(job), "--out", str(cut), "--quiet", "--resume", "--set",
                        "training.lr=3e-3"])
    assert len(lines) == 1 and re.fullmatch(r"hpcflow nn: stopped: signal received: checkpoint written after epoch "
                                            rf"\d+( \+ \d+ batches)?; continue with: {re.escape(again)}", lines[0]), err
    state = load_checkpoint(str(cut / "checkpoint.pt"))
    epoch = int(state["train"]["epoch"])
    assert state["status"] == "running" and 2 <= epoch < EPOCHS
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == epoch
    assert not _debris(cut) and not (cut / "nn.h5").exists()
    _resume_and_uninterrupted(nn, again, whole, monkeypatch)  # the command line said
    got, ref = datasets(cut / "nn.h5"), datasets(whole / "nn.h5")
    assert got.keys() == ref.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


#: `python -m DRIVER`: a command whose KeyboardInterrupt leaves a string run by exec on its way, as a Ctrl-C that lands
#: in SciPy's import of its array-API shim (`exec("from numpy import *")`) does
INTERRUPTED_IN_EXEC = {
    "hpcflow": "import sys\nimport hpcflow.cli\nhpcflow.cli._run = lambda args: exec('raise KeyboardInterrupt')\n"
               "sys.argv = ['hpcflow', 'info']\nimport runpy\nrunpy.run_module('hpcflow', run_name='__main__')\n",
    "table1": "import sys\nimport hpcflow.analysis.script as script\n"
              "script._main = lambda *a, **k: exec('raise KeyboardInterrupt')\nsys.exit(script.main('table1'))\n",
}


@pytest.mark.parametrize("prog", sorted(INTERRUPTED_IN_EXEC))
def test_an_interrupt_that_left_a_string_run_by_exec_still_ends_with_130(tmp_path, prog):
    """CPython marks a KeyboardInterrupt that leaves a string run by `exec` as unhandled for good, and `python -m`
    then ends the process by SIGINT at its exit (status -2 to the parent), even where the command caught it: the
    command (hpcflow's CLI, an analysis script) still ends with its one line and 130."""
    (tmp_path / "interrupted_in_exec.py").write_text(INTERRUPTED_IN_EXEC[prog], encoding="utf-8")
    path = os.pathsep.join([str(tmp_path), os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], capture_output=True, text=True, timeout=120,
                       env=dict(ENV, PYTHONPATH=path))
    assert (r.returncode, r.stderr) == (130, f"{'hpcflow info' if prog == 'hpcflow' else prog}: interrupted\n")


@pytest.mark.parametrize("sig, ranks", [(signal.SIGINT, 1), (signal.SIGINT, 2), (signal.SIGTERM, 1),
                                         (signal.SIGTERM, 2), (signal.SIGUSR1, 2)])
def test_a_stop_request_to_a_job_without_checkpoints_ends_in_one_line_with_128_plus_the_signal(tmp_path, sig, ranks):
    """A noise scan (no checkpoints) stops at once on Ctrl-C, SIGTERM or SIGUSR1: exit 128 + the signal (130, 143,
    138: the shell's status for a process the signal ended, under mpiexec too, not the launcher's banner and bare
    signal number), one line "hpcflow run: interrupted" / "... stopped by SIGTERM" (under mpiexec one rank's, rank
    0's unless it waits in a collective, before the job's Abort), no traceback, no result and no temporary in --out; on one rank the --out the run created, with nothing of its own
    written, is removed, lock file included (under mpiexec rank 0 may wait in a collective for a rank that stopped,
    and be ended by the Abort as by a kill)."""
    out, log = tmp_path / "out", tmp_path / "log"
    job = os.path.join(HERE, "..", "jobs", "noise_scan_gaussian.toml")
    cmd = [sys.executable, "-m", "hpcflow", "run", job, "--out", str(out), "--set", "flow.steps=400", "--quiet"]
    proc = _start([*([mpiexec(), "-n", str(ranks)] if ranks > 1 else []), *cmd], log)
    deadline = time.monotonic() + 60
    while not out.is_dir():  # validated: the scan is under way
        assert proc.poll() is None and time.monotonic() < deadline, "the scan did not start"
        time.sleep(0.01)
    status, err = _ctrl_c(proc, sig=sig)
    assert status == 128 + sig, err
    said = "interrupted" if sig == signal.SIGINT else f"stopped by {signal.Signals(sig).name}"
    ours = [line for line in err.splitlines() if line.startswith("hpcflow")]
    assert len(ours) == 1 and ours[0].startswith(f"hpcflow run: {said}") and "Traceback" not in err, err
    assert "EXIT STRING" not in err and "BAD TERMINATION" not in err, err  # no launcher banner
    left = os.listdir(out) if out.is_dir() else []
    assert not [name for name in left if is_result(name)] and not _debris(out), left
    if ranks == 1:  # under mpiexec a rank that waits in a collective for one that stopped is ended by the Abort
        assert not out.exists(), left


def test_an_interrupt_before_mpi_init_names_the_other_ranks(tmp_path):
    """Under mpiexec a Ctrl-C that lands before MPI_Init (in the imports) ends every rank with 130; a rank > 0 (its
    launcher's rank variable) names itself and speaks after rank 0, as once MPI runs, where each rank said the same
    line as if it ran alone."""
    (tmp_path / "interrupted_in_exec.py").write_text(INTERRUPTED_IN_EXEC["hpcflow"], encoding="utf-8")
    path = os.pathsep.join([str(tmp_path), os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "interrupted_in_exec"], capture_output=True,
                       text=True, timeout=120, env=dict(ENV, PYTHONPATH=path))
    assert r.returncode == 130, r.stderr
    assert sorted(r.stderr.splitlines()) == ["hpcflow info: interrupted", "hpcflow info: interrupted (rank 1)"]
