"""Clustered flow with a halo: the train rows' sources come from the train points alone, so the train flow does not
depend on the test set (none, or another one), at 1 and 2 ranks; the test rows keep the sources near their own
points (against a kernel sum over brute-force halos)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow.cluster import FlowBlock, flow_blocks
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface, fs_distance
from hpcflow.geometry.hermitian import pack
from hpcflow.kernels import GaussianKernel, gaussian
from hpcflow.kernels.gaussian import POLY_RTOL
from roundoff import U, assert_product_close, gaussian_entry_error
from test_flow import fd_grad
from test_parallel import mpiexec

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "halo_checks.py")
#: a kernel wide next to the halo (FS distance 0.5), so a source more or less shows in the sums
WIDTH = 0.3
CLUSTERING = dict(method="batched", n_clusters=4, batch_size=80, seed=0, halo_cutoff=0.5)
FLOW = dict(dt=0.05, steps=4)


def kernel():
    return GaussianKernel(WIDTH)


def point_sets():
    """The train set and the test sets {"a", "b", "none"} (none: no test set) of every run here."""
    X = Hypersurface.fermat(3)
    train = X.sample(240, seed=5, chart=(0, 1))
    return train, {"a": X.sample(120, seed=6, chart=(0, 1)), "b": X.sample(90, seed=7, chart=(0, 1)), "none": None}


@pytest.fixture(scope="module")
def sets():
    return point_sets()


def _serial_runs(train, tests):
    out = {}
    for name, test in tests.items():
        blocks = flow_blocks(train.points, None if test is None else test.points, **CLUSTERING)
        out[name] = blocks, kernel_flow(kernel(), train, test, blocks=blocks, **FLOW)
    return out


@pytest.fixture(scope="module")
def serial(sets):
    return _serial_runs(*sets)


def test_train_flow_is_the_same_with_either_test_set_or_none(sets, serial):
    train, tests = sets
    _, ref = serial["none"]
    assert ref.sigma_train[-1] < 0.99 * ref.sigma_train[0]  # the flow does something
    for name in ("a", "b"):
        blocks, res = serial[name]
        # the same kernel sums on the same rows: the same numbers
        np.testing.assert_array_equal(res.sigma_train, ref.sigma_train)
        np.testing.assert_array_equal(res.g_train, ref.g_train)
        # the blocks' train rows and their sources are the train points' alone
        for b, b0 in zip(blocks, serial["none"][0], strict=True):
            np.testing.assert_array_equal(b.train_idx, b0.train_idx)
            np.testing.assert_array_equal(b.source_idx, b0.source_idx)
        # control: the test set does widen some test rows' sources, and train rows flowing with those would
        # change the train history (the dependence on the test set this guards against)
        assert any(b.test_sources().size > b.source_idx.size for b in blocks)
        wide = [FlowBlock(b.train_idx, b.test_idx, b.test_sources()) for b in blocks]
        leaked = kernel_flow(kernel(), train, tests[name], blocks=wide, **FLOW)
        assert np.abs(leaked.sigma_train[1:] - ref.sigma_train[1:]).max() > 1e-8 * ref.sigma_train[1]


def test_train_flow_at_two_ranks_is_the_same_with_either_test_set_or_none(serial, tmp_path):
    env = dict(os.environ, HPCFLOW_THREADS="1")
    r = subprocess.run(["timeout", "150", mpiexec(), "-n", "2", sys.executable, SCRIPT, str(tmp_path)],
                       capture_output=True, text=True, timeout=170, env=env)
    assert r.returncode == 0, r.stderr
    one = serial["none"][1]
    got = {name: (np.load(tmp_path / f"{name}_sigma_train.npy"), np.load(tmp_path / f"{name}_g_train.npy"))
           for name in ("a", "b", "none")}
    for name, (sigma, g) in got.items():
        # the blocks' owners follow their cost, which counts test rows: a train row's kernel sum may be formed
        # cached or streamed, in another order, so the same up to rounding (the same as at 1 rank)
        np.testing.assert_allclose(sigma, one.sigma_train, rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_allclose(g, pack(one.g_train), rtol=0, atol=1e-12 * np.abs(pack(one.g_train)).max(),
                                   err_msg=name)


def test_test_rows_flow_with_the_train_points_near_the_clusters_train_and_test_points(sets, serial):
    """One step: each block's train rows take the kernel sum over the train points within halo_cutoff of its train
    points, its test rows over those within halo_cutoff of its train or test points (brute-force FS distances),
    times the finite-difference loss gradient; the tolerance carries that gradient's and the kernel's error
    bounds through the product."""
    train, tests = sets
    test = tests["a"]
    blocks = serial["a"][0]
    res = kernel_flow(kernel(), train, test, blocks=blocks, dt=FLOW["dt"], steps=1)
    grad, grad_err = fd_grad(train, "sigma")
    d_tr, d_te = fs_distance(train.points), fs_distance(test.points, train.points)
    k_tr, k_te = gaussian(train.points, width=WIDTH), gaussian(test.points, train.points, width=WIDTH)
    e_tr = gaussian_entry_error(d_tr, WIDTH, poly_rtol=POLY_RTOL)
    e_te = gaussian_entry_error(d_te, WIDTH, poly_rtol=POLY_RTOL)
    cutoff, dt = CLUSTERING["halo_cutoff"], FLOW["dt"]
    widened = 0
    for b in blocks:
        near_train = d_tr[b.train_idx].min(axis=0)
        near_any = np.minimum(near_train, d_te[b.test_idx].min(axis=0, initial=np.inf))
        src_tr, src_te = np.flatnonzero(near_train <= cutoff), np.flatnonzero(near_any <= cutoff)
        cases = [(b.train_idx, src_tr, train.g_fs, res.g_train, k_tr, e_tr, True),
                 (b.test_idx, src_te, test.g_fs, res.g_test, k_te, e_te, True)]
        if b.test_idx.size and np.setdiff1d(src_te, src_tr).size:
            # control: the test rows' update is not the sum over the train rows' sources
            cases.append((b.test_idx, src_tr, test.g_fs, res.g_test, k_te, e_te, False))
            widened += 1
        for idx, src, before, after, k, err, right in cases:
            v0, v1 = pack(before[idx]), pack(after[idx])
            ks = k[np.ix_(idx, src)]
            extra = np.abs(ks) @ grad_err[src] + 4 * U * (np.abs(v0) + np.abs(v1)) / dt
            args = ((v0 - v1) / dt, ks, grad[src])
            if right:
                assert_product_close(*args, a_err=err[np.ix_(idx, src)], extra=extra)
            else:
                with pytest.raises(AssertionError, match="worst excess"):
                    assert_product_close(*args, a_err=err[np.ix_(idx, src)], extra=extra)
    assert widened
