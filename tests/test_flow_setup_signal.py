"""A stop request (SIGTERM, SIGUSR1, Ctrl-C) received while a flow is set up (its points sampled and clustered, before
its checkpoint writer exists) stops `hpcflow run` as soon as the setup ends, before the first step's kernel sums, on
every rank: the checkpoint of step 0 (g_FS), summary.json "preempted", exit 4 and the one line naming the command that
continues it, which ends with the uninterrupted run's datasets and summary numbers, bit for bit. It used to end the run
at once (exit 143, nothing written but the lock), then at the end of the first step: an unclustered flow of millions
of points took far longer over that step than a batch system's grace time. Rank 0 says the first request at once."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from test_ctrl_c import FLOW
from test_ctrl_c import STEPS as CTRL_C_STEPS
from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "flow_setup_signal_driver.py")
STEPS = 5
JOB = FLOW.replace(f"steps = {CTRL_C_STEPS}", f"steps = {STEPS}")  # a clustered flow; no periodic checkpoint
#: the same job unclustered ("exact": every rank's rows against all train points)
EXACT = JOB[:JOB.index("[clustering]")] + JOB[JOB.index("[checkpoint]"):]
#: what rank 0 says at once, for a request it received (Ctrl-C; SIGTERM, SIGUSR1 by name)
ACK = ("hpcflow run: stop requested{by}: the run stops with a checkpoint before its first step, if one is left, once "
       "its points are {setup}{again}")


@pytest.mark.parametrize("ranks, rank, sig, job", [(1, 0, "TERM", "clustered"), (2, 1, "TERM", "clustered"),
                                                   (1, 0, "INT", "clustered"), (2, 0, "INT", "clustered"),
                                                   (1, 0, "TERM", "exact"), (2, 0, "USR1", "exact")])
def test_a_request_during_setup_stops_before_the_first_step_and_resume_is_bitwise_the_uninterrupted_run(
        tmp_path, ranks, rank, sig, job):
    """The request reaches one rank (at 2 ranks rank 1, whose request every rank honours together, or rank 0).
    Where rank 0 received it, it says at once in one line when the run will stop (the setup may take minutes before
    the run stops: before, a batch log said nothing of a SIGTERM until then); a request to rank 1 alone is said when
    honoured. The stopped run did no kernel sums: its checkpoint holds step 0, the uninterrupted run's sigma at step 0,
    and no step's history."""
    clustered = job == "clustered"
    (tmp_path / "job.toml").write_text(JOB if clustered else EXACT)
    job = tmp_path / "job.toml"
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    r = subprocess.run(["timeout", "60", *launch, sys.executable, DRIVER, str(rank), str(job), str(cut), str(whole),
                        sig], capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    said = [(tmp_path / f"cut.said.{k}").read_text().splitlines() for k in range(ranks)]
    # stopped with 4, then resumed and the whole run with 0; no kernel sums before the stop, on every rank
    assert said == [["statuses 4 0 0", "kernel_sums 0"]] * ranks, said
    again = shlex.join(["hpcflow", "run", str(job), "--out", str(cut), "--quiet", "--resume"])  # the driver's 2nd
    lead = "under mpiexec (2 ranks, or any other number), " if ranks > 1 else ""  # the launch it is to be run with
    lines = r.stderr.splitlines()
    if rank == 0:
        assert lines[:1] == [ACK.format(by="" if sig == "INT" else f" by SIG{sig}",
                                        setup="sampled and clustered" if clustered else "sampled",
                                        again="; Ctrl-C again interrupts now" if sig == "INT" else "")], r.stderr
        lines = lines[1:]
    assert len(lines) == 1 and re.fullmatch(r"hpcflow run: stopped: signal received: checkpoint of step 0 written "
                                            rf"to \S+; {re.escape(lead)}continue with: {re.escape(again)}",
                                            lines[0]), r.stderr
    with h5py.File(f"{cut}.first.h5") as f, h5py.File(whole / "checkpoint.h5") as g:  # the stopped run's checkpoint
        assert (f.attrs["step"], f.attrs["status"]) == (0, "preempted")
        np.testing.assert_array_equal(f["history/sigma_train"][()], g["history/sigma_train"][:1])
        np.testing.assert_array_equal(f["history/sigma_test"][()], g["history/sigma_test"][:1])
        assert f["history/dt"].shape == (0,) and f["history/step_seconds"].shape == (0, ranks)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (cut, whole))
    assert [(g["from_step"], g["to_step"]) for g in a["legs"]] == [(0, 0), (0, STEPS)] and a["ranks"] == ranks
    for key in ("sigma_train_initial", "sigma_test_initial", "sigma_train_final", "sigma_test_final", "gain_train",
                "gain_test", "steps_taken", "test_held", "rejected_steps", "checkpoint_step", "status"):
        assert a[key] == b[key], key
    assert a["status"] == "finished" and a["checkpoint_step"] == STEPS
    with h5py.File(cut / "checkpoint.h5") as f, h5py.File(whole / "checkpoint.h5") as g:
        for key in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g",
                    *(("cluster/labels",) if clustered else ())):
            np.testing.assert_array_equal(f[key][()], g[key][()], err_msg=key)
        assert f["history/step_seconds"].shape == (STEPS, ranks)


