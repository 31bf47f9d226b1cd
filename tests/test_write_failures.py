"""A write the file system refuses mid-run (here EFBIG beyond RLIMIT_FSIZE, as ENOSPC or EDQUOT on a full scratch):
exit status 5 and one line naming the file, the reason, the last complete checkpoint (intact) and the command line
that continues the run; under mpiexec every rank ends with that status in bounded time. --resume, once the limit is
gone, ends with the uninterrupted run's results bit for bit."""

import errno
import json
import os
import re
import shlex
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hpcflow.atomic import TMP_MARK
from hpcflow.checkpoint import load_resume
from hpcflow.cli import main
from hpcflow.parallel.comm import ABORT_WAIT
from jobtexts import NN_POINTS, SMALL_NET, flow_points
from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "file_size_driver.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1")
REASON = os.strerror(errno.EFBIG)
#: 40 steps of the Delta kernel's flow (dt = 0.3: none rejected), checkpoints at steps 20 and 40
FLOW = flow_points(60, 20) + '[kernel]\nname = "delta"\n[flow]\ndt = 0.3\nsteps = 40\nloss = "ultralocal"\n' \
    '[checkpoint]\nevery = 20\n'
#: 4 epochs of the small network, checkpoints after epochs 2 and 4; the NTK of 4 + 4 points adds 41 kB per epoch to them
NN = NN_POINTS + SMALL_NET + "[training]\nepochs = 4\nbatch_size = 50\nlr = 3e-3\nthreads = 1\n" \
    "[ntk]\nn_train_points = 4\nn_test_points = 4\n[checkpoint]\nevery = 2\n"


def _limited(limit: int, when: str, *args, ranks: int = 1):
    """`hpcflow ARGS` with files limited to `limit` bytes from `when` on (tests/mpi/file_size_driver.py), under
    mpiexec at ranks > 1; (completed process, seconds)."""
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    t0 = time.monotonic()
    r = subprocess.run(["timeout", "60", *launch, sys.executable, DRIVER, str(limit), when, *map(str, args)],
                       capture_output=True, text=True, timeout=90, env=ENV)
    return r, time.monotonic() - t0


def _said(line: str, prefix: str, target, checkpoint, done: str, lead: str = "") -> list:
    """The continue command (argv) of `line`, which must be the write failure's whole message; `lead`: the launch it
    is to be run with, said before it."""
    said = re.fullmatch(rf"{re.escape(prefix)}cannot write {re.escape(str(target))} \({REASON}\); the last complete "
                        rf"checkpoint {re.escape(str(checkpoint))} \({done} done\) is intact: raise the file-size "
                        rf"limit \(ulimit -f\), then {re.escape(lead)}continue with: (.+)", line)
    assert said, line
    return shlex.split(said.group(1))


def _no_debris(out) -> None:
    assert not [name for name in os.listdir(out) if TMP_MARK in name], os.listdir(out)


def _same_flow(a, b) -> None:
    """Runs `a` and `b` of one flow job ended with the same results, bit for bit."""
    x, y = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("sigma_train_final", "sigma_test_final", "gain_train", "gain_test", "steps_taken", "rejected_steps",
                "checkpoint_step", "status"):
        assert x[key] == y[key], key
    with h5py.File(a / "checkpoint.h5") as f, h5py.File(b / "checkpoint.h5") as g:
        for key in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g"):
            np.testing.assert_array_equal(f[key][()], g[key][()], err_msg=key)


@pytest.mark.parametrize("fails", ["checkpoint.h5", "summary.json"])
def test_a_flow_out_of_file_space_exits_5_in_one_line_and_resumes_to_the_uninterrupted_run(tmp_path, fails):
    """The limit lets the checkpoint of step 20 through but not that of step 40 (a write mid-run), or comes once the
    flow's last checkpoint is closed (the result summary.json fails): status 5, one line naming the file, the kept
    checkpoint and its command line, which finishes the run as if never interrupted."""
    job, whole, cut = tmp_path / "job.toml", tmp_path / "whole", tmp_path / "cut"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(whole), "--quiet"]) == 0
    if fails == "checkpoint.h5":
        assert main(["run", str(job), "--out", str(tmp_path / "half"), "--quiet", "--set", "flow.steps=20"]) == 0
        first, last = ((d / "checkpoint.h5").stat().st_size for d in (tmp_path / "half", whole))
        assert first < last
        limit, when, kept = (first + last) // 2, "start", 20
    else:  # job.toml, written just before summary.json, fits
        limit, when, kept = (whole / "job.toml").stat().st_size, "closed", 40
    r, _ = _limited(limit, when, "run", job, "--out", cut, "--quiet")
    assert r.returncode == 5 and len(r.stderr.splitlines()) == 1, (r.returncode, r.stderr)
    again = _said(r.stderr.rstrip("\n"), "hpcflow run: error: ", cut / fails, cut / "checkpoint.h5", f"{kept} steps")
    assert again == ["hpcflow", "run", str(job), "--out", str(cut), "--quiet", "--resume"]
    assert load_resume(cut / "checkpoint.h5").step == kept and not (cut / "summary.json").exists()
    _no_debris(cut)
    assert main(again[1:]) == 0
    _same_flow(cut, whole)


