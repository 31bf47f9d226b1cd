"""A flow checkpoint whose root attribute hpcflow_version is not a string (an integer, an array: no run writes one)
is refused by --resume and --resume --check as damaged, in one line naming the file and the attribute (exit 2, the
file unchanged), on one rank and under mpiexec -n 2 (every rank exits 2, rank 0 alone says it). A string, whatever
version it names, resumes and is written anew (`test_checkpoint_wrong_types`)."""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow import __version__
from test_checkpoint import RESUME_JOB
from test_parallel import each_rank_status, rank_statuses

ENV = {"HPCFLOW_THREADS": "1", "HPCFLOW_QUIET": "1", "HPCFLOW_BACKEND": "numpy"}
WRONG = {"integer": 5, "array": np.array(["0.1.0", "0.1.0"], dtype=h5py.string_dtype()), "floats": np.zeros(3)}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """(job, out) of RESUME_JOB run to step 2 of its steps: a checkpoint a --resume continues."""
    from hpcflow.cli import main

    base = tmp_path_factory.mktemp("root_version")
    job, out = base / "job.toml", base / "out"
    job.write_text(RESUME_JOB)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    return job, out


def _damaged(stopped, tmp_path, value):
    job, base = stopped
    out = tmp_path / "out"
    shutil.copytree(base, out)
    ck = out / "checkpoint.h5"
    with h5py.File(ck, "r+") as f:
        f.attrs["hpcflow_version"] = value
    return job, out, ck


@pytest.mark.parametrize("check", [False, True], ids=["resume", "check"])
@pytest.mark.parametrize("how", sorted(WRONG))
def test_a_root_version_no_run_writes_is_refused(stopped, tmp_path, capsys, monkeypatch, how, check):
    from hpcflow.cli import main

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    job, out, ck = _damaged(stopped, tmp_path, WRONG[how])
    before = ck.read_bytes()
    capsys.readouterr()
    argv = ["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=3"]
    assert main(argv + ["--check"] * check) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hpcflow run: error: {ck}: attribute hpcflow_version = "), err
    assert "is not a string" in err[0] and "the checkpoint is damaged" in err[0] and "--force" in err[0], err
    assert ck.read_bytes() == before


def test_a_root_version_no_run_writes_is_refused_by_every_rank_in_one_line(stopped, tmp_path):
    job, out, ck = _damaged(stopped, tmp_path, 5)
    before = ck.read_bytes()
    env = dict(os.environ, **ENV)
    args = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=3"]
    r = subprocess.run(["timeout", "120", *each_rank_status(tmp_path / "statuses", 2, args)], capture_output=True,
                       text=True, timeout=150, env=env)
    assert rank_statuses(tmp_path / "statuses", 2) == [2, 2], r.stderr
    lines = r.stderr.strip().splitlines()
    said = f"hpcflow run: error: {ck}: attribute hpcflow_version = 5 is not a string"
    assert len(lines) == 1 and lines[0].startswith(said), r.stderr
    assert ck.read_bytes() == before


def test_another_version_string_resumes_and_is_written_anew(stopped, tmp_path, monkeypatch):
    from hpcflow.cli import main

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    job, out, ck = _damaged(stopped, tmp_path, "0.0.1")
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=3"]) == 0
    with h5py.File(ck, "r") as f:
        assert f.attrs["hpcflow_version"] == __version__ and int(f.attrs["step"]) == 3
