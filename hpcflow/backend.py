"""The one place that chooses the array module: NumPy, or CuPy when a GPU is usable.

`HPCFLOW_BACKEND=numpy|cupy|auto` (default auto = CuPy only where its GPU is usable: `gpu_problem` finds a device
and runs a tiny kernel on it, once a process; else NumPy, said in one line where CuPy is installed but fails).
The ranks of a run agree before any work (`agree_backend`): auto is CuPy only where every rank's GPU is usable.
Processes that only check or estimate a job count the GPU without a kernel (`gpu_counted`: no CUDA context stays in
them); `hpcflow info` runs the kernel in a child process (`gpu_probed_apart`).
Sampling takes auto for NumPy (`get_xp(..., auto_on_host=True)`): its points depend on the seed alone.
All array code takes `xp` from here; transfers to the host are explicit (`to_host`). A job's checks refuse a GPU
this node lacks before any work (`refuse_unusable`), except where the job's GPU is checked elsewhere
(`gpu_checked_elsewhere`: --check on a login node, a job queued to another node).
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from contextlib import contextmanager

import numpy as np

from hpcflow.arguments import BACKENDS, env_backend, env_threads, short_repr
from hpcflow.errors import ConfigError, MissingDependencyError


#: where CuPy comes from: the checkout's GPU extra (cupy-cuda12x), installed on a node with a GPU
GPU_EXTRA = "pip install -e '.[gpu]' in the hpcflow checkout on a GPU node"
#: what `gpu_problem` found, once a process: [None] (a usable GPU) or [(kind, text)]; empty before the first probe
_PROBED: list = []
#: what `gpu_counted` found without a kernel (CuPy's import and device count), once a process
_COUNTED: list = []
#: what the ranks of a run agreed (`agree_backend`): [None] (every rank's GPU usable) or [(kind, text)] (some
#: rank's is not: every rank computes on NumPy); empty where no agreement was made (this process's probe decides)
_AGREED: list = []
_PROBE_LOCK = threading.Lock()
#: whether the fallback of backend auto to NumPy has been said (`_say_fallback`: once a process)
_FALLBACK_SAID = False


def _one_line(exc: BaseException) -> str:
    """An exception as 'Type: first line of its message' (CuPy's import errors run over several lines)."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _probe(kernel: bool = True, node_rank: int | None = None) -> tuple[str, str] | None:
    """None where CuPy imports, sees a CUDA device and (with `kernel`) runs a tiny kernel on it; else (kind, what
    failed): "missing" (CuPy is not installed), "import" (`import cupy` raised), "none" (no device visible),
    "unusable" (a device is counted, but allocating on it or running a kernel fails: busy in exclusive-process mode,
    memory full, NVRTC missing). Without `kernel` it only counts the devices, which makes no CUDA context. With
    `node_rank`, the kernel runs on the device that rank computes on (`device_of`), else on the current device."""
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name == "cupy":
            return "missing", "CuPy is not installed"
        return "import", f"import cupy failed ({_one_line(exc)})"
    except Exception as exc:  # noqa: BLE001 - a broken install: ImportError or OSError of a missing library, ...
        return "import", f"import cupy failed ({_one_line(exc)})"
    try:
        visible = bool(cupy.cuda.is_available())
    except Exception as exc:  # noqa: BLE001 - a CUDA driver error
        return "unusable", f"CuPy cannot count the CUDA devices ({_one_line(exc)})"
    if not visible:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        if hidden is not None:
            return "none", (f"CuPy sees no CUDA device (CUDA_VISIBLE_DEVICES={hidden!r} hides them, or the node has "
                            "none)")
        return "none", "CuPy sees no CUDA device (none on this node, or a Slurm job given none: --gpus)"
    if not kernel:
        return None
    try:  # an allocation, an elementwise kernel (compiled by NVRTC) and a reduction, copied back to the host
        if node_rank is None:
            total = float((cupy.arange(4, dtype=cupy.float64) * 2.0 + 1.0).sum())
        else:
            with cupy.cuda.Device(device_of(cupy, node_rank)):
                total = float((cupy.arange(4, dtype=cupy.float64) * 2.0 + 1.0).sum())
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError, OutOfMemoryError, NVRTC's, ...
        return "unusable", f"the GPU CuPy sees is not usable ({_one_line(exc)})"
    if total != 16.0:
        return "unusable", f"the GPU CuPy sees is not usable (a test kernel summed to {total!r}, not 16.0)"
    return None


def device_of(cupy, node_rank: int) -> int:
    """The GPU a rank computes on at R > 1: its index among its node's ranks modulo the devices CuPy counts (never
    the global rank; `hpcflow.parallel.comm.node_layout`)."""
    return int(node_rank) % int(cupy.cuda.runtime.getDeviceCount())


def gpu_problem() -> tuple[str, str] | None:
    """Why CuPy's GPU is not usable here, as (kind, what failed) (`_probe`), or None where it is; probed once a
    process (a device counted by `cupy.cuda.is_available()` may still refuse every allocation or kernel)."""
    with _PROBE_LOCK:
        if not _PROBED:
            _PROBED.append(_probe())
        return _PROBED[0]


def gpu_counted() -> tuple[str, str] | None:
    """`gpu_problem` for a process that computes nothing on the GPU (estimates, checks, a submitting parent): where
    this process has not probed its GPU, CuPy's import and device count alone (`_probe` without the kernel), which
    keep no CUDA context here, so in exclusive-process mode the GPU stays free for the process that computes; a
    device counted but unusable is then taken for usable (the computing process refuses it before any work)."""
    with _PROBE_LOCK:
        if _PROBED:
            return _PROBED[0]
        if not _COUNTED:
            _COUNTED.append(_probe(kernel=False))
        return _COUNTED[0]


#: the kernel probe run in a child process, as `gpu_probed_apart` runs it: prints repr of `_probe()`
_APART = "import hpcflow.backend as b; print(repr(b._probe()))"


def gpu_probed_apart(timeout: float = 120.0) -> tuple[str, str] | None:
    """`gpu_problem` found by a short-lived child process (the same interpreter and sys.path), so that no CUDA
    context stays in this one (`hpcflow info`); this process's own probe where it made one. A child that fails or
    hangs is said as the device being unusable."""
    import ast
    import subprocess

    with _PROBE_LOCK:
        if _PROBED:
            return _PROBED[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        r = subprocess.run([sys.executable, "-c", _APART], capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        found = ast.literal_eval(last) if r.returncode == 0 and last else None
    except subprocess.TimeoutExpired:
        return "unusable", f"the GPU CuPy sees is not usable (a test kernel did not finish in {timeout:g} s)"
    except (OSError, ValueError, SyntaxError) as exc:
        return "unusable", f"the GPU CuPy sees could not be probed ({_one_line(exc)})"
    if r.returncode != 0 or not (found is None or (isinstance(found, tuple) and len(found) == 2)):
        why = next((ln for ln in reversed(r.stderr.splitlines()) if ln.strip()), f"exit status {r.returncode}")
        return "unusable", f"the GPU CuPy sees could not be probed ({why.strip()[:200]})"
    return found


def gpu_available() -> bool:
    """True when CuPy imports, a CUDA device is visible *and* a tiny kernel runs on it (`gpu_problem`)."""
    return gpu_problem() is None


def _here() -> tuple[str, str] | None:
    """This process's GPU as `gpu_available` finds it (kernel probe), with `gpu_problem`'s cause where it is not
    usable."""
    if gpu_available():
        return None
    return gpu_problem() or ("unusable", "no usable CUDA device/CuPy")


def gpu_fix(problem: tuple[str, str] | None) -> str:
    """What gives this node's processes CuPy's GPU, for `problem` (`gpu_problem`)."""
    kind = problem[0] if problem else "missing"
    if kind == "none":
        return "run it on a GPU node (in a Slurm job ask for one: --gpus=1), with CUDA_VISIBLE_DEVICES naming it"
    if kind == "unusable":
        return "run it where the GPU is free and works (another node, or once its other processes end)"
    if kind == "import":
        return f"reinstall CuPy for this node's CUDA ({GPU_EXTRA})"
    return GPU_EXTRA


def _say_fallback(problem: tuple[str, str]) -> None:
    """One line on stderr, once a process and by the launcher's rank 0 only: backend auto runs on NumPy although
    CuPy is installed, because of `problem`."""
    global _FALLBACK_SAID
    from hpcflow.stop_signals import launcher_rank

    if _FALLBACK_SAID:
        return
    _FALLBACK_SAID = True
    if launcher_rank() == 0:
        print(f"hpcflow: note: {problem[1]}; backend auto computes on NumPy (set HPCFLOW_BACKEND=numpy to skip "
              "the GPU)", file=sys.stderr, flush=True)


def _choice(name) -> tuple[str, str]:
    """(choice, the setting it came from): argument `name` (a str, stripped, any case; None or blank: not given),
    else $HPCFLOW_BACKEND, else auto; ConfigError naming `backend` for an argument that is no backend name."""
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"backend={short_repr(name)} is invalid; pass 'numpy', 'cupy' or 'auto' (any case), or "
                          "None for $HPCFLOW_BACKEND, else auto")
    given = (name or "").strip()
    if given:
        if given.lower() not in BACKENDS:
            raise ConfigError(f"backend={short_repr(name)} is not one of {', '.join(BACKENDS)}; pass numpy, cupy or "
                              "auto")
        return given.lower(), "backend"
    from_env = env_backend()  # (a bad $HPCFLOW_BACKEND refused as every command refuses it)
    return (from_env, "HPCFLOW_BACKEND") if from_env else ("auto", "backend")


def backend_name(name: str | None = None, *, note: bool = True, auto_on_host: bool = False) -> str:
    """Resolve a backend name ('numpy' or 'cupy') from the argument or $HPCFLOW_BACKEND; a refusal names the
    one of the two the choice came from, so the fix it gives is the setting the user made, and says why the GPU is
    not usable (`gpu_problem`). auto: cupy where the GPU is usable, else numpy, said on stderr (with `note`) where
    CuPy is installed but its import or its GPU fails; with `auto_on_host`, auto is numpy without asking the GPU
    (sampling: its points then depend on the seed alone)."""
    choice, key = _choice(name)
    if choice == "auto":
        if auto_on_host:
            return "numpy"
        problem = _AGREED[0] if _AGREED else _here()  # (the ranks' agreement said its own note)
        if problem is None:
            return "cupy"
        if note and not _AGREED and problem[0] in ("import", "unusable"):
            _say_fallback(problem)
        return "numpy"
    if choice == "cupy":
        problem = _AGREED[0] if _AGREED else _here()
        if problem is not None:
            raise MissingDependencyError(f"{key}=cupy but {problem[1]}: {gpu_fix(problem)}, or use {key}=numpy")
    return choice


def agree_backend(comm=None, *, auto_on_host: bool = False) -> str:
    """Make the ranks of `comm` compute on one backend, before any work (at R > 1 one allgather, whatever each rank's
    setting; every rank calls it): each probes the GPU it will compute on (`device_of`; two ranks sharing a GPU in
    exclusive-process mode: only the first gets it), so that auto is CuPy only where every rank's GPU is usable, else
    NumPy on every rank, said in one line by rank 0 naming the failing ranks and the cause (where some rank passed,
    or the cause is CuPy's import or a device that fails); cupy with some rank's GPU unusable is refused by every rank
    together (MissingDependencyError, exit 2: one line naming the ranks, the cause and the fix), and so is a
    $HPCFLOW_BACKEND that differs between ranks (ConfigError). Every rank decides from the gathered values alike.
    Returns the backend ("numpy" or "cupy"); later calls of `backend_name` on this process follow the agreement
    (at R = 1 there is none: an earlier one is dropped). A backend chosen numpy probes nothing, nor does auto with
    `auto_on_host` (a job whose array work under auto is on the host: numpy, with no agreement kept)."""
    from hpcflow.parallel.comm import node_layout, raise_together, rank, resolve, size

    c = resolve(comm)
    choice, key = _choice(None)
    if size(c) == 1:
        _AGREED.clear()
        return backend_name(auto_on_host=auto_on_host)
    node_rank = node_layout(c)[0]  # (collective: before anything that differs between ranks)
    found = None
    host = choice == "numpy" or (choice == "auto" and auto_on_host)
    if not host:
        with _PROBE_LOCK:
            _PROBED[:] = [_probe(node_rank=node_rank)]
            found = _PROBED[0]
    every = c.allgather((choice, found))
    choices = [ch for ch, _ in every]
    other = next((r for r, ch in enumerate(choices) if ch != choices[0]), None)
    if other is not None:
        _AGREED.clear()
        raise_together(ConfigError(
            f"HPCFLOW_BACKEND differs between ranks ({choices[0]} on rank 0, {choices[other]} on rank {other}); set "
            "the same HPCFLOW_BACKEND for every rank (or unset it on all)"), comm=c)
    if host:
        _AGREED.clear()
        return "numpy"
    every = [p for _, p in every]
    failing = [r for r, p in enumerate(every) if p is not None]
    if not failing:
        _AGREED[:] = [None]
        return "cupy"
    first = every[failing[0]]
    ranks = (f"rank {failing[0]}" if len(failing) == 1 else
             f"ranks {', '.join(map(str, failing[:8]))}{', ...' if len(failing) > 8 else ''}")
    of = f"{len(failing)} of {len(every)} ranks"
    agreed = (first[0], f"{first[1]} (on {ranks}; {of})")
    _AGREED[:] = [agreed]
    if choice == "cupy":
        raise_together(MissingDependencyError(f"{key}=cupy but {agreed[1]}: {gpu_fix(first)}, or use {key}=numpy"),
                       comm=c)
    global _FALLBACK_SAID
    said = len(failing) < len(every) or any(p is not None and p[0] in ("import", "unusable") for p in every)
    if said and not _FALLBACK_SAID and rank(c) == 0:
        print(f"hpcflow: note: {agreed[1]}; backend auto computes on NumPy on every rank, as the ranks compute "
              "alike (set HPCFLOW_BACKEND=numpy to skip the GPU)", file=sys.stderr, flush=True)
    _FALLBACK_SAID = _FALLBACK_SAID or said
    return "numpy"


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
    without a GPU CuPy counts), unless the job's GPU is checked elsewhere; the name itself is checked with the
    environment (`hpcflow.resources.check_environment`). It runs no kernel (`gpu_counted`): a process that only
    checks the job keeps no CUDA context; the ranks that compute probe their GPUs as they start (`agree_backend`)."""
    if gpu_needed_here() and _choice(None)[0] == "cupy":  # (the device count alone: no CUDA context here)
        problem = _AGREED[0] if _AGREED else gpu_counted()
        if problem is not None:
            raise MissingDependencyError(f"HPCFLOW_BACKEND=cupy but {problem[1]}: {gpu_fix(problem)}, or use "
                                         "HPCFLOW_BACKEND=numpy")


def get_xp(name: str | None = None, *, auto_on_host: bool = False):
    """The array module (numpy or cupy) for `name` (see `backend_name`; `auto_on_host`: auto is numpy)."""
    if backend_name(name, auto_on_host=auto_on_host) == "cupy":
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