def test_at_2_ranks_rank_0s_refused_write_ends_every_rank_with_5_in_bounded_time(tmp_path):
    """A flow resumed at 2 ranks from a checkpoint of step 20, files limited to that checkpoint's size: rank 0's
    write of step 40 fails while rank 1 goes on into the next collective; the job ends with status 5 within
    ABORT_WAIT and a margin, rank 0's one line said, the checkpoint unchanged; a resume then ends as the
    uninterrupted run."""
    job, run, whole = tmp_path / "job.toml", tmp_path / "run", tmp_path / "whole"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(run), "--quiet", "--set", "flow.steps=20"]) == 0
    before = (run / "checkpoint.h5").read_bytes()
    r, seconds = _limited(len(before), "start", "run", job, "--out", run, "--quiet", "--resume", ranks=2)
    assert r.returncode == 5, r.stderr
    assert seconds < ABORT_WAIT + 30, seconds
    lines = [line for line in r.stderr.splitlines() if line.startswith("hpcflow") and not line.startswith(
        "hpcflow run: note: ")]  # (the threads note of a resume at 2 ranks, 1 thread each, of a leg of 2 threads)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    again = _said(lines[0], "hpcflow: rank 0: error: ", run / "checkpoint.h5", run / "checkpoint.h5", "20 steps",
                  "under mpiexec (2 ranks, or any other number), ")
    assert again == ["hpcflow", "run", str(job), "--out", str(run), "--quiet", "--resume"]
    assert (run / "checkpoint.h5").read_bytes() == before
    _no_debris(run)
    assert main(again[1:]) == 0
    assert main(["run", str(job), "--out", str(whole), "--quiet"]) == 0
    _same_flow(run, whole)


def test_a_training_out_of_file_space_exits_5_and_resumes_to_the_uninterrupted_network(tmp_path):
    """`hpcflow nn`: the limit lets checkpoint.pt of epoch 2 through but not that of epoch 4 (torch.save's write
    refused): status 5, one line naming checkpoint.pt as kept with 2 epochs, and its command line gives the
    uninterrupted run's nn.h5."""
    pytest.importorskip("torch")
    from h5data import NN_TIMINGS, datasets
    from hpcflow.nn.checkpoint import load_checkpoint

    job, whole, half, cut = tmp_path / "job.toml", tmp_path / "whole", tmp_path / "half", tmp_path / "cut"
    job.write_text(NN)
    assert main(["nn", str(job), "--out", str(half), "--quiet", "--set", "training.epochs=2"]) == 0
    assert main(["nn", str(job), "--out", str(whole), "--quiet"]) == 0
    first, last = ((d / "checkpoint.pt").stat().st_size for d in (half, whole))
    assert first < last
    r, _ = _limited((first + last) // 2, "start", "nn", job, "--out", cut, "--quiet")
    assert r.returncode == 5 and len(r.stderr.splitlines()) == 1, (r.returncode, r.stderr)
    ckpt = cut / "checkpoint.pt"
    again = _said(r.stderr.rstrip("\n"), "hpcflow nn: error: ", ckpt, ckpt, "2 epochs")
    assert again == ["hpcflow", "nn", str(job), "--out", str(cut), "--quiet", "--resume"]
    state = load_checkpoint(ckpt)
    assert state["train"]["epoch"] == 2 and state["status"] == "running"
    assert not (cut / "nn.h5").exists() and not (cut / "summary.json").exists()
    _no_debris(cut)
    assert main(again[1:]) == 0
    got, ref = datasets(cut / "nn.h5"), datasets(whole / "nn.h5")
    assert got.keys() == ref.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


def test_a_tune_trial_out_of_file_space_stops_the_study_with_5_and_the_rerun_runs_its_parameters(tmp_path):
    """A trial whose checkpoint.h5 the file system refuses: the worker stops with status 5 and one line naming the
    file, the trial failed (not counted as finished by a requeued Slurm job) and its parameters queued again, no
    later trial drawn (each would fail alike: it carried on, failing every trial); the same command, once there is
    room, runs the queued parameters."""
    from optuna.trial import TrialState

    from hpcflow.tune.budget import finished
    from test_tune_records import _job, _journal

    job, out = _job(tmp_path), tmp_path / "s"
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]) == 0
    checkpoint = (out / "trials" / "0000" / "checkpoint.h5").stat().st_size
    limit = checkpoint // 2  # a trial's checkpoint does not fit; the journal of a few trials does
    assert (out / "study.journal").stat().st_size * 3 < limit
    r, _ = _limited(limit, "start", "tune", job, "--trials", "3", "--out", out, "--quiet")
    assert r.returncode == 5 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    target = out / "trials" / "0001" / "checkpoint.h5"
    assert r.stderr.rstrip("\n") == (f"hpcflow tune: error: cannot write {target} ({REASON}); trial 1 is failed, its "
                                     "parameters queued again; raise the file-size limit (ulimit -f), then run the same "
                                     "hpcflow tune command to continue the study")
    t0, t1, t2 = trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert t1.user_attrs["failure"] == f"write refused: {target} ({REASON})" and not finished(t1)
    assert t2.system_attrs["fixed_params"] == t1.params and t2.user_attrs["retry_of"] == 1
    _no_debris(out / "trials" / "0001")
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]) == 0
    trials = _journal(out / "study.journal").trials
    assert len(trials) == 3 and trials[2].state == TrialState.COMPLETE and trials[2].params == t1.params
    assert (out / "trials" / "0002" / "summary.json").is_file()
