"""Empirical metric-NTK Θ_IJ(x, x') = Σ_θ ∂g_I(x)/∂θ ∂g_J(x')/∂θ of a network (paper sec. 3.3, Fig. 4).

g_I are the 9 packed real components of the network's metric (hpcflow.geometry.hermitian.pack order).
Two exact methods give the same tensor (tested against each other and against an explicit Jacobian):
- "jacobian": per-point parameter Jacobians with torch.func (vmap of jacrev over functional_call), then
  Θ = J Jᵀ; memory N·9·P floats, for any model.
- "layerwise": for MetricMLP, Θ_IJ(x, x') = Σ_l (δ_l(x)_I · δ_l(x')_J)(h_l(x) · h_l(x') + 1) from the
  layer inputs h_l and back-propagated signals δ_l (MetricMLP.ntk_factors); memory N·9·width, so it
  serves wide networks (width sweep) where J would not fit.
"auto" picks "layerwise" for a model that has ntk_factors (4-150x faster than "jacobian" for the job schema's
networks, equal to ~1e-15 relative; BENCHMARKS.md), else "jacobian".

Spectra (Fig. 4 statistic): for the fixed train points x_a, the 10x10 matrix A_IJ[a, b] = Θ_IJ(x_a, x_b)
satisfies A_IJᵀ = A_JI, so it is symmetric for I = J only; we take eigenvalues of its symmetric part
(A_IJ + A_JI)/2 for every (I, J) and pool them (81·10 values per epoch; (I, J) and (J, I) contribute the
same values, as in the paper's pooling over all 9x9 entries). We also keep the 90 eigenvalues of the full
positive semi-definite train-train matrix Θ[(I, a), (J, b)], and the paper's own statistic: the (complex)
eigenvalues of the train x test blocks B_IJ[a, b] = Θ_IJ(x_a, x'_b), pooled. Distances: the 1-d Wasserstein distance W1
between an epoch's pooled spectrum and epoch 0's, and ‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F on the train x test tensor.
"""

from __future__ import annotations

import time

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.nn._torch import require_torch

torch = require_torch()

METHODS = ("auto", "jacobian", "layerwise")


def wasserstein_1d(u, v) -> float:
    """W1 of the samples u and v (equal weights): ∫ |F_u(x) − F_v(x)| dx, the empirical CDFs being constant between
    the samples' distinct values (what scipy.stats.wasserstein_distance gives, whose import, ~0.4-1 s, every nn run
    paid)."""
    u, v = np.sort(np.ravel(np.asarray(u, float))), np.sort(np.ravel(np.asarray(v, float)))
    x = np.union1d(u, v)  # the breakpoints of both CDFs, sorted
    gap = np.searchsorted(u, x[:-1], side="right") / u.size - np.searchsorted(v, x[:-1], side="right") / v.size
    return float(np.dot(np.abs(gap), np.diff(x)))


def _params(model) -> dict:
    return {k: v.detach() for k, v in model.named_parameters()}


def parameter_jacobian(model, x, gfs) -> dict:
    """∂g_I(x_a)/∂θ for each parameter tensor: {name: (N, n_out, *shape)} via torch.func vmap(jacrev)."""
    from torch.func import functional_call, jacrev, vmap

    def g_one(params, xi, gi):
        return functional_call(model, params, (xi[None], gi[None]))[0]

    return vmap(jacrev(g_one), in_dims=(None, 0, 0))(_params(model), x, gfs)


def _ntk_jacobian(model, x1, g1, x2, g2):
    j1 = parameter_jacobian(model, x1, g1)
    j2 = j1 if x2 is None else parameter_jacobian(model, x2, g2)
    theta = 0.0
    for name, a in j1.items():
        b = j2[name]
        theta = theta + torch.einsum("aIp,bJp->IJab", a.flatten(2), b.flatten(2))
    return theta


