"""Infinite-width NTK of stax.serial(Dense(W_std, b_std), Relu(), Dense(W_std, b_std)), NTK parameterisation.

Layer maps (neural-tangents conventions, formulas only): a Dense layer of fan-in n computes
W_std/sqrt(n) W h + b_std b with W, b ~ N(0, 1); its NNGP kernel is W_std^2 Sigma_in + b_std^2 and its
NTK W_std^2 Sigma_in + b_std^2 + W_std^2 Theta_in. On inputs x in R^d (Sigma_in = x.x'/d, Theta_in = 0):

  Sigma0 = Theta0 = W^2 x.x'/d + b^2
  ReLU (arc-cosine kernels, theta = arccos(Sigma0(x,x') / sqrt(Sigma0(x,x) Sigma0(x',x')))):
      Sigma1 = sqrt(Sigma0(x,x) Sigma0(x',x')) (sin theta + (pi - theta) cos theta) / (2 pi)
      Sigmadot = (pi - theta) / (2 pi)
  Theta = W^2 Sigma1 + b^2 + W^2 Sigmadot Theta0

On the diagonal (theta = 0): Theta(x, x) = W^2 Sigma0(x, x) + b^2. The inputs are the real features
(Re z, Im z) of the chart-normalised homogeneous coordinates, d = 2(n+1). Theta_IJ = delta_IJ Theta.
"""

from __future__ import annotations

import numpy as np

from hpcflow.kernels.base import Kernel


def real_features(z):
    """(Re z, Im z) of chart-normalised homogeneous coordinates: (N, 2(n+1)) float64."""
    return np.ascontiguousarray(np.concatenate([z.real, z.imag], axis=1), dtype=np.float64)


def relu_ntk(f1, f2, *, w_std: float, b_std: float):
    """NTK (N1, N2) of Dense-Relu-Dense at infinite width on real features f (N, d) (see module docstring)."""
    d = f1.shape[1]
    w2, b2 = w_std * w_std, b_std * b_std
    s12 = w2 * (f1 @ f2.T) / d + b2
    s11 = w2 * np.einsum("ij,ij->i", f1, f1) / d + b2
    s22 = w2 * np.einsum("ij,ij->i", f2, f2) / d + b2
    norm = np.sqrt(np.outer(s11, s22))
    theta = np.arccos(np.clip(s12 / norm, -1.0, 1.0))
    sigma1 = norm * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2.0 * np.pi)
    sigmadot = (np.pi - theta) / (2.0 * np.pi)
    return w2 * sigma1 + b2 + w2 * sigmadot * s12


class ReluNTKKernel(Kernel):
    """ReLU NTK of Table 1 (W_std = sigma_w, b_std = sigma_b) on (Re z, Im z)."""

    name = "relu_ntk"
    symmetric = True

    def __init__(self, w_std: float, b_std: float):
        self.w_std, self.b_std = float(w_std), float(b_std)

    def params(self) -> dict:
        return {"w_std": self.w_std, "b_std": self.b_std}

    def features(self, x):
        return real_features(x)

    def tile_block(self, f1, f2):
        return relu_ntk(f1, f2, w_std=self.w_std, b_std=self.b_std)
