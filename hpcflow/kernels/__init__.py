"""Metric-NTK kernels of the flow (eqs. 2.20-2.23, 2.32-2.36, 3.6) and their tiled evaluator.

All four kernels of the paper have no component mixing, Theta_IJ(x, x') = delta_IJ K(x, x'), so each returns a
scalar block K(X1, X2); `Kernel.apply` forms sum_x' K(x, x') grad(x') tile by tile with bounded memory.
"""

from hpcflow.kernels.base import DEFAULT_TILE, Kernel, TiledOperator
from hpcflow.kernels.cosine_ntk import CosineNTKKernel, cosine_amplitude, cosine_ntk, cosine_ntk_empirical
from hpcflow.kernels.delta import DeltaKernel, delta
from hpcflow.kernels.gaussian import GaussianKernel, gaussian
from hpcflow.kernels.registry import KERNELS, make_kernel
from hpcflow.kernels.relu_ntk import ReluNTKKernel, real_features, relu_ntk

__all__ = ["DEFAULT_TILE", "Kernel", "TiledOperator", "GaussianKernel", "DeltaKernel", "ReluNTKKernel",
           "CosineNTKKernel", "gaussian", "delta", "relu_ntk", "cosine_ntk", "cosine_ntk_empirical",
           "cosine_amplitude", "real_features", "make_kernel", "KERNELS"]