def _ntk_layerwise(model, x1, g1, x2, g2):
    f1 = model.ntk_factors(x1, g1)
    f2 = f1 if x2 is None else model.ntk_factors(x2, g2)
    theta = 0.0
    for (h1, d1), (h2, d2) in zip(f1, f2):
        theta = theta + torch.einsum("aIk,bJk->IJab", d1, d2) * (h1 @ h2.T + 1.0)[None, None]
    return theta


def ntk_method(model, method: str) -> str:
    """The exact form `method` stands for with `model`: "layerwise" or "jacobian" ("auto": layer-wise when the model
    has ntk_factors); ConfigError for another name or "layerwise" with a model that has no ntk_factors."""
    if method not in METHODS:
        raise ConfigError(f"ntk method = {method!r} is not one of {METHODS}")
    has_factors = hasattr(model, "ntk_factors")
    if method == "layerwise" and not has_factors:
        raise ConfigError(f"ntk method = 'layerwise' needs a model with ntk_factors (MetricMLP), not a "
                          f"{type(model).__name__}; use 'auto' or 'jacobian'")
    return method if method != "auto" else "layerwise" if has_factors else "jacobian"


def empirical_ntk(model, x1, g1, x2=None, g2=None, *, method: str = "auto") -> np.ndarray:
    """Θ (n_out, n_out, N1, N2) float64 between points (x1, g1) and (x2, g2) (default: the same points)."""
    if (x2 is None) != (g2 is None):
        raise ValueError(f"empirical_ntk: {'g2' if g2 is None else 'x2'} is missing; pass x2 and g2 together (the "
                         "second points and their packed g_FS), or neither for Θ of (x1, g1) with itself")
    method = ntk_method(model, method)
    fn = _ntk_layerwise if method == "layerwise" else _ntk_jacobian
    with torch.no_grad() if method == "layerwise" else torch.enable_grad():
        theta = fn(model, x1, g1, x2, g2)
    return theta.detach().to(torch.float64).cpu().numpy()


