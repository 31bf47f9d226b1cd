"""Kernel flow (eq. 3.5): one step by hand, tile and block invariance, positivity safeguard, clipping, stops."""

import numpy as np
import pytest

from hpcflow.backend import array_module, to_host
from hpcflow.flow import FlowBlock, kernel_flow
from hpcflow.geometry import Hypersurface, fs_distance
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.geometry.measures import kappa, sigma_measure
from hpcflow.kernels import DeltaKernel, GaussianKernel, Kernel, gaussian
from hpcflow.kernels.gaussian import POLY_RTOL
from hpcflow.metric import loss_and_grad
from reference import fd_loss_gradient
from roundoff import U, assert_product_close, gaussian_entry_error


@pytest.fixture(scope="module")
def sets():
    X = Hypersurface.fermat(3)
    return X.sample(300, seed=21, chart=(0, 1)), X.sample(120, seed=22, chart=(0, 1))


def fd_grad(train, loss, h=1e-5):
    """dL/dv of the total loss (kappa recomputed from v) by finite differences, and its error bound."""
    v = pack(train.g_fs)
    r = train.eta() / float(kappa(train.eta(), train.weights)) - 1.0
    assert np.abs(r).min() > 100 * h  # no point crosses the kink of |1 - eta/kappa| within a step
    return fd_loss_gradient(v, train.omega2, train.weights, np.arange(len(train)), loss=loss, weighted=True, h=h)


@pytest.mark.parametrize("loss", ["sigma", "ultralocal"])
def test_one_step_matches_hand_computation(sets, loss):
    """One step of eq. 3.5 by hand: the dense reference kernel times the finite-difference gradient of the
    loss; the tolerance carries that gradient's error bound through the kernel product."""
    train, test = sets
    res = kernel_flow(GaussianKernel(0.3), train, test, dt=0.05, steps=1, loss=loss, tile=64)
    grad, grad_err = fd_grad(train, loss)
    for pts, before, after in ((train, train.g_fs, res.g_train), (test, test.g_fs, res.g_test)):
        v0, v1 = pack(before), pack(after)
        update = (v0 - v1) / 0.05
        k = gaussian(pts.points, train.points, width=0.3)
        err = gaussian_entry_error(fs_distance(pts.points, train.points), 0.3, poly_rtol=POLY_RTOL)
        extra = np.abs(k) @ grad_err + 4 * U * (np.abs(v0) + np.abs(v1)) / 0.05
        assert_product_close(update, k, grad, a_err=err, extra=extra)
    assert res.sigma_train[0] == pytest.approx(train.sigma(), rel=1e-14)
    assert res.sigma_test[0] == pytest.approx(test.sigma(), rel=1e-14)
    eta1 = det_hermitian(res.g_train) / train.omega2
    assert res.sigma_train[1] == pytest.approx(float(sigma_measure(eta1, train.weights)), rel=1e-12)
    assert res.rejected_steps == 0 and res.steps_taken == 1 and list(res.dt_history) == [0.05]


def test_result_independent_of_tile_size(sets):
    train, test = sets
    kern = GaussianKernel(0.2)
    a = kernel_flow(kern, train, test, dt=0.5, steps=4, weighted=True, tile=2048, cache_bytes=0)
    for b in (kernel_flow(kern, train, test, dt=0.5, steps=4, weighted=True, tile=23, cache_bytes=0),
              kernel_flow(kern, train, test, dt=0.5, steps=4, weighted=True, tile=23)):  # streamed / cached
        np.testing.assert_allclose(a.sigma_train, b.sigma_train, rtol=1e-12)
        np.testing.assert_allclose(a.sigma_test, b.sigma_test, rtol=1e-12)
        np.testing.assert_allclose(a.g_train, b.g_train, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.g_test, b.g_test, rtol=1e-12, atol=1e-14)


class ScalarAsMixing(Kernel):
    """Full-mixing kernel (N1, 9, N2, 9) equal to delta_IJ K (features are the points themselves)."""

    mixes_components = True

    def __init__(self, base):
        self.base = base

    def tile_block(self, x1, x2):
        k = self.base.block(x1, x2)
        return k[:, None, :, None] * array_module(k).eye(9)[None, :, None, :]


