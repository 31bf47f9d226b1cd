"""Provenance of a run for summary.json: versions, git commit, BLAS, MPI library, hosts, Slurm job (collective)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess

from hpcflow import __version__


def git_commit() -> str | None:
    """The commit of the hpcflow source tree when it is a git checkout, else None."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def blas() -> list:
    """Thread pools of the loaded BLAS/OpenMP libraries (threadpoolctl), name, version, threads each."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "num_threads", "architecture")
    return [{k: p.get(k) for k in keys} for p in threadpool_info()]


def mpi_library() -> str | None:
    try:
        from mpi4py import MPI

        return " ".join(MPI.Get_library_version().split())[:120]
    except Exception:  # noqa: BLE001 - no usable MPI library
        return None


def provenance(*, comm=None) -> dict:
    """Facts that identify how a run was made; host names are gathered from every rank (collective)."""
    import numpy

    from hpcflow.parallel.comm import resolve

    c = resolve(comm)
    hosts = c.allgather(socket.gethostname())
    return {"hpcflow_version": __version__, "git_commit": git_commit(), "python": platform.python_version(),
            "numpy": numpy.__version__, "blas": blas(), "mpi_library": mpi_library(),
            "hosts": sorted(set(hosts)), "rank_hosts": hosts, "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
