"""Discrete kernel metric flow (eq. 3.5) on train and test points, with positivity safeguards.

    v^(t+1)(x) = v^(t)(x) - dt sum_{x' in B} Theta(x, x') dl(x')/dv(x')          (eq. 3.5)

v = the m^2 packed real components of g (`hpcflow.metric`), B = the train points (or, with `blocks`, the
sources of the point's block). Train and test metrics start at g_FS and move with the same kernel sums over
train-point gradients. kappa is recomputed from all train points before every step and held fixed within it.
sigma_train / sigma_test (eq. B.11, each set with its own kappa) are recorded per step, step 0 = FS.

Safeguard: if the step leaves any train metric non-finite or not positive definite, it is rejected and
retried with dt/2, at most `max_halvings` times (each rejection is counted and logged); if even that fails,
the flow stops and `FlowResult.stopped` says why. dt returns to its set value at the next step. Test points
are predictions, not part of the descent: a test point whose update (with the accepted dt) would leave its
metric non-finite or not positive definite keeps its metric for that step (counted in `test_held`), so one
bad prediction never stalls the train flow.

Blocks (clustered / halo flows): any objects with `train_idx`, `test_idx`, `source_idx` integer arrays (e.g.
`FlowBlock`, defined in `hpcflow.cluster.blocks` and re-exported here, as `hpcflow.cluster.flow_blocks` builds). A point may be in at most one block; a
point in no block keeps its metric. kappa stays global over all train points.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from hpcflow.backend import array_module, get_xp, to_host
from hpcflow.cluster.blocks import FlowBlock  # noqa: F401 - re-exported: the one FlowBlock class
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.geometry.measures import kappa as kappa_of, sigma_measure
from hpcflow.kernels.base import DEFAULT_TILE
from hpcflow.metric import is_positive_definite, loss_and_grad

log = logging.getLogger(__name__)

#: default memory budget for kernel blocks kept across steps (see `kernel_flow`)
DEFAULT_CACHE_BYTES = 256 * 2 ** 20


@dataclass
class FlowResult:
    """History and final metrics of a kernel flow (arrays over steps have steps_taken + 1 entries)."""

    sigma_train: np.ndarray
    sigma_test: np.ndarray
    g_train: np.ndarray
    g_test: np.ndarray | None
    rejected_steps: int
    steps_taken: int
    dt_history: np.ndarray
    stopped: str = ""
    rejections: list = field(default_factory=list)
    test_held: int = 0  # test point-steps whose update was withheld to keep the metric positive definite


class _Points(NamedTuple):
    """The arrays of a PointSet the flow needs, on the array module of the run."""

    points: object
    g_fs: object
    omega2: object
    weights: object


def _on(ps, xp):
    if ps is None:
        return None
    return _Points(*(xp.asarray(getattr(ps, f)) for f in _Points._fields))


def _sigma(v, ps):
    return float(sigma_measure(det_hermitian(unpack(v)) / ps.omega2, ps.weights))


def _clip(update, clip):
    """Scale rows of `update` so that no row's Euclidean norm exceeds `clip`."""
    xp = array_module(update)
    norm = xp.linalg.norm(update, axis=1)
    scale = xp.minimum(1.0, clip / xp.maximum(norm, 1e-300))
    return update * scale[:, None]


def _positive(v, m):
    return bool(array_module(v).all(is_positive_definite(unpack(v, m=m))))


def _check_blocks(blocks, n_train, n_test):
    seen_train = np.zeros(n_train, dtype=int)
    seen_test = np.zeros(n_test, dtype=int)
    for b in blocks:
        np.add.at(seen_train, np.asarray(b.train_idx, dtype=np.int64), 1)
        np.add.at(seen_test, np.asarray(b.test_idx, dtype=np.int64), 1)
    if seen_train.max(initial=0) > 1 or seen_test.max(initial=0) > 1:
        raise ValueError("blocks: a train or test point belongs to more than one FlowBlock")


def _operator(kernel, x, x_src, tile, cache_bytes):
    """kernel.operator(x, x_src) when the kernel has one (passing cache_bytes only if it takes it), else apply."""
    make = getattr(kernel, "operator", None)
    if make is None:
        return lambda grad: kernel.apply(x, x_src, grad, tile=tile)
    if "cache_bytes" in inspect.signature(make).parameters:
        return make(x, x_src, tile=tile, cache_bytes=cache_bytes)
    return make(x, x_src, tile=tile)


def _operators(kernel, train, test, blocks, tile, cache_bytes):
    """(target set, target idx or None, source idx or None, operator) for every block, built once per flow."""
    xp = array_module(train.points)
    if blocks is None:
        share = cache_bytes // 2  # train and test operators share the cache budget
        ops = [("train", None, None, _operator(kernel, train.points, train.points, tile, share))]
        if test is not None:
            ops.append(("test", None, None, _operator(kernel, test.points, train.points, tile, share)))
        return ops
    ops, share = [], cache_bytes // (2 * max(1, len(blocks)))
    for b in blocks:
        src = np.asarray(b.source_idx, dtype=np.int64)
        src_dev = xp.asarray(src)
        xs = train.points[src_dev]
        for name, idx, ps in (("train", b.train_idx, train), ("test", b.test_idx, test)):
            idx = np.asarray(idx, dtype=np.int64)
            if ps is None or not idx.size:
                continue
            same = name == "train" and np.array_equal(idx, src)  # lets symmetric kernels halve the work
            idx_dev = xp.asarray(idx)
            x = xs if same else ps.points[idx_dev]
            ops.append((name, idx_dev, src_dev, _operator(kernel, x, xs, tile, share)))
    return ops


