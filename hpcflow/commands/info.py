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


def collect() -> dict:
    """Gather the facts `hpcflow info` prints, as a dict (also used in HDF5 provenance)."""
    from hpcflow import __version__
    from hpcflow.backend import backend_name, gpu_available

    facts = {"hpcflow": __version__, "python": platform.python_version()}
    for dist in ("numpy", "scipy", "numba", "h5py", "scikit-learn", "optuna", "submitit", "mpi4py", "torch",
                 "cupy-cuda12x"):
        facts[dist] = _version(dist)
    try:
        from mpi4py import MPI

        facts["mpi_library"] = library_line(MPI.Get_library_version())
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


def lines(per_rank: list) -> list:
    """The table of facts gathered from every rank: a fact all ranks share once, one that differs once per rank
    (`key  rank r: value`), so a world of R ranks prints one table, not R."""
    out = []
    for key in dict.fromkeys(k for facts in per_rank for k in facts):
        values = [facts.get(key, "-") for facts in per_rank]
        if all(v == values[0] for v in values):
            out.append(f"{key:16s} {values[0]}")
        else:
            out.extend(f"{key:16s} rank {r}: {v}" for r, v in enumerate(values))
    return out


def run(args) -> int:
    facts = collect()
    if facts["mpi_world_size"] > 1:
        from hpcflow.parallel.comm import rank, resolve

        facts = {**facts, "host": platform.node()}
        per_rank = resolve().gather(facts, root=0)
        if rank() != 0:
            return 0
    else:
        per_rank = [facts]
    for line in lines(per_rank):
        print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="print versions, MPI library/world size and GPU usability")
    p.set_defaults(func=run)
