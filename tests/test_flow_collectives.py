"""The kernel flow's collectives per step at R = 2, 3, and its results at R = 1, 2, 3 bitwise those of eq. 3.5 with
one correctly rounded global sum per quantity (tests/mpi/flow_collective_checks.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from test_parallel import mpiexec

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "flow_collective_checks.py")
#: the kernel sums' own collectives (gradients gathered, tile pair partial sums to their owners)
KERNEL_SUMS = ("Allgatherv", "Alltoallv")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow_collectives")
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    for ranks in (1, 2, 3):
        r = subprocess.run(["timeout", "240", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(out)],
                           capture_output=True, text=True, timeout=270, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_step_calls_five_collectives_besides_the_kernel_sums(runs, ranks):
    """With a callback and a CheckpointWriter (as `hpcflow run`): the loss gradient's kappa term, the trial dt
    with the new kappas, sigma_train + sigma_test + test_held, the callback's stop and the writer's two flags. The
    step called 12: kappa, each sigma's two sums and test_held apart, and three Allreduces more (the writer's
    flags one each, and on_step's answer, False on every rank)."""
    calls = json.loads((runs / f"calls_{ranks}.json").read_text())
    assert len(calls) == 5  # from each step's callback to the next: steps 1-2 ... 5-6
    for step in calls:
        others = [name for name in step if name not in KERNEL_SUMS]
        assert sorted(others) == ["Allreduce"] * 2 + ["allgather"] * 3, step
        assert sorted(set(step) - set(others)) == sorted(KERNEL_SUMS), step  # the kernel sums are counted


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_results_are_bitwise_those_of_one_sum_per_quantity(runs, ranks):
    got = np.load(runs / f"flow_{ranks}.npz")
    assert got["rejected"][0] > 0  # trial steps were rejected (decided in the kappa collective)
    assert got["sigma_train"][-1] != got["sigma_train"][0]  # the metrics move
    for key in ("sigma_train", "sigma_test", "dt", "test_held", "g_train", "g_test"):
        a, b = got[key], got[f"ref_{key}"]
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{key} at R={ranks}"