def _updates(ops, grad, n_train, n_test, p):
    xp = array_module(grad)
    upd = {"train": xp.zeros((n_train, p)), "test": xp.zeros((n_test, p))}
    for name, idx, src, op in ops:
        u = op(grad if src is None else grad[src])
        if idx is None:
            upd[name][:] = u
        else:
            upd[name][idx] = u
    return upd["train"], upd["test"]


def kernel_flow(kernel, train, test=None, *, dt: float, steps: int = 50, loss: str = "sigma",
                weighted: bool = True, tile: int = DEFAULT_TILE, blocks=None, max_halvings: int = 10,
                clip: float | None = None, early_stop: int | None = None,
                callback: Callable | None = None, xp=None, cache_bytes: int = DEFAULT_CACHE_BYTES) -> FlowResult:
    """Iterate eq. 3.5 for `steps` steps from g_FS on train (and test) points; see module docstring.

    clip: max Euclidean norm of any point's update (None = no clipping). early_stop: stop when the monitored
    sigma (test if given, else train) has not gone below its best value (step 0 included) for this many
    steps. callback(info: dict) is called after every step with step, sigma_train, sigma_test, dt, rejected;
    returning True stops the flow. xp: array module (default `hpcflow.backend.get_xp()`: NumPy, or CuPy on a
    GPU); results are returned as NumPy. cache_bytes: kernel blocks that fit in this budget (split over the
    operators) are formed once and reused every step; larger ones are re-evaluated tile by tile each step, so
    memory stays bounded by the tile (0 = always stream).
    """
    if not dt > 0 or steps < 0 or max_halvings < 0:
        raise ValueError(f"need dt > 0, steps >= 0, max_halvings >= 0 (got {dt}, {steps}, {max_halvings})")
    xp = get_xp() if xp is None else xp
    n_train, n_test = len(train), (0 if test is None else len(test))
    if blocks is not None:
        _check_blocks(blocks, n_train, n_test)
    tr, te = _on(train, xp), _on(test, xp)
    v_train = pack(tr.g_fs)
    p = v_train.shape[1]
    m = int(round(p ** 0.5))
    v_test = pack(te.g_fs) if te is not None else xp.zeros((0, p))
    ops = _operators(kernel, tr, te, blocks, tile, cache_bytes)

    hist_train = [_sigma(v_train, tr)]
    hist_test = [_sigma(v_test, te) if te is not None else np.nan]
    dts, rejections, stopped, since_best, test_held = [], [], "", 0, 0
    best = hist_test[0] if te is not None else hist_train[0]
    for step in range(1, steps + 1):
        eta = det_hermitian(unpack(v_train)) / tr.omega2
        k = float(kappa_of(eta, tr.weights))
        _, grad = loss_and_grad(v_train, tr.omega2, tr.weights, k, loss=loss, weighted=weighted)
        u_train, u_test = _updates(ops, grad, n_train, n_test, p)
        if clip is not None:
            u_train, u_test = _clip(u_train, clip), _clip(u_test, clip)
        h = dt
        for _ in range(max_halvings + 1):
            new_train = v_train - h * u_train
            if _positive(new_train, m):
                break
            rejections.append((step, h))
            log.info("flow step %d: dt=%g gives a non-positive-definite or non-finite metric; retry dt/2", step, h)
            h *= 0.5
        else:
            stopped = f"step {step}: no dt >= {dt / 2 ** max_halvings:g} keeps all metrics positive definite"
            log.warning("flow stopped: %s", stopped)
            break
        new_test = v_test - h * u_test
        ok_test = is_positive_definite(unpack(new_test, m=m)) if n_test else xp.ones(0, dtype=bool)
        test_held += int(n_test - int(ok_test.sum()))
        v_train, v_test = new_train, xp.where(ok_test[:, None], new_test, v_test)
        dts.append(h)
        hist_train.append(_sigma(v_train, tr))
        hist_test.append(_sigma(v_test, te) if te is not None else np.nan)
        if callback is not None and callback({"step": step, "sigma_train": hist_train[-1],
                                              "sigma_test": hist_test[-1], "dt": h, "rejected": len(rejections)}):
            stopped = f"step {step}: callback asked to stop"
            break
        if early_stop is not None:
            monitored = hist_test[-1] if te is not None else hist_train[-1]
            best, since_best = (monitored, 0) if monitored < best else (best, since_best + 1)
            if since_best >= early_stop:
                stopped = f"step {step}: no improvement for {early_stop} steps (early stop)"
                break
    return FlowResult(sigma_train=np.array(hist_train), sigma_test=np.array(hist_test),
                      g_train=to_host(unpack(v_train, m=m)),
                      g_test=to_host(unpack(v_test, m=m)) if test is not None else None,
                      rejected_steps=len(rejections), steps_taken=len(dts), dt_history=np.array(dts),
                      stopped=stopped, rejections=rejections, test_held=test_held)
