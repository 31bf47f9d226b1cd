"""`hpcflow.nn.train.train` at 2 ranks: an exception that one rank alone raises during the training (an on_step
callback's) ends the job with a non-zero status in bounded time, the raising rank's traceback on stderr, instead of
leaving the other rank waiting in the next collective for ever; with abort_on_error=False an exception that every
rank raises together propagates to each caller, as it does in one process, and so does a stop request or a Ctrl-C
(a KeyboardInterrupt) with the default guard."""

import os
import re
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.train import TrainConfig, train  # noqa: E402
from test_parallel import mpiexec  # noqa: E402

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "nn_rank_raises_driver.py")
#: seconds the job may take: torch's import and a few epochs of a tiny network, then ABORT_WAIT (3 s) and the Abort;
#: generous for a loaded machine (the point is a bounded end, not a hang), the timeouts below above it
BOUND = 180


def _run(mode: str, step: int):
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    t0 = time.monotonic()
    p = subprocess.run(["timeout", "-s", "KILL", str(BOUND + 30), mpiexec(), "-n", "2", sys.executable, DRIVER, mode,
                        str(step)], capture_output=True, text=True, timeout=BOUND + 60, env=env)
    return p, time.monotonic() - t0


def test_one_rank_raising_in_on_step_ends_the_job_nonzero_in_bounded_time():
    p, seconds = _run("one", 30)
    assert p.returncode not in (0, -9, 137), (p.returncode, p.stdout, p.stderr[-3000:])  # not the timeout's kill
    assert seconds < BOUND, (seconds, p.stderr[-3000:])
    assert "hpcflow: rank 1: ERROR RuntimeError: injected failure on rank 1 at step 30" in p.stderr, p.stderr
    assert "Traceback" in p.stderr and "failing_callback" in p.stderr, p.stderr  # the raising rank's traceback
    assert "rank 0: ERROR" not in p.stderr and "trained" not in p.stdout, (p.stdout, p.stderr)


def test_every_rank_raising_with_abort_on_error_false_propagates_to_each_caller():
    p, _ = _run("together", 30)
    assert p.returncode == 0, p.stderr[-3000:]
    # (the two ranks' lines may interleave on the shared stdout: each is found whole)
    assert sorted(re.findall(r"rank \d caught: injected failure on rank \d at step \d+", p.stdout)) == [
        f"rank {r} caught: injected failure on rank {r} at step 30" for r in (0, 1)], p.stdout


@pytest.mark.parametrize("mode, said", [
    ("stopped", "Stopped: stopped by SIGTERM"),
    ("interrupt", "KeyboardInterrupt: interrupted on rank {r} at step 30"),
])
def test_a_stop_or_ctrl_c_on_every_rank_reaches_each_caller(mode, said):
    """A `Stopped` stop request or a Ctrl-C (mpiexec forwards it to every rank) raised on every rank inside on_step
    passes the default guard untouched: each caller catches it, the job ends with 0 and no rank prints a traceback."""
    p, _ = _run(mode, 30)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    for r in (0, 1):  # (the two ranks' lines may interleave on the shared stdout: each is found whole)
        assert f"rank {r} caught {said.format(r=r)}" in p.stdout, p.stdout
    assert "Traceback" not in p.stderr and "ERROR" not in p.stderr, p.stderr


def test_one_process_propagates_the_exception():
    """One rank: the exception of on_step ends the training there and reaches the caller (nothing to abort)."""
    X = Hypersurface.fermat(3)
    tr, va = MetricData.from_pointset(X.sample(40, seed=0)), MetricData.from_pointset(X.sample(20, seed=1))
    steps = []

    def on_step(trainer):
        steps.append(trainer.step)
        if trainer.step == 3:
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        train(MetricMLP(10, depth=1, width=4, seed=0), tr, va, TrainConfig(epochs=5, batch_size=10), on_step=on_step)
    assert steps == [1, 2, 3]


def test_abort_on_error_must_be_a_bool():
    X = Hypersurface.fermat(3)
    tr, va = MetricData.from_pointset(X.sample(40, seed=0)), MetricData.from_pointset(X.sample(20, seed=1))
    with pytest.raises(TypeError, match="abort_on_error='yes' is invalid; pass True or False"):
        train(MetricMLP(10, depth=1, width=4, seed=0), tr, va, TrainConfig(epochs=1, batch_size=10),
              abort_on_error="yes")
