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


ROUND_TRIP = """
import errno, os, resource, signal, sys
from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.parallel.comm import resolve
c = resolve()
r = c.Get_rank()
ps = Hypersurface.fermat(3).sample(2000, seed=0)
outcomes = []
for k in range(4):  # README: save on every rank, then load on every rank
    path = os.path.join(sys.argv[1], f"ps{k}.h5")
    ps.save(path)
    outcomes.append(len(PointSet.load(path)))
if r == 0:  # rank 0's write fails after every check passed (file size limit: EFBIG)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    ps.save(os.path.join(sys.argv[1], "big.h5"))
    outcomes.append("saved")
except OSError as exc:
    outcomes.append(f"{type(exc).__name__} {errno.errorcode.get(exc.errno)}")
with open(os.path.join(sys.argv[2], f"rank{r}"), "w") as fh:
    fh.write(repr(outcomes))
c.Barrier()
"""


@pytest.mark.parametrize("ranks", [2, 3])
def test_save_returns_on_every_rank_once_the_file_is_there_or_fails_on_every_rank(tmp_path, ranks):
    """Ranks > 0 returned before rank 0 had written, so the README's save-then-load raised 'does not exist' there;
    and a write that failed on rank 0 returned normally on the others."""
    (tmp_path / "out").mkdir()
    (tmp_path / "ranks").mkdir()
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(["timeout", "120", mpiexec(), "-n", str(ranks), sys.executable, "-c", ROUND_TRIP,
                        str(tmp_path / "out"), str(tmp_path / "ranks")], capture_output=True, text=True,
                       timeout=150, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    for q in range(ranks):
        assert (tmp_path / "ranks" / f"rank{q}").read_text() == repr([2000] * 4 + ["WriteFailed EFBIG"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"ps{k}.h5" for k in range(4)]
