"""Whole sets on every rank at R = 2, 3: `kernel_flow` flows one set (not R copies) and gives the single-process
histories; `PointSet.save` of shares writes every rank's rows (not rank 0's alone). Given global indices that are
not, over the ranks, each row index once, blocks that leave one rank's row out, and sets that are wrong on one rank
or together (charts, manifolds, a NaN weight, test or blocks on some ranks only, no train point), are refused by every
rank together; a partition r::R flows as one process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.geometry.pointset import FIELDS
from hpcflow.kernels import make_kernel
from hpcflow.parallel.decompose import counts, share
from roundoff import gamma
from test_parallel import each_rank_status, mpiexec, rank_statuses

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "whole_set_checks.py")
N_TRAIN, N_TEST, STEPS = 200, 100, 3
KERNELS = {"delta": {}, "gaussian_row": dict(width=1 / 30, normalize="row", engine="numpy")}
#: the row-normalised Gaussian's updates are sums of N_TRAIN kernel-weighted gradients whose order may follow the
#: split (each within 2 gamma_N relatively); every other sum is correctly rounded (exact_sum) and every other
#: operation is per point, so the histories may differ by that rounding carried through det (cubic), kappa and
#: the next steps (a 1e3 margin); the Delta kernel's update is a gather: bitwise.
ATOL = {"delta": 0.0, "gaussian_row": 1e3 * STEPS * gamma(N_TRAIN)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole_sets")
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    for ranks in (2, 3):
        r = subprocess.run(["timeout", "120", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(out)],
                           capture_output=True, text=True, timeout=150, env=env)
        assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def serial():
    X = Hypersurface.fermat(3)
    train, test = X.sample(N_TRAIN, seed=0, chart=(0, 1)), X.sample(N_TEST, seed=1, chart=(0, 1))
    return {name: kernel_flow(make_kernel(name.split("_")[0], **kw), train, test, dt=17.0, steps=STEPS,
                              loss="ultralocal")
            for name, kw in KERNELS.items()}


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("name", list(KERNELS))
def test_whole_sets_on_every_rank_flow_once(runs, serial, ranks, name):
    got = np.load(runs / f"flow_{ranks}.npz")
    for key in ("sigma_train", "sigma_test"):
        ref = getattr(serial[name], key)
        assert ref[-1] != ref[0]  # the flow moves the metrics
        every_rank = got[f"{name}_{key}"]
        assert every_rank.shape == (ranks, STEPS + 1)
        for hist in every_rank:
            np.testing.assert_allclose(hist, ref, rtol=0, atol=ATOL[name], err_msg=f"{name} {key} at R={ranks}")
    # each rank kept its share of each set: the work is divided, not repeated
    np.testing.assert_array_equal(got[f"{name}_rows"], np.stack([counts(N_TRAIN, ranks), counts(N_TEST, ranks)], 1))


@pytest.mark.parametrize("ranks", [2, 3])
def test_save_of_shares_writes_every_rank_rows(runs, ranks):
    saved, whole = PointSet.load(runs / f"share_{ranks}.h5"), Hypersurface.fermat(3).sample(1000, seed=0)
    assert len(saved) == 1000
    for f in FIELDS:
        a, b = getattr(saved, f), getattr(whole, f)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f


@pytest.fixture(scope="module")
def index_runs(tmp_path_factory):
    """R -> (output folder, each rank's exit status, stderr) of the script's "indices" mode."""
    found = {}
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    for ranks in (2, 3):
        out = tmp_path_factory.mktemp(f"indices_{ranks}")
        cmd = each_rank_status(out / "status", ranks, [sys.executable, SCRIPT, str(out), "indices"])
        r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=env)
        found[ranks] = out, rank_statuses(out / "status", ranks), r.stderr
    return found


def refusals(ranks):
    """case of tests/mpi/whole_set_checks.py -> how every rank's message starts, counted from the case's layout."""
    n_overlap = N_TRAIN + 5 * (ranks - 1)  # each rank but the last holds 5 rows of the next rank's share as well
    n_local = int(counts(N_TEST, ranks).max())  # test rows numbered from 0 on each rank: 0..largest share - 1
    want = {
        "overlap": f"train_idx: the ranks' indices together hit {N_TRAIN} of range({n_overlap}): "
                   f"{n_overlap - N_TRAIN} duplicated across ranks and as many missing",
        "gap": f"train_idx on rank {ranks - 1}: index {N_TRAIN} is outside range({N_TRAIN})",
        "test_local": f"test_idx: the ranks' indices together hit {n_local} of range({N_TEST}): "
                      f"{N_TEST - n_local} duplicated across ranks",
        "rank0_only": f"train_idx: given on rank(s) 0 but not on {', '.join(map(str, range(1, ranks)))};",
        "block_one_rank": "blocks: a block's train point is not among this rank's train rows",
        "block_gap_one_rank": f"blocks: train points on rank {ranks - 1} in no block (1 of "
                              f"{counts(N_TRAIN, ranks)[-1]}, the first {share(N_TRAIN, ranks, ranks - 1)[0]}) would "
                              "not flow; pass blocks that hold every train and test point once",
    }
    if ranks >= 3:  # a partition of which rank 0 alone holds its exact-mode run
        want["exact_order"] = "exact mode (blocks=None): each rank's train rows must be its consecutive run"
    return {**want, **set_refusals(ranks)}


def set_refusals(ranks):
    """case of the script's `set_cases` -> how every rank's message starts; the last rank is the odd one out."""
    last, others = ranks - 1, ", ".join(map(str, range(ranks - 1)))
    by_rank = (f"(rank(s) {others}: (0, 1); rank(s) {last}: (1, 2)); kernel_flow needs every train and test point in "
               "one chart")
    return {
        "chart_one_rank": f"test: points in 2 charts (0, 1), (1, 2) {by_rank}",
        "chart_by_rank": f"train: points in 2 charts (0, 1), (1, 2) {by_rank}",
        "manifold_one_rank": f"test on rank {last}: points on dwork(dim=3, psi=(0.3+0j)), train on rank 0: points on "
                             "fermat(dim=3); pass train and test points of one manifold",
        "test_some_ranks": f"test: given on rank(s) {', '.join(map(str, range(1, ranks)))} but not on 0; pass a test "
                           "set on every rank",
        "blocks_some_ranks": f"blocks: given on rank(s) 0 but not on {', '.join(map(str, range(1, ranks)))}; pass "
                             "blocks on every rank",
        "empty_train": "train: the train set has no points (on any rank)",
        "float_idx_one_rank": f"train_idx on rank {last}: index {share(N_TRAIN, ranks, last)[0] + 0.5!r} is not a "
                              "whole number; pass integer global indices",
        "nan_weight_one_rank": f"train on rank {last}: weights[3] = nan is not a finite number >= 0; pass the Monte "
                               "Carlo weights",
    }


@pytest.mark.parametrize("ranks, case", [(ranks, case) for ranks in (2, 3) for case in refusals(ranks)])
def test_indices_that_are_not_each_row_once_are_refused_by_every_rank(index_runs, ranks, case):
    """Every rank refuses with the same line, a ValueError marked collective (`abort_on_error` lets it through)."""
    want = refusals(ranks)[case]
    out, _, stderr = index_runs[ranks]
    assert (out / f"refused_{ranks}.json").exists(), stderr
    every = [m[case] for m in json.loads((out / f"refused_{ranks}.json").read_text())]
    assert len(every) == ranks and all(e is not None for e in every), f"{case} accepted at R={ranks}: {every}"
    assert every == [every[0]] * ranks  # every rank refuses, with the same line
    line, collective = every[0]
    assert "\n" not in line and line.startswith(want), line
    assert collective, f"{case} at R={ranks}: the ValueError is not marked collective"


@pytest.mark.parametrize("ranks", [2, 3])
def test_rows_of_one_chart_per_rank_but_not_the_same_end_every_rank(ranks, tmp_path):
    """Each rank's rows lie in one chart, the last rank's in another: uncaught, every rank ends (status 1) with the
    same one-line ValueError within the time limit (no rank flows on, none waits)."""
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    cmd = each_rank_status(tmp_path / "status", ranks, [sys.executable, SCRIPT, str(tmp_path), "charts"])
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=env)
    assert rank_statuses(tmp_path / "status", ranks) == [1] * ranks, r.stderr
    _every_rank_said(r.stderr, set_refusals(ranks)["chart_by_rank"], ranks)


@pytest.mark.parametrize("ranks", [2, 3])
def test_whole_sets_with_arange_indices_end_every_rank(index_runs, ranks):
    """Uncaught, the refusal ends every rank (status 1, its own one-line ValueError) within the time limit."""
    _, statuses, stderr = index_runs[ranks]
    assert statuses == [1] * ranks, stderr
    _every_rank_said(stderr, f"train_idx: the ranks' indices together hit {N_TRAIN} of range({ranks * N_TRAIN}): ",
                     ranks)


def _every_rank_said(stderr: str, message: str, ranks: int) -> None:
    """Each of the ranks printed an uncaught ValueError with `message`. The interpreter writes the type name, ': '
    and the message in separate writes, so another rank's traceback lines can land between them on the shared
    stderr: the message is counted, not the lines."""
    assert stderr.count(message) == ranks and stderr.count("ValueError") >= ranks, stderr


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_strided_partition_flows_as_one_process(index_runs, serial, ranks):
    out, _, stderr = index_runs[ranks]
    assert (out / f"strided_{ranks}.npz").exists(), stderr
    got = np.load(out / f"strided_{ranks}.npz")
    for k in range(ranks):
        np.testing.assert_array_equal(got[f"train_idx_{k}"], np.arange(k, N_TRAIN, ranks))
        np.testing.assert_array_equal(got[f"test_idx_{k}"], np.arange(k, N_TEST, ranks))
        for key in ("sigma_train", "sigma_test"):
            np.testing.assert_allclose(got[f"{key}_{k}"], getattr(serial["gaussian_row"], key), rtol=0,
                                       atol=ATOL["gaussian_row"], err_msg=f"{key} of rank {k} at R={ranks}")