def test_the_first_request_of_a_setup_is_said_once_whatever_its_signal_and_where_stderr_is_busy(capfd, monkeypatch):
    """`stop_signals.requests` with a line per signal says the first request (SIGTERM here) once, in its own words, and
    not its repeats nor a later SIGUSR1; a plain string is said for a first Ctrl-C only (as before). Where the signal
    lands while the code it interrupts is writing to sys.stderr (a buffered writer refuses the handler's reentrant
    write with a RuntimeError, which would end the run in a traceback), the line goes straight to file descriptor 2."""
    from hpcflow import stop_signals

    said = lambda signum: f"line for {signal.Signals(signum).name}"  # noqa: E731
    with stop_signals.requests(said) as pending:
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGUSR1):
            signal.raise_signal(sig)
    assert pending.is_set() and capfd.readouterr().err == "line for SIGTERM\n"
    with stop_signals.requests("ctrl-c line") as pending:
        signal.raise_signal(signal.SIGTERM)
    assert pending.is_set() and capfd.readouterr().err == ""

    class Busy:  # sys.stderr in the middle of a write of the interrupted code
        def write(self, text):
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")

        flush = write

    monkeypatch.setattr(sys, "stderr", Busy())
    with stop_signals.requests(said):
        signal.raise_signal(signal.SIGUSR1)
    monkeypatch.undo()
    assert capfd.readouterr().err == "line for SIGUSR1\n"


def test_a_request_during_a_resumes_setup_stops_it_before_its_first_step_with_the_checkpoint_it_continued(
        tmp_path, capsys, monkeypatch):
    """Under --resume (here the extension of a finished run to more steps) the state the first step starts from is the
    checkpoint's: a request while the points are sampled again stops the resume before that step with the same state
    written again ("preempted", its leg of no steps recorded), and a --resume from it ends with the uninterrupted run's
    datasets, bit for bit."""
    from hpcflow.cli import main
    from hpcflow.experiments import flow_job

    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace(f"steps = {STEPS}", "steps = 2"))
    cut, whole, more = tmp_path / "cut", tmp_path / "whole", ["--set", f"flow.steps={STEPS}"]
    assert main(["run", str(job), "--out", str(cut), "--quiet"]) == 0
    with h5py.File(cut / "checkpoint.h5") as f:
        before = {key: f[key][()] for key in ("history/sigma_train", "history/dt", "train/g", "test/g")}
    real, sent = flow_job.distribute, []

    def sample_then_sigterm(*a, **kw):  # the points are being drawn again: no checkpoint writer yet
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(flow_job, "distribute", sample_then_sigterm)
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(cut), "--quiet", "--resume", *more]) == 4
    err = capsys.readouterr().err
    assert err.startswith("hpcflow run: stop requested by SIGTERM: the run stops with a checkpoint before its first "
                          "step, if one is left, once its points are sampled\n"  # a resume clusters nothing
                          "hpcflow run: stopped: signal received: checkpoint of step 2 written to "), err
    with h5py.File(cut / "checkpoint.h5") as f:
        assert (f.attrs["step"], f.attrs["status"]) == (2, "preempted")
        for key, value in before.items():
            np.testing.assert_array_equal(f[key][()], value, err_msg=key)
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == 2
    assert [(g["from_step"], g["to_step"]) for g in summary["legs"]] == [(0, 2), (2, 2)]
    monkeypatch.setattr(flow_job, "distribute", real)
    assert main(["run", str(job), "--out", str(cut), "--quiet", "--resume", *more]) == 0
    assert main(["run", str(job), "--out", str(whole), "--quiet", *more]) == 0
    with h5py.File(cut / "checkpoint.h5") as f, h5py.File(whole / "checkpoint.h5") as g:
        assert f.attrs["step"] == STEPS
        for key in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g"):
            np.testing.assert_array_equal(f[key][()], g[key][()], err_msg=key)


def test_the_readme_says_what_a_flow_job_does_with_a_request_before_and_during_its_setup():
    """The README said what `hpcflow nn` and the kinds without checkpoints do with an early SIGTERM/SIGUSR1, not
    what a flow job does: before its setup it ends at once (tests/test_start_up_signal.py), during it the request is
    acknowledged and honoured before the first step (above), and which of the two a request about a second in gets
    depends on the load."""
    with open(os.path.join(os.path.dirname(DRIVER), os.pardir, os.pardir, "README.md"), encoding="utf-8") as fh:
        readme = " ".join(fh.read().split())
    for words in ("a flow job (`hpcflow run` of kind \"flow\") takes a request as `hpcflow nn` does",
                  "`hpcflow run: stopped by SIGTERM` (SIGUSR1), status 143 (138), or for Ctrl-C `hpcflow run: "
                  "interrupted`, 130, with nothing written: an --out it created is removed",
                  "the checkpoint under `--resume`", "any of the three is honoured before the flow's first step "
                  "(`checkpoint of step 0 written`", "A request about a second in may land on either side",
                  ACK.format(by="", setup="sampled and clustered", again="; Ctrl-C again interrupts now")[13:],
                  "for SIGTERM or SIGUSR1 `stop requested by SIGTERM: ...` without the Ctrl-C clause",
                  "stops the flow as soon as they are, before its first step's kernel work, with the checkpoint of "
                  "step 0"):
        assert words in readme, words