def test_one_block_with_everything_equals_no_blocks_and_mixing_kernel(sets):
    train, test = sets
    kern = GaussianKernel(0.25, method="direct")
    a = kernel_flow(kern, train, test, dt=0.3, steps=3)
    everything = [FlowBlock(np.arange(len(train)), np.arange(len(test)), np.arange(len(train)))]
    b = kernel_flow(kern, train, test, dt=0.3, steps=3, blocks=everything, cache_bytes=0)
    c = kernel_flow(ScalarAsMixing(kern), train, test, dt=0.3, steps=3, tile=50, cache_bytes=0)
    for r in (b, c):
        np.testing.assert_allclose(r.sigma_train, a.sigma_train, rtol=1e-12)
        np.testing.assert_allclose(r.sigma_test, a.sigma_test, rtol=1e-12)
        np.testing.assert_allclose(r.g_test, a.g_test, rtol=1e-12, atol=1e-14)


def test_blocks_use_only_their_sources(sets):
    train, test = sets
    half = len(train) // 2
    blocks = [FlowBlock(np.arange(half), np.arange(0, len(test), 2), np.arange(half + 20)),
              FlowBlock(np.arange(half, len(train)), np.arange(1, len(test), 2), np.arange(half - 20, len(train)))]
    res = kernel_flow(GaussianKernel(0.3), train, test, dt=0.05, steps=1, blocks=blocks)
    # reference: dense kernel masked to each block's sources, times the finite-difference gradient
    grad, grad_err = fd_grad(train, "sigma")
    ktr, kte = gaussian(train.points, width=0.3), gaussian(test.points, train.points, width=0.3)
    etr = gaussian_entry_error(fs_distance(train.points), 0.3, poly_rtol=POLY_RTOL)
    ete = gaussian_entry_error(fs_distance(test.points, train.points), 0.3, poly_rtol=POLY_RTOL)
    for b in blocks:
        src = b.source_idx
        for idx, before, after, k, err in ((b.train_idx, train.g_fs, res.g_train, ktr, etr),
                                           (b.test_idx, test.g_fs, res.g_test, kte, ete)):
            v0, v1 = pack(before[idx]), pack(after[idx])
            ks = k[np.ix_(idx, src)]
            extra = np.abs(ks) @ grad_err[src] + 4 * U * (np.abs(v0) + np.abs(v1)) / 0.05
            assert_product_close((v0 - v1) / 0.05, ks, grad[src], a_err=err[np.ix_(idx, src)], extra=extra)
    with pytest.raises(ValueError, match="more than one"):
        kernel_flow(GaussianKernel(0.3), train, test, dt=0.05, steps=1, blocks=blocks + blocks[:1])


def test_positivity_safeguard_halves_dt(sets):
    """Delta kernel, unweighted ultra-local loss: the update of a point is dg = -dt c adj(g); where c > 0 the
    diagonal g_aa - dt c adj_aa turns negative for dt > g_aa / (c adj_aa): provably not positive definite."""
    train, _ = sets
    v = pack(train.g_fs)
    k = float(kappa(det_hermitian(train.g_fs) / train.omega2, train.weights))
    upd = loss_and_grad(v, train.omega2, train.weights, k, loss="ultralocal", weighted=False)[1]
    dt_break = np.min(np.where(upd[:, 0] > 0, v[:, 0] / np.maximum(upd[:, 0], 1e-300), np.inf))
    dt = 4.0 * dt_break
    # smallest number of halvings after which every metric is positive definite (checked by eigenvalues)
    j = next(j for j in range(30)
             if np.all(np.linalg.eigvalsh(unpack(v - dt / 2 ** j * upd)).min(axis=1) > 0))
    assert j >= 2
    res = kernel_flow(DeltaKernel(), train, None, dt=dt, steps=1, loss="ultralocal", weighted=False)
    assert res.rejected_steps == j and res.steps_taken == 1
    assert res.dt_history[0] == dt / 2 ** j
    assert np.all(np.linalg.eigvalsh(res.g_train).min(axis=1) > 0)
    stuck = kernel_flow(DeltaKernel(), train, None, dt=dt, steps=3, loss="ultralocal", weighted=False,
                        max_halvings=j - 1)
    assert stuck.steps_taken == 0 and stuck.rejected_steps == j and "positive definite" in stuck.stopped
    np.testing.assert_array_equal(pack(stuck.g_train), pack(train.g_fs))
    assert len(stuck.sigma_train) == 1