def pooled_spectrum(theta_tt: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric parts (A_IJ + A_JI)/2 of the train-train blocks, pooled (n_out² · N,)."""
    sym = 0.5 * (theta_tt + theta_tt.transpose(1, 0, 2, 3))  # [I, J] -> (A_IJ + A_JI) / 2
    return np.sort(np.linalg.eigvalsh(sym).ravel())


def full_spectrum(theta_tt: np.ndarray) -> np.ndarray:
    """Eigenvalues of the PSD matrix Θ[(I, a), (J, b)] over train points (n_out · N,)."""
    p, _, n, _ = theta_tt.shape
    mat = theta_tt.transpose(0, 2, 1, 3).reshape(p * n, p * n)
    return np.linalg.eigvalsh(0.5 * (mat + mat.T))


def train_test_spectrum(theta_tx: np.ndarray) -> np.ndarray:
    """The paper's Fig. 4 statistic: eigenvalues of every square block B_IJ[a, b] = Θ_IJ(train_a, test_b), pooled.

    B_IJ is neither symmetric nor normal, so its eigenvalues are complex in general (n_out² · N,) complex128,
    sorted by real part, then imaginary part.
    """
    p, q, n, m = theta_tx.shape
    if n != m:
        raise ValueError(f"train x test blocks must be square for eigenvalues (got {n} x {m} points)")
    ev = np.linalg.eigvals(theta_tx.reshape(p * q, n, m)).ravel()
    return ev[np.lexsort((ev.imag, ev.real))]


#: rough seconds per n^3 of one eigenvalue solve of an n x n matrix on one thread (LAPACK through NumPy; measured on the
#: NTKs of 200 + 200 points on 2 loaded cores: 1.0e-10 symmetric, 0.9e-9 general; random matrices 2-3 times slower),
#: and per byte of the outputs written after them (nn.h5's blocks and the checkpoint restamped with every Θ: 730 MB in
#: 4.5 s). More BLAS threads than free cores make the solves many times slower (39 s instead of 4.4 s there)
EIGVALSH_SECONDS = 1.5e-10
EIGVALS_SECONDS = 1.5e-9
WRITE_SECONDS_PER_BYTE = 5e-9


def results_seconds(n_train: int, n_test: int, epochs: int) -> float:
    """Rough seconds that `NTKTracker.results` of `epochs` recorded NTKs (epoch 0 included) on n_train + n_test points
    takes, and the writing of the outputs after it: per epoch the 81 symmetric n_train x n_train spectra, the full
    one of order 9 n_train, the 81 general train x test ones where n_test = n_train, and Θ's float64 blocks twice
    (nn.h5, checkpoint.pt)."""
    n, m = n_train, n_test
    per = EIGVALSH_SECONDS * (81 * n**3 + (9 * n) ** 3) + (81 * EIGVALS_SECONDS * n**3 if n == m else 0.0)
    return epochs * (per + WRITE_SECONDS_PER_BYTE * 2 * 81 * 8.0 * (n + m) ** 2)


class NTKTracker:
    """Records the empirical NTK on fixed train and test points at epoch 0 and after every epoch.

    Use `tracker(epoch, model)` as the `on_epoch` callback of hpcflow.nn.train.train.
    """

    def __init__(self, train_pts, test_pts, *, method: str = "auto"):
        self.x = torch.cat([train_pts.x, test_pts.x])
        self.gfs = torch.cat([train_pts.gfs, test_pts.gfs])
        self.n_train = len(train_pts)
        self.method = method
        self.theta, self.seconds = [], []

    def __call__(self, epoch, model):
        t0 = time.perf_counter()
        self.theta.append(empirical_ntk(model, self.x, self.gfs, method=self.method))
        self.seconds.append(time.perf_counter() - t0)

    def state_dict(self) -> dict:
        """The NTK per epoch so far and its timings, as tensors (part of a training checkpoint)."""
        theta = torch.from_numpy(np.stack(self.theta)) if self.theta else torch.zeros(0)
        return {"theta": theta, "seconds": torch.tensor(self.seconds, dtype=torch.float64)}

    def load_state_dict(self, st: dict) -> None:
        self.theta = list(st["theta"].numpy()) if st["theta"].numel() else []
        self.seconds = st["seconds"].tolist()

    def truncate(self, epochs: int) -> None:
        """Keep epochs 0..epochs (after a divergence: up to the last finite epoch)."""
        self.theta, self.seconds = self.theta[:epochs + 1], self.seconds[:epochs + 1]

    def results_seconds(self) -> float:
        """Rough seconds of `results` and the writing of its blocks, with the epochs recorded so far."""
        return results_seconds(self.n_train, len(self.x) - self.n_train, len(self.theta))

    def results(self) -> dict:
        """Arrays per epoch: NTK blocks, pooled/full spectra, Wasserstein distance, relative Frobenius change."""
        n = self.n_train
        full = np.stack(self.theta)  # (E, 9, 9, Ntr+Nte, Ntr+Nte)
        tt, tx = full[..., :n, :n], full[..., :n, n:]
        spec = np.stack([pooled_spectrum(t) for t in tt])
        spec_full = np.stack([full_spectrum(t) for t in tt])
        w = np.array([wasserstein_1d(s, spec[0]) for s in spec])
        w_full = np.array([wasserstein_1d(s, spec_full[0]) for s in spec_full])
        fro = np.linalg.norm((tx - tx[0]).reshape(len(tx), -1), axis=1) / np.linalg.norm(tx[0])
        extra = {}
        if tx.shape[-1] == tx.shape[-2]:  # the paper's train x test statistic needs as many test as train points
            spec_tx = np.stack([train_test_spectrum(t) for t in tx])
            extra = {"spectrum_train_test": spec_tx,
                     "wasserstein_train_test": np.array([wasserstein_1d(s.real, spec_tx[0].real)
                                                         for s in spec_tx])}
        return {"ntk_train_test": tx, "ntk_train_train": tt, "ntk_test_test": full[..., n:, n:], **extra,
                "spectrum": spec, "spectrum_full": spec_full, "wasserstein": w, "wasserstein_full": w_full,
                "rel_frobenius": fro, "ntk_seconds": np.asarray(self.seconds)}
