"""PointSet.save of shares at R = 2, 3: rows that load would refuse on one rank are refused by every rank together
(the same one-line ValueError, no file), before the gather that the other ranks would otherwise wait in."""

import os
import subprocess
import sys

import pytest

from test_parallel import mpiexec

SCRIPT = """
import os, sys
from hpcflow.geometry import Hypersurface
from hpcflow.parallel.comm import resolve
c = resolve()
r, R = c.Get_rank(), c.Get_size()
ps = Hypersurface.fermat(3).sample(90, seed=0, layout="share")
if r == R - 1:
    ps.omega2[4] *= 3  # this rank's rows no longer fit their points
try:
    ps.save(sys.argv[1])
    outcome = "saved"
except ValueError as exc:
    outcome = f"refused: {exc}"
with open(os.path.join(sys.argv[2], f"rank{r}"), "w") as fh:
    fh.write(outcome)
c.Barrier()
"""


@pytest.mark.parametrize("ranks", [2, 3])
def test_rows_one_rank_holds_badly_are_refused_by_every_rank(tmp_path, ranks):
    (tmp_path / "out").mkdir()
    (tmp_path / "ranks").mkdir()
    path = tmp_path / "out" / "share.h5"
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(["timeout", "120", mpiexec(), "-n", str(ranks), sys.executable, "-c", SCRIPT, str(path),
                        str(tmp_path / "ranks")], capture_output=True, text=True, timeout=150, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    outcomes = {(tmp_path / "ranks" / f"rank{q}").read_text() for q in range(ranks)}
    assert len(outcomes) == 1, outcomes  # every rank: the same refusal
    msg = outcomes.pop()
    assert msg.startswith(f"refused: PointSet.save({path}, rows of rank {ranks - 1}): dataset 'omega2' does not "
                          "agree with its points: at row 4 "), msg
    assert list((tmp_path / "out").iterdir()) == []