def test_clip_bounds_every_update(sets):
    train, test = sets
    res = kernel_flow(DeltaKernel(), train, test, dt=0.1, steps=1, loss="ultralocal", weighted=False, clip=1e-3)
    for g0, g1 in ((train.g_fs, res.g_train), (test.g_fs, res.g_test)):
        step = np.linalg.norm(pack(g1) - pack(g0), axis=1)
        assert step.max() <= 0.1 * 1e-3 * (1 + 1e-12)
        assert step.max() > 0.5 * 0.1 * 1e-3



def test_clip_bounds_the_update_before_dt():
    """clip bounds u = sum Theta dL/dv, the update before the factor dt: against the unclipped step (v1 - v0 =
    -dt u), every row whose |u| exceeds clip moves by exactly dt * clip along -u, every other row as unclipped."""
    train = Hypersurface.fermat(3).sample(25, seed=2, chart=(0, 1))
    kern, dt = GaussianKernel(0.5, form="gauss"), 1e-2
    v0 = pack(train.g_fs)
    u = (v0 - pack(kernel_flow(kern, train, None, dt=dt, steps=1).g_train)) / dt
    norm = np.linalg.norm(u, axis=1)
    clip = float(np.median(norm))  # about half the rows clipped
    res = kernel_flow(kern, train, None, dt=dt, steps=1, clip=clip)
    assert list(res.dt_history) == [dt]  # no halving: the step is dt
    moved = v0 - pack(res.g_train)
    big = norm > clip
    assert 0 < big.sum() < len(train)
    np.testing.assert_allclose(np.linalg.norm(moved[big], axis=1), dt * clip, rtol=1e-9)
    np.testing.assert_allclose(moved[big], dt * clip * u[big] / norm[big, None], rtol=1e-9, atol=1e-12 * dt * clip)
    np.testing.assert_allclose(moved[~big], dt * u[~big], rtol=1e-9, atol=1e-12 * dt * clip)
    assert np.linalg.norm(moved, axis=1).max() <= dt * clip * (1 + 1e-9)
    # the example of the docstring: clip=1e-4 at dt=1e-2 moves every point by 1e-6, not 1e-4
    tiny = kernel_flow(kern, train, None, dt=dt, steps=1, clip=1e-4)
    np.testing.assert_allclose(np.linalg.norm(v0 - pack(tiny.g_train), axis=1), 1e-6, rtol=1e-9)


class ZeroKernel(Kernel):
    """Forms its tiles with NumPy whatever the features' array module (on the CuPy backend the flow moves them)."""

    def tile_block(self, f1, f2):
        return np.zeros((f1.shape[0], f2.shape[0]))


def test_early_stop_and_callback(sets):
    train, test = sets
    res = kernel_flow(ZeroKernel(), train, test, dt=0.1, steps=10, early_stop=3)
    assert res.steps_taken == 3 and "early stop" in res.stopped
    np.testing.assert_allclose(res.sigma_test, test.sigma(), rtol=1e-14)
    seen = []
    res = kernel_flow(GaussianKernel(0.3), train, test, dt=0.1, steps=10,
                      callback=lambda info: seen.append(info["step"]) or info["step"] == 2)
    assert seen == [1, 2] and res.steps_taken == 2 and len(res.sigma_train) == 3


