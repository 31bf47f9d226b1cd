"""Communicators: `comm=None` resolves to one duplicate of MPI's world (or a serial stand-in without MPI).

Also the launch checks (several launcher tasks but a size-1 world is the srun-without-PMI trap), the
abort-on-error guard that ends every rank when one raises, a private duplicate for a block, a barrier that gives
up, and threads per rank.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext

import numpy as np

from hpcflow.arguments import short_repr
from hpcflow.backend import default_threads
from hpcflow.errors import EXIT_WRITE_FAILED, ConfigError, RunStop, UserError, WriteFailed, load_refused
from hpcflow.launcher_output import wait_until_read
from hpcflow.resources import THREAD_VARIABLES, out_of_memory_said, slurm_cpus_per_task, start_out_of_memory

#: prefixes of the variables a process manager sets in every process it starts (MPICH/Hydra and srun's PMI-2:
#: PMI_; PMIx, e.g. Open MPI 5 or srun --mpi=pmix: PMIX_; Open MPI: OMPI_; MVAPICH: MV2_, MPIRUN_; IBM jsrun:
#: JSM_NAMESPACE_; Cray aprun: ALPS_APP_), and Slurm's task variables: without any, the world is this process alone
LAUNCH_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "MV2_", "MPIRUN_", "HYDRA_", "I_MPI_", "JSM_NAMESPACE_", "ALPS_APP_",
                   "SLURM_PROCID", "SLURM_STEP_")

_DEFAULT = None
#: why mpi4py's MPI did not import in `_mpi` (None: it did, or was not asked)
_MPI_ERROR = None


class SerialComm:
    """One rank, no MPI: the subset of mpi4py's Comm API hpcflow uses, with collectives returning their input."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        return None

    def Abort(self, errorcode=1):
        os._exit(errorcode)

    def bcast(self, obj, root=0):
        return obj

    def allgather(self, obj):
        return [obj]

    def gather(self, obj, root=0):
        return [obj]

    def allreduce(self, obj, op=None):
        return obj

    def Bcast(self, buf, root=0):
        return None

    @staticmethod
    def _arr(buf):
        return buf[0] if isinstance(buf, (list, tuple)) else buf

    def Allreduce(self, sendbuf, recvbuf, op=None):
        np.copyto(self._arr(recvbuf), self._arr(sendbuf))

    def Allgather(self, sendbuf, recvbuf):
        self._arr(recvbuf).reshape(-1)[:] = np.asarray(self._arr(sendbuf)).reshape(-1)

    def Allgatherv(self, sendbuf, recvbuf):
        send = np.asarray(self._arr(sendbuf)).reshape(-1)
        self._arr(recvbuf).reshape(-1)[: send.size] = send

    def Alltoallv(self, sendbuf, recvbuf):
        send = np.asarray(self._arr(sendbuf)).reshape(-1)
        self._arr(recvbuf).reshape(-1)[: send.size] = send

    def Split_type(self, *args, **kwargs):
        return self

    def Free(self):
        return None


def _mpi():
    """mpi4py's MPI module, or None when mpi4py or an MPI library is missing (RuntimeError, not ImportError); one that
    cannot be mapped for want of memory raises (`hpcflow.errors.load_refused`: one line, status 5). Its
    first import under a launcher runs MPI_Init, which can wait for ever for a process manager: a stop request of the
    start-up ends the command there too (`stop_signals.ends_if_blocked`)."""
    from hpcflow.stop_signals import ends_if_blocked

    global _MPI_ERROR
    try:
        with ends_if_blocked() if "mpi4py.MPI" not in sys.modules and launched() else nullcontext():
            from mpi4py import MPI

        return MPI
    except Exception as exc:  # noqa: BLE001
        # mpi4py says a library its import could not load with a RuntimeError ("cannot load MPI library"): one that
        # was there but could not be mapped for want of address space is that ImportError, not a missing MPI
        if isinstance(exc, RuntimeError) and load_refused(ImportError(str(exc))) is not None:
            raise ImportError(str(exc)) from exc
        _MPI_ERROR = exc
        return None


def launcher_tasks(environ=None) -> int | None:
    """Number of tasks the launcher says it started, or None when not launched by srun/mpiexec
    (`stop_signals.launcher_task`: the innermost launcher's, whose rank `stop_signals.launcher_rank` reads)."""
    from hpcflow.stop_signals import launcher_task

    task = launcher_task(environ)
    return None if task is None else task[0]


def launched(environ=None) -> bool:
    """True when a launcher (mpiexec, srun, ...) may have started this process, or mpi4py's MPI is loaded already:
    only then can the world hold other ranks. A plain `python` (a notebook, a login-node script) is one rank."""
    env = os.environ if environ is None else environ
    return "mpi4py.MPI" in sys.modules or any(k.startswith(LAUNCH_PREFIXES) for k in env)


