"""Lazy torch import: one place that turns a missing torch into MissingDependencyError with the fix."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types

from hpcflow import stop_signals
from hpcflow.errors import ConfigError, MissingDependencyError

#: the install line of the `nn` extra, from the checkout: `hpcflow` on PyPI is an unrelated project, so the extra
#: asked for by that name would install it, not this one
INSTALL_COMMAND = "pip install -e '.[nn]'"
INSTALL_HINT = f"{INSTALL_COMMAND} in the hpcflow checkout"
_MISSING = f"the neural-network part of hpcflow needs PyTorch; run {INSTALL_HINT}"
DTYPES = ("float64", "float32")


@contextlib.contextmanager
def _stops_held():
    """Stop requests held back while torch imports, delivered after: a handler that raises inside torch's C++
    start-up (torch.distributed's c10d init calls back into Python) ends the process in std::terminate (SIGABRT)."""
    deferred = stop_signals.defer()
    try:
        yield
    finally:
        stop_signals.deliver(deferred)


def torch_available() -> bool:
    """Whether `import torch` succeeds; it imports torch (~2 s), where `refuse_without_torch` only looks for it."""
    try:
        with _stops_held():
            importlib.import_module("torch")
    except (ImportError, OSError):  # not installed, or installed but broken (a shared library missing)
        return False
    return True


def require_torch():
    """Return the torch module, or raise MissingDependencyError naming the install line."""
    try:
        with _stops_held():
            import torch
    except (ImportError, OSError) as exc:  # OSError: a shared library of an installed torch does not load
        if isinstance(exc, ImportError) and importlib.util.find_spec("torch") is None:
            raise MissingDependencyError(_MISSING) from None
        raise MissingDependencyError(_broken(exc)) from None
    return torch


def _broken(exc: BaseException) -> str:
    """The one line for an installed torch that does not import."""
    return (f"PyTorch is installed but does not import ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            f"reinstall it: {INSTALL_COMMAND} --force-reinstall in the hpcflow checkout")


def cuda_available() -> bool:
    """Whether torch sees a GPU (imports torch, ~2 s): what a network job's device 'auto' and 'cuda' ask."""
    return bool(require_torch().cuda.is_available())


#: where a CUDA build of torch comes from: a CPU-only build (version "+cpu") sees no GPU on any node
CUDA_BUILD_HINT = ("install a CUDA build of torch (e.g. pip install --force-reinstall torch --index-url "
                   "https://download.pytorch.org/whl/cu126; https://pytorch.org/get-started/locally/ gives the line "
                   "for the node's CUDA)")


def cpu_only_build() -> str | None:
    """This torch's version where it is a CPU-only build (torch.version.cuda and torch.version.hip None, e.g.
    "2.5.1+cpu"), which sees no GPU on any node whatever the node has; None for a CUDA (or ROCm) build."""
    torch = require_torch()
    version = getattr(torch, "version", None)
    if getattr(version, "cuda", None) is not None or getattr(version, "hip", None) is not None:
        return None
    return str(getattr(torch, "__version__", "unknown version"))


def cuda_fault(device="cuda") -> str | None:
    """None where torch allocates a tensor on `device`; else why not, in one line ("Type: message"): a GPU that
    torch.cuda.is_available() reports may still be unusable (busy in exclusive compute mode, a driver older than
    torch's CUDA), and torch says so only at the first allocation."""
    torch = require_torch()
    try:
        torch.zeros(1, device=device)
        torch.cuda.synchronize(device)
    except Exception as exc:  # noqa: BLE001 - AssertionError (no CUDA in torch), RuntimeError / torch's CUDA errors
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return None


def refuse_without_torch() -> None:
    """MissingDependencyError naming the install line when torch is not installed, without importing it (~2 s): a
    job's checks and the refusals of its --out then run without torch."""
    if importlib.util.find_spec("torch") is None:  # None too where sys.modules["torch"] is None
        raise MissingDependencyError(_MISSING)


def torch_dtype(name):
    """torch dtype for 'float64' (default everywhere) or 'float32' (explicit option, as the job file's
    [model].dtype), named so or given as torch.float64 / torch.float32 themselves; ConfigError naming dtype for
    anything else (float16, 'double', 32), the same from MetricMLP and MetricData.from_pointset."""
    torch = require_torch()
    if isinstance(name, torch.dtype) and name in (torch.float64, torch.float32):
        return name
    if not isinstance(name, str) or name not in DTYPES:
        raise ConfigError(f"dtype = {name!r} is not one of {DTYPES}; use 'float64' (default) or 'float32' (or "
                          "torch.float64 / torch.float32)")
    return torch.float64 if name == "float64" else torch.float32


def dtype_name(dtype) -> str:
    """'float64' or 'float32' for a dtype `torch_dtype` takes (its ConfigError otherwise): how a network's config
    (saved beside its weights, compared between ranks) names it."""
    return str(torch_dtype(dtype)).removeprefix("torch.")


def optim_without_dynamo() -> None:
    """Let torch.optim's eager methods run without importing torch._dynamo (~2 s, a third of a network job's
    start-up): methods wrapped by torch._disable_dynamo import it at their first call only to build a wrapper that
    turns compilation off, and hpcflow never compiles. Each such Optimizer method is marked as its own disabled
    form; nothing is changed once torch._dynamo is imported (a process that may compile keeps torch's wrappers)."""
    if "torch._dynamo" in sys.modules:
        return
    torch = require_torch()
    wrapper = torch._disable_dynamo(lambda: None).__code__
    for f in vars(torch.optim.Optimizer).values():
        if isinstance(f, types.FunctionType) and f.__code__ is wrapper and hasattr(f, "__wrapped__"):
            setattr(f.__wrapped__, "__dynamo_disable", f.__wrapped__)