def test_a_callback_stop_at_the_early_stop_step_leaves_the_flow_early_stopped(sets):
    """A zero kernel leaves sigma at its step-0 value, so early_stop = 3 ends the flow at step 3. A callback asking
    to stop there stops nothing (the flow ends anyway: early-stopped, finished); one step before, it stops the flow.
    info["ends"] is true exactly at the step the flow ends at anyway."""
    train, test = sets
    ends = []
    res = kernel_flow(ZeroKernel(), train, test, dt=0.1, steps=10, early_stop=3,
                      callback=lambda info: ends.append(info.get("ends")) or info["step"] == 3)
    assert res.stop_kind == "early_stop" and res.stopped == "step 3: no improvement for 3 steps (early stop)"
    assert res.steps_taken == 3 and ends == [False, False, True]
    res = kernel_flow(ZeroKernel(), train, test, dt=0.1, steps=10, early_stop=3,
                      callback=lambda info: info["step"] == 2)
    assert res.stop_kind == "callback" and res.steps_taken == 2
    ends = []
    kernel_flow(ZeroKernel(), train, test, dt=0.1, steps=2, callback=lambda info: ends.append(info.get("ends")))
    assert ends == [False, True]  # the last step


def test_delta_flow_fits_train_points(sets):
    """Pointwise updates with the ultra-local loss drive eta/kappa -> 1 on the train points."""
    train, test = sets
    res = kernel_flow(DeltaKernel(), train, None, dt=0.01, steps=30, loss="ultralocal", weighted=False)
    assert res.steps_taken == 30 and res.sigma_train[-1] < 1e-3 * res.sigma_train[0]
    assert np.all(np.linalg.eigvalsh(res.g_train).min(axis=1) > 0)


class ApplyOnlyKernel:
    """A kernel with only the agreed API (mixes_components, block, apply): the flow must accept it."""

    mixes_components = False

    def __init__(self, base):
        self.base = base

    def block(self, x1, x2):
        return self.base.block(x1, x2)

    def apply(self, x, x_src, grad_src, *, tile):
        return self.block(x, x_src) @ grad_src


def test_flow_accepts_kernels_with_only_block_and_apply(sets):
    train, test = sets
    base = GaussianKernel(0.3)
    a = kernel_flow(base, train, test, dt=0.05, steps=2)
    b = kernel_flow(ApplyOnlyKernel(base), train, test, dt=0.05, steps=2)
    np.testing.assert_allclose(b.sigma_train, a.sigma_train, rtol=1e-12)
    np.testing.assert_allclose(b.g_test, a.g_test, rtol=1e-12, atol=1e-14)


class LoudOnTestKernel(ApplyOnlyKernel):
    """Gaussian on train rows, the same times `factor` on test rows (test points are not train points)."""

    def __init__(self, base, train_points, factor):
        super().__init__(base)
        self.train_points, self.factor = train_points, factor

    def block(self, x1, x2):
        k = self.base.block(x1, x2)
        same = x1 is self.train_points or np.array_equal(to_host(x1), to_host(self.train_points))
        return k if same else self.factor * k


def test_test_point_that_would_lose_positivity_is_held_and_train_flow_goes_on(sets):
    train, test = sets
    base = GaussianKernel(0.3)
    plain = kernel_flow(base, train, test, dt=0.05, steps=1)
    assert plain.test_held == 0 and np.all(np.linalg.eigvalsh(plain.g_test).min(axis=1) > 0)
    loud = kernel_flow(LoudOnTestKernel(base, train.points, 1e6), train, test, dt=0.05, steps=1)
    # the train step is untouched (no rejection, same metrics as the plain flow)
    assert loud.rejected_steps == 0 and loud.steps_taken == 1
    np.testing.assert_allclose(loud.g_train, plain.g_train, rtol=1e-12, atol=1e-15)
    # the 1e6-times larger test updates: points where it breaks positivity (by eigenvalues) keep g_FS
    cand = pack(test.g_fs) + 1e6 * (pack(plain.g_test) - pack(test.g_fs))
    breaks = np.linalg.eigvalsh(unpack(cand)).min(axis=1) <= 0
    assert 0 < breaks.sum() < len(test) and loud.test_held == breaks.sum()
    np.testing.assert_array_equal(pack(loud.g_test[breaks]), pack(test.g_fs[breaks]))
    np.testing.assert_allclose(pack(loud.g_test[~breaks]), cand[~breaks], rtol=1e-6, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(loud.g_test).min(axis=1) > 0)
