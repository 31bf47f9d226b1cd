"""A stop request (SIGTERM, SIGUSR1, a first Ctrl-C) honoured at the step where a flow ends anyway (its last step,
or the step its early stop ends it at) has nothing left to stop: `hpcflow run` finishes as the uninterrupted run
(final checkpoint, summary status "finished", exit 0, the same checkpoint.h5 bit for bit). It used to write a
"preempted" checkpoint and exit 4, so that Slurm requeued (or recorded as failed) a run whose steps were all done,
and its --resume only wrote the summary. A request honoured one step earlier still stops the run with status 4.
The signal comes from the checkpoint writer's hook at the chosen step (tests/mpi/flow_stop_driver.py), on one rank."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from h5data import datasets
from hpcflow.jobs.output import read_summary
from test_flow_legs import DRIVER, JOB, STEPS, _env
from test_parallel import mpiexec

#: [flow].early_stop = 2 with these points (test_flow_legs's job: steps = STEPS) ends the flow at step EARLY of 30
EARLY = 3
EVERY = ["--set", "checkpoint.every=4"]  # a periodic checkpoint before the last step, none at it
RUNS = {"last": EVERY, "early": [*EVERY, "--set", "flow.steps=30", "--set", "flow.early_stop=2"]}
#: per-step, per-rank figures: wall-clock seconds (different in any two runs) and bytes sent (one column per rank)
PER_RANK = {"history/step_seconds", "history/kernel_seconds", "history/comm_seconds", "history/comm_bytes"}
ENDED = ("step", "status", "stopped", "best", "since_best", "test_held")


def _run(ranks, step, at, args):
    prog = [sys.executable, DRIVER, str(step), at, *args]
    cmd = prog if ranks == 1 else [mpiexec(), "-n", str(ranks), *prog]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env())


def _checkpoint(out):
    path = os.path.join(out, "checkpoint.h5")
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in ENDED}
    return attrs, {k: v for k, v in datasets(path).items() if k not in PER_RANK}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """{run: (checkpoint.h5's end attributes, datasets)} of the runs without a stop request (one rank, in process)."""
    from hpcflow.cli import main

    tmp = tmp_path_factory.mktemp("laststep")
    job = tmp / "job.toml"
    job.write_text(JOB)
    out = {}
    for name, sets in RUNS.items():
        assert main(["run", str(job), "--out", str(tmp / name), "--quiet", *sets]) == 0
        out[name] = _checkpoint(tmp / name)
    assert out["last"][0]["step"] == STEPS and out["early"][0]["step"] == EARLY  # the steps these tests stop at
    return job, out


# a request at the step the run ends at: SIGUSR1 (a time limit's notice), SIGTERM, a first Ctrl-C; one rank and two
@pytest.mark.parametrize("run, ranks, at", [("last", 1, "0:SIGUSR1"), ("last", 2, "1:SIGUSR1"), ("last", 1, "0:SIGINT"),
                                            ("early", 1, "0:SIGTERM"), ("early", 2, "0:SIGUSR1")])
def test_a_stop_request_at_the_step_the_flow_ends_finishes_the_run(tmp_path, uninterrupted, run, ranks, at):
    job, ref = uninterrupted
    out = str(tmp_path / "out")
    step = STEPS if run == "last" else EARLY
    p = _run(ranks, step, at, ["run", str(job), "--out", out, *RUNS[run]])
    assert p.returncode == 0, (p.returncode, p.stderr[-3000:])
    assert f"wrote {out}/summary.json" in p.stdout, p.stdout
    assert "--resume" not in p.stderr and "preempted" not in p.stderr, p.stderr
    summary = read_summary(out)
    assert (summary["status"], summary["checkpoint_step"]) == ("finished", step)
    attrs, data = _checkpoint(out)
    want_attrs, want = ref[run]
    assert attrs == want_attrs and attrs["status"] == "finished"
    assert sorted(data) == sorted(want)
    for name, value in want.items():
        np.testing.assert_array_equal(data[name], value, err_msg=name)


# one step before: the run has steps left, and stops there with its checkpoint
@pytest.mark.parametrize("run, ranks, at", [("last", 2, "1:SIGUSR1"), ("early", 1, "0:SIGTERM")])
def test_a_stop_request_one_step_earlier_still_preempts_the_run(tmp_path, uninterrupted, run, ranks, at):
    job, _ = uninterrupted
    out = str(tmp_path / "out")
    step = (STEPS if run == "last" else EARLY) - 1
    p = _run(ranks, step, at, ["run", str(job), "--out", out, *RUNS[run]])
    assert p.returncode == 4, (p.returncode, p.stderr[-3000:])
    assert f"checkpoint of step {step} written" in p.stderr and "--resume" in p.stderr, p.stderr
    summary = read_summary(out)
    assert (summary["status"], summary["checkpoint_step"]) == ("preempted", step)
    assert _checkpoint(out)[0]["status"] == "preempted"


def test_a_stop_request_at_a_trial_s_last_step_completes_it_and_stops_the_worker_before_the_next(tmp_path):
    """In `hpcflow tune`, the trial's flow finishes (COMPLETE, summary "finished") and the request, passed on to the
    worker, stops it before its next trial with status 4; the trial used to be preempted and queued again."""
    from optuna.trial import TrialState

    from test_tune_records import JOB as TUNE_JOB
    from test_tune_records import _journal

    job, out = tmp_path / "tiny.toml", tmp_path / "s"
    job.write_text(TUNE_JOB)
    last = 3  # the job's [flow].steps
    assert f"steps = {last}\n" in TUNE_JOB
    p = _run(1, last, "0:SIGUSR1", ["tune", str(job), "--trials", "2", "--out", str(out), "--quiet"])
    assert p.returncode == 4 and "signal received between trials" in p.stderr, (p.returncode, p.stderr[-3000:])
    assert read_summary(out / "trials" / "0000")["status"] == "finished"
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]
