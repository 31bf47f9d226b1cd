"""The one place that chooses the array module: NumPy, or CuPy when a GPU is usable.

`HPCFLOW_BACKEND=numpy|cupy|auto` (default auto = CuPy only if `cupy.cuda.is_available()`).
All array code takes `xp` from here; transfers to the host are explicit (`to_host`). A job's checks refuse a GPU
this node lacks before any work (`refuse_unusable`), except where the job's GPU is checked elsewhere
(`gpu_checked_elsewhere`: --check on a login node, a job queued to another node).
"""

from __future__ import annotations

import contextvars
import os
from contextlib import contextmanager

import numpy as np

from hpcflow.arguments import BACKENDS, env_backend, env_threads
from hpcflow.errors import ConfigError, MissingDependencyError


def gpu_available() -> bool:
    """True when CuPy imports *and* a CUDA device is usable (import success alone is not enough)."""
    try:
        import cupy  # noqa: F401

        return bool(cupy.cuda.is_available())
    except Exception:  # ImportError, CUDA driver errors
        return False


def backend_name(name: str | None = None) -> str:
    """Resolve a backend name ('numpy' or 'cupy') from the argument or $HPCFLOW_BACKEND; a refusal names the
    one of the two the choice came from, so the fix it gives is the setting the user made."""
    from_env = None if name else env_backend()  # (a bad $HPCFLOW_BACKEND refused as every command refuses it)
    choice = (name or from_env or "auto").lower()
    key = "HPCFLOW_BACKEND" if from_env else "backend"
    if choice not in BACKENDS:
        raise ConfigError(f"{key}={choice!r} is not one of {', '.join(BACKENDS)}; set it to numpy, cupy or auto")
    if choice == "auto":
        return "cupy" if gpu_available() else "numpy"
    if choice == "cupy" and not gpu_available():
        raise MissingDependencyError(
            f"{key}=cupy but no usable CUDA device/CuPy: pip install -e '.[gpu]' in the hpcflow checkout on a GPU "
            f"node, or use {key}=numpy"
        )
    return choice


#: set within `gpu_checked_elsewhere`: the GPU a job asks for is not this node's to provide
_ELSEWHERE = contextvars.ContextVar("hpcflow_gpu_checked_elsewhere", default=False)


@contextmanager
def gpu_checked_elsewhere(elsewhere: bool = True):
    """Within it (with `elsewhere`), a job's checks accept a GPU this node lacks instead of refusing it: --check on
    a login node, a job queued to run on another node, whose command checks it again as it starts."""
    token = _ELSEWHERE.set(bool(elsewhere) or _ELSEWHERE.get())
    try:
        yield
    finally:
        _ELSEWHERE.reset(token)


def gpu_needed_here() -> bool:
    """Whether a job's checks must find the GPU it asks for on this node (outside `gpu_checked_elsewhere`)."""
    return not _ELSEWHERE.get()


def refuse_unusable() -> None:
    """Refuse before any work (MissingDependencyError, exit 2) an $HPCFLOW_BACKEND this node cannot run (cupy
    without a usable GPU), unless the job's GPU is checked elsewhere; the name itself is checked with the
    environment (`hpcflow.resources.check_environment`)."""
    if gpu_needed_here():
        backend_name()


def get_xp(name: str | None = None):
    """The array module (numpy or cupy) for `name` (see `backend_name`)."""
    if backend_name(name) == "cupy":
        import cupy

        return cupy
    return np


def array_module(a):
    """The array module an existing array belongs to (numpy for anything that is not a CuPy array)."""
    mod = type(a).__module__
    if mod.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_host(a) -> np.ndarray:
    """Copy an array to host memory as NumPy (no-op for NumPy arrays)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def default_threads() -> int:
    """Worker threads for host array work (sampling, kernel tiles): $HPCFLOW_THREADS, else the usable CPUs."""
    threads = env_threads()  # ConfigError for a value every command refuses too (0, "x", beyond MAX_THREADS)
    if threads is not None:
        return threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
