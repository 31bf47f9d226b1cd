"""Ranks started with different jobs (an MPMD launch, `mpiexec -n 1 hpcflow nn JOB --out D : -n 1 hpcflow nn JOB
--out D --set training.lr=1e-2`) are refused by every rank together, in one line naming the key and both values,
exit 2, before any work (--out is not created). They went on each with its own job into sampling and training and
failed late with a traceback (`TrainConfig.lr differs between ranks`, `steps differs between ranks`, exit 1): the
Python-API checks compare the arguments of each collective entry point, reached only after the work before it; the
job after its --set overrides was never compared. Jobs that read alike after the overrides are one job."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis_runs import env
from jobtexts import GAUSSIAN_KERNEL, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points
from test_parallel import RANK_STATUS, mpiexec, rank_statuses

NN = NN_POINTS + SMALL_NET + TINY_TRAINING
FLOW = flow_points(60, 40) + GAUSSIAN_KERNEL + "[flow]\ndt = 0.5\nsteps = 3\n"


def _mpmd(tmp_path, verb: str, first: list, second: list):
    """Rank 0 runs `hpcflow VERB` with `first`, rank 1 with `second`; (statuses, stdout, stderr)."""
    status = tmp_path / "status"
    status.mkdir()
    each = [[sys.executable, RANK_STATUS, str(status), sys.executable, "-m", "hpcflow", verb, *argv]
            for argv in (first, second)]
    proc = subprocess.run(["timeout", "120", mpiexec(), "-n", "1", *each[0], ":", "-n", "1", *each[1]],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=150)
    return rank_statuses(status, 2), proc.stdout, proc.stderr


@pytest.mark.parametrize("verb, text, extra, said", [
    ("nn", NN, ["--set", "training.lr=1e-2"], "[training].lr differs between ranks (0.003 on rank 0, 0.01 on rank 1)"),
    ("run", FLOW, ["--set", "flow.steps=6"], "[flow].steps differs between ranks (3 on rank 0, 6 on rank 1)"),
    ("nn", NN, ["--set", "ntk.enabled=true"], "[ntk].enabled differs between ranks (false on rank 0, true on rank 1)"),
])
def test_ranks_given_different_jobs_are_refused_together_before_any_work(tmp_path, verb, text, extra, said):
    (tmp_path / "job.toml").write_text(text)
    base = ["job.toml", "--out", "out"]
    statuses, out, err = _mpmd(tmp_path, verb, base, [*base, *extra])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and said in err and "same job file, --set values and options" in err, err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()  # refused before --out was looked into


def test_ranks_given_different_out_are_refused_together(tmp_path):
    (tmp_path / "job.toml").write_text(FLOW)
    statuses, out, err = _mpmd(tmp_path, "run", ["job.toml", "--out", "a"], ["job.toml", "--out", "b"])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and '--out differs between ranks ("a" on rank 0, "b" on rank 1)' in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_jobs_that_read_alike_after_their_overrides_are_one_job(tmp_path):
    """A --set on one rank alone that gives a key the value the file has changes nothing: the ranks agree."""
    (tmp_path / "job.toml").write_text(FLOW)
    base = ["job.toml", "--out", "out", "--check"]
    statuses, out, err = _mpmd(tmp_path, "run", base, [*base, "--set", "flow.steps=3"])
    assert statuses == [0, 0], out + err
    assert out.count("\n") == 1 and "valid" in out and "nothing run" in out, out + err


TUNE = ["job.toml", "--out", "study", "--trials", "1", "--quiet", "--set", "geometry.n_train=60",
        "--set", "flow.steps=2"]


@pytest.mark.parametrize("extra, said", [
    (["--set", "flow.steps=3"], "[flow].steps differs between ranks (2 on rank 0, 3 on rank 1)"),
    (["--trials", "2"], "--trials differs between ranks (1 on rank 0, 2 on rank 1)"),
])
def test_tune_workers_given_different_studies_are_refused_together_before_any_trial(tmp_path, extra, said):
    """`hpcflow tune` under mpiexec runs each trial's flow on every rank: ranks given another job or options went
    on into the trial's collectives (or one rank's trial count alone counted), unsaid."""
    (tmp_path / "job.toml").write_text(open("jobs/tune_delta.toml").read())
    statuses, out, err = _mpmd(tmp_path, "tune", TUNE, [*TUNE, *extra])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and said in err and "same job file, --set values and options" in err, err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "study").exists()  # refused before the study directory was made


@pytest.mark.parametrize("extra, said", [
    (["--n", "200", "--out", "a.h5"], "--n differs between ranks (100 on rank 0, 200 on rank 1)"),
    (["--n", "100", "--out", "b.h5"], '--out differs between ranks ("a.h5" on rank 0, "b.h5" on rank 1)'),
])
def test_sample_ranks_given_different_options_are_refused_together_before_any_work(tmp_path, extra, said):
    """`hpcflow sample` under mpiexec: ranks given another --n sampled into a traceback on every rank (exit 1), and
    another --out was found only by the write, after all the sampling."""
    statuses, out, err = _mpmd(tmp_path, "sample", ["--n", "100", "--out", "a.h5", "--quiet"], [*extra, "--quiet"])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and said in err and "same options" in err, err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()
