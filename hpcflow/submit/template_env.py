"""`python -m hpcflow.submit.template_env TEMPLATE threads DEFAULT | mpi`: a value an sbatch template exports or
passes to srun, checked in its batch shell before any srun.

threads: the HPCFLOW_THREADS the run gets: the one exported at submission (sbatch passes the environment on),
checked as every command checks its environment (`hpcflow.resources.check_environment`: 1..MAX_THREADS, and the
other variables it reads), else DEFAULT (the template's SLURM_CPUS_PER_TASK).
mpi: srun's --mpi: HPCFLOW_MPI, else pmi2; refused where this cluster's srun does not offer it (`srun --mpi=list`,
read by `mpi_types`; only the name's form is checked where that list cannot be read), a PMIx type (pmix, pmix_v4)
where mpi4py loads the mpich wheel's MPI library, which speaks PMI-1/PMI-2 only (`mpi_types.pmix_unspoken`): srun
--mpi=pmix gives every task PMIX_RANK and PMIX_NAMESPACE, which that MPICH reads as a PMIx launch it cannot join,
and its MPI_Init aborts ("unsupported PMI version PMIx"; each task refuses it first, `comm.pmix_refusal`), for a
job of one task too, as the template's srun gets --mpi for one task as well (hpcflow submit passes none to one task,
and refuses PMIx for several only); and `none` for a job of more than one task: srun then starts each task as an
MPI world of its own, which runs the whole job (the output written as many times over), so a multi-task job needs
a PMI.

Either first checks that this python has hpcflow's dependencies (`dependencies`): a python where hpcflow imports
from PYTHONPATH alone, without them, passed the template's `import hpcflow` check and failed later in a traceback.

Prints the value; a refusal is one line `TEMPLATE: error: ...` on stderr naming the variable and the fix, exit 2.
"""

from __future__ import annotations

import os
import re
import sys

from hpcflow.errors import UserError

DEFAULT_MPI = "pmi2"

#: the modules of hpcflow's dependencies (setup.cfg install_requires, scikit-learn imported as sklearn)
REQUIRED_MODULES = ("numpy", "scipy", "h5py", "sklearn", "optuna", "submitit", "mpi4py", "threadpoolctl", "matplotlib",
                    "tqdm", "numba")


def dependencies(find=None) -> None:
    """UserError naming HPCFLOW_PYTHON where this python lacks any of REQUIRED_MODULES (`find`: importlib's
    find_spec; looked up, not imported: importing them all takes seconds)."""
    import importlib.util

    find = importlib.util.find_spec if find is None else find
    missing = [name for name in REQUIRED_MODULES if find(name) is None]
    if missing:
        raise UserError(f"HPCFLOW_PYTHON: the python at {sys.executable} imports hpcflow but lacks its dependencies "
                        f"{', '.join(missing)}; set HPCFLOW_PYTHON=/path/to/hpcflow/.venv/bin/python (sbatch "
                        "--export=ALL,HPCFLOW_PYTHON=...), or activate that venv before sbatch")


def threads(default: str, environ=None) -> str:
    """HPCFLOW_THREADS as exported (surrounding blanks dropped), else `default`; UserError as the commands give it."""
    from hpcflow.resources import check_environment

    env = os.environ if environ is None else environ
    check_environment(env)
    return env.get("HPCFLOW_THREADS", "").strip() or default


def tasks(environ=None) -> int:
    """The tasks a plain srun of the batch script starts: SLURM_NTASKS (sbatch sets it for -n and for
    --ntasks-per-node), else SLURM_NTASKS_PER_NODE a node, else one a node (SLURM_JOB_NUM_NODES; 1 when unset)."""
    env = os.environ if environ is None else environ

    def count(name: str) -> int | None:
        m = re.fullmatch(r"\s*0*([1-9][0-9]{0,8})\s*", env.get(name, ""))  # (Slurm's: a positive integer)
        return int(m.group(1)) if m else None

    nodes = count("SLURM_JOB_NUM_NODES") or 1
    return count("SLURM_NTASKS") or (count("SLURM_NTASKS_PER_NODE") or 1) * nodes


def mpi(environ=None) -> str:
    """srun's --mpi for the template: HPCFLOW_MPI or DEFAULT_MPI; UserError (one line) where srun cannot start the
    job's tasks as one MPI world with it."""
    from hpcflow.submit import mpi_types

    env = os.environ if environ is None else environ
    given = env.get("HPCFLOW_MPI", "").strip()
    value = given or DEFAULT_MPI
    what = f"HPCFLOW_MPI={value[:40]!r}" if given else f"HPCFLOW_MPI (unset: its default {DEFAULT_MPI})"
    if value == "none" and tasks(env) > 1:
        raise UserError(f"{what} starts each of the job's {tasks(env)} tasks as an MPI world of one rank that runs the "
                        f"whole job; unset HPCFLOW_MPI ({DEFAULT_MPI}) or set it to the PMI of your MPI (srun "
                        "--mpi=list), or run one task")
    if not mpi_types.NAME.fullmatch(value):
        raise UserError(f"{what} is not an MPI type name (letters, digits, _); set it to one that srun --mpi=list "
                        f"shows, or unset it ({DEFAULT_MPI})")
    offered = mpi_types.offered()
    pmix = mpi_types.pmix_unspoken(value) if offered is None or value in offered else None
    if pmix is not None:  # (the template's srun gets --mpi for one task too)
        raise UserError(f"{what}: {pmix}; set HPCFLOW_MPI=pmi2 (or unset it), or install mpi4py against the "
                        "cluster's MPI built with PMIx")
    if offered is not None and value not in offered:
        fix = "set HPCFLOW_MPI to one of them" + ("" if not given or DEFAULT_MPI not in offered else
                                                  f", or unset it ({DEFAULT_MPI})")
        raise UserError(f"{what} is not an MPI type of this cluster's srun, which offers {', '.join(offered)} "
                        f"(srun --mpi=list); {fix}")
    return value


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[1:2] not in (["threads"], ["mpi"]) or (args[1] == "threads") != (len(args) == 3):
        print("usage: python -m hpcflow.submit.template_env TEMPLATE threads DEFAULT | TEMPLATE mpi",
              file=sys.stderr)
        return 2
    try:
        dependencies()
        print(threads(args[2]) if args[1] == "threads" else mpi())
    except UserError as exc:
        print(f"{args[0]}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
