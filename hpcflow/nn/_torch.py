"""Lazy torch import: one place that turns a missing torch into MissingDependencyError with the fix."""

from __future__ import annotations

from hpcflow.errors import ConfigError, MissingDependencyError

INSTALL_HINT = "pip install 'hpcflow[nn]'"
DTYPES = ("float64", "float32")


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def require_torch():
    """Return the torch module, or raise MissingDependencyError naming the install line."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"the neural-network part of hpcflow needs PyTorch; run {INSTALL_HINT}") from None
    return torch


def torch_dtype(name: str):
    """torch dtype for 'float64' (default everywhere) or 'float32' (explicit option)."""
    torch = require_torch()
    if name not in DTYPES:
        raise ConfigError(f"dtype = {name!r} is not one of {DTYPES}; use 'float64' (default) or 'float32'")
    return torch.float64 if name == "float64" else torch.float32
