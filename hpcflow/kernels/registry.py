"""Kernel names -> classes, so job files can name a kernel and its parameters."""

from __future__ import annotations

from hpcflow.kernels.cosine_ntk import CosineNTKKernel
from hpcflow.kernels.delta import DeltaKernel
from hpcflow.kernels.gaussian import GaussianKernel
from hpcflow.kernels.relu_ntk import ReluNTKKernel

KERNELS = {"gaussian": GaussianKernel, "delta": DeltaKernel, "relu_ntk": ReluNTKKernel,
           "cosine_ntk": CosineNTKKernel}


def make_kernel(name: str, **params):
    """Kernel object by name: gaussian(width, form, normalize, method), delta(), relu_ntk(w_std, b_std),
    cosine_ntk(sigma_w, amplitude, normalization)."""
    if name not in KERNELS:
        raise ValueError(f"kernel {name!r} is not one of {sorted(KERNELS)}")
    return KERNELS[name](**params)
