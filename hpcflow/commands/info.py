"""`hpcflow info`: versions, MPI library and world size, CuPy/GPU usability."""

from __future__ import annotations

import platform


def _version(dist: str) -> str:
    """Installed version of a distribution, read from its metadata (importing torch alone takes seconds)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    """Gather the facts `hpcflow info` prints, as a dict (also used in HDF5 provenance)."""
    from hpcflow import __version__
    from hpcflow.backend import backend_name, gpu_available

    facts = {"hpcflow": __version__, "python": platform.python_version()}
    for dist in ("numpy", "scipy", "h5py", "scikit-learn", "optuna", "submitit", "mpi4py", "torch", "cupy-cuda12x"):
        facts[dist] = _version(dist)
    try:
        from mpi4py import MPI

        facts["mpi_library"] = " ".join(MPI.Get_library_version().split())[:120]
        facts["mpi_world_size"] = MPI.COMM_WORLD.Get_size()
    except Exception as exc:  # noqa: BLE001 - RuntimeError when no MPI library is found
        facts["mpi_library"] = f"not usable ({type(exc).__name__}: {exc})"
        facts["mpi_world_size"] = 1
    from hpcflow.parallel.comm import launcher_tasks

    launcher = launcher_tasks()
    if launcher and launcher > 1 and facts["mpi_world_size"] == 1:
        facts["warning"] = (f"the launcher started {launcher} tasks but MPI sees world size 1: mpi4py is not "
                            "linked to the launcher's MPI (e.g. srun without PMI support: try srun --mpi=pmi2 "
                            "or mpiexec from the same MPI as mpi4py)")
    facts["gpu_available"] = gpu_available()
    try:
        facts["backend"] = backend_name()
    except Exception as exc:  # noqa: BLE001
        facts["backend"] = f"invalid ({exc})"
    return facts


def run(args) -> int:
    for key, value in collect().items():
        print(f"{key:16s} {value}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="print versions, MPI library/world size and GPU usability")
    p.set_defaults(func=run)
