"""Errors every rank raises at the same point on the same (allgathered) data, at 2 and 3 ranks: through the CLI one
"error:" line from rank 0, every rank's exit status 2, no MPI Abort; through the Python API every rank catches the
ConfigError and goes on with the others (a collective after it completes), as `hpcflow tune`'s workers need."""

import os
import subprocess
import sys
import time

import pytest

from hpcflow.parallel.comm import ABORT_WAIT
from test_parallel import each_rank_status, rank_statuses

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "collective_error_checks.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
#: what each CLI mode's one line says
SAID = {"placed": "hpcflow sample: error: dwork(dim=1, psi=-1e+07): 100.0% of the ",
        "batches": "hpcflow sample: error: could not find 20000 points in chart (0, 1) in 1 batches (found ",
        "birch": "hpcflow run: error: "}
#: seconds a run may take: the ranks' start-up and a little sampling (1-2 s measured); an error path that waited
#: for ABORT_WAIT at a barrier per rank, or for a collective no other rank enters, takes longer
PROMPT = 20.0


def _run(mode: str, ranks: int, tmp_path, *, timeout: float = 60):
    t0 = time.monotonic()
    cmd = each_rank_status(tmp_path / "status", ranks, [sys.executable, SCRIPT, mode, str(tmp_path)])
    r = subprocess.run(["timeout", str(timeout), *cmd], capture_output=True, text=True, timeout=timeout + 30,
                       env=ENV)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("mode,ranks", [("placed", 2), ("placed", 3), ("batches", 2), ("batches", 3), ("birch", 2)])
def test_a_refusal_every_rank_decides_alike_is_one_line_and_status_2_from_every_rank(tmp_path, mode, ranks):
    """The sampler's refusals after its first wave (check_placed; max_batches) and a clustering job's Birch with
    one cluster: rank 0's line alone (no 'hpcflow: rank r:' line per rank, no Abort), each rank exits with 2."""
    r, seconds = _run(mode, ranks, tmp_path)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(SAID[mode]), r.stderr
    assert "hpcflow: rank" not in r.stderr and "Abort" not in r.stderr, r.stderr
    assert r.returncode == 2 and rank_statuses(tmp_path / "status", ranks) == [2] * ranks, r.stderr
    assert seconds < PROMPT, seconds
    assert not os.path.exists(tmp_path / "out.h5")  # nothing written


@pytest.mark.parametrize("ranks", [2, 3])
def test_every_rank_catches_the_refusal_and_goes_on_with_the_others(tmp_path, ranks):
    """Hypersurface.sample past max_batches, distributed_labels by a method rank 0 runs alone with more clusters
    than points, distributed_blocks with no train point: every rank raises the ConfigError, marked collective
    (so `abort_on_error` lets it through), catches it, and the allreduce after it sums every rank."""
    r, seconds = _run("api", ranks, tmp_path, timeout=ABORT_WAIT + PROMPT)
    assert r.returncode == 0, r.stderr
    said = [f"{mode}: rank {k}: caught ConfigError collective=True allreduce={ranks}"
            for mode in ("sample", "labels", "blocks") for k in range(ranks)]
    # counted, not split into lines: the ranks share stdout, and one rank's newline may come after another's line
    assert [r.stdout.count(line) for line in said] == [1] * len(said), r.stdout
    assert r.stdout.count("rank") == len(said), r.stdout
    assert seconds < PROMPT, seconds
