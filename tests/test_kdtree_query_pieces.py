"""KD-tree queries run in C, where a stop request (SIGTERM, SIGUSR1, Ctrl-C) waits until the query ends: one query of
10^5 points in the 25 projector features of P^4 runs for minutes, so `hpcflow run` of a noise scan or a tree
distance scaling ignored scancel until the Slurm kill. The queries go in pieces of rows (`query_in_pieces`), bitwise
the one query's result, and a request is honoured between pieces."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

import hpcflow.geometry.distance as distance
from hpcflow.cluster.nearest import nearest_point
from hpcflow.experiments.distance_scaling import nearest_neighbour_distance, tree_candidates
from hpcflow.geometry.distance import fs_distance, projector_features
from hpcflow.kernels.delta import nearest_source, tree_nearest

HERE = os.path.dirname(__file__)


def _points(n, seed, dup=0):
    """n random points of P^2 (complex rows), the first `dup` repeated at the end (exact ties)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) + 1j * rng.normal(size=(n, 3))
    return np.concatenate([z, z[:dup]]) if dup else z


def _pieces(monkeypatch, rows):
    """Pieces of `rows` rows each (rows None: one query)."""
    monkeypatch.setattr(distance, "QUERY_FIRST_ROWS", rows or 10**9)
    monkeypatch.setattr(distance, "QUERY_SECONDS", 0.0)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_a_query_in_pieces_is_bitwise_one_query(monkeypatch, k):
    ref, q = _points(300, 0, dup=40), _points(200, 1)
    q = np.concatenate([q, ref[::7]])  # queries on reference points: ties at distance 0 with the duplicates
    tree, f = cKDTree(projector_features(ref)), projector_features(q)
    d0, i0 = tree.query(f, k=k)
    for rows in (1, 3, 64):
        _pieces(monkeypatch, rows)
        d, i = distance.query_in_pieces(tree, f, k)
        assert d.shape == d0.shape and i.shape == i0.shape and i.dtype == i0.dtype
        assert np.array_equal(d, d0) and np.array_equal(i, i0)


def test_delta_nearest_in_pieces_is_the_brute_force_nearest_smallest_index_on_ties(monkeypatch):
    ref, q = _points(150, 2, dup=30), _points(120, 3)
    q = np.concatenate([q, ref[:30]])  # each of these has two reference points at distance 0
    want = []
    for row in fs_distance(q, ref):
        want.append(int(np.flatnonzero(row == row.min()).min()))
    results = []
    for rows in (None, 1, 7):
        _pieces(monkeypatch, rows)
        results.append(nearest_source(q, ref))
        d, i = tree_nearest(cKDTree(projector_features(ref)), projector_features(q), workers=2)
        results.append(i)
    assert all(np.array_equal(r, want) for r in results)


def test_distance_scaling_tree_in_pieces_is_one_query(monkeypatch):
    z = _points(400, 4, dup=25)
    _pieces(monkeypatch, None)
    d0 = nearest_neighbour_distance(z, workers=2)
    c0 = tree_candidates(z[:250], z[100:], np.arange(100, len(z)), workers=2)
    assert np.sum(d0 == 0) >= 50  # the duplicates are each other's nearest
    for rows in (1, 5):
        _pieces(monkeypatch, rows)
        assert np.array_equal(nearest_neighbour_distance(z, workers=2), d0)
        c = tree_candidates(z[:250], z[100:], np.arange(100, len(z)), workers=2)
        assert all(np.array_equal(a, b) for a, b in zip(c, c0))


def test_cluster_nearest_point_in_pieces_is_one_query(monkeypatch):
    ref, q = _points(200, 5, dup=20), _points(150, 6)
    q = np.concatenate([q, ref[:20]])
    _pieces(monkeypatch, None)
    i0, d0 = nearest_point(ref, q)
    _pieces(monkeypatch, 2)
    i, d = nearest_point(ref, q)
    assert np.array_equal(i, i0) and np.array_equal(d, d0)


def test_noise_scan_in_pieces_is_one_query(monkeypatch, tmp_path):
    """The scan's table (nearest train point of each noisy point: the scan's own query, and the Delta kernel's)."""
    from hpcflow.experiments import noise_scan
    from hpcflow.jobs import registry

    job = tmp_path / "job.toml"
    job.write_text('[job]\nkind = "noise_scan"\n[geometry]\nn_train = 120\n[kernel]\nname = "delta"\n[flow]\n'
                   'dt = 0.5\nsteps = 3\nloss = "ultralocal"\n[noise]\nscales = [0.0, 0.03, 1.0]\n')
    tables = []
    for rows in (None, 1):
        _pieces(monkeypatch, rows)
        out = tmp_path / f"out{rows}"
        out.mkdir()
        tables.append(noise_scan.run(registry.load(job)[1], out)["table"])
    assert tables[0] == tables[1] and tables[0][2]["mean_distance_to_nearest_train"] > 0


DRIVER = """
import sys
import scipy.spatial

class Tree(scipy.spatial.cKDTree):
    said = False

    def query(self, x, *args, **kwargs):
        if not Tree.said and self.n >= 100000:  # the long query (or its first piece) begins
            Tree.said = True
            print("querying", file=sys.stderr, flush=True)
        return super().query(x, *args, **kwargs)

scipy.spatial.cKDTree = Tree
sys.argv[0] = "hpcflow"
from hpcflow.stop_signals import record_early
record_early()
from hpcflow.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_request_during_a_long_tree_query_ends_the_run_at_once(tmp_path, sig):
    """A tree distance scaling of 10^5 points (one query of every point: tens of seconds in C) ends within a few
    seconds of a SIGTERM / SIGUSR1, as the kinds without a checkpoint do: 128 + the signal, one line, no result."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text('[job]\nkind = "distance_scaling"\n[geometry]\nmanifold = "fermat"\ndim = 3\nchart = [0, 1]\n'
                   '[scaling]\nn_points = [100000, 100001]\nmethod = "tree"\n')
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.pathsep.join([os.path.join(HERE, ".."),
                                                                              os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "run", str(job), "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while (line := proc.stderr.readline()) != "querying\n":
            assert line, "the run ended before its query"
        time.sleep(1.0)  # well inside the query: one query of 10^5 rows takes tens of seconds
        sent = time.monotonic()
        proc.send_signal(sig)
        status = proc.wait(timeout=15)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert status == 128 + sig and took < 5, (status, took, err)
    ours = [line for line in err.splitlines() if line.strip()]
    assert ours == [f"hpcflow run: stopped by {signal.Signals(sig).name}"] or (
        len(ours) == 1 and ours[0].startswith(f"hpcflow run: stopped by {signal.Signals(sig).name}")), err
    assert not out.exists(), os.listdir(out)
