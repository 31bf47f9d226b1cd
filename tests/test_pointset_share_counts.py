"""A draw sampled with layout "share" under MPI and saved (the save gathers the shares to rank 0) writes the file the
single-process draw writes: with the draw's counts, @intersections and (in a chart) @other_charts, which every rank
knows after the sampling; a save of a subset of the shares writes none. The save's write probe is made once, by
rank 0, not on every rank."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.geometry import PointSet
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "share_counts_driver.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(out, ranks):
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(["timeout", "150", mpiexec(), "-n", str(ranks), sys.executable, DRIVER, str(out)],
                       capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    said = [s for s in r.stdout.splitlines() if s.startswith("probe files: ")]
    assert len(said) == 1, r.stdout
    return int(said[0].removeprefix("probe files: "))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    base = tmp_path_factory.mktemp("share_counts")
    return base / "one", _run(base / "one", 1), base / "two", _run(base / "two", 2)


def _contents(path):
    with h5py.File(path, "r") as f:
        return dict(f.attrs), {k: f[k][()] for k in f}


@pytest.mark.parametrize("name", ["share.h5", "chart.h5"])
def test_gathered_shares_write_the_single_process_file(saved, name):
    one, _, two, _ = saved
    attrs1, data1 = _contents(one / name)
    attrs2, data2 = _contents(two / name)
    assert "intersections" in attrs1 and (name == "share.h5") == ("other_charts" not in attrs1)
    assert sorted(attrs2) == sorted(attrs1)
    for k, v in attrs1.items():
        assert np.array_equal(attrs2[k], v), (k, attrs2[k], v)
    assert sorted(data2) == sorted(data1)
    for k, v in data1.items():
        assert np.array_equal(data2[k], v), k
    back1, back2 = PointSet.load(one / name), PointSet.load(two / name)
    assert back2.intersections == back1.intersections > 0
    assert back2.other_charts == back1.other_charts


def test_saved_subset_of_shares_has_no_counts(saved):
    one, _, two, _ = saved
    for d in (one, two):
        with h5py.File(d / "sub.h5", "r") as f:
            assert "drawn_n" in f.attrs
            assert "intersections" not in f.attrs and "other_charts" not in f.attrs
        assert PointSet.load(d / "sub.h5").intersections is None


def test_save_probes_once_at_two_ranks(saved):
    _, probes1, _, probes2 = saved
    assert probes1 == probes2 == 1, (probes1, probes2)
