"""A damaged checkpoint in --out (a flow's checkpoint.h5, a network's checkpoint.pt) is refused in one line (exit 2,
nothing on disk changed) that gives the command line starting the run over, shell-quoted so that it can be pasted
as it is, not only the words "pass --force"; the line pasted then runs."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from hpcflow.cli import main
from test_checkpoint import RESUME_JOB
from test_parallel import mpiexec
from test_nn_cli import SMALL, _write  # tests/ is on sys.path (pytest's default import mode)


def _files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _given(err: str) -> list:
    """The argv of the command line the refusal `err` (one line) gives after "start over with: "."""
    assert err.count("\n") == 1, err
    line = err.split("start over with: ", 1)[1].split(" (it replaces", 1)[0]
    return shlex.split(line)


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("flow")
    job = base / "my job.toml"
    job.write_text(RESUME_JOB)
    out = base / "o ut"
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    return job, out


def _killed_and_cut(src, tmp_path, name):
    out = tmp_path / "the out"
    shutil.copytree(src, out)
    os.remove(out / "summary.json")  # as a run killed before its end leaves it
    ck = out / name
    ck.write_bytes(ck.read_bytes()[:2000])
    return out


@pytest.mark.parametrize("resume", [False, True])
def test_a_damaged_flow_checkpoint_is_refused_with_the_command_that_starts_over(flow_run, tmp_path, capsys, resume):
    job, src = flow_run
    out = _killed_and_cut(src, tmp_path, "checkpoint.h5")
    before = _files(out)
    capsys.readouterr()
    argv = ["run", str(job), "--out", str(out), "--set", "flow.steps=2", *(["--resume"] if resume else ["--quiet"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "checkpoint.h5" in err, err
    given = _given(err)
    quiet = [] if resume else ["--quiet"]
    assert given == ["hpcflow", "run", str(job), "--out", str(out), *quiet, "--force", "--set", "flow.steps=2"], err
    assert _files(out) == before
    assert main(given[1:]) == 0  # pasted, it runs
    assert "checkpoint.h5" in _files(out) and "summary.json" in _files(out)


@pytest.mark.parametrize("resume", [False, True])
def test_a_damaged_network_checkpoint_is_refused_with_the_command_that_starts_over(tmp_path, capsys, resume):
    job, first = _write(tmp_path, SMALL), tmp_path / "first"
    assert main(["nn", job, "--out", str(first), "--quiet"]) == 0
    out = _killed_and_cut(first, tmp_path, "checkpoint.pt")
    before = _files(out)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--quiet", *(["--resume"] if resume else [])]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "checkpoint.pt" in err, err
    assert _given(err) == ["hpcflow", "nn", job, "--out", str(out), "--quiet", "--force"], err
    assert _files(out) == before


def test_point_data_refused_once_sampled_give_the_command_too(flow_run, tmp_path, capsys):
    """A checkpoint whose train points are not the job's (found once the resume has sampled them): the same line."""
    import h5py

    job, src = flow_run
    out = tmp_path / "the out"
    shutil.copytree(src, out)
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f["train/points"][0, 0] += 5
    before = _files(out)
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=3"]) == 2
    err = capsys.readouterr().err
    assert "train/points at row 0" in err and "resume with the hpcflow that wrote it, or start over with: " in err, err
    assert _given(err) == ["hpcflow", "run", str(job), "--out", str(out), "--force", "--set", "flow.steps=3"], err
    assert _files(out) == before


def _under_mpiexec(argv):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
               HPCFLOW_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    p = subprocess.run(["timeout", "120", mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", *map(str, argv)],
                       env=env, capture_output=True, text=True, timeout=150)
    assert p.returncode == 2, p.stdout + p.stderr
    return p.stderr.splitlines()[0]


@pytest.mark.parametrize("resume", [False, True])
def test_under_mpiexec_the_start_over_line_names_the_launcher(flow_run, tmp_path, resume):
    """Under mpiexec -n 2 the line gave `hpcflow run ... --force` alone, which pasted as it is ran on one rank; it
    names the launcher and its rank count first, as the line that continues a preempted run does."""
    job, src = flow_run
    out = _killed_and_cut(src, tmp_path, "checkpoint.h5")
    before = _files(out)
    line = _under_mpiexec(["run", job, "--out", out, "--set", "flow.steps=2", *(["--resume"] if resume else [])])
    assert "damaged" in line and " under mpiexec (2 ranks, or any other number), start over with: " in line, line
    given = ["hpcflow", "run", str(job), "--out", str(out), "--force", "--set", "flow.steps=2"]
    assert _given(line + "\n") == given, line
    assert _files(out) == before


def test_under_mpiexec_replacing_another_kind_of_damaged_run_names_the_launcher(flow_run, tmp_path):
    """A flow job's --out holding a network run's damaged checkpoint.pt: the line that replaces it, the same way."""
    job, first = _write(tmp_path, SMALL), tmp_path / "first"
    assert main(["nn", job, "--out", str(first), "--quiet"]) == 0
    out = _killed_and_cut(first, tmp_path, "checkpoint.pt")
    before = _files(out)
    flow_job = flow_run[0]
    line = _under_mpiexec(["run", flow_job, "--out", out, "--set", "flow.steps=2"])
    assert "damaged checkpoint.pt" in line, line
    said = " or under mpiexec (2 ranks, or any other number), replace that run with: "
    assert said in line, line
    assert shlex.split(line.split(said, 1)[1]) == ["hpcflow", "run", str(flow_job), "--out", str(out), "--force",
                                                   "--set", "flow.steps=2"], line
    assert _files(out) == before
