"""Per-cluster kernel flow (§3.1): one cluster, or a halo at cutoff pi/2, reproduce the unclustered flow."""

import numpy as np
import pytest

from hpcflow.cluster import flow_blocks
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel


@pytest.fixture(scope="module")
def train_test():
    X = Hypersurface.fermat(3)
    return X.sample(240, seed=5, chart=(0, 1)), X.sample(120, seed=6, chart=(0, 1))


def _flow(kernel, train, test, blocks, **kw):
    return kernel_flow(kernel, train, test, dt=0.1, steps=4, blocks=blocks, **kw)


def _assert_same_flow(a, b):
    np.testing.assert_allclose(a.sigma_train, b.sigma_train, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.sigma_test, b.sigma_test, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.g_train, b.g_train, rtol=0, atol=1e-12 * np.abs(b.g_train).max())
    np.testing.assert_allclose(a.g_test, b.g_test, rtol=0, atol=1e-12 * np.abs(b.g_test).max())


@pytest.mark.parametrize("kernel", [make_kernel("gaussian", width=1 / 30, normalize="row"), make_kernel("delta")],
                         ids=["gaussian", "delta"])
def test_single_cluster_and_pi_half_halo_equal_unclustered_flow(train_test, kernel):
    train, test = train_test
    ref = _flow(kernel, train, test, None)
    assert ref.sigma_train[-1] < 0.95 * ref.sigma_train[0]  # the flow does something
    one = flow_blocks(train, test, method="batched", n_clusters=1, batch_size=80, seed=0)
    assert len(one) == 1
    _assert_same_flow(_flow(kernel, train, test, one), ref)
    halo = flow_blocks(train, test, method="batched", n_clusters=4, batch_size=80, seed=0, halo_cutoff=np.pi / 2)
    assert len(halo) == 4 and all(b.source_idx.size == b.test_source_idx.size == len(train) for b in halo)
    _assert_same_flow(_flow(kernel, train, test, halo), ref)


def test_clusters_without_halo_change_the_gaussian_flow(train_test):
    """Control: dropping cross-cluster terms must change the result (else the tests above prove nothing)."""
    train, test = train_test
    kernel = make_kernel("gaussian", width=1 / 30, normalize="row")
    ref = _flow(kernel, train, test, None)
    blocks = flow_blocks(train, test, method="full", n_clusters=4)
    clustered = _flow(kernel, train, test, blocks)
    assert np.abs(clustered.g_train - ref.g_train).max() > 1e-6 * np.abs(ref.g_train).max()
