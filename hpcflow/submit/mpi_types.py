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


def unknown(mpi: str, tasks: int = 2) -> str | None:
    """Why this srun cannot start tasks with --mpi=`mpi` (one line), or None: it offers it, 'none' (hpcflow then
    passes no --mpi), or its list is not known. A PMIx type (pmix, pmix_v4) is refused where mpi4py loads the MPI
    library of the mpich wheel (`wheel_library`), which speaks PMI-1/PMI-2 only: each task's MPI_Init would abort
    (`pmix_unspoken`); not for a job of one task (`tasks`), whose srun gets no --mpi."""
    why = pmix_unspoken(mpi) if tasks > 1 else None
    if why is not None:
        return f"--mpi {mpi}: {why}; pass --mpi pmi2 (or install mpi4py against the cluster's MPI built with PMIx)"
    types = offered() if mpi != "none" else None
    if types is None or mpi in types:
        return None
    return (f"--mpi {mpi}: not an MPI type of this cluster's srun, which offers {', '.join(types)} "
            "(srun --mpi=list); pass --mpi with one of them")


def pmix_unspoken(mpi: str) -> str | None:
    """Why tasks started with srun --mpi=`mpi` cannot run, or None: a PMIx type (pmix, pmix_v4) where mpi4py loads
    the MPI library of the mpich wheel (`wheel_library`), which speaks PMI-1/PMI-2 only. Slurm's pmix plugin gives
    every task, one alone too, PMIX_RANK and PMIX_NAMESPACE, which that MPICH reads as a PMIx launch, and its
    MPI_Init aborts ("unsupported PMI version PMIx"; `comm.pmix_refusal` refuses it in each task first). The reason
    alone, for `unknown` (hpcflow submit's --mpi) and the sbatch templates' HPCFLOW_MPI (`template_env.mpi`) to say
    with their own fix."""
    if mpi != "pmix" and not mpi.startswith("pmix_"):
        return None
    lib = wheel_library()
    if lib is None:
        return None
    return (f"mpi4py loads the MPI library of the mpich wheel ({lib}), which speaks PMI-1/PMI-2, not PMIx, so the "
            "MPI_Init of every task srun starts with PMIx would abort")


def wheel_library() -> str | None:
    """The file of the MPI library that mpi4py loads (`loaded_library`) where it is one of the files of the mpich
    wheel (pip's distribution `mpich`, as its record lists them, links resolved), else None (another MPI, or none
    found)."""
    import os
    from importlib import metadata

    try:
        dist = metadata.distribution("mpich")
        ours = {os.path.realpath(dist.locate_file(f)) for f in dist.files or ()
                if os.path.basename(str(f)).startswith("libmpi")}
    except (metadata.PackageNotFoundError, OSError):
        return None
    lib = loaded_library() if ours else None
    return lib if lib is not None and os.path.realpath(lib) in ours else None


#: run by a python of its own (`loaded_library`): import mpi4py's MPI without MPI_Init, as a task would (mpi4py
#: picks its library by its rules: MPI4PY_LIBMPI, mpi4py.rc, the wheel's), and print the file that defines the
#: MPI_Get_version the MPI extension module links to (dlsym searches its dependencies; dladdr names the file)
_LOADED_CODE = """
import ctypes, os, sys
import mpi4py
mpi4py.rc.initialize = mpi4py.rc.finalize = False
from mpi4py import MPI
class DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p),
                ("saddr", ctypes.c_void_p)]
ext = ctypes.CDLL(MPI.__file__, os.RTLD_NOLOAD | os.RTLD_LAZY)
symbol = ctypes.cast(ext.MPI_Get_version, ctypes.c_void_p)
dladdr = ctypes.CDLL(None).dladdr
dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
info = DlInfo()
if dladdr(symbol, ctypes.byref(info)) and info.fname:
    sys.stdout.write(os.path.abspath(os.fsdecode(info.fname)))
"""


def loaded_library(timeout: float | None = None) -> str | None:
    """The path of the MPI library that mpi4py loads: asked of a python of its own that imports mpi4py's MPI module
    without MPI_Init (`_LOADED_CODE`), so that mpi4py finds it by its own rules (MPI4PY_LIBMPI, where set, names a
    library elsewhere than the wheel's); None where mpi4py or the library is missing, or it cannot be said (in
    `timeout` seconds, TIMEOUT_S by default)."""
    import os
    import sys

    try:
        r = subprocess.run([sys.executable, "-c", _LOADED_CODE], capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT_S if timeout is None else timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, "MPI4PY_RC_INITIALIZE": "false", "MPI4PY_RC_FINALIZE": "false"})
    except (OSError, subprocess.SubprocessError):  # nothing known, nothing refused
        return None
    return r.stdout.strip() if r.returncode == 0 and os.path.isabs(r.stdout.strip()) else None
