"""`hpcflow nn` under mpiexec -n 2 that ends with exit status 5 (rank 0's write refused: here EFBIG beyond
RLIMIT_FSIZE, as ENOSPC on a full scratch) while rank 1 goes on into the next collective: --out's lock
(DIR/.hpcflow.lock) is released before the job is aborted, and a directory the run created is removed where no
checkpoint was written into it yet; one that was keeps its checkpoint.pt, which --resume continues."""

import os

import pytest

from hpcflow.cli import main
from test_write_failures import NN, _limited

@pytest.mark.parametrize("written", [False, True])
def test_a_refused_write_at_2_ranks_leaves_no_lock(tmp_path, written):
    pytest.importorskip("torch")
    job, out = tmp_path / "job.toml", tmp_path / "made" / "out"
    job.write_text(NN)
    if written:  # the checkpoint of epoch 2 fits, that of epoch 4 (its NTK history longer) does not
        one = tmp_path / "one"
        assert main(["nn", str(job), "--out", str(one), "--quiet", "--set", "training.epochs=2"]) == 0
        limit = (one / "checkpoint.pt").stat().st_size + 16
    else:  # job.toml fits, no checkpoint does
        limit = 4096
    r, _ = _limited(limit, "start", "nn", job, "--out", out, "--quiet", ranks=2)
    assert r.returncode == 5, r.stderr
    assert "cannot write" in r.stderr and "checkpoint.pt" in r.stderr, r.stderr
    if written:
        assert sorted(os.listdir(out)) == ["checkpoint.pt", "job.toml"]
        assert main(["nn", str(job), "--out", str(out), "--quiet", "--resume"]) == 0
    else:
        assert not (tmp_path / "made").exists(), os.listdir(tmp_path / "made")
