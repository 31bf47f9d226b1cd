"""A checkpoint.h5 whose bytes are damaged (an attribute message or the global heap overwritten): --resume,
--resume --check, submit --check, the report and the analysis scripts refuse it in one line (exit 2), every rank
alike, the file untouched."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.h5read import DAMAGED

from test_checkpoint import RESUME_JOB
from test_parallel import each_rank_status, rank_statuses

#: where to overwrite 8 bytes with 0xff, found by content: (bytes marking it, offset from their start)
DAMAGES = {"attribute message": (b"schema_version\x00", -8),  # its header (version, name and type sizes)
           "global heap": (b"GCOL", 0)}  # the collection holding the variable-length string attributes


def _damage(path, how):
    """Overwrite 8 bytes of `path` at the place DAMAGES[how] names; h5py must then fail reading its attributes."""
    data = bytearray(path.read_bytes())
    mark, shift = DAMAGES[how]
    at = data.find(mark)
    assert at >= 0, f"{mark} not in {path}"
    data[at + shift:at + shift + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(DAMAGED), h5py.File(path, "r") as f:  # the damage is one h5py cannot read past
        {k: f.attrs[k] for k in f.attrs}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(job, out) of RESUME_JOB run to its end, for copies to damage."""
    from hpcflow.cli import main

    base = tmp_path_factory.mktemp("finished")
    job, out = base / "job.toml", base / "out"
    job.write_text(RESUME_JOB)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    return job, out


def _copy(finished, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished[1], out)
    return finished[0], out, out / "checkpoint.h5"


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in needles), err
    return err


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_resume_and_check_refuse_a_damaged_file_in_one_line(finished, tmp_path, capsys, how):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    (out / "summary.json").unlink()
    _damage(ck, how)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *extra]) == 2
        _one_line(capsys, f"{ck}: not a readable checkpoint", "--force")
    assert main(["submit", str(job), "--out", str(out), "--resume", "--check", "--executor", "local"]) == 2
    _one_line(capsys, f"{ck}: not a readable checkpoint", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_report_and_analysis_scripts_refuse_a_damaged_file_in_one_line(finished, tmp_path, capsys, how):
    from hpcflow.analysis.script import main as script
    from hpcflow.cli import main

    _, out, ck = _copy(finished, tmp_path)
    (out / "summary.json").unlink()  # an interrupted run: the checkpoint is all there is to read
    _damage(ck, how)
    before = ck.read_bytes()
    capsys.readouterr()
    for name in ("sigma_history", "table1"):
        assert script(name, [str(out), "--out", str(tmp_path / name)]) == 2
        _one_line(capsys, f"{ck}: not a readable HDF5 file", "--force")
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 2
    _one_line(capsys, f"{ck}: not a readable HDF5 file", "--force")
    assert ck.read_bytes() == before


def test_every_rank_refuses_a_damaged_file_together(finished, tmp_path):
    """Under mpiexec -n 2 each rank reads the damaged file: both exit 2 (no MPI_Abort), rank 0 prints one line."""
    job, out, ck = _copy(finished, tmp_path)
    _damage(ck, "attribute message")
    before = ck.read_bytes()
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
    args = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5"]
    cmd = each_rank_status(tmp_path / "statuses", 2, args)
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=env)
    assert rank_statuses(tmp_path / "statuses", 2) == [2, 2], r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{ck}: not a readable checkpoint" in lines[0], r.stderr
    assert ck.read_bytes() == before


@pytest.mark.parametrize("config", [[], "flow", 3, None])
def test_a_config_attribute_that_is_not_a_json_object_is_refused(finished, tmp_path, capsys, config):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f.attrs["config"] = json.dumps(config)
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    _one_line(capsys, f"{ck}: attribute 'config' is", "not the job's tables", "--force")
    assert ck.read_bytes() == before


def _per_rank(how, step, ranks):
    """A per-rank history of the wrong layout for a checkpoint at `step` written by `ranks` ranks."""
    return {"other rows": np.ones((step + 2, ranks)), "other columns": np.ones((step, ranks + 6)),
            "one value per step": np.ones(step), "text": np.array([["x"] * ranks] * step, dtype="S1")}[how]


@pytest.mark.parametrize("how", ["other rows", "other columns", "one value per step", "text"])
def test_a_per_rank_history_of_another_layout_is_refused(finished, tmp_path, capsys, how):
    """history/step_seconds is (step, @ranks) numbers: another layout is refused in one line naming it and the
    shape the step and ranks attributes ask for; a resume appended this run's rows to it (130 rows, not 1000)."""
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        step, ranks = int(f.attrs["step"]), int(f.attrs["ranks"])
        del f["history/step_seconds"]
        f["history/step_seconds"] = _per_rank(how, step, ranks)
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    _one_line(capsys, f"{ck}: dataset history/step_seconds has shape", f"not ({step}, {ranks}) numbers", "--force")
    assert ck.read_bytes() == before


def test_a_per_rank_history_from_another_rank_count_still_resumes(finished, tmp_path):
    """NaN rows (steps run at another R, as a resume at another R writes them) of @ranks columns resume."""
    from hpcflow.checkpoint import load_resume
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f["history/step_seconds"][0] = np.nan
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
    res = load_resume(ck)
    assert res.step == 5 and res.per_rank["step_seconds"].shape == (5, 1)


def test_a_negative_step_is_refused_as_such(finished, tmp_path, capsys):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f.attrs["step"] = -5
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    _one_line(capsys, f"{ck}: attribute step = -5 is negative", "--force")
