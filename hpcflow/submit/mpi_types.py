"""The MPI types this cluster's srun offers (`srun --mpi=list`): a `--mpi` it lacks is refused before queueing.

Without the check such a job is queued and fails as it starts ("Invalid MPI type"). Slurm prints the list in one
of two forms. Through srun's log, on stderr, each line after "srun: ": a header "MPI types are...", then one type
a line, named after the plugin's file (pmi2, pmix_v3) or, in older versions, its full type (mpi/pmi2). Or with
printf, on stdout (e.g. Slurm 22.05): "MPI plugin types are...", one tab-indented type a line, then the pmix
versions on one line, "specific pmix plugin versions available: pmix_v3,pmix_v4". Where srun is missing, does
not answer in time or prints neither form, nothing is checked beyond the name.
"""

from __future__ import annotations

import re
import shutil
import subprocess

HEADER = re.compile(r"MPI (?:plugin )?types are\.\.\.")
PMIX_VERSIONS = re.compile(r"specific pmix plugin versions available:(.*)")
NAME = re.compile(r"[A-Za-z0-9_]+")  # hpcflow submit's own rule for --mpi
TIMEOUT_S = 20


def read_types(text: str) -> list[str] | None:
    """The MPI types in `srun --mpi=list`'s output (stdout and stderr), in its order; None when it holds no list."""
    types, listed = [], False
    for line in text.splitlines():
        line = line.strip()
        line = line[len("srun:"):].strip() if line.startswith("srun:") else line
        if HEADER.fullmatch(line):
            listed = True
            continue
        versions = PMIX_VERSIONS.fullmatch(line)
        names = versions.group(1).split(",") if versions else [line.removeprefix("mpi/")]
        for name in (n.strip() for n in names):
            if listed and NAME.fullmatch(name) and name not in types:  # (not a log line of another kind)
                types.append(name)
    return types or None


def offered(timeout: float | None = None) -> list[str] | None:
    """The MPI types of the srun on PATH; None where there is none or its list cannot be read (in `timeout` seconds,
    TIMEOUT_S by default)."""
    srun = shutil.which("srun")
    if srun is None:
        return None
    try:
        r = subprocess.run([srun, "--mpi=list"], capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT_S if timeout is None else timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return read_types(r.stdout + "\n" + r.stderr)


def unknown(mpi: str) -> str | None:
    """Why this srun cannot start tasks with --mpi=`mpi` (one line), or None: it offers it, 'none' (hpcflow then
    passes no --mpi), or its list is not known."""
    types = offered() if mpi != "none" else None
    if types is None or mpi in types:
        return None
    return (f"--mpi {mpi}: not an MPI type of this cluster's srun, which offers {', '.join(types)} "
            "(srun --mpi=list); pass --mpi with one of them")
