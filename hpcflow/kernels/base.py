"""Kernel base class and the tiled evaluator of U(x) = sum_x' Theta(x, x') grad(x') (eq. 3.5).

The paper's kernels do not mix metric components: Theta_IJ(x, x') = delta_IJ K(x, x') (eqs. 2.20-2.23), so a
kernel block is a scalar (N1, N2) matrix and the update is K @ grad with grad of shape (N2, P), P = m^2 = 9.
A full metric-NTK (e.g. an empirical NTK of a network that outputs all P components) sets
`mixes_components = True` and returns blocks (N1, P, N2, P). The evaluator never holds more than one
(row-chunk x tile) block per worker thread, so memory is bounded by the tile, not by N1 * N2.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hpcflow.backend import array_module

#: default number of source columns per tile
DEFAULT_TILE = 2048
#: rows per work item of the threaded evaluator (rows are independent: results do not depend on it)
ROW_CHUNK = 256


def default_threads() -> int:
    """Worker threads for tile evaluation: $HPCFLOW_THREADS, else the cores this process may use."""
    env = os.environ.get("HPCFLOW_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Kernel:
    """Base class: subclasses define `features` (once per point set) and `tile_block` (one tile)."""

    name = "kernel"
    mixes_components = False

    def features(self, x):
        """Per-point data the kernel needs, derived once from chart-normalised points x (N, n+1)."""
        return x

    def tile_block(self, f1, f2):
        """Kernel block for feature rows f1, f2: (N1, N2), or (N1, P, N2, P) if mixes_components."""
        raise NotImplementedError

    def block(self, x1, x2):
        """Kernel block K(x1, x2) for chart-normalised points: (N1, N2) or (N1, P, N2, P)."""
        return self.tile_block(self.features(x1), self.features(x2))

    def operator(self, x, x_src, *, tile: int = DEFAULT_TILE, threads: int | None = None):
        """A callable grad_src (N_src, P) -> (N, P) = sum_x' Theta(x, x') grad_src(x'), for fixed points."""
        return TiledOperator(self, x, x_src, tile=tile, threads=threads)

    def apply(self, x, x_src, grad_src, *, tile: int = DEFAULT_TILE):
        """(N, P) = sum_x' Theta(x, x') grad_src(x'), evaluated tile by tile with bounded memory."""
        return self.operator(x, x_src, tile=tile)(grad_src)

    def params(self) -> dict:
        """Hyperparameters (for summaries)."""
        return {}


class TiledOperator:
    """U = Theta(x, x_src) @ grad, tile by tile; row chunks run on worker threads (BLAS kept single-threaded)."""

    def __init__(self, kernel: Kernel, x, x_src, *, tile: int = DEFAULT_TILE, threads: int | None = None):
        if tile < 1:
            raise ValueError(f"tile={tile} must be >= 1")
        self.kernel = kernel
        self.tile = int(tile)
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self.f = kernel.features(x)
        self.f_src = self.f if x_src is x else kernel.features(x_src)
        self.n = x.shape[0]
        self.n_src = x_src.shape[0]

    def _rows(self, r0, r1, grad, out):
        k = self.kernel
        acc = None
        for c0 in range(0, self.n_src, self.tile):
            c1 = min(c0 + self.tile, self.n_src)
            b = self.tile_rows(r0, r1, c0, c1)
            if k.mixes_components:
                p = grad.shape[1]
                part = (b.reshape((r1 - r0) * p, (c1 - c0) * p) @ grad[c0:c1].reshape(-1)).reshape(r1 - r0, p)
            else:
                part = b @ grad[c0:c1]
            acc = part if acc is None else acc + part
        if acc is None:
            out[r0:r1] = 0.0
        else:
            out[r0:r1] = acc

    def tile_rows(self, r0, r1, c0, c1):
        """The kernel tile for target rows r0:r1 and source columns c0:c1."""
        return self.kernel.tile_block(self.f[r0:r1], self.f_src[c0:c1])

    def __call__(self, grad):
        xp = array_module(grad)
        out = xp.empty((self.n, grad.shape[1]), dtype=np.float64)
        chunk = min(self.tile, ROW_CHUNK)
        starts = list(range(0, self.n, chunk))
        jobs = [(r0, min(r0 + chunk, self.n)) for r0 in starts]
        if self.threads == 1 or len(jobs) == 1 or xp is not np:
            for r0, r1 in jobs:
                self._rows(r0, r1, grad, out)
            return out
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                list(pool.map(lambda j: self._rows(j[0], j[1], grad, out), jobs))
        return out
