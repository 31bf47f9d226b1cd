"""NTK of the cosine (random Fourier feature) network of eq. 2.32 with only the last layer trained.

phi(x) = A/sqrt(N) sum_i a_i cos(w_i . x + b_i), a ~ N(0, s_a^2), w ~ N(0, s_w^2/d), b ~ U(-pi, pi).
Training only a gives Theta_N(x, x') = A^2/N sum_i cos(w_i.x + b_i) cos(w_i.x' + b_i) (eq. 2.33), whose
N -> infinity limit is A^2/2 exp(-s_w^2 |x - x'|^2 / (2 d)) (eq. 2.35), with A = 2^(1/4) (s_w/sqrt(2 pi d))^(d/4)
(eq. 2.36). (The printed eq. 2.32 has cos(w_ij x_j + b_i) summed over j; the Gaussian limit 2.35 holds for the
inner product w_i . x used here.) Inputs are the real features (Re z, Im z). Theta_IJ = delta_IJ Theta.
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module
from hpcflow.kernels.base import Kernel
from hpcflow.kernels.relu_ntk import real_features


def cosine_amplitude(sigma_w: float, d: int) -> float:
    """A of eq. 2.36."""
    return 2.0 ** 0.25 * (sigma_w / np.sqrt(2.0 * np.pi * d)) ** (d / 4.0)


def cosine_ntk(f1, f2, *, sigma_w: float, amplitude: float | None = None):
    """Infinite-width cosine-network NTK (eq. 2.35) (N1, N2) on real features f (N, d)."""
    xp = array_module(f1)
    d = f1.shape[1]
    a = cosine_amplitude(sigma_w, d) if amplitude is None else amplitude
    sq = (xp.sum(f1 * f1, axis=1)[:, None] + xp.sum(f2 * f2, axis=1)[None, :] - 2.0 * f1 @ f2.T)
    return 0.5 * a * a * xp.exp(-0.5 * sigma_w ** 2 / d * xp.maximum(sq, 0.0))


def cosine_ntk_empirical(f1, f2, *, width: int, sigma_w: float, amplitude: float | None = None, seed=0):
    """Finite-width NTK of eq. 2.33 for one draw of (w, b) with `width` hidden units."""
    d = f1.shape[1]
    a = cosine_amplitude(sigma_w, d) if amplitude is None else amplitude
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, sigma_w / np.sqrt(d), size=(d, width))
    b = rng.uniform(-np.pi, np.pi, size=width)
    return a * a / width * (np.cos(f1 @ w + b) @ np.cos(f2 @ w + b).T)


class CosineNTKKernel(Kernel):
    """Gaussian limit (eq. 2.35, normalisation 2.36) of the last-layer cosine-network NTK."""

    name = "cosine_ntk"
    symmetric = True

    def __init__(self, sigma_w: float, amplitude: float | None = None):
        self.sigma_w = float(sigma_w)
        self.amplitude = None if amplitude is None else float(amplitude)

    def params(self) -> dict:
        return {"sigma_w": self.sigma_w, "amplitude": self.amplitude}

    def features(self, x):
        return real_features(x)

    def tile_block(self, f1, f2):
        return cosine_ntk(f1, f2, sigma_w=self.sigma_w, amplitude=self.amplitude)
