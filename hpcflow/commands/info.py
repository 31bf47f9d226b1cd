"""`hpcflow info`: versions, MPI library and world size, GPU usability (CuPy's and torch's), the array backend. A bad
HPCFLOW_* setting is refused in one line, exit 2, as by every command (README, "environment")."""

from __future__ import annotations

import glob
import os
import platform
import shutil
import sys

from hpcflow.provenance import library_line


def _version(dist: str) -> str:
    """Installed version of a distribution, read from its metadata (importing torch alone takes seconds)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cupy_version() -> str:
    """The installed CuPy's version and the distribution that provides the `cupy` module ('13.3.0 (cupy-cuda11x)'):
    CuPy ships as cupy-cuda11x, cupy-cuda12x, cupy-rocm-*, cupy; read from its metadata, else 'not installed'."""
    from importlib import metadata

    for dist in sorted(set(metadata.packages_distributions().get("cupy", []))):
        try:
            return f"{metadata.version(dist)} ({dist})"
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


#: what a GPU driver of torch's CUDA or ROCm builds opens on Linux: NVIDIA's device files and its loaded kernel
#: module, Jetson's integrated GPU (nvgpu), WSL's GPU paravirtualisation (libcuda and ROCm on WSL), AMD's ROCm
GPU_DEVICE_FILES = ("/dev/nvidia*", "/proc/driver/nvidia", "/dev/nvhost-*", "/dev/nvmap", "/dev/nvgpu", "/dev/dxg",
                    "/dev/kfd")
#: NVIDIA's setuid program, which the user-space driver runs to load the kernel module and make the device files
NVIDIA_MODPROBE = ("/usr/bin/nvidia-modprobe", "/usr/sbin/nvidia-modprobe", "/bin/nvidia-modprobe")
#: the kernel modules modprobe loads: MODULES/<release>/modules.dep
MODULES = "/lib/modules"


def gpu_device_possible() -> bool:
    """Whether a GPU driver may answer torch here; False only where none can: on Linux, with none of
    `GPU_DEVICE_FILES`, no nvidia-modprobe that would make NVIDIA's, and not as root with an nvidia kernel module
    that modprobe would load (a CUDA driver run as root loads it itself). Elsewhere (macOS, Windows) True."""
    if not sys.platform.startswith("linux"):
        return True
    if any(glob.glob(pattern) for pattern in GPU_DEVICE_FILES):
        return True
    if shutil.which("nvidia-modprobe") or any(os.path.exists(p) for p in NVIDIA_MODPROBE):
        return True
    if os.geteuid() != 0:
        return False
    try:
        with open(os.path.join(MODULES, os.uname().release, "modules.dep"), encoding="utf-8",
                  errors="replace") as f:
            return any(line.split(":", 1)[0].rsplit("/", 1)[-1].split(".", 1)[0] == "nvidia" for line in f)
    except OSError:  # no module index: modprobe finds no module to load
        return False


def torch_cuda() -> bool | str | None:
    """Whether torch sees a GPU (what a network job's device 'auto' and 'cuda' ask); None without torch. Where no
    GPU driver can answer (`gpu_device_possible`), False without importing torch (~2 s), as torch would say."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    if "torch" not in sys.modules and not gpu_device_possible():
        return False
    try:
        from hpcflow.nn._torch import cuda_available

        return cuda_available()
    except Exception as exc:  # noqa: BLE001 - a broken install (ImportError, OSError of a missing library)
        return f"torch does not import ({type(exc).__name__}: {exc})"


def backend_line(problem: tuple[str, str] | None) -> str:
    """The array backend a run would take here, CuPy's GPU being `problem` (`hpcflow.backend.gpu_problem`, None:
    usable); HPCFLOW_BACKEND=cupy without a usable GPU said as such (a valid setting a run on this node refuses)."""
    from hpcflow.arguments import env_backend

    choice = env_backend() or "auto"  # (why auto falls back to numpy is the gpu_problem line)
    if choice == "numpy":
        return "numpy"
    if problem is None:
        return "cupy"
    return "numpy" if choice == "auto" else "cupy requested, no usable GPU here"


def collect() -> dict:
    """Gather the facts `hpcflow info` prints, as a dict (also used in HDF5 provenance)."""
    from hpcflow import __version__
    from hpcflow import backend

    facts = {"hpcflow": __version__, "python": platform.python_version()}
    for dist in ("numpy", "scipy", "numba", "h5py", "scikit-learn", "optuna", "submitit", "mpi4py", "torch"):
        facts[dist] = _version(dist)
    facts["cupy"] = cupy_version()
    from hpcflow.parallel.comm import launcher_tasks, libmpi_refusal, load_error

    libmpi = None
    try:
        from mpi4py import MPI

        facts["mpi_library"] = library_line(MPI.Get_library_version())
        facts["mpi_world_size"] = MPI.COMM_WORLD.Get_size()
    except Exception as exc:  # noqa: BLE001 - RuntimeError when no MPI library is found
        libmpi = libmpi_refusal(exc)  # a wrong MPI4PY_LIBMPI, named with its fix
        facts["mpi_library"] = f"not usable ({libmpi or f'{type(exc).__name__}: {load_error(exc)}'})"
        facts["mpi_world_size"] = 1
    launcher = launcher_tasks()
    if launcher and launcher > 1 and facts["mpi_world_size"] == 1:
        facts["warning"] = (f"the launcher started {launcher} tasks but MPI sees world size 1: " + (libmpi or (
            "mpi4py is not linked to the launcher's MPI (e.g. srun without PMI support: try srun --mpi=pmi2 or "
            "mpiexec from the same MPI as mpi4py)")))
    problem = backend.gpu_probed_apart()  # CuPy's (the array backend's): a kernel run by a child process, so this
    facts["gpu_available"] = problem is None  # one holds no CUDA context (exclusive-process mode: the GPU stays free)
    if problem is not None:  # why not: not installed, import failed, no device visible, device unusable
        facts["gpu_problem"] = problem[1]
    cuda = torch_cuda()
    if cuda is not None:
        facts["torch_cuda"] = cuda
    facts["backend"] = backend_line(problem)
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
    from hpcflow.errors import UserError
    from hpcflow.parallel.comm import pmix_refusal, refuse_together
    from hpcflow.resources import check_environment

    why = pmix_refusal()  # before MPI_Init (refuse_together's), which would abort with its error stack
    if why is not None:
        raise UserError(why)
    refuse_together(check_environment)  # one line from rank 0 under mpiexec
    facts = {**collect(), "host": platform.node()}  # the node: at 1 rank too (one line for a world on one node)
    if facts["mpi_world_size"] > 1:
        from hpcflow.parallel.comm import rank, resolve

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
