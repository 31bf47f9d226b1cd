"""The writability probe of --out (a file created and removed: `hpcflow.jobs.output.write_probe`) is made by rank 0
alone and its verdict given to the other ranks: every rank made one, which at thousands of ranks is a storm of
creations and removals in one directory for a parallel file system's metadata server. As many probe files at 2 ranks
as at 1."""

import os
import subprocess
import sys

import pytest

from test_parallel import mpiexec
from test_slurm_script import JOB

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "probe_count_driver.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _probes(tmp_path, ranks, *args):
    """(probe files over all ranks, status) of `hpcflow run JOB --out tmp_path/OUT ARGS` at `ranks` ranks."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", HPCFLOW_BACKEND="numpy")
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    r = subprocess.run(["timeout", "150", *launch, sys.executable, DRIVER, "run", str(job), *args], env=env,
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    said = [s for s in r.stdout.splitlines() if s.startswith("probe files: ")]
    assert len(said) == 1, (r.returncode, r.stdout, r.stderr[-3000:])
    count, status = said[0].removeprefix("probe files: ").split(" status ")
    return int(count), int(status), r


def test_check_of_out_probes_once_at_two_ranks(tmp_path):
    count, status, r = _probes(tmp_path, 2, "--out", "runs/out", "--check")
    assert (count, status) == (1, 0), r.stderr[-3000:]
    assert not (tmp_path / "runs").exists()


def test_a_run_probes_as_often_at_two_ranks_as_at_one(tmp_path):
    one = _probes(tmp_path, 1, "--out", "one", "--quiet")
    two = _probes(tmp_path, 2, "--out", "two", "--quiet")
    assert one[1] == two[1] == 0, (one[2].stderr[-2000:], two[2].stderr[-2000:])
    assert one[0] >= 1 and two[0] == one[0], (one[0], two[0])
    assert not [n for n in os.listdir(tmp_path / "two") if n.startswith(".hpcflow-probe")]


class _Rank1Of2:
    """Rank 1 of a 2-rank communicator whose bcast hands on rank 0's value `given`."""

    def __init__(self, given):
        self.given = given

    def Get_rank(self):
        return 1

    def Get_size(self):
        return 2

    def bcast(self, value, root=0):
        assert value is None and root == 0  # (a rank but 0 probes nothing itself)
        return self.given


def test_a_rank_takes_rank_0s_verdict_and_probes_no_other_directory_it_is_given(tmp_path, monkeypatch):
    """Rank 1 refuses --out as rank 0 found it (a read-only file system) without a probe of its own; a directory rank
    0 gave no verdict for is probed by the rank itself, and outside the block every probe is its own again."""
    import errno

    from hpcflow.errors import OutputPathError
    from hpcflow.jobs import output

    out, other = tmp_path / "out", tmp_path / "other"
    out.mkdir()
    other.mkdir()
    made = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, flags, *a, **k: (made.append(os.fspath(p)), real_open(p, flags, *a,
                                                                                                      **k))[1])
    rofs = {str(out): (errno.EROFS, os.strerror(errno.EROFS), None)}
    with output.probes_shared([output.probed_directory(out)], _Rank1Of2(rofs)):
        failed = output.write_probe(str(out))
        assert failed.errno == errno.EROFS and made == []
        with pytest.raises(OutputPathError, match="read-only file system"):
            output.check_outdir(str(out))
        assert made == []
        assert output.write_probe(str(other)) is None and [os.path.dirname(p) for p in made] == [str(other)]
    assert output.write_probe(str(out)) is None and len(made) == 2
    assert sorted(os.listdir(out)) == [] and sorted(os.listdir(other)) == []
