"""Clustering and flow blocks under mpiexec at 1, 2 and 3 ranks, and the longest-processing-time ownership."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow.cluster.distributed import lpt_owners
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "cluster_checks.py")


def optimal_makespan(cost, size):
    """Smallest possible largest load, by trying every assignment (small cases only)."""
    best = np.inf
    for assign in itertools.product(range(size), repeat=len(cost)):
        best = min(best, np.bincount(assign, weights=cost, minlength=size).max())
    return best


def test_lpt_is_deterministic_and_within_grahams_bound():
    rng = np.random.default_rng(0)
    for size in (1, 2, 3):
        for _ in range(20):
            cost = rng.integers(1, 50, size=rng.integers(1, 8))
            owner = lpt_owners(cost, size)
            assert owner.min() >= 0 and owner.max() < size
            np.testing.assert_array_equal(owner, lpt_owners(cost.copy(), size))
            load = np.bincount(owner, weights=cost, minlength=size).max()
            assert load <= (4 / 3 - 1 / (3 * size)) * optimal_makespan(cost, size) + 1e-9
    # ties: equal costs go to ranks 0, 1, 2, 0, ... in block order
    np.testing.assert_array_equal(lpt_owners([5, 5, 5, 5], 3), [0, 1, 2, 0])


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_distributed_blocks_equal_serial_blocks(ranks):
    env = dict(os.environ, HPCFLOW_THREADS="1")
    r = subprocess.run(["timeout", "100", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert sorted(o["rank"] for o in outs) == list(range(ranks))
    assert all(o["shares_ok"] for o in outs)
    # eq. 3.3 as printed: the same labels on every rank and for every R (the serial ones), and not the default's
    assert all(o["paper"]["labels"] == outs[0]["paper"]["labels"] for o in outs)
    assert outs[0]["paper"]["labels"] != outs[0]["batched"]["labels"]
    for name, n_batches in (("batched", 4), ("paper", 4), ("full", 1)):
        parts = [o[name] for o in outs]
        assert all(p["blocks_equal"] and p["fetch_ok"] for p in parts)
        assert all(p["owner"] == parts[0]["owner"] for p in parts)  # every rank knows the same map
        cnt = [p["counters"] for p in parts]
        assert sum(x["clustering_batches"] for x in cnt) == n_batches  # the batches are divided, not repeated
        assert sum(x["clusters_owned"] for x in cnt) == len(parts[0]["owner"])
        assert sum(x["train_owned"] for x in cnt) == 600 and sum(x["test_owned"] for x in cnt) == 200
        rows = np.concatenate([p["train_rows"] for p in parts])
        assert np.unique(rows).size == 600  # each train point is updated by exactly one rank
        cost = np.array(parts[0]["cost"])
        assert max(x["cost_owned"] for x in cnt) <= cost.sum() / ranks + cost.max() * (1 - 1 / ranks)  # list scheduling
