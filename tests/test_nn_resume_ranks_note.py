"""`hpcflow nn --resume` at another rank count than the checkpoint's last leg says so in one line (rank 0 only),
naming that leg's rank count, as it does of another thread count: the run then equals the uninterrupted one to
rounding only (the sums over the ranks' shards round otherwise), not bit for bit."""

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from hpcflow.cli import main  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING  # noqa: E402

TINY = NN_POINTS + SMALL_NET + TINY_TRAINING


def _mpi2(args):
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert exe, "mpiexec not found: install the test extra (mpich wheel)"
    return subprocess.run([exe, "-n", "2", sys.executable, "-m", "hpcflow", *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd()))


def _notes(err: str) -> list:
    return [s for s in err.splitlines() if "last leg ran" in s]


def test_a_resume_at_two_ranks_of_a_one_rank_leg_says_so_once(tmp_path, capsys):
    """A run of 1 epoch at 1 rank resumed to 2 epochs at 2 ranks: one line on stderr naming both rank counts and
    that 1 rank resumes it bit for bit (it said nothing); its second leg resumed to 3 epochs at 2 ranks says none."""
    job, out = tmp_path / "job.toml", tmp_path / "run"
    job.write_text(TINY)
    assert main(["nn", str(job), "--out", str(out), "--set", "training.epochs=1"]) == 0
    capsys.readouterr()
    p = _mpi2(["nn", str(job), "--out", str(out), "--resume", "--set", "training.epochs=2"])
    assert p.returncode == 0, p.stderr
    notes = _notes(p.stderr)
    assert len(notes) == 1, p.stderr
    assert "note: 2 ranks, where the checkpoint's last leg ran 1" in notes[0], notes
    assert "not bit for bit" in notes[0] and "(1 rank, as that leg ran, resumes it bit for bit)" in notes[0], notes
    assert not _notes(p.stdout)
    p = _mpi2(["nn", str(job), "--out", str(out), "--resume", "--set", "training.epochs=3"])
    assert p.returncode == 0, p.stderr
    assert not _notes(p.stderr), p.stderr


def test_a_resume_at_the_same_rank_count_says_nothing_of_ranks(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "run"
    job.write_text(TINY)
    assert main(["nn", str(job), "--out", str(out), "--set", "training.epochs=1"]) == 0
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--resume", "--set", "training.epochs=2"]) == 0
    assert not _notes(capsys.readouterr().err)
