"""Kernel names -> classes, so job files can name a kernel and its parameters."""

from __future__ import annotations

import inspect

from hpcflow.kernels.cosine_ntk import CosineNTKKernel
from hpcflow.kernels.delta import DeltaKernel
from hpcflow.kernels.gaussian import GaussianKernel
from hpcflow.kernels.relu_ntk import ReluNTKKernel

KERNELS = {"gaussian": GaussianKernel, "delta": DeltaKernel, "relu_ntk": ReluNTKKernel,
           "cosine_ntk": CosineNTKKernel}


def make_kernel(name: str, **params):
    """Kernel object by name, its parameters as keywords (defaults after "="):

    - gaussian(width, form="exp", normalize=None, method="auto", dtype="float64", engine="auto"): form "exp" or
      "gauss"; normalize None (no normalisation) or "row"; method "auto", "poly" or "direct"; dtype "float64" or
      "float32" (a speed option); engine "auto", "numba" or "numpy" (`hpcflow.kernels.gaussian`)
    - delta(): no parameters
    - relu_ntk(w_std, b_std, depth=1)
    - cosine_ntk(sigma_w, amplitude=None, normalization="delta")

    A job file's [kernel] normalize = "none" is normalize=None here (the string "none" is refused, naming None).
    An unknown name is a ValueError; a parameter missing or one the kernel does not take is one TypeError naming
    make_kernel, the kernel and the key (as a call of the kernel's class with such keywords is a TypeError); a value
    the kernel refuses is its own error (ValueError, or TypeError for a value that is no number). The kernel is fixed
    once built: setting a parameter afterwards (k.width = 0.1) is an AttributeError naming the make_kernel call that
    builds the kernel wanted (`Kernel.__setattr__`)."""
    if not isinstance(name, str) or name not in KERNELS:
        raise ValueError(f"kernel {name!r} is not one of {sorted(KERNELS)}")
    check_params(name, params)
    return KERNELS[name](**params)


def kernel_keys(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) parameter names of the kernel `name` (a key of KERNELS), from its class's signature."""
    params = inspect.signature(KERNELS[name]).parameters.values()
    return (tuple(p.name for p in params if p.default is inspect.Parameter.empty),
            tuple(p.name for p in params if p.default is not inspect.Parameter.empty))


def check_params(name: str, params: dict) -> None:
    """One TypeError naming make_kernel, the kernel and the keys where `params` has a key the kernel `name` does not
    take, or lacks one it requires (Python's own said "GaussianKernel.__init__() missing 1 required positional
    argument" or "DeltaKernel() takes no arguments")."""
    required, optional = kernel_keys(name)
    takes = ", ".join([*(f"{k} (required)" for k in required), *optional]) or "no parameters"
    unknown = [k for k in params if k not in required and k not in optional]
    if unknown:
        keys = ", ".join(unknown)
        raise TypeError(f"make_kernel({name!r}): {keys} {'is' if len(unknown) == 1 else 'are'} not "
                        f"{'a parameter' if len(unknown) == 1 else 'parameters'} of the {name} kernel, which takes "
                        f"{takes}; remove {'it' if len(unknown) == 1 else 'them'}")
    missing = [k for k in required if k not in params]
    if missing:
        raise TypeError(f"make_kernel({name!r}): {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                        f"required for the {name} kernel, which takes {takes}; add "
                        f"{', '.join(f'{k}=...' for k in missing)}")