def resolve(comm=None):
    """`comm` itself, or the library default: a duplicate of MPI.COMM_WORLD made once; SerialComm when the world
    is one rank, and without initialising MPI at all when no launcher started this process (`launched`). A `comm`
    that is not a communicator (no Get_rank and Get_size, e.g. 1 or "world") is refused: TypeError naming comm."""
    global _DEFAULT
    if comm is not None:
        if not all(callable(getattr(comm, f, None)) for f in ("Get_rank", "Get_size")):
            raise TypeError(f"comm={short_repr(comm)} is not an MPI communicator; pass an mpi4py communicator "
                            "(e.g. MPI.COMM_WORLD), or None for the default (a duplicate of MPI's world)")
        return comm
    if _DEFAULT is None:
        MPI = _mpi() if launched() else None
        if MPI is None:
            _DEFAULT = SerialComm()
        else:
            default_stop_signals()
            _DEFAULT = MPI.COMM_WORLD.Dup() if MPI.COMM_WORLD.Get_size() > 1 else SerialComm()
    return _DEFAULT


def default_stop_signals() -> None:
    """Give SIGTERM and SIGUSR1 back their default action (stop at once, status 128+N) where Python's view is the
    default: MPI_Init (MPICH) installs a C handler that swallows SIGUSR1, the signal Slurm sends before the time
    limit. Handlers set in Python (a checkpoint writer, submitit) are kept; only the main thread can do this."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        current = signal.getsignal(sig)
        if current is signal.SIG_DFL or getattr(current, "early", False):  # (`stop_signals.record_early`'s too)
            signal.signal(sig, current)


def rank(comm=None) -> int:
    return int(resolve(comm).Get_rank())


def size(comm=None) -> int:
    return int(resolve(comm).Get_size())


def is_root(comm=None) -> bool:
    return rank(comm) == 0


#: what a PMI-1/PMI-2 process manager (Hydra's mpiexec, srun --mpi=pmi2) gives MPICH's client to connect to; the
#: variables that override MPICH's choice of PMI (its detection of PMIx from PMIX_NAMESPACE)
PMI_CONNECT = ("PMI_FD", "PMI_PORT")
PMI_CHOICE = ("MPIR_CVAR_PMI_VERSION", "MPICH_PMI_VERSION", "MPIR_PARAM_PMI_VERSION")


def library_version() -> str | None:
    """MPI_Get_library_version of the MPI library mpi4py loads (by its own rules: `LIBMPI`, $MPI4PY_LIBMPI, else its
    search), read before MPI_Init (as the standard allows), or None where it cannot be read (no mpi4py, no library)."""
    import ctypes

    try:
        from mpi4py import _mpiabi

        lib = _mpiabi._dlopen_libmpi(getattr(_mpiabi, "LIBMPI", None) or os.environ.get("MPI4PY_LIBMPI"))
        text, length = ctypes.create_string_buffer(16384), ctypes.c_int(0)
        if lib.MPI_Get_library_version(text, ctypes.byref(length)) != 0:
            return None
        return text.value.decode(errors="replace")
    except Exception:  # noqa: BLE001 - any failure: nothing known, nothing refused
        return None


def pmix_refusal(environ=None, version=None, *, loaded=None) -> str | None:
    """Why MPI_Init would abort a PMIx launch (srun --mpi=pmix, PMIX_RANK and PMIX_NAMESPACE set) with an MPICH built
    without PMIx (`version`: MPI_Get_library_version, read where needed), else None. Such an MPICH reads PMIX_RANK
    as a PMI-1 launch and aborts ("launcher not compatible with PMI1 client") unless a PMI-1/2 process manager
    gave it PMI_FD or PMI_PORT (mpiexec), and PMIX_NAMESPACE as PMIx, which it lacks ("unsupported PMI version PMIx"),
    unless PMI_CHOICE names another; before MPI_Init only (`loaded`: whether mpi4py.MPI is imported already, this
    process's by default)."""
    env = os.environ if environ is None else environ
    loaded = "mpi4py.MPI" in sys.modules if loaded is None else loaded
    rank_only = "PMIX_RANK" in env and not any(env.get(k) for k in PMI_CONNECT)
    namespace = "PMIX_NAMESPACE" in env and not any(env.get(k) for k in PMI_CHOICE)
    if loaded or not (rank_only or namespace):
        return None
    version = library_version() if version is None else version
    if not version or not version.startswith("MPICH"):
        return None
    configure = next((line for line in version.splitlines() if line.startswith("MPICH configure:")), "")
    if "pmix" in configure.lower():
        return None
    name = " ".join(version.splitlines()[0].replace("Version:", "").split())
    found = "PMIX_RANK" if rank_only else "PMIX_NAMESPACE"
    # not launched by srun, the variable is most often left over from an 'srun --pty bash' shell (a cluster's default
    # --mpi=pmix) and inherited by mpiexec or a plain python
    stray = f"unset {found}" + ("" if rank_only else f" (or set {PMI_CHOICE[0]}=1)")
    return (f"{found} is set (a PMIx launch, such as srun --mpi=pmix) but the MPI library mpi4py loads ({name}, built "
            "without PMIx) speaks PMI-1/PMI-2 only, and its MPI_Init would abort: use 'srun --mpi=pmi2' under Slurm or "
            f"the mpiexec of the MPI mpi4py was built with; not launching with srun (a {found} inherited from an "
            f"'srun --pty' shell, say), {stray}")


def check_launch(comm=None) -> None:
    """Refuse a PMIx launch that this MPI cannot join (`pmix_refusal`), before MPI_Init, and several launcher tasks
    that each see a world of size 1 (srun without --mpi=pmi2, a foreign mpiexec): a refusal every task makes alike,
    said by the task of launcher rank 0 alone (`stop_signals.launcher_task`: the rank that the launcher whose count
    is read gave, so one task is rank 0; the error's `said_elsewhere` is true on the others, which the CLI ends with
    its status, silently), where each is rank 0 of its own world."""
    from hpcflow.stop_signals import launcher_task

    if comm is None:
        why = pmix_refusal()
        if why is not None:
            raise UserError(why)
    tasks, task_rank = launcher_task() or (None, 0)
    if tasks is not None and tasks > 1 and size(comm) == 1:
        libmpi = libmpi_refusal() if _mpi() is None else None
        lib = "no usable MPI library" if _mpi() is None else "an MPI library that does not know this launcher"
        exc = UserError(f"the launcher started {tasks} tasks but each sees an MPI world of size 1: {libmpi}"
                        if libmpi is not None else
                        f"the launcher started {tasks} tasks but each sees an MPI world of size 1 ({lib}): "
                        "use 'srun --mpi=pmi2' under Slurm or the mpiexec of the MPI mpi4py was built with")
        exc.said_elsewhere = task_rank != 0
        raise exc


def load_error(exc: BaseException) -> str:
    """An exception's text on one line: mpi4py's for an MPI library it cannot load has 'cannot load MPI library' and
    the loader's message for each file it tried on lines of their own, joined here by ': ' and '; '."""
    said = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return ": ".join([said[0], "; ".join(said[1:])]) if len(said) > 1 else "".join(said)


def libmpi_refusal(exc: BaseException | None = None, environ=None) -> str | None:
    """Where $MPI4PY_LIBMPI is set and mpi4py could not load an MPI library (`exc`: its error, by default that of
    `_mpi`'s import in this process): one line naming the variable, the loader's message (`load_error`) and the
    fix; else None."""
    env = os.environ if environ is None else environ
    given = env.get("MPI4PY_LIBMPI", "")
    exc = _MPI_ERROR if exc is None else exc
    if not given.strip() or not isinstance(exc, RuntimeError) or "cannot load MPI library" not in str(exc):
        return None
    return (f"MPI4PY_LIBMPI={given!r} is set but mpi4py cannot load an MPI library from it ({load_error(exc)}); unset "
            "MPI4PY_LIBMPI (mpi4py then loads the MPI it was installed with) or set it to the path of the libmpi.so "
            "of the MPI whose mpiexec or srun launches the job")


def node_layout(comm=None) -> tuple[int, int]:
    """(this rank's index among the ranks of its node, ranks on the node), from COMM_TYPE_SHARED.

    The index chooses a GPU: node_rank % device_count (never the global rank).
    """
    c = resolve(comm)
    MPI = _mpi()
    if isinstance(c, SerialComm) or MPI is None:
        return 0, 1
    node = c.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(node.Get_rank()), int(node.Get_size())
    finally:
        node.Free()


def threads_per_rank(comm=None) -> int:
    """CPUs this rank may use: $HPCFLOW_THREADS, else SLURM_CPUS_PER_TASK but no more than its share of the
    affinity mask (`sbatch -c 8` then `mpiexec -n 4`: the 4 ranks share the task's 8 CPUs), else that share: the
    mask divided by the ranks whose masks overlap it (mpiexec without binding), else the mask itself. Collective
    at R > 1 whatever the environment (the ranks' variables may differ)."""
    return _threads(resolve(comm))[0]


#: the CPUs each rank of the world owns (`owned_cpus`), as the last `threads_per_rank` of this process found them: (a
#: list, rank by rank; what gives them, per rank; this process's rank; the threads each rank runs), or None before
#: any; `pool_threads` compares a job's threads with it, `unequal_threads` the ranks' threads with each other
_OWNED = None
#: the oversubscriptions and unequal thread counts said already by this process (`oversubscribed`,
#: `unequal_threads`): each is said once
_SAID = set()


def owned_cpus(mask, sharing: int) -> tuple[int, str]:
    """(the CPUs a rank owns, what gives them, for a line): its share of the affinity `mask`, the mask divided by the
    `sharing` ranks whose masks overlap it, no more than SLURM_CPUS_PER_TASK where set; what `threads_per_rank`
    gives without $HPCFLOW_THREADS."""
    share = max(1, len(mask) // max(1, sharing))
    whose = f"its affinity mask of {len(mask)} CPU{'s' * (len(mask) > 1)}" + (
        f" shared by {sharing} ranks" if sharing > 1 else "")
    slurm = slurm_cpus_per_task()  # ConfigError for a value Slurm never writes (0, "abc")
    if slurm is not None and slurm < share:
        return slurm, f"SLURM_CPUS_PER_TASK={slurm}"
    return share, whose


def _threads(c) -> tuple[int, int, str]:
    """(`threads_per_rank`, the CPUs this rank owns, what gives them: `owned_cpus`); records every rank's CPUs for
    `pool_threads` (one allgather more at R > 1)."""
    global _OWNED
    try:
        mask = os.sched_getaffinity(0)
    except AttributeError:
        mask = set(range(os.cpu_count() or 1))
    masks = c.allgather(sorted(mask)) if size(c) > 1 and node_layout(c)[1] > 1 else [sorted(mask)]
    sharing = sum(1 for m in masks if set(m) & mask)  # ranks (on any node) whose CPUs overlap ours
    explicit = os.environ.get("HPCFLOW_THREADS", "").strip()
    n = default_threads() if explicit else None  # the one reader of $HPCFLOW_THREADS: an explicit choice, kept
    owned, whose = owned_cpus(mask, sharing)
    mine = owned if n is None else n
    every = c.allgather((owned, whose, mine)) if size(c) > 1 else [(owned, whose, mine)]
    _OWNED = ([o for o, _, _ in every], [w for _, w, _ in every], int(c.Get_rank()), [t for _, _, t in every])
    return mine, owned, whose


def unequal_threads() -> str | None:
    """The note (rank 0's, once a process for the same counts) where the ranks run different thread counts, as the
    last `threads_per_rank` found them (each rank's own $HPCFLOW_THREADS, or its CPUs), listing them; else None.
    Each rank sums per thread with its own (a flow's kernel tiles, BLAS, torch), while the records of a run
    (legs[].threads, a network's summary.json threads) and a resume's comparison with them hold rank 0's."""
    if _OWNED is None or _OWNED[2] != 0 or len(set(_OWNED[3])) < 2 or ("threads", *_OWNED[3]) in _SAID:
        return None
    counts = _OWNED[3]
    _SAID.add(("threads", *counts))
    listed = "; ".join(f"{n} on rank{'s' * (counts.count(n) > 1)} "
                       f"{ranks_named([r for r, t in enumerate(counts) if t == n])}" for n in sorted(set(counts)))
    return (f"hpcflow: note: the ranks run different thread counts ($HPCFLOW_THREADS, else the CPUs each owns: "
            f"{listed}): each rank sums per thread (a flow's kernel tiles, BLAS, torch) with its own count, while the "
            f"run records rank 0's ({counts[0]}) as its threads (legs[].threads, a network's summary.json threads), "
            "which a --resume compares; give every rank the same HPCFLOW_THREADS to run them alike")


def ranks_named(ranks: list) -> str:
    """Ranks in increasing order, each run of consecutive ones as FIRST-LAST: [0, 1, 2, 5] -> "0-2, 5"."""
    runs = []
    for r in ranks:
        if runs and r == runs[-1][1] + 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def oversubscribed(n: int, setting: str, fix: str) -> str | None:
    """The line (rank 0's, once a process for the same values) where `n` threads each rank runs, as `setting` asks
    (`HPCFLOW_THREADS=1024`), exceed the CPUs a rank owns (the fewest of any rank, as the last `threads_per_rank`
    found them), else None; `fix` names the value to set, {at_most} in it the CPUs owned ("2 or less"). The value
    is kept: the threads then take turns on those CPUs, which runs slower (a user may mean it)."""
    if _OWNED is None:
        return None
    owned, whose, mine = _OWNED[:3]
    r = min(range(len(owned)), key=lambda k: owned[k])
    if n <= owned[r] or (n, setting, owned[r]) in _SAID or mine != 0:
        return None
    _SAID.add((n, setting, owned[r]))
    who = "this rank owns" if len(owned) == 1 else f"rank {r} owns"
    at_most = f"{owned[r]}" if owned[r] == 1 else f"{owned[r]} or less"
    return (f"hpcflow: warning: {setting} asks for {n} threads, more than the {owned[r]} CPU{'s' * (owned[r] > 1)} "
            f"{who} ({whose[r]}): the threads take turns on them, which runs slower; {fix.format(at_most=at_most)}")


def limit_threads(comm=None, *, unequal_said: bool = True) -> int:
    """Apply `threads_per_rank` to hpcflow's workers ($HPCFLOW_THREADS), BLAS and torch (those loaded now, and
    through hpcflow.resources.THREAD_VARIABLES those loaded later); return it. An $HPCFLOW_THREADS above the CPUs a
    rank owns is kept and said in one line on stderr (`oversubscribed`); with `unequal_said`, ranks that run
    different thread counts are noted in one line by rank 0 (`unequal_threads`: a run records rank 0's)."""
    c = resolve(comm)
    explicit = os.environ.get("HPCFLOW_THREADS", "").strip()
    n = _threads(c)[0]
    line = oversubscribed(n, f"HPCFLOW_THREADS={explicit}", "set HPCFLOW_THREADS={at_most}, or unset it (each "
                          "rank then takes its own CPUs)") if explicit else None
    for said in (line, unequal_threads() if unequal_said else None):
        if said is not None:
            print(said, file=sys.stderr, flush=True)
    os.environ["HPCFLOW_THREADS"] = str(n)
    _pools(n)
    return n


#: how `pool_threads` names the setting of its threads: its caller's, a network job's
POOL_SETTING = ("[training] threads = {n}", "set [training] threads = {at_most}, or 0 (the rank's own CPUs)")


def pool_threads(n: int, setting: tuple[str, str] = POOL_SETTING) -> None:
    """n threads for the BLAS, OpenMP and torch pools: those loaded now (threadpoolctl; torch where imported) and,
    through hpcflow.resources.THREAD_VARIABLES, those loaded later; hpcflow's own workers ($HPCFLOW_THREADS) keep
    theirs. Where n exceeds the CPUs a rank owns (as `limit_threads`, run before, found them) rank 0 says so once
    on stderr, naming `setting` (what asked for n, with {n}; the fix, with {at_most}): the value is kept."""
    line = oversubscribed(n, setting[0].format(n=n), setting[1])
    if line is not None:
        print(line, file=sys.stderr, flush=True)
    _pools(n)


def _pools(n: int) -> None:
    """`pool_threads` without its check."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
    except Exception:  # noqa: BLE001 - threadpoolctl missing: leave BLAS as it is
        pass
    torch = sys.modules.get("torch")  # only when the job already imported it (None: hidden, as in tests)
    if torch is not None:
        torch.set_num_threads(n)


#: seconds a rank whose block raised waits in `abort_on_error`, its message printed, for the other ranks before the
#: job is aborted: when every rank raised (bad input all ranks saw, an I/O error) the job ends as soon as all have
#: said why, so no Abort cuts rank 0's message off; when some rank waits in a collective, the failing ones end after it
ABORT_WAIT = 3.0


@contextmanager
def abort_on_error(comm=None, *, wait: float = ABORT_WAIT):
    """Run a block; if it raises on any rank of a multi-rank world, print the error tagged with the rank and Abort.

    Without this, one rank's exception leaves the others waiting in a collective for ever. A UserError or a
    WriteFailed (rank 0's write of a shared file) is re-raised on one rank (the CLI prints it); at R > 1 it aborts
    with its status (2, 5) after printing its line, as memory that ran out does (`hpcflow.errors.out_of_memory`, 5).
    RunStop and SystemExit pass through: they are decided
    collectively, so every rank raises them together. Collective on entry (a private duplicate of `comm` for
    `abort_together`). `wait`: seconds a failing rank waits for the others before the Abort (longer where rank 0
    records the failure somewhere before it arrives, as `hpcflow tune` does).
    """
    c = resolve(comm)
    with duplicate(c) as agree:
        _AGREE.append(agree)
        try:
            yield c
        except BaseException as exc:
            if agree is None or isinstance(exc, (SystemExit, RunStop)) or getattr(exc, "collective", False):
                raise  # RunStop (preemption, numerical stop), exits, `refuse_together`'s refusals and errors raised
                # by `raise_together` are decided collectively: every rank raises them
            sys.stdout.flush()  # what this rank printed (a batch log is block-buffered) is not lost in the Abort
            status = int(getattr(exc, "exit_status", 1))
            if isinstance(exc, (UserError, WriteFailed)):
                print(f"hpcflow: rank {rank(c)}: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
            elif start_out_of_memory(exc) is not None:  # before the command's work began (exit 2)
                status = UserError.exit_status
                print(f"hpcflow: rank {rank(c)}: error: {start_out_of_memory(exc)}", file=sys.stderr, flush=True)
            elif out_of_memory_said(exc) is not None:
                status = EXIT_WRITE_FAILED
                print(f"hpcflow: rank {rank(c)}: error: {out_of_memory_said(exc)}", file=sys.stderr, flush=True)
            else:
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                print(f"hpcflow: rank {rank(c)}: ERROR {type(exc).__name__}: {exc}\n{tb}", file=sys.stderr,
                      flush=True)
            abort_together(c, agree, status, wait=wait)
            raise
        finally:
            _AGREE.pop()


#: the communicators of the `abort_on_error` blocks under way, innermost last (None on one rank): on them the
#: ranks that stop together agree to leave without an Abort (`stop_together`)
_AGREE = []


def stop_together(status: int, *, wait: float = ABORT_WAIT) -> bool:
    """Where every rank stops at once (a SIGTERM or Ctrl-C the launcher passed to each, `stop_signals.interrupted`),
    inside `abort_on_error`: when all arrive within `wait` seconds at a barrier on its private duplicate, each
    leaves its process with rank 0's status through `leave` (MPI finalized: the launcher cleans up after the job,
    which an Abort keeps MPICH's Hydra from doing, its /tmp/hydra_hwloc_xmlfile_* left for good). Returns where
    there is no such block (False) or a rank did not come (True: it waits in a collective): the caller aborts."""
    agree = _AGREE[-1] if _AGREE else None
    if agree is None:
        return False
    if not arrive_within(agree, wait):
        return True
    status = agree.bcast(status, root=0)
    sys.stdout.flush()
    sys.stderr.flush()
    leave(status)


def abort_together(comm, agree, status: int, *, wait: float = ABORT_WAIT) -> None:
    """End the job once the ranks that fail together have all printed why: wait up to `wait` seconds at a barrier
    on `agree` (a duplicate of `comm` used for nothing else). When every rank arrived, each leaves its process with
    rank 0's status (the job's) through `leave`: none waits in a collective, so no Abort is needed, and Aborts from
    every rank at once sometimes ended the job with the status of a rank the launcher's kill reached first (9). Else
    this rank aborts with its own status after the wait."""
    if arrive_within(agree, wait):
        status = agree.bcast(status, root=0)  # every rank is here: no one is left waiting in this collective
        sys.stdout.flush()
        sys.stderr.flush()
        leave(status)  # so each leaves with it: no Abort, whose kills raced the others' Aborts for the status
    wait_until_read()  # the message above: a launcher may drop what it has not read when the Abort ends the job
    release_shared_memory()
    comm.Abort(status)


#: where MPICH keeps the shared-memory segment of a node's ranks, and the start of its names
SHM_DIR, SHM_PREFIX = "/dev/shm", "mpich_shm_"


def mapped_segments(maps: str = "/proc/self/maps") -> list:
    """The paths of MPICH's shared-memory segments (SHM_DIR/SHM_PREFIX*) that this process maps (Linux's
    /proc/self/maps; [] where there is none)."""
    found = []
    try:
        with open(maps) as fh:
            for line in fh:
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if (os.path.dirname(path) == SHM_DIR and os.path.basename(path).startswith(SHM_PREFIX)
                        and path not in found):
                    found.append(path)
    except OSError:
        pass
    return found


def release_shared_memory() -> None:
    """Remove the names of the MPICH shared-memory segments this process maps, before an MPI Abort: MPICH unlinks a
    segment at Finalize only, so each job that ended by Abort left its 2 MiB file in /dev/shm for good. Its
    mapping lives on until the process ends (the job's other ranks mapped it at MPI_Init); another job's segments,
    which this process does not map, are never touched. Errors are ignored (another rank removed it first)."""
    for path in mapped_segments():
        try:
            os.unlink(path)
        except OSError:
            pass


#: seconds a rank gives MPI's Finalize and the C library's exit functions in `leave` before it leaves without them
LEAVE_WAIT = 10.0


def leave(status: int, *, wait: float = LEAVE_WAIT) -> None:
    """End this process with `status` after every rank agreed on it, running no more Python: MPI finalized, then the
    C library's exit (MPICH's exit functions included). A rank that left by _exit alone, even finalized, made Hydra
    kill the ranks still on their way out, and the job's status became theirs (9, SIGKILL). `wait` bounds both steps:
    past it the rank leaves by _exit, with `status` from a hung exit function, with 1 and its threads' tracebacks on
    stderr from a Finalize that waits longer for a rank (mpi4py holds the GIL there: only faulthandler's C thread
    runs)."""
    import ctypes
    import faulthandler

    watchdog = threading.Timer(wait, os._exit, (status,))
    watchdog.daemon = True
    try:
        watchdog.start()
        faulthandler.dump_traceback_later(wait + 1.0, exit=True)
    except RuntimeError:  # no room for their threads (memory ran out: `hpcflow.errors.out_of_memory`): leave without
        pass
    MPI = _mpi()
    try:
        if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
            MPI.Finalize()
        ctypes.CDLL(None).exit(status)  # releases the GIL: the watchdog can still end a hung exit function
    finally:
        os._exit(status)


@contextmanager
def duplicate(comm=None):
    """A duplicate of `comm` for a block (None on one rank), whose messages never match those on `comm`; freed when
    the block ends without an exception (one that ends the process may leave a request pending on it)."""
    c = resolve(comm)
    dup = c.Dup() if size(c) > 1 else None
    yield dup
    if dup is not None:
        dup.Free()


#: seconds between two tests of `arrive_within`'s barrier
ARRIVE_POLL = 0.01


def arrive_within(comm, seconds: float) -> bool:
    """A barrier that gives up: True when every rank of `comm` entered it within `seconds`, else False (a rank is
    elsewhere, e.g. in a collective this one left). An abandoned barrier stays pending on `comm`: give it a
    communicator used for nothing else."""
    if comm.Get_size() == 1:
        return True
    request = comm.Ibarrier()
    deadline = time.monotonic() + seconds
    while not request.Test():
        if time.monotonic() >= deadline:
            return False
        time.sleep(ARRIVE_POLL)
    return True


def refuse_together(check, comm=None):
    """Run the input checks `check()` on every rank and return its value; a UserError on any rank is refused by
    all: rank 0 raises it (the CLI prints one line: the lowest failing rank's message, which names that rank where
    it is not 0: "(on rank 1; 1 of 2 ranks refused)", as each rank checks its own environment and node), the others
    exit with its status in silence. `check` must not call collectives that a failing rank would skip."""
    c = resolve(comm)
    try:
        value, failed = check(), None
    except UserError as exc:
        value, failed = None, exc
    if size(c) == 1:
        if failed is not None:
            raise failed
        return value
    refusals = c.allgather(None if failed is None else (" ".join(str(failed).split()), failed.exit_status))
    failing = [r for r, x in enumerate(refusals) if x is not None]
    if not failing:
        return value
    message, status = refusals[failing[0]]
    if rank(c) != 0:
        raise SystemExit(status)
    if failing[0] > 0:  # what rank 0 passed (its environment, a node-local path, its memory) a later rank refused
        failed = UserError(f"{message} (on rank {failing[0]}; {len(failing)} of {len(refusals)} ranks refused)")
        failed.exit_status = status
    failed.collective = True  # every rank refuses: `abort_on_error` lets it through to the CLI's one line
    raise failed


def value_error_together(message: str | None, *, comm=None) -> None:
    """Refuse a Python-API argument on every rank together: `message` is this rank's complaint (None: none); when
    any rank has one, every rank raises ValueError with the lowest such rank's (one allgather at R > 1), so no
    rank goes on into a collective the others left."""
    c = resolve(comm)
    first = message if size(c) == 1 else next((m for m in c.allgather(message) if m is not None), None)
    if first is not None:
        refuse_alike(first, comm=c)


def arguments_together(check, *, comm=None, same=None):
    """Run the Python-API argument checks `check()` on every rank and return its value; a TypeError, ValueError or
    UserError (a ConfigError of the job-file layer) on any rank is raised by every rank (one allgather at R > 1): the
    lowest failing rank's type and one-line message, naming its rank when the ranks' refusals differ, marked
    collective for `abort_on_error`.
    `check` must not call collectives (a failing rank skips the rest of it). `same()` (called after a passing
    check): {name: value} that must be equal on every rank, compared by repr in the same allgather; the first that
    differs is refused by every rank (valid values that differ would flow on silently, each rank its own way)."""
    c = resolve(comm)
    if size(c) == 1:
        return check()
    try:
        value, mine = check(), None
    except (TypeError, ValueError, UserError) as exc:
        value, mine = None, (_kind(exc), " ".join(str(exc).split()))
    alike = None if mine is not None or same is None else [(k, repr(v)) for k, v in same().items()]
    names = () if same is None else None if alike is None else tuple(k for k, _ in alike)
    every = _same_check(c, ("arguments", names), (mine, alike))
    failed = [k for k, (m, _) in enumerate(every) if m is not None]
    if not failed:
        _refuse_unlike([a for _, a in every])
        return value
    kind, message = every[failed[0]][0]
    if any(m != every[failed[0]][0] for m, _ in every):  # the ranks' arguments differ: say whose this is
        message += f" (on rank {failed[0]}; {len(failed)} of {len(every)} ranks refused their arguments)"
    exc = kind(message)
    exc.collective = True
    raise exc


def _same_check(c, check: tuple, payload) -> list:
    """Allgather of `payload` in the collective check `check` (its kind and the names of the values it compares,
    None where unknown: a rank whose argument check refused them) made where this check was called; the payloads in
    rank order. Ranks at different checks (one skipped a check or called another: a programming error) are refused
    on every rank together with a RuntimeError naming both checks and where each was called, instead of comparing
    unrelated values (which said that a value "differs" that the other rank never had) or failing each its own way."""
    caller = sys._getframe(2)
    site = (os.path.basename(caller.f_code.co_filename), caller.f_lineno, caller.f_code.co_name)  # (paths may differ)
    every = c.allgather((check, site, payload))
    first = every[0]
    for other, theirs in enumerate(every):
        if theirs[0][0] != first[0][0] or theirs[1] != first[1]:  # (a check's names may depend on its values)
            raise_together(RuntimeError(f"ranks are at different collective checks ({_check_said(*first[:2])} on rank "
                                        f"0, {_check_said(*theirs[:2])} on rank {other}); every rank must make the "
                                        "same checks in the same order"), comm=c)
    return [p for _, _, p in every]


def _check_said(check: tuple, site: tuple) -> str:
    """A collective check (`_same_check`) and where it was called, in words."""
    kind, names = check
    where = f" in {site[2]} ({site[0]}:{site[1]})"
    if kind == "agreement":
        return f"agreement of {', '.join(names) or 'no values'}{where}"
    if names is None:
        return f"an argument check{where}"
    return f"an argument check comparing {', '.join(names) or 'no values'}{where}"


def _kind(exc) -> type:
    """The class `arguments_together` raises for `exc` on every rank: hpcflow's own UserError class (ConfigError,
    OutputPathError, ...), else TypeError or ValueError (a subclass, e.g. NumPy's, is not sent between ranks)."""
    if isinstance(exc, UserError):
        return type(exc)
    return TypeError if isinstance(exc, TypeError) else ValueError


def _refuse_unlike(alike) -> None:
    """ValueError (collective) naming the first argument whose repr differs between ranks (`arguments_together`),
    matched by name (a rank's check may compare arguments that another's does not: "unset" there)."""
    if alike[0] is None:
        return
    values = [dict(a or ()) for a in alike]
    names = list(values[0]) + [k for v in values[1:] for k in v if k not in values[0]]
    for name in dict.fromkeys(names):
        first = values[0].get(name, "unset")
        other = next((r for r, v in enumerate(values) if v.get(name, "unset") != first), None)
        if other is not None:
            exc = ValueError(f"{name} differs between ranks ({name}={first} on rank 0, "
                             f"{values[other].get(name, 'unset')} on rank {other}); pass the same {name} on every rank")
            exc.collective = True
            raise exc


def agree_together(values: dict, *, fix: str, comm=None, first: tuple = ()) -> None:
    """Refuse `values` ({name: JSON value}, e.g. a command's job after its --set overrides and its options) that
    differ between ranks, on every rank together before any work: ConfigError (exit 2) naming the first that differs
    (those named in `first` in that order, then the others sorted by name), its value on rank 0 and on the lowest
    rank that differs, then `fix`. One allgather of a SHA-256 digest of their canonical JSON; only where the digests
    differ, a second gathers the values to name one."""
    import hashlib
    import json

    c = resolve(comm)
    if size(c) == 1:
        return
    canon = {k: json.dumps(v, sort_keys=True, default=repr) for k, v in values.items()}
    digests = _same_check(c, ("agreement", tuple(sorted(canon))),
                          hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest())
    if len(set(digests)) == 1:
        return
    every = c.allgather(canon)
    other = next(r for r, d in enumerate(digests) if d != digests[0])
    names = [*first, *sorted((set(every[0]) | set(every[other])) - set(first))]
    name = next(k for k in names if every[0].get(k) != every[other].get(k))
    on_first, on_other = (every[r].get(name, "unset") for r in (0, other))
    raise_together(ConfigError(f"{name} differs between ranks ({on_first} on rank 0, {on_other} on rank {other}); "
                               f"{fix}"), comm=c)


def same_command(command: str, *, comm=None) -> None:
    """The first exchange of a command under a launcher (`hpcflow.cli`), before any other collective but the
    world's duplicate (`resolve`): ranks that run another hpcflow `command` ("hpcflow run") or another hpcflow
    version are refused on every rank together, in one line naming both and their ranks, exit 2 (`agree_together`:
    one allgather). Ranks of an MPMD launch (`mpiexec -n 1 hpcflow run ... : -n 1 hpcflow sample ...`) running
    different commands went on into collectives that did not match and waited in them for ever, where no signal
    ended them."""
    from hpcflow import __version__

    agree_together({"command": command, "hpcflow version": __version__}, comm=comm, first=("command",),
                   fix="start every rank with the same command line (one command line after mpiexec -n R) from the "
                   "same hpcflow installation")


def refuse_alike(message: str, *, comm=None):
    """Raise ValueError(message) where every rank decides the refusal from the same values (`raise_together`)."""
    raise_together(ValueError(message), comm=comm)


def raise_together(exc: BaseException, *, comm=None):
    """Raise `exc`, which every rank raises at the same point, decided on the same data (values after a
    collective): no collective here. Marked collective at R > 1, so `abort_on_error` lets it through on every rank
    (no Abort) and the CLI prints it once, from rank 0; every rank can catch it alike and go on together."""
    exc.collective = size(comm) > 1
    raise exc
