"""Resource bounds: peak memory per rank estimated from a validated job, against what the process may use.

`check_resources(cfg, kind)` refuses (ConfigError, one line: estimate and limit) a job whose estimated peak
resident memory does not fit; `estimate(cfg, kind)` gives the figure and its parts. The model counts the
arrays each job holds at its peak (point sets, kernel cache, flow state, a clustered flow's blocks with the
sources its halo adds, network parameters and optimiser
state, activations) plus the interpreter and libraries; its coefficients were checked against measured peak
RSS (benchmarks/bench_memory_estimate.py, BENCHMARKS.md). The limit is the smallest of the cgroup (v2/v1)
memory limit, the Slurm allocation (SLURM_MEM_PER_NODE / SLURM_MEM_PER_CPU) and physical memory, shared by
the ranks on one node (SLURM_MEM_PER_CPU x CPUs per task: by the ranks of one task). Override: `force=True`,
HPCFLOW_IGNORE_MEMORY_CHECK=1 or the commands' --no-memory-check.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import resource
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from hpcflow.errors import ConfigError, load_refused, out_of_memory, unsaid_import_failure
from hpcflow.arguments import (api_integer, api_threads, env_backend, env_integer, env_quiet, env_switch,
                               env_thread_count, env_threads, text_count)

ENV_IGNORE = "HPCFLOW_IGNORE_MEMORY_CHECK"
#: read by BLAS and OpenMP runtimes when they load: checked with the environment (`check_environment`), then set to
#: the threads each rank owns (`hpcflow.parallel.comm.limit_threads`), so that libraries a job imports later (SciPy's
#: OpenBLAS, the OpenMP of scikit-learn's clustering) start with that many threads, not one per CPU of the node
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: interpreter + NumPy/SciPy/h5py (+ scikit-learn) resident after import, and with torch on top (measured)
BASE_BYTES = 160 * 2**20
#: scikit-learn's part of BASE_BYTES (measured 64 MB of 153): a kernel flow loads it only for Birch clustering
SKLEARN_BYTES = 64 * 2**20
#: `hpcflow sample` (NumPy and h5py only) resident when its sampling starts: measured 52-53 MiB (VmRSS, 1 or 2
#: threads), 71 MiB a rank under mpiexec -n 2 (MPICH's); `hpcflow run` (jobs/quickstart.toml) 57 MiB at its first
#: sampling, 63 at its second; the chart stop's SciPy adds 14 MiB where it is imported: an upper bound by 9 MiB or
#: more (tests/test_sample_base_memory.py). Under RLIMIT_AS / RLIMIT_DATA what the process holds is measured
#: (`address_space_room`, `data_room`) and this counted on top of it
SAMPLE_BASE_BYTES = 80 * 2**20
TORCH_BASE_BYTES = 450 * 2**20
#: the compiled Gaussian tile (hpcflow.kernels.jit: Numba and LLVM) resident after its first call, over the
#: imports above (measured +125 MB in a fresh process with the compiled code cached)
JIT_BYTES = 160 * 2**20
#: kernel matrices a flow keeps between steps (hpcflow.flow.DEFAULT_CACHE_BYTES) and the rows of one sampler batch
FLOW_CACHE_BYTES = 256 * 2**20
LINES_PER_BATCH = 2048
#: live copies of a point set while it is sampled (parts + concatenation)
SAMPLE_COPIES = 2.0
#: ... of a rank's share while it is sampled and moved to its owner (send, receive and unpacked rows), and as
#: resident after that (the kept rows and what the allocator keeps of the freed buffers; measured: 10^6 + 10^5
#: points on 2 ranks, peak 1.13 GB per rank, BENCHMARKS.md "End-to-end scale runs")
SHARE_COPIES = 3.0
SHARE_HELD = 2.0
#: `hpcflow sample` under MPI (layout "root"): copies of all N points on rank 0 while it gathers them (the received
#: rows, then unpacked), and of its own share that stay resident beside them (measured peak RSS of rank 0 at dim 3,
#: 3*10^5 and 10^6 points on 2 and 3 ranks: 1.29-1.33 GB at 10^6, 442-445 MB at 3*10^5, against 1.03 GB and
#: 393 MB on one rank; these give 8-19 % more)
GATHER_COPIES = 2.25
ROOT_SHARE_HELD = 1.0
#: `layout` "all" under MPI: copies of all N points on rank 0 at its peak, the gathered rows unpacked, packed again
#: and received whole from the Allgatherv (three), over the receive buffer of the gather (`GATHER_COPIES`' 0.25)
ALL_COPIES = 3.25
#: headroom on the Delta flow's per-point parts: its peak (the nearest search's features of the rank's train rows,
#: over its points) measured 910 MiB per rank at 10^6 + 10^5 points on 2 ranks where those parts count 775 MiB
#: (and 155 MiB of base and checkpoint block the interpreter and MPI take ~100 MiB of); the parts grew ~2.5 %
#: faster than counted from 10^6 to 10^7 (allocator): 15 % keeps the estimate >= 1.15 x the peak at 10^6 and,
#: extrapolated from the phases measured at 2*10^5 and 10^6, at 10^7
DELTA_SHARE_MARGIN = 1.15
#: live copies of a sampler batch's point data while a worker forms them (its rows and the temporaries of g_FS and
#: its determinant; measured 2.06, 2.03, 2.01, 2.01 at dim 3, 8, 16, 24); a formed batch holds one until the wave ends
BATCH_TEMPORARIES = 2.1
#: float64 arrays of P = m^2 packed components per point the flow holds (metrics, gradient, update, trial, ...)
FLOW_STATE_ARRAYS = 12
#: one streamed kernel tile (512 x 512 float64) and its temporaries, per worker thread
TILE_BYTES = 4 * 8 * 512 * 512
#: rough seconds per kernel entry one thread evaluates with the products it serves (BENCHMARKS.md): the compiled
#: Gaussian tile (13.7 ns in the 10^6-point scale run, 10.3 in the exact step at 10^5, 14 at N = 5000), the NumPy
#: passes and the cosine NTK (18.4-24 ns), a ReLU NTK per layer (9.4-10.9 ns per N^2 entry and layer with 2 threads,
#: the step evaluating half of them); and per entry of a cached kernel applied in one step (4.6 ns in
#: jobs/table1_relu_deep.toml at depth 1, 6.4 in the quickstart at N = 3000). Time is reported (--check), never a
#: reason to refuse
SECONDS_PER_COMPILED_ENTRY = 1.2e-8
SECONDS_PER_KERNEL_ENTRY = 2e-8
SECONDS_PER_RELU_LAYER_ENTRY = 4e-8
SECONDS_PER_CACHED_ENTRY = 5e-9
#: loading the compiled Gaussian tile from Numba's cache in a fresh process, within the first kernel sums (0.3-1.7 s)
COMPILED_START_SECONDS = 0.5
#: the share P(r) of one chart's sampled points within FS distance r of one of them is taken as
#: max(HALO_DENSITY_FLOOR, 1 + dim exp(-r / HALO_DENSITY_SCALE)) sin(r)^(2 dim), at most 1 (`halo_growth`): near 0
#: (dim + 1) sin(r)^(2 dim), a small ball's share of X (sin(r)^(2 dim) / (dim + 2)) over a chart's ((dim + 1)(dim + 2)
#: charts), falling towards the chart's edges. Fitted above the shares of 4000-8000 Fermat points in chart (0, 1), dim
#: 2, 3, 4 at r = 0.1-1.2 (P / sin(r)^(2 dim): 2.3-2.9 at 0.1, 1.8-2.3 at 0.2, 1.3-1.9 at 0.3, 0.8-1.3 at 0.6-1.2)
HALO_DENSITY_SCALE = 0.22
HALO_DENSITY_FLOOR = 1.35
#: a batched cluster's points spread over a region holding f = 1 + HALO_SHAPE_SPREAD ln(n_train / 1000) (at least 1)
#: times its 1/k share of the chart's points, interleaved with the other clusters' (`halo_growth`): the union of
#: its pieces from the n_train / B mini-batches, here taken as B = 1000. Fitted at or above the growth measured with
#: `hpcflow.cluster.flow_blocks` (B = 1000) where a halo's balls around a cluster's points overlap, which needs f up
#: to 1.9 at 2*10^4 and 5*10^4 train points, 2.4 at 10^5 (dim 1-4)
HALO_SHAPE_SPREAD = 0.35
#: bytes a near pair of a Gaussian kernel's operator keeps (`hpcflow.kernels.gaussian.GaussianOperator`): its row
#: and column (int64), its stable distance and its K (float64)
NEAR_PAIR_BYTES = 32
#: a ball query's transients per row of its piece (`NEAR_QUERY_ROWS` rows), and per hit, as (a, b): a + b (dim + 2)
#: bytes: its list entry, its pair's arrays and the complex temporaries of its stable distance (measured 239, 327,
#: 422 bytes a hit at dim 1, 2, 3; this gives 264, 344, 424)
NEAR_ROW_BYTES = 60
NEAR_HIT_BYTES = (24, 80)
#: Delta kernel: seconds per point and step (gradient exchange and gather; 10^6 + 10^5 points on 2 ranks:
#: 50 steps in ~45 s, BENCHMARKS.md "Distributed kernel flow")
SECONDS_PER_DELTA_POINT = 2e-6


@dataclass
class Estimate:
    """Estimated peak resident bytes per rank, its parts (label -> bytes) and, where cheap, seconds."""

    bytes: float
    parts: dict = field(default_factory=dict)
    seconds: float | None = None
    #: kernel entries a flow's busiest rank evaluates in the run (a cached matrix's once), as its counters count them
    entries: float | None = None
    #: seconds of one flow step on the busiest rank once its cached matrices are formed (a flow stops, with its
    #: checkpoint, only at a step's end: `step_signal_note`)
    step_seconds: float | None = None

    def largest(self) -> str:
        return max(self.parts, key=self.parts.get) if self.parts else "base"


def fmt_bytes(n: float) -> str:
    """1.5 GiB, 300 MiB, 12 KiB (or 'unlimited' for inf)."""
    if not math.isfinite(n):
        return "unlimited"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def _status_bytes(field: str) -> int | None:
    """A size of /proc/self/status (`field`: "VmHWM", "VmSize") in bytes, or None where /proc does not say."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss() -> int:
    """Peak resident bytes of this process (VmHWM; unlike ru_maxrss, not inherited from the parent across exec)."""
    peak = _status_bytes("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if peak is None else peak


# ---- memory the process may use -------------------------------------------------------------------------
#: address space glibc reserves for each thread's malloc arena (HEAP_MAX_SIZE on 64 bits: 2 x the 32 MiB largest
#: mmap threshold), mapped when the thread first allocates; not resident, but counted by RLIMIT_AS
ARENA_BYTES = 64 * 2**20
#: a thread's stack where RLIMIT_STACK is unlimited (glibc's default on x86-64); else the soft limit (`ulimit -s`)
DEFAULT_STACK_BYTES = 2 * 2**20


def mapped_bytes() -> int | None:
    """Address space this process maps now (VmSize: its libraries, MPI's segments, its threads' stacks and
    arenas), or None where /proc does not say."""
    return _status_bytes("VmSize")


def thread_stacks(threads: int) -> int:
    """Bytes of the stacks of `threads` new threads (threading.stack_size, else the RLIMIT_STACK soft limit, else
    glibc's default): private writable mappings, counted by RLIMIT_DATA too."""
    stack = threading.stack_size()
    if not stack:
        soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
        stack = soft if soft != resource.RLIM_INFINITY and soft > 0 else DEFAULT_STACK_BYTES
    return threads * stack


def thread_reserve(threads: int) -> int:
    """Address space that `threads` new threads map: a stack each (`thread_stacks`) and a malloc arena each
    (ARENA_BYTES)."""
    return thread_stacks(threads) + threads * ARENA_BYTES


#: the buffer OpenBLAS maps for each thread that runs one of its routines (BUFFER_SIZE, 32 MiB on x86-64), in each
#: OpenBLAS library loaded (numpy's and scipy's wheels bundle one each); mapped at the first call, not before a run's
#: check, and counted by RLIMIT_AS: where it cannot be mapped, OpenBLAS retries mmap forever
OPENBLAS_BUFFER_BYTES = 32 * 2**20


def openblas_libraries() -> int:
    """How many OpenBLAS libraries this process maps (by file name, /proc/self/maps), 0 where /proc does not say."""
    try:
        with open("/proc/self/maps") as fh:
            names = {os.path.basename(line.split()[-1]) for line in fh if len(line.split()) >= 6}
    except OSError:
        return 0
    return sum("openblas" in name.lower() and ".so" in name for name in names)


def run_libraries(cfg: dict, kind: str) -> tuple[str, ...]:
    """The modules a run of `cfg` loads beyond validation's (each maps hundreds of MiB of address space, torch
    ~600 MiB): a network's torch, and on float64 with Numba its compiled steps' Numba and scipy's BLAS (Numba's
    np.dot calls it); a flow's Numba where its kernel is compiled (`_compiled_kernel`)."""
    numba = importlib.util.find_spec("numba") is not None
    if kind == "nn":
        return ("torch",) + (("numba", "scipy.linalg.cython_blas") if numba and cfg["model"]["dtype"] == "float64"
                             else ())
    kernel = cfg.get("kernel") if kind == "flow" else None
    return ("numba",) if isinstance(kernel, dict) and _compiled_kernel(kernel, kernel_entries(cfg, kind)) else ()


def load_libraries(names) -> bool:
    """Import `names` now, so that what they map is measured: whether all imported (one that fails is left to the
    run's own refusal, in its words: a broken torch, hpcflow.nn._torch.require_torch)."""
    loaded = True
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - refused where the run needs it
            loaded = False
    return loaded


def address_space(est_bytes: float, threads: int, libraries=(), in_libraries: float = 0.0,
                  ) -> tuple[float, float, int] | None:
    """(address space a run of `est_bytes` peak resident memory per rank needs, its RLIMIT_AS (`ulimit -v`), the
    part already mapped), or None without an address-space limit. What is mapped (`mapped_bytes`, rounded up to
    MAPPED_STEP) once MPI and the `libraries` the run loads are (`run_libraries`: a network run's check had measured
    313 MiB before torch, Numba and scipy's BLAS, which map 913 MiB) plus the estimate (less `in_libraries`, its
    part resident in what is then mapped: a network's torch base, where they all loaded) plus the stacks and malloc
    arenas of the `threads` workers the run starts (`thread_reserve`) plus an OpenBLAS buffer for each of them in
    each OpenBLAS library (`OPENBLAS_BUFFER_BYTES`): a rank under mpiexec mapped 543 MiB before any work and peaked
    at 755 MiB of address space with 211 MiB resident, so the resident estimate alone let runs through that then
    failed in OpenBLAS's buffers, thread starts or MemoryError."""
    room = address_space_room(threads, libraries, in_libraries)
    if room is None:
        return None
    fit, soft, mapped = room
    return soft - fit + est_bytes, soft, mapped


#: what is mapped is counted rounded up to a multiple of this: it varies by a few hundred KiB with what the process
#: did before (the same command with --n 1e7 mapped 364 KiB less than with --n 1001905), so that the count a
#: refusal states is taken by the run that asks for it; and the interpreter's heap grows while the work starts
MAPPED_STEP = 16 * 2**20


def address_space_room(threads: int, libraries=(), in_libraries: float = 0.0) -> tuple[float, float, int] | None:
    """(the largest peak resident estimate per rank whose run fits RLIMIT_AS by `address_space`'s rule: the limit
    less what is mapped once the `libraries` are loaded, the `threads` workers' stacks, malloc arenas and OpenBLAS
    buffers, plus `in_libraries`; the limit; the part mapped), or None without an address-space limit. A run of
    estimate e fits where e <= that largest: the limit a model of the peak (the sampler's, `hpcflow.geometry.
    sampling.check_sample_memory`) is held to, so that the count it states passes `check_resources` too."""
    def measure():
        counted = in_libraries if load_libraries(libraries) else 0.0
        return mapped_bytes(), counted

    return _limit_room(resource.RLIMIT_AS, measure, threads, thread_reserve)


def _limit_room(which: int, measure, threads: int, reserve) -> tuple[float, float, int] | None:
    """(room, soft limit, part taken) of the process limit `which` (None where it is not set or `measure` cannot
    say): measure() = (bytes it counts now, or None; bytes of them the estimate holds too), the bytes rounded up to
    MAPPED_STEP; the room is the limit less them, less reserve(threads) and an OpenBLAS buffer for each of the
    `threads` in each OpenBLAS library, plus the bytes the estimate holds too."""
    soft, _ = resource.getrlimit(which)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    taken, counted = measure()
    if taken is None:
        return None
    taken = -(-taken // MAPPED_STEP) * MAPPED_STEP
    threads = max(1, threads)
    blas = openblas_libraries() * threads * OPENBLAS_BUFFER_BYTES
    return soft - (taken - counted + reserve(threads) + blas), soft, taken


def data_bytes() -> int | None:
    """What RLIMIT_DATA counts of this process now (VmData: its heap and private writable mappings, Linux >= 4.7), or
    None where /proc does not say."""
    return _status_bytes("VmData")


def data_room(threads: int) -> tuple[float, float, int] | None:
    """(the largest peak resident estimate per rank whose run fits RLIMIT_DATA (`ulimit -d`, which Linux >= 4.7 holds
    the heap and every private writable mapping to): the limit less what it counts now (`data_bytes`, rounded up to
    MAPPED_STEP), the `threads` workers' stacks and an OpenBLAS buffer for each in each OpenBLAS library; the limit;
    the part counted now), or None without a data limit. The malloc arenas the workers reserve are not counted: glibc
    maps them without access and makes writable (counted) only what the heap uses, which the estimate holds. As in
    `address_space_room`, the estimate's interpreter part is counted beside what is counted already: a margin."""
    return _limit_room(resource.RLIMIT_DATA, lambda: (data_bytes(), 0.0), threads, thread_stacks)


#: above a flow-like run's modelled peak (`run_address_space`), for what varies from run to run: the limit at which
#: jobs/quickstart.toml completed under mpiexec -n 2 moved by 30 MiB between two bisections on the same machine
#: (539.8 and 557.6 MiB, under different loads), so a rule calibrated on the higher keeps that much above it
RUN_SPACE_MARGIN = 32 * 2**20
#: what a rank of several maps during a flow-like run beyond the single-process rule (MPI's shared-memory segments
#: and buffers of its collectives, mapped at their first use): jobs/quickstart.toml under mpiexec -n 2 needed
#: 557.6 MiB of address space a rank where that rule, measured in the same ranks, gave 501 MiB; rounded up
LAUNCHER_RUN_BYTES = 56 * 2**20


#: what importing scipy.spatial maps (scipy.special, scipy.linalg, SciPy's OpenBLAS) at one thread, an OpenBLAS
#: worker's stack and buffer more a thread: measured 96.6 MiB in `hpcflow run --check` (136.6 MiB at 2 threads),
#: 106.0 MiB after `hpcflow run`'s imports alone; the lesser, the need stated unimported adding a MAPPED_STEP for the
#: difference and the rounding (`run_address_space`)
SCIPY_SPATIAL_SPACE = 96 * 2**20


def run_address_space(est: Estimate, cfg: dict, kind: str | None, ranks: int = 1,
                      ) -> tuple[float, float, int] | None:
    """`address_space` of a run of `cfg` (`kind`, `ranks` ranks) with peak `est`, measured with every library it
    loads (`run_libraries` and, for the kinds but "sample" and "nn", the ones it imports mid-run,
    `mid_run_libraries`: SciPy's modules with SciPy's own OpenBLAS). For those kinds the need is what is then mapped
    (rounded up to MAPPED_STEP) plus the estimate less its base part (the interpreter and libraries, mapped already)
    plus an OpenBLAS buffer (OPENBLAS_BUFFER_BYTES) in each OpenBLAS library for the thread that calls it, a malloc
    arena (ARENA_BYTES) for each worker thread past the first (OpenBLAS starts them at import, with their stacks and
    buffers: counted in what is mapped), LAUNCHER_RUN_BYTES for a rank of several and RUN_SPACE_MARGIN; a library
    the limit leaves no room to load: the limit and the estimate; where SciPy's part (SCIPY_SPATIAL_SPACE) cannot
    fit, the need is stated without importing it (SciPy's OpenBLAS retries its mmap forever under the limit).
    Measured on jobs/quickstart.toml (estimate 173
    MiB, base 96 MiB, 2 threads): mapped at the check 302.6 MiB with 2 threads, 262.6 MiB with 1 (one OpenBLAS
    worker's 8 MiB stack and 32 MiB buffer), 374.9 MiB a rank under mpiexec -n 2 (1 thread a rank); the smallest
    `ulimit -v` it completed under (bisected to 4 MiB): 500.5 MiB with 2 threads (refused below 517 MiB), 387.5 MiB
    with 1 (401 MiB), 557.6 MiB under mpiexec -n 2 (565 MiB). `address_space`'s rule (the estimate's base counted
    again, an arena, stack and OpenBLAS buffer per thread in each OpenBLAS) asked 749 MiB of the first, refusing
    limits it completes under; the check before counted neither SciPy nor its OpenBLAS: it passed at `ulimit -v
    560000` under mpiexec (541 MiB of 547 MiB), the run then failing to map scipy.special or looping in SciPy's
    OpenBLAS retrying the mmap of its buffer."""
    kind = kind or cfg["job"]["kind"]
    threads = _run_threads(cfg, kind)
    if kind in ("sample", "nn"):
        base = est.parts.get("base", 0.0) if kind == "nn" else 0.0  # TORCH_BASE_BYTES: Python, NumPy and torch
        return address_space(est.bytes, threads, run_libraries(cfg, kind), base)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    threads = max(1, threads)
    rest = (est.bytes - est.parts.get("base", 0.0) + RUN_SPACE_MARGIN + (threads - 1) * ARENA_BYTES
            + (LAUNCHER_RUN_BYTES if ranks > 1 else 0))
    now = mapped_bytes()
    if now is not None and "scipy.spatial" not in sys.modules:  # not imported where it cannot fit: OpenBLAS's
        now += SCIPY_SPATIAL_SPACE + (threads - 1) * (thread_stacks(1) + OPENBLAS_BUFFER_BYTES)  # init would hang
        # one MAPPED_STEP more than the rounding: what is mapped once SciPy is imported may cross the next step, and
        # a need stated unimported must not be below the one the imported check then enforces at that limit
        ahead = (-(-now // MAPPED_STEP) + 1) * MAPPED_STEP + rest + (openblas_libraries() + 1) * OPENBLAS_BUFFER_BYTES
        if ahead > soft:
            return ahead, soft, now
    loaded, short = True, False
    for name in run_libraries(cfg, kind) + mid_run_libraries(cfg, kind):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - refused where the run needs it, in its words
            loaded, short = False, short or load_refused(exc) is not None
    taken = mapped_bytes()
    if taken is None:
        return None
    if short:
        return soft + est.bytes, soft, taken
    taken = -(-taken // MAPPED_STEP) * MAPPED_STEP
    need = (taken + rest + (0.0 if loaded else est.parts.get("base", 0.0))
            + openblas_libraries() * OPENBLAS_BUFFER_BYTES)
    return need, soft, taken


def _run_threads(cfg: dict, kind: str) -> int:
    """The worker threads a run of `cfg` (`kind`) starts: this process's, a sample job's [sample].threads where set
    (the threads its estimate is for)."""
    if kind == "sample" and cfg["sample"].get("threads") is not None:
        return api_threads(cfg["sample"]["threads"], "[sample].threads")
    return _threads()


#: the modules a run of a job kind other than "sample" and "nn" may import mid-run beyond `run_libraries`' (a flow's
#: halo and nearest searches and its clusterings: scipy.spatial, which loads scipy.linalg and a second OpenBLAS):
#: ~83 MiB of data (VmData) where the imports before the check held ~100 MiB, so that a data limit the check passed
#: without them failed loading them mid-run
DATA_LIBRARIES = ("scipy.spatial",)


def mid_run_libraries(cfg: dict, kind: str) -> tuple[str, ...]:
    """The modules a run of `cfg` (`kind`) imports mid-run beyond `run_libraries`': for every kind but "sample" and
    "nn" DATA_LIBRARIES (scipy.spatial's cKDTree: a flow's halo and nearest searches, noise_scan, local_limit's
    deltas, distance_scaling's trees; it loads scipy.special, scipy.linalg and SciPy's bundled OpenBLAS); with
    clustering method "full" (and in a clustering job, which runs every method) scipy.cluster.hierarchy, with
    "birch" (and in a clustering job) scikit-learn's Birch, and a clustering job's sklearn.metrics."""
    if kind in ("sample", "nn"):
        return ()
    names = DATA_LIBRARIES
    method = (cfg.get("clustering") or {}).get("method") if kind == "flow" else None
    if kind == "clustering" or method == "full":
        names += ("scipy.cluster.hierarchy",)
    if kind == "clustering" or method == "birch":
        names += ("sklearn.cluster",)
    return names + (("sklearn.metrics",) if kind == "clustering" else ())


def run_data(est: Estimate, cfg: dict, kind: str | None) -> tuple[float, float, int] | None:
    """(data a run of `cfg` (`kind`) with peak `est` needs, its RLIMIT_DATA (`ulimit -d`), the part counted now), or
    None without a data limit: the counterpart of `run_address_space` for the limit Linux >= 4.7 holds the heap and
    every private writable mapping to. What it counts once the libraries the run loads are loaded (`run_libraries`,
    and `mid_run_libraries`; `data_bytes`, rounded up to MAPPED_STEP) plus the
    estimate less its "base" part (the interpreter and those libraries: what of it is data is counted already) plus
    the stacks of the `threads` workers (`thread_stacks`) and an OpenBLAS buffer for each of them in each OpenBLAS
    library (`_limit_room`). A library that cannot be loaded for want of data (`load_refused`) leaves no
    room: the need is then the limit and the estimate. Without it a flow run (jobs/quickstart.toml, estimated
    173 MiB) passed the check under a data limit of 250 MiB, the estimate compared with the limit alone, and failed
    mid-run loading SciPy (the process held 101 MiB of data before any work, 265 MiB at the end)."""
    kind = kind or cfg["job"]["kind"]
    names = run_libraries(cfg, kind) + mid_run_libraries(cfg, kind)
    short = []  # a library the limit left no room to load

    def measure():
        loaded = True
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - refused where the run needs it, in its words
                loaded = False
                if load_refused(exc) is not None:
                    short.append(name)
        return data_bytes(), est.parts.get("base", 0.0) if loaded else 0.0

    room = _limit_room(resource.RLIMIT_DATA, measure, _run_threads(cfg, kind), thread_stacks)
    if room is None:
        return None
    fit, soft, taken = room
    return (soft + est.bytes if short else soft - fit + est.bytes), soft, taken


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2 unlimited) -> None


def cgroup_limit(root: str = "/") -> int | None:
    """The tightest memory limit of this process's cgroup and its ancestors (v2 memory.max, v1
    memory.limit_in_bytes), or None when there is none."""
    limits = []
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hid == "0" and controllers == "":  # v2, mounted alone or beside v1 ("hybrid": cgroup/unified)
            places = [("sys/fs/cgroup", "memory.max"), ("sys/fs/cgroup/unified", "memory.max")]
        elif "memory" in controllers.split(","):
            places = [("sys/fs/cgroup/memory", "memory.limit_in_bytes")]
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for base, name in places:
            for k in range(len(parts), -1, -1):  # the group, then each ancestor (a namespace sees its own root)
                value = _read_int(os.path.join(root, base, *parts[:k], name))
                if value is not None and value < 2**60:  # v1 reports "unlimited" as ~2^63
                    limits.append(value)
    return min(limits) if limits else None


def _leading_int(env, name: str) -> int | None:
    """The leading ASCII digits of variable `name` ("4" of "4(x2)"), None when it has none; ConfigError for more
    digits than any count (`text_count`)."""
    digits = re.match(r"[0-9]*", env.get(name, "").strip()).group()
    return text_count(digits, name, "unset it or fix it") if digits else None


def slurm_mebibytes(name: str, environ=None) -> int | None:
    """Slurm memory variable `name` (SLURM_MEM_PER_NODE / _PER_CPU) in MiB: a number with an optional K, M (default),
    G or T suffix (sbatch --mem's units); None when unset or empty; ConfigError for anything else, which was ignored."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return None
    fix = f"unset it or set e.g. {name}=4000"
    m = re.fullmatch(r"([0-9]+)\s*([KMGT]?)B?", text, re.IGNORECASE)
    if m is None:
        raise ConfigError(f"{name}={text[:40]!r} is not a memory size (MiB, or a number with a K, M, G or T suffix, "
                          f"as Slurm sets it for --mem/--mem-per-cpu); {fix}")
    return text_count(m.group(1), name, fix) * {"K": 2**-10, "": 1, "M": 1, "G": 2**10, "T": 2**20}[m.group(2).upper()]


def slurm_cpus_per_task(environ=None) -> int | None:
    """SLURM_CPUS_PER_TASK (the CPUs `sbatch -c`/`srun -c` gave each task), None when unset or empty; ConfigError for
    anything but a positive integer (Slurm writes one: it refuses -c 0), which was read as "not set" or a prefix."""
    return env_integer("SLURM_CPUS_PER_TASK", environ, lo=1, want="is not a positive integer (CPUs per task, as Slurm "
                       "sets it for sbatch -c N)", fix="unset it or set e.g. SLURM_CPUS_PER_TASK=4")


def slurm_restart_count(environ=None) -> int:
    """SLURM_RESTART_COUNT (Slurm raises it at every requeue of the same job), 0 when unset or empty; ConfigError for
    anything but a whole number."""
    return env_integer("SLURM_RESTART_COUNT", environ, want="must be a whole number (Slurm sets it when it requeues "
                       "a job) or unset", fix="fix it") or 0


def ranks_per_task(local: int, environ=None) -> int:
    """Ranks sharing one Slurm task (its SLURM_MEM_PER_CPU x CPUs per task): the `local` ranks of this node over
    Slurm's tasks on it (SLURM_NTASKS_PER_NODE, this node's SLURM_TASKS_PER_NODE; 1 where neither says), rounded up.
    1 under srun (a rank a task); `local` where a launcher (mpiexec) started them inside one task (sbatch -c 8 with
    mpiexec -n 4: 4)."""
    env = os.environ if environ is None else environ
    tasks = _leading_int(env, "SLURM_NTASKS_PER_NODE") or _tasks_on_this_node(env) or 1
    return max(1, -(-local // tasks))


def _tasks_on_this_node(env) -> int | None:
    """This node's entry of SLURM_TASKS_PER_NODE ("2(x3),1": 2 tasks on nodes 0-2, 1 on node 3), by SLURM_NODEID
    (0 when unset); None where either is not of that form. The repeats are counted down, never expanded."""
    name = "SLURM_TASKS_PER_NODE"
    text = env.get(name, "").strip()
    node = _leading_int(env, "SLURM_NODEID") if env.get("SLURM_NODEID", "").strip() else 0
    runs = [re.fullmatch(r"([0-9]+)(?:\(x([0-9]+)\))?", part.strip()) for part in text.split(",")] if text else []
    if node is None or None in runs:
        return None
    for m in runs:
        repeat = text_count(m.group(2) or "1", name, "unset it or fix it")
        if node < repeat:
            return text_count(m.group(1), name, "unset it or fix it")
        node -= repeat
    return None


def local_ranks(ranks: int, environ=None) -> int:
    """Ranks sharing this node's memory: the launcher's local size when it says, else all `ranks`."""
    env = os.environ if environ is None else environ
    for var in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MPI_LOCAL_NRANKS", "SLURM_NTASKS_PER_NODE"):
        n = _leading_int(env, var)
        if n:
            return min(n, max(1, ranks))
    n = _tasks_on_this_node(env)  # set by srun/sbatch whether or not --ntasks-per-node was given
    return min(n, max(1, ranks)) if n else max(1, ranks)


def memory_limit(*, ranks: int = 1, per_node: int | None = None, environ=None,
                 root: str = "/") -> tuple[float, str]:
    """(bytes one rank may use, where that figure comes from): node-wide limits (cgroup, SLURM_MEM_PER_NODE,
    physical memory) shared by the local ranks (`per_node` where given: a job yet to be launched by srun, as submit
    checks it); SLURM_MEM_PER_CPU x CPUs per task shared by the ranks of one task (`ranks_per_task`); RLIMIT_AS and
    RLIMIT_DATA (a process's own: `ulimit -v`, `ulimit -d`) as they are."""
    env = os.environ if environ is None else environ
    local = local_ranks(ranks, env) if per_node is None else api_integer("per_node", per_node, "an integer >= 1", lo=1)
    found = []
    try:
        found.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / local, "physical memory"))
    except (ValueError, OSError, AttributeError):
        pass
    cg = cgroup_limit(root)
    if cg is not None:
        found.append((cg / local, "cgroup memory limit"))
    node_mib = slurm_mebibytes("SLURM_MEM_PER_NODE", env)
    if node_mib:
        found.append((node_mib * 2**20 / local, "SLURM_MEM_PER_NODE"))
    per_cpu = slurm_mebibytes("SLURM_MEM_PER_CPU", env)
    if per_cpu:
        cpus, share = slurm_cpus_per_task(env) or 1, 1 if per_node is not None else ranks_per_task(local, env)
        found.append((per_cpu * 2**20 * cpus / share,
                      "SLURM_MEM_PER_CPU" + (f" x {cpus} CPUs / {share} ranks per task" if share > 1 else "")))
    for which, said in ((resource.RLIMIT_AS, "RLIMIT_AS (ulimit -v)"),
                        (resource.RLIMIT_DATA, "RLIMIT_DATA (ulimit -d)")):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY and soft > 0:
            found.append((soft, said))
    if not found:
        return math.inf, "no limit found"
    bytes_, source = min(found)
    if local > 1:
        source += f" / {local} ranks per node" if source in ("physical memory", "cgroup memory limit",
                                                             "SLURM_MEM_PER_NODE") else ""
    return bytes_, source


# ---- estimates ------------------------------------------------------------------------------------------
def point_bytes(dim: int, jacobian: bool = True) -> int:
    """Bytes of one sampled point (PointSet: points, weights, |Omega|^2, g_FS, chart, Jacobian) in dimension dim;
    jacobian=False: without the Jacobian (the flows' point sets)."""
    n1, m = dim + 2, dim
    return 16 * n1 + 8 + 8 + 16 * m * m + 16 + (16 * m * n1 if jacobian else 0)


def line_bytes(dim: int) -> int:
    """Bytes per intersection point of a sampler batch's root finding and first gradient (`Hypersurface.line_points`,
    `charts.canonical_charts`): the table of the deg = dim + 2 powers of its n + 1 = dim + 2 coordinates (complex),
    the point, p and residuals. Measured peaks: 683, 1927, 5622, 11376 B at dim 3, 8, 16, 24 (this gives 736, 2016,
    5728, 11488)."""
    return 16 * (dim + 2) * (dim + 3) + 256


def sample_bytes(n: int, dim: int, *, threads: int = 1, one_chart: bool = True, jacobian: bool = True) -> dict:
    """Parts of the peak of Hypersurface.sample(n): the kept points (with or without Jacobians), one wave of
    full sampler batches (a batch forms the Jacobian to get g_FS; the threads' batches with their temporaries), and
    the heap that the root finding of each batch in flight used: glibc keeps it in the worker's arena while the
    batch's g_FS and Jacobian, above its 32 MiB mmap threshold, are mapped anew (one batch at dim 16: 106 of its
    198 MiB kept, at dim 24: 520 of 578; without it the peak RSS exceeded the estimate, 809 MiB for 766 at dim 16,
    2598 for 2150 at dim 24)."""
    pb, degree = point_bytes(dim), dim + 2
    per_batch = LINES_PER_BATCH * degree  # points of one batch (all charts)
    charts = (dim + 2) * (dim + 1) if one_chart else 1
    batches = -(-n * charts // per_batch)
    wave = max(1, min(batches, 4 * max(1, threads)))
    in_flight = min(wave, max(1, threads))  # batches formed at once (the pool's workers); the others wait formed
    return {"points": SAMPLE_COPIES * n * point_bytes(dim, jacobian),
            "sampler batches": (wave + in_flight * (BATCH_TEMPORARIES - 1)) * per_batch * pb,
            "sampler heap kept": in_flight * per_batch * line_bytes(dim)}


def _add(parts: dict, new: dict, prefix: str = "") -> None:
    for k, v in new.items():
        key = f"{prefix}{k}"
        parts[key] = parts.get(key, 0.0) + float(v)


def _operator_entries(n_train: int, n_test: int, ranks: int, blocks: int) -> list[tuple[float, bool]]:
    """(kernel entries, cached?) of the train and test operators of one rank: a matrix is cached when it fits
    its share of FLOW_CACHE_BYTES, else streamed tile by tile every step."""
    share = FLOW_CACHE_BYTES / (2 * blocks)
    out = []
    for n in (n_train, n_test):
        per_block = n * n_train / blocks**2 / ranks
        out.append((per_block * blocks, 8.0 * per_block <= share))
    return out


def _flow_parts(n_train: int, n_test: int, dim: int, ranks: int, threads: int, clusters: int | None = None,
                halo_cutoff: float | None = None) -> dict:
    """Flow state and kernel: cached matrices (clustered: those of the rank's blocks, sources grown by the halo,
    `_block_operators`), plus one streamed tile (TILE_BYTES) per worker thread."""
    if clusters is None:
        cached = sum(8.0 * e for e, c in _operator_entries(n_train, n_test, ranks, 1) if c)
    else:
        cached = _block_cache_bytes(n_train, n_test, dim, ranks, clusters, halo_cutoff)
    return {"flow state": FLOW_STATE_ARRAYS * 8.0 * dim * dim * (n_train + n_test),
            "kernel": cached + TILE_BYTES * threads}


def _block_cache_bytes(n_train: int, n_test: int, dim: int, ranks: int, clusters: int,
                       halo_cutoff: float | None) -> float:
    """Bytes of the kernel matrices a clustered flow's busiest rank caches: each of its ceil(k / R) blocks caches an
    operator (train rows, test rows) whose matrix fits its share T = FLOW_CACHE_BYTES / (2 ceil(k / R)). The blocks'
    sizes spread about the mean e = rows x sources (`_block_operators`: sources grown by `halo_growth`, an upper
    estimate of their mean), so where e > T the blocks below T still cache theirs: counted as a share T / e of the
    blocks, each holding T, for min(e, T^2 / e) per block. Fewer blocks a rank (more ranks) give each a larger T:
    100 clusters of 2*10^4 + 2*10^4 points, halo 0.3, cached 30 MiB on 1 rank and 116-119 MiB per rank on 2 (the
    peak RSS per rank rose from 343 to 401-407 MiB), where counting a block's matrix only when the mean one fits
    counted none."""
    mine, m, t = -(-clusters // ranks), n_train / clusters, n_test / clusters
    share = FLOW_CACHE_BYTES / (2 * mine)
    s = min(n_train, m * halo_growth(n_train, n_test, dim, clusters, halo_cutoff))
    per_block = [8.0 * rows * s for rows in (m, t) if rows]
    return mine * sum(min(e, share * share / e) for e in per_block)


def _feature_columns(kernel: str | None, dim: int) -> int:
    """float64 columns of the features a kernel's operator keeps per source point (`Kernel.features`): the Gaussian
    kernel's projector features ((dim + 2)^2), the NTKs' chart-normalised real coordinates (2 (dim + 2), and the
    ReLU NTK's norm and bias column); none for the Delta kernel (a nearest-source index per row)."""
    n1 = dim + 2
    return {"delta": 0, "relu_ntk": 2 * n1 + 2, "cosine_ntk": 2 * n1}.get(kernel, n1 * n1)


def _block_parts(n_train: int, n_test: int, dim: int, ranks: int, clusters: int, halo_cutoff: float | None,
                 kernel: str | None) -> dict:
    """What the blocks of a clustered flow hold (`hpcflow.flow_step.Clustered`, `hpcflow.cluster.distributed`), with
    s = n_train / k x `halo_growth` sources a block (at most n_train): each of the rank's ceil(k / R) blocks keeps
    two operators (train rows, test rows), each with its sources' positions (int64) and kernel features
    (`_feature_columns`); every rank keeps every block's train and test source indices (int64, gathered); and one
    block at a time its sources' points while its operators are formed, then their gradient rows in each step."""
    mine, n1 = -(-clusters // ranks), dim + 2
    s = min(float(n_train), n_train / clusters * halo_growth(n_train, n_test, dim, clusters, halo_cutoff))
    return {"cluster blocks": mine * s * 2 * 8.0 * (1 + _feature_columns(kernel, dim))
            + clusters * s * 2 * 8.0 + s * (16.0 * n1 + 8.0 * n1 * n1 + 8.0 * dim * dim)}


def _operators(cfg: dict, ranks: int) -> list[tuple[float, bool]]:
    """`_block_operators` of a flow's [geometry] and [clustering] on `ranks` ranks."""
    geo, cl = cfg["geometry"], cfg.get("clustering", {})
    return _block_operators(geo["n_train"], geo.get("n_test", geo["n_train"]), geo["dim"], ranks,
                            cl["n_clusters"] if cl.get("method") else None, cl.get("halo_cutoff"))


def _evaluated(cfg: dict, ranks: int = 1) -> float:
    """Kernel entries a flow's busiest rank evaluates in the run (`_flow_seconds`); at one rank, the whole flow's."""
    steps = cfg["flow"]["steps"]
    return sum(entries if cached else steps * entries for entries, cached in _operators(cfg, ranks))


def kernel_entries(cfg: dict, kind: str | None = None) -> float | None:
    """The kernel entries a run of validated job `cfg` evaluates in all, every rank's and every flow's of a scan (a
    cached matrix's once; the estimate at one rank, which is the same at any rank count), which decide a Gaussian
    kernel's engine "auto" (`hpcflow.kernels.jit.engine_for`) as the run builds it and as it is estimated here; None
    for a kind that runs no kernel flow."""
    kind = kind or cfg["job"]["kind"]
    if kind == "flow":
        return _evaluated(cfg)
    if kind == "noise_scan":  # each level: the train points and as many noised test points
        geo = cfg["geometry"]
        return len(cfg["noise"]["scales"]) * _evaluated({"geometry": {**geo, "n_test": geo["n_train"]},
                                                         "flow": cfg["flow"]})
    if kind == "local_limit":
        return len(cfg["local_limit"]["widths"]) * _evaluated(cfg)
    return None


def _flow_seconds(cfg: dict, ranks: int, threads: int, whole: float | None = None) -> tuple[float, float, float]:
    """(seconds, kernel entries, seconds of one step) of a flow's kernel sums on its busiest rank: per block
    (`_block_operators`), a cached matrix is formed once and applied each step, others are evaluated every step, a
    symmetric one's tile pairs (I <= J) once each; the rank's threads share the entries. One step: the streamed
    matrices evaluated and the cached ones applied. `whole`: the entries of the whole run, which decide a Gaussian
    kernel's engine (`kernel_entries`; default this flow's)."""
    kernel = cfg.get("kernel", {})
    steps, (rate, t) = cfg["flow"]["steps"], _entry_seconds(kernel, _evaluated(cfg) if whole is None else whole)
    evaluated, step = 0.0, 0.0
    for entries, cached in _operators(cfg, ranks):
        evaluated += entries if cached else steps * entries
        t += steps * entries * SECONDS_PER_CACHED_ENTRY if cached else 0.0
        step += entries * SECONDS_PER_CACHED_ENTRY if cached else entries * rate / threads
    return t + evaluated * rate / threads, evaluated, step


def _entry_seconds(kernel: dict, whole: float | None = None) -> tuple[float, float]:
    """(seconds per kernel entry and thread, seconds to start): the compiled Gaussian tile (loaded from Numba's
    cache; for a run of `whole` kernel entries, `_compiled_kernel`), a ReLU NTK per layer, or NumPy passes
    (SECONDS_PER_*)."""
    if kernel.get("name") == "relu_ntk":
        return SECONDS_PER_RELU_LAYER_ENTRY * (kernel.get("depth") or 1), 0.0
    if _compiled_kernel(kernel, whole) and kernel.get("method") != "direct":
        return SECONDS_PER_COMPILED_ENTRY, COMPILED_START_SECONDS
    return SECONDS_PER_KERNEL_ENTRY, 0.0


def _block_operators(n_train: int, n_test: int, dim: int, ranks: int, clusters: int | None,
                     halo_cutoff: float | None) -> list[tuple[float, bool]]:
    """(kernel entries one evaluation costs, cached?) of the train and test operators of the busiest rank
    (`hpcflow.flow_step`): a matrix is cached when it fits its share of FLOW_CACHE_BYTES (half of it, split over the
    rank's blocks); a symmetric train x train one is evaluated as tile pairs I <= J, (n^2 + n tile) / 2 entries.
    Unclustered: the train pairs and the test rows are dealt over the ranks. Clustered: a rank owns ceil(k / R)
    clusters of n_train / k train and n_test / k test points; with a halo each block's sources are its train
    points times `halo_growth`, and its train operator is no longer symmetric."""
    from hpcflow.kernels.base import CACHE_EDGE

    def pairs(n):
        return (n * n + n * min(n, CACHE_EDGE)) / 2

    if clusters is None:
        train = pairs(n_train) / ranks
        return [(train, 8.0 * train <= FLOW_CACHE_BYTES / 2),
                (n_test / ranks * n_train, 8.0 * n_test / ranks * n_train <= FLOW_CACHE_BYTES / 2)]
    mine, m, t = -(-clusters // ranks), n_train / clusters, n_test / clusters
    share = FLOW_CACHE_BYTES / (2 * mine)
    growth = halo_growth(n_train, n_test, dim, clusters, halo_cutoff)
    s = min(n_train, m * growth)
    fits = [8.0 * m * s <= share, 8.0 * t * s <= share]
    train = pairs(m) if growth == 1.0 and not fits[0] else m * s  # a cached matrix is formed whole
    return [(mine * train, fits[0]), (mine * t * s, fits[1])]


def halo_growth(n_train: int, n_test: int, dim: int, clusters: int, halo_cutoff: float | None) -> float:
    """Mean factor by which a halo of FS width h grows a cluster's sources (1 without one; `clusters` at h >= pi/2,
    where every block sees every train point). A block's test-row sources are the train points within h of one of
    its m = (n_train + n_test) / k train and test points (`hpcflow.cluster.blocks`): the union of m small balls, not
    the cluster's region widened by h, which the points fill only where they are dense. Modelled in a flat space of
    2 dim real dimensions, points of density P (`_halo_share`). A batched cluster is not a ball: it is the union of
    pieces clustered in separate mini-batches, each spanning about 1/k of the chart, offset from one another and
    interleaved with the neighbouring clusters' pieces, the more so the more mini-batches. So the cluster is a ball
    holding f (`HALO_SHAPE_SPREAD`) times its 1/k of the points, (h / rho)^(2 dim) = k P(h) / f, its m points
    uniform in it at 1/f of the chart's density, and its sources are its own train points, the other clusters'
    (f - 1) / f of the points in the ball that a ball of radius h around one of its points covers, and the points
    outside the ball so covered (`_covered_ball`): growth 1 + (f - 1) c_in + f c_out. Bounds: each of the block's
    train and test points adds at most its n_train P(h) train neighbours (growth <= 1 + (n_train + n_test) P(h)), and
    at least min(1, (n_train + n_test) P(h)) (a sparse point's few neighbours mostly lie in other clusters). Dim 1-4,
    10^3-10^5 train points, k = 4-400, h = 0.005-1.2, mini-batches of 1000: 1.03-2.9 times the growth measured from
    1.2*10^4 points on, up to ~4.1 below (tests/test_halo_growth.py), the most at h ~ 0.4-0.45 with few clusters."""
    if not halo_cutoff:
        return 1.0
    if halo_cutoff >= math.pi / 2:
        return float(clusters)
    share, f = _halo_share(halo_cutoff, dim), 1.0 + HALO_SHAPE_SPREAD * math.log(max(1.0, n_train / 1000))
    near = (n_train + n_test) * share
    inside, outside = _covered_ball((n_train + n_test) / clusters, (clusters * share / f) ** (0.5 / dim), 2 * dim)
    ball = 1.0 + (f - 1.0) * inside + f * outside
    return min(float(clusters), 1.0 + near, max(ball, 1.0 + min(1.0, near)))


def _halo_share(r: float, dim: int) -> float:
    """Share of one chart's points within FS distance r of one of them (HALO_DENSITY_SCALE, _FLOOR), at most 1."""
    lead = max(HALO_DENSITY_FLOOR, 1.0 + dim * math.exp(-r / HALO_DENSITY_SCALE))
    return min(1.0, lead * math.sin(min(r, math.pi / 2)) ** (2 * dim))


def _covered_ball(m: float, a: float, d: int, nodes: int = 96) -> tuple[float, float]:
    """(share of the unit ball of R^d, volume outside it in units of its own) that balls of radius a around m
    uniform points of it cover in expectation: d int_0^1 t^(d-1) (1 - (1 - L(t))^m) dt and
    d int_1^(1+a) t^(d-1) (1 - (1 - L(t))^m) dt, L(t) the share of the unit ball within a of a point at distance t
    from its centre (a lens, summed in slices). Midpoint sums of 2 x `nodes` x `nodes` terms (< 1 ms)."""
    import numpy as np

    u = (np.arange(nodes) + 0.5) / nodes
    slab = math.gamma(d / 2 + 1) / (math.sqrt(math.pi) * math.gamma(d / 2 + 0.5))  # V_(d-1) / V_d

    def covered(t):  # 1 - (1 - L(t))^m at radii t
        lo, hi = np.maximum(t - a, -1.0), np.minimum(t + a, 1.0)  # the lens spans x in [lo, hi] along t's axis
        x = lo[:, None] + (hi - lo)[:, None] * u
        r2 = np.minimum(1.0 - x * x, a * a - (t[:, None] - x) ** 2).clip(0.0)
        lens = np.minimum(slab * (r2 ** ((d - 1) / 2)).mean(axis=1) * (hi - lo), 1.0 - 1e-16)
        return 1.0 - np.exp(m * np.log1p(-lens))

    t = 1.0 + a * u
    return d * float((u ** (d - 1) * covered(u)).mean()), d * a * float((t ** (d - 1) * covered(t)).mean())


#: the threads per rank an estimate is made for where not this process's (`_threads_set`)
_THREADS_OVERRIDE: int | None = None


def _threads() -> int:
    from hpcflow.backend import default_threads

    return default_threads() if _THREADS_OVERRIDE is None else _THREADS_OVERRIDE


@contextmanager
def _threads_set(threads: int):
    """Estimates made inside for ranks of `threads` threads each (a submitted job's), not this process's."""
    global _THREADS_OVERRIDE
    before, _THREADS_OVERRIDE = _THREADS_OVERRIDE, max(1, int(threads))
    try:
        yield
    finally:
        _THREADS_OVERRIDE = before


def _compiled_kernel(kernel: dict, whole: float | None = None) -> bool:
    """Whether the flow's kernel runs the Numba-compiled Gaussian tile: engine numba, or auto where the run's `whole`
    kernel entries (`kernel_entries`; None: not known) repay Numba's start (`hpcflow.kernels.jit.engine_for`), with
    Numba installed."""
    from hpcflow.kernels.jit import engine_for

    return (kernel.get("name") == "gaussian" and engine_for(whole, kernel.get("engine")) in ("auto", "numba")
            and importlib.util.find_spec("numba") is not None)


def estimate_flow(cfg: dict, *, ranks: int = 1, jacobian: bool = False, whole: float | None = None) -> Estimate:
    """Kind "flow" (and the flow part of noise_scan / local_limit, whose point sets keep the Jacobian: jacobian=True):
    samples, flow state, kernel, clustering. `whole`: the kernel entries of the whole run (`kernel_entries`; default
    this flow's), which decide whether its Gaussian kernel is compiled."""
    geo = cfg["geometry"]
    n_tr, n_te, dim = geo["n_train"], geo.get("n_test", geo["n_train"]), geo["dim"]
    kernel = cfg.get("kernel", {})
    cl = cfg.get("clustering", {})
    parts = {"base": BASE_BYTES - SKLEARN_BYTES}
    if cl.get("method") == "birch":
        parts["scikit-learn"] = SKLEARN_BYTES
    whole = _evaluated(cfg) if whole is None else whole
    if _compiled_kernel(kernel, whole):
        parts["compiled kernel"] = JIT_BYTES
    _add(parts, sample_bytes(n_tr + n_te, dim, threads=_threads(), jacobian=jacobian), "sample ")
    clusters = cl["n_clusters"] if cl.get("method") else None
    _add(parts, _flow_parts(n_tr, n_te, dim, ranks, _threads(), clusters, cl.get("halo_cutoff")))
    if clusters is not None:
        _add(parts, _block_parts(n_tr, n_te, dim, ranks, clusters, cl.get("halo_cutoff"), kernel.get("name")))
    if kernel.get("name") == "gaussian":
        _add(parts, _near_pair_parts(cfg, ranks, clusters, cl.get("halo_cutoff")))
    if cl.get("method") == "full":
        parts["clustering distances"] = 3 * 8.0 * n_tr * n_tr
    elif cl.get("method") == "batched":
        b = min(cl["batch_size"], n_tr)
        parts["clustering distances"] = 3 * 8.0 * b * b
    if kernel.get("name") == "delta":  # a gather from the nearest source: no kernel matrix
        step = (n_tr + n_te) / ranks * SECONDS_PER_DELTA_POINT
        if not cl.get("method"):
            return Estimate(*_delta_parts(n_tr, n_te, dim, ranks), cfg["flow"]["steps"] * step, step_seconds=step)
        parts["kernel"] = TILE_BYTES * _threads()
        return Estimate(sum(parts.values()), parts, cfg["flow"]["steps"] * step, step_seconds=step)
    return Estimate(sum(parts.values()), parts, *_flow_seconds(cfg, ranks, _threads(), whole))


def _near_pair_parts(cfg: dict, ranks: int, clusters: int | None, halo_cutoff: float | None) -> dict:
    """Near pairs of a Gaussian kernel's operators on the busiest rank (`hpcflow.flow_step`). Assumed: a row has its
    expected n_train P(r) train points within `near_distance` r (`_halo_share`; counts measured within 2 % at dim 1, 2),
    at most its sources, and itself where a source; peak: all held, plus one query's piece or one list's copy."""
    from types import SimpleNamespace

    import numpy as np

    from hpcflow.kernels.gaussian import NEAR_QUERY_ROWS, near_distance

    geo, kernel, ll = cfg["geometry"], cfg.get("kernel", {}), cfg.get("local_limit", {})
    width = kernel.get("width") or min(ll.get("widths") or [0.0])  # (local_limit: its narrowest kernel's)
    if not width:
        return {}
    n_tr, n_te, dim = geo["n_train"], geo.get("n_test", geo["n_train"]), geo["dim"]
    form = kernel.get("form") or ll.get("form") or "exp"
    share = _halo_share(near_distance(SimpleNamespace(dtype=np.float64, form=form, width=width)), dim)
    if clusters is None:
        ops = [(n_tr, n_tr, 1), (-(-n_te // ranks), n_tr, 0)]
    else:
        s = min(float(n_tr), n_tr / clusters * halo_growth(n_tr, n_te, dim, clusters, halo_cutoff))
        ops = -(-clusters // ranks) * [(n_tr / clusters, s, 1), (n_te / clusters, s, 0)]
    pairs = [rows * (own + min(src - own, n_tr * share)) for rows, src, own in ops if rows]
    rows = min(NEAR_QUERY_ROWS, max(rows for rows, _, _ in ops))
    piece = rows * (NEAR_ROW_BYTES + (1 + n_tr * share) * (NEAR_HIT_BYTES[0] + NEAR_HIT_BYTES[1] * (dim + 2)))
    return {"near pairs": NEAR_PAIR_BYTES * sum(pairs) + max(piece, 24.0 * max(pairs, default=0.0))}


def _delta_parts(n_train: int, n_test: int, dim: int, ranks: int) -> tuple[float, dict]:
    """Unclustered Delta flow (`hpcflow.flow_step.Nearest`), nothing of size n_train on any rank: a rank keeps its
    share of the points and, one after the other (each freed before the next), the sampler's buffers of that
    share (sampling, then the rows' move to their owners), the nearest-train search and the flow state of its
    rows: the largest counts. The search holds every test point's features and gathered points, the packed metrics
    of the rank's rows the flow starts from (train and test), and while the features of a chunk of its train rows
    are formed (`geometry.distance.projector_features`) their temporaries: the point's copy and its normalised u,
    the projector u u^dagger (complex), its off-diagonal entries and the features, 32 n1 (n1 + 1) bytes a row
    (measured: 923 B a row at dim 3, 500 000 rows a rank, where this gives 960), more than the KD-tree built on the
    features after (8 n1^2 + 8 bytes a row); it was counted as the features and tree alone (232 B a row), below
    the flow state, and the estimate was 1.07 x the peak at 10^6 points. Rank 0 writes the checkpoint one block of
    rows at a time."""
    from hpcflow.checkpoint import BLOCK_ROWS
    from hpcflow.flow_step import NEAREST_CHUNK

    share = -(-(n_train + n_test) // ranks)
    pb, f = point_bytes(dim, jacobian=False), (dim + 2) ** 2  # bytes of a flow's point; projector features per point
    held = SHARE_HELD * share * pb
    sampling = sample_bytes(share, dim, threads=_threads(), jacobian=False)
    buffers = SHARE_COPIES * share * pb + sampling["sampler batches"]
    state = FLOW_STATE_ARRAYS * 8.0 * dim * dim * share
    n1, rows = dim + 2, min(NEAREST_CHUNK, -(-n_train // ranks))
    search = 8.0 * n_test * (f + 2 * n1 + 4) + 32.0 * n1 * (n1 + 1) * rows + 2 * 8.0 * dim * dim * share
    parts = {"base": BASE_BYTES, "points": DELTA_SHARE_MARGIN * held,
             "flow state, sampling buffers or nearest search": DELTA_SHARE_MARGIN * max(state, buffers - held, search),
             "checkpoint block": 3 * 8.0 * dim * dim * min(BLOCK_ROWS, n_train)}
    return sum(parts.values()), parts


def estimate_noise_scan(cfg: dict, *, ranks: int = 1) -> Estimate:
    """One flow per noise level of n_train train and n_train test points: the memory of a kernel-matrix flow whose
    point sets keep the Jacobian (for every kernel), the seconds of the job's kernel. Every rank runs the whole
    scan (only rank 0 writes), so each needs what one process does at any `ranks`."""
    geo = cfg["geometry"]
    n = geo["n_train"]
    flow = {"geometry": {**geo, "n_test": n}, "flow": cfg["flow"]}
    whole = kernel_entries(cfg, "noise_scan")
    est = estimate_flow(flow, ranks=1, jacobian=True)
    timed = estimate_flow({**flow, "kernel": cfg.get("kernel", {})}, ranks=1, jacobian=True, whole=whole)
    est.seconds, est.entries, est.step_seconds = timed.seconds, timed.entries, timed.step_seconds
    levels = len(cfg["noise"]["scales"])
    est.parts["noised test sets"] = levels * n * point_bytes(geo["dim"])
    if _compiled_kernel(cfg.get("kernel", {}), whole):
        est.parts["compiled kernel"] = JIT_BYTES
    est.bytes = sum(est.parts.values())
    return _repeated(est, levels)


def estimate_local_limit(cfg: dict, *, ranks: int = 1) -> Estimate:
    """One flow per width, one after another, each with a Gaussian kernel of engine "auto" (`kernel_entries`); every
    rank runs the whole job (only rank 0 writes), at any `ranks`."""
    est = estimate_flow({**cfg, "kernel": {"name": "gaussian"}}, ranks=1, jacobian=True,
                        whole=kernel_entries(cfg, "local_limit"))
    return _repeated(est, len(cfg["local_limit"]["widths"]))


def _repeated(est: Estimate, flows: int) -> Estimate:
    """`est` with the seconds and kernel entries of `flows` flows (one after another; the memory of one)."""
    est.seconds *= flows
    est.entries = None if est.entries is None else est.entries * flows
    return est


def estimate_sample(cfg: dict, *, ranks: int = 1) -> Estimate:
    """`hpcflow sample`: cfg = {"sample": {"n", "dim", "chart", "threads"}}: `sample_peak` for layout "root". On
    `ranks` > 1 the figure is rank 0's, the largest: each rank samples its share of the N points, and rank 0 gathers
    all N (received, then unpacked: GATHER_COPIES) while what it kept of its own share stays resident
    (ROOT_SHARE_HELD); so more ranks raise it."""
    s = cfg["sample"]
    threads = _threads() if s.get("threads") is None else api_threads(s["threads"], "[sample].threads")
    parts = sample_peak(s["dim"], s["n"], layout="root", ranks=ranks, threads=threads,
                        one_chart=s.get("chart") is not None)
    return Estimate(sum(parts.values()), parts)


def sample_peak(dim: int, n_points: int, *, layout: str = "all", ranks: int = 1, threads: int = 1,
                one_chart: bool = False, jacobian: bool = True) -> dict:
    """{part: bytes} of the peak of the busiest rank (rank 0) while `hpcflow.geometry.sampling.sample_points`
    samples n_points points in dimension dim on `ranks` ranks and returns them by `layout`: the one memory model of
    the sampler's check (`sampling.sample_memory`) and of `hpcflow sample`'s (`estimate_sample`, layout "root", the
    Jacobian kept). The interpreter with NumPy and h5py (SAMPLE_BASE_BYTES); on one rank the sampler's blocks and
    the set concatenated from them (SAMPLE_COPIES), one wave of batches with their temporaries and the heap their
    root finding keeps (`sample_bytes`); on R > 1 ranks the rank's share as sampled, and the rows it receives: for
    "root" all N gathered (GATHER_COPIES), for "all" all N gathered, packed and received again (ALL_COPIES), for
    "share" its share sent, received and unpacked (SHARE_COPIES). Saving the set adds no copy of it (h5py writes
    the arrays as they are). Non-decreasing in n_points (`sampling.sample_fits` relies on it)."""
    threads = max(1, int(threads))
    parts = {"base": float(SAMPLE_BASE_BYTES)}
    if ranks == 1:
        _add(parts, sample_bytes(n_points, dim, threads=threads, one_chart=one_chart, jacobian=jacobian), "sample ")
        return parts
    share, pb = -(-n_points // ranks), point_bytes(dim, jacobian)
    sampled = sample_bytes(share, dim, threads=threads, one_chart=one_chart, jacobian=jacobian)
    sampled.pop("points")
    _add(parts, sampled, "sample ")
    if layout == "share":
        parts["rank's share"] = SHARE_COPIES * share * pb
        return parts
    parts["rank 0's share"] = ROOT_SHARE_HELD * share * pb
    parts["gathered points"] = (GATHER_COPIES if layout == "root" else ALL_COPIES) * n_points * pb
    return parts


def _feature_bytes(dim: int) -> int:
    """Bytes per point while `projector_features` forms its features: the normalised point, the outer product
    (complex), its diagonal and upper triangle, and the features themselves ((n+1)^2 float64, which stay)."""
    n1 = dim + 2
    return 16 * n1 + 16 * n1 * n1 + 8 * n1 + 16 * (n1 * (n1 - 1) // 2) + 8 * n1 * n1


def _brute_tile_bytes(queries: int, share: int, tile_q: int = 512, tile_s: int = 65536) -> float:
    """Peak of `brute_candidates`' product tiles: `c = fq @ feats[...].T` is formed while the previous tile is still
    held, so two consecutive tiles (in a row of queries, or the last of one row and the first of the next)."""
    if queries == 0 or share == 0:
        return 0.0
    rows = [tile_q] * (queries // tile_q) + ([queries % tile_q] if queries % tile_q else [])
    cols = [tile_s] * (share // tile_s) + ([share % tile_s] if share % tile_s else [])
    pairs = [rows[0] * cols[0]]
    if len(cols) > 1:
        pairs.append(rows[0] * (cols[0] + cols[1]))
    if len(rows) > 1:
        pairs.append(rows[0] * cols[-1] + rows[1] * cols[0])
    return 8.0 * max(pairs)


def estimate_distance_scaling(cfg: dict, *, ranks: int = 1) -> Estimate:
    """The largest N of `neighbour_distances` on each rank (rank 0 holds no more than the others: its share is
    the largest by at most one point, and the distances it writes are a few per query): a rank samples and keeps
    its share ceil(N / R) of the points (the sampler's blocks, below glibc's mmap threshold, stay resident after
    it: measured), forms their projector features, then searches them for every queried point, which every rank
    gets whole: Q = `queries` (brute, when N is larger) or all N (tree, or queries = 0). Brute holds two product
    tiles of up to 512 queries x 65536 points; tree a KD-tree over its share. Each query's candidates of all R
    ranks are gathered on every rank. So more ranks divide all but the queried points' part."""
    geo, sc = cfg["geometry"], cfg["scaling"]
    dim, n = geo["dim"], max(sc["n_points"])
    share = -(-n // ranks)
    brute = sc["method"] == "brute"
    queries = min(n, sc["queries"]) if brute and sc["queries"] > 0 else n
    parts = {"base": BASE_BYTES - SKLEARN_BYTES}
    sampled = sample_bytes(share, dim, threads=_threads(), one_chart=geo.get("chart") is not None)
    sampled["points"] *= (SHARE_COPIES if ranks > 1 else SAMPLE_COPIES) / SAMPLE_COPIES
    _add(parts, sampled, "sample ")
    parts["share's features"] = _feature_bytes(dim) * share
    if brute:
        parts["product tiles"] = _brute_tile_bytes(queries, share)
    else:
        parts["KD-tree"] = 32.0 * share
    n1 = dim + 2
    parts["queried points"] = queries * (2 * 16 * n1 + _feature_bytes(dim) + 4 * 8) + (3 * 8 * ranks * queries
                                                                                         if ranks > 1 else 0)
    return Estimate(sum(parts.values()), parts)


def estimate_clustering(cfg: dict, *, ranks: int = 1) -> Estimate:
    pts = cfg["points"]
    n = pts["n_points"]
    parts = {"base": BASE_BYTES}
    _add(parts, sample_bytes(n, pts["dim"], threads=_threads(), one_chart=pts["chart"] is not None), "sample ")
    parts["distance matrices"] = 4 * 8.0 * n * n  # full clustering, then (not at once) the Fig. 2 matrices
    return Estimate(sum(parts.values()), parts)


def mlp_parameters(n_in: int, width: int, depth: int, n_out: int = 9) -> int:
    """Parameters of an MLP n_in -> depth x width -> n_out (weights and biases)."""
    return (n_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * n_out


#: the network's training step (hpcflow.nn.fast_step; not imported: it imports torch): CPU float64 batches below
#: these rows, of networks up to COMPILED_MAX_LAYERS layers, run the compiled loops (hpcflow.nn.jit_mlp), whose
#: activation buffers stay between steps (tests/test_memory_estimate.py checks the values against fast_step's)
COMPILED_ROWS = {"relu": 1536, "gelu": 256}
COMPILED_MAX_LAYERS = 8
#: rows of one forward pass when a network is evaluated (hpcflow.nn.train.predict's chunk)
PREDICT_ROWS = 65536
#: blocks above hpcflow.allocator's mmap threshold (a job's network keeps freed heap memory: `retain_freed_memory`)
#: go back to the system when freed; smaller ones stay on the heap, where an evaluation's layer outputs, the BLAS
#: products' buffers and the training steps' smaller arrays between two evaluations took up to 9 chunks of rows x
#: width (a width sweep's network of width 1024 on 5000 rows; 6 for one evaluation alone, 3 above the threshold)
MMAP_THRESHOLD = 64 * 2**20
EVAL_HEAP_BLOCKS = 8.0
#: copies of every epoch's NTK a network job holds at once: the tracker's list, its stack in the last checkpoint or
#: in the results (`NTKTracker.results`), and the results' blocks made contiguous for the HDF5 file (measured: 3.5
#: at 300 points and 10 epochs)
NTK_COPIES = 4


def _activation_bytes(width: int, depth: int, rows: int, eval_rows: int, itemsize: int, activation: str) -> float:
    """Peak bytes of one network's activations. A training step of `rows` rows: the compiled loops' buffers h, z and
    δ of every hidden layer (kept between steps, so they stay during the evaluation), or else the step's h per
    layer (and z for GELU) with two δ-sized temporaries; the evaluation of `eval_rows` rows in chunks: input, z and
    output of one layer at a time, or EVAL_HEAP_BLOCKS chunks where they come from the heap (`MMAP_THRESHOLD`)."""
    layer = float(rows) * width * itemsize
    chunk = min(eval_rows, PREDICT_ROWS) * width * itemsize
    evaluation = (3.0 if chunk > MMAP_THRESHOLD else EVAL_HEAP_BLOCKS) * chunk
    compiled = (itemsize == 8 and depth + 1 <= COMPILED_MAX_LAYERS and rows < COMPILED_ROWS[activation]
                and importlib.util.find_spec("numba") is not None)
    if compiled:
        return 3.0 * depth * layer + evaluation
    return max(((2 if activation == "gelu" else 1) * depth + 2) * layer, evaluation)


def _optimizer_state(optimizer: str, epochs: int) -> int:
    """Copies of the parameters in a model's training state: the parameters and Adam's two moments (formed at the
    first step)."""
    return 3 if optimizer == "adam" and epochs > 0 else 1


def _network_copies(state: int, periodic: bool) -> int:
    """Copies of the parameters a job's network training holds (hpcflow.nn.train.Trainer): its training state, the
    gradient buffer and the epoch-0 copy; the last finite epoch's state (kept for a divergence) and the state being
    written to the checkpoint, and one more between periodic checkpoints; one of slack (measured: 11-12 copies with
    Adam, 6 with SGD, 15 with a checkpoint every epoch)."""
    return state + 2 + 2 * state + (state if periodic else 0) + 1


def _ntk_bytes(points: int, epochs: int, n_in: int, width: int, depth: int, params: int, itemsize: int,
               method: str) -> float:
    """An NTK tracker on `points` points over `epochs` epochs (hpcflow.nn.ntk): one evaluation (layer-wise: the
    factors h_l, z_l, δ_l of every layer with a δ-sized temporary; jacobian: the per-point Jacobian (N, 9, P), three
    times with torch.func's and the products' copies; both: three (9, 9, N, N) products) and every epoch's Θ in
    float64 four times (`NTK_COPIES`)."""
    if method == "jacobian":
        factors = 3.0 * points * 9 * params * itemsize
    else:
        factors = float(points) * ((11 * depth + 10) * width + n_in + 81) * itemsize
    return factors + 3.0 * 81 * points**2 * itemsize + _ntk_held(points, epochs)


def _ntk_held(points: int, epochs: int) -> float:
    """Every epoch's Θ (9, 9, N, N) in float64, NTK_COPIES times."""
    return NTK_COPIES * 81.0 * points**2 * 8 * (epochs + 1)


def _training_bytes(params: int, width: int, depth: int, batch: int, eval_rows: int, itemsize: int,
                    activation: str, state: int) -> float:
    """A network trained without checkpoints (width sweep, the kernel flow's network): its training state
    (`_optimizer_state`), the gradient buffer and its activations."""
    return (state + 1.0) * params * itemsize + _activation_bytes(width, depth, batch, eval_rows, itemsize, activation)


def _kernel_flow_bytes(kf: dict, mo: dict, n_in: int, params: int, itemsize: int, training: float) -> float:
    """The kernel flow with the epoch-0 NTK (hpcflow.nn.kernel), then the network trained on its points
    (`training`), one after the other: the kernel's frozen copy of the network (and of its parameters), the
    layer-wise factors of the points that its two operators cache (within the flow's cache budget each: the train
    operator its targets and sources, the test operator its targets and the shared train sources) and those of one
    tile of targets and one of sources, and the flow's state."""
    w, d = mo["width"], mo["depth"]
    per_point = (n_in + d * w + 9 * (d * w + 9)) * itemsize  # ntk_factors' h_l and δ_l
    n_tr, n_te = kf["n_train"], kf["n_test"]
    cached = min(FLOW_CACHE_BYTES, 2 * n_tr * per_point) + min(FLOW_CACHE_BYTES, (n_tr + n_te) * per_point)
    flow = (2.0 * params * itemsize + cached + 3.0 * min(kf["tile"], max(n_tr, n_te)) * per_point
            + FLOW_STATE_ARRAYS * 8.0 * 9 * (n_tr + n_te) + (n_tr + n_te) * point_bytes(3))
    return max(flow, training)


def estimate_nn(cfg: dict, *, ranks: int = 1) -> Estimate:
    """Kind "nn": points and tensors, then the largest of three phases (measured against peak RSS: 1.1-1.8). Training:
    the network's copies (`_network_copies`), activations (`_activation_bytes`) and NTK tracker (`_ntk_bytes`). After
    it, beside the trained network, its epoch-0 copy and the NTKs kept: the width sweep's largest network, or the
    kernel flow (`_kernel_flow_bytes`)."""
    geo, mo, tr, nk, ws, kf = (cfg[k] for k in ("geometry", "model", "training", "ntk", "width_sweep",
                                                 "kernel_flow"))
    n = geo["n_train"] + geo["n_val"]
    s = 8 if mo["dtype"] == "float64" else 4
    n_in = 10 + (5 if mo["features"] == "reim_abs2" else 0)
    w, d, act = mo["width"], mo["depth"], mo["activation"]
    parts = {"base": TORCH_BASE_BYTES}
    if mo["dtype"] == "float64" and importlib.util.find_spec("numba") is not None:
        parts["compiled loss"] = JIT_BYTES  # hpcflow.nn.jit_loss: the same Numba and LLVM as the Gaussian tile
    _add(parts, sample_bytes(n, 3, threads=_threads(), one_chart=bool(geo["chart"])), "sample ")
    parts["tensors"] = 3.0 * n * (10 + 9 + 2) * s  # x, g_FS, |Ω|², weights; one shuffled copy per epoch, batch views
    p = mlp_parameters(n_in, w, d)
    state = _optimizer_state(tr["optimizer"], tr["epochs"])
    periodic = bool(cfg["checkpoint"]["every"] or cfg["checkpoint"]["seconds"])
    batch = min(tr["batch_size"], geo["n_train"])
    parts["network"] = float(_network_copies(state, periodic)) * p * s
    parts["activations"] = _activation_bytes(w, d, batch, max(geo["n_train"], geo["n_val"]), s, act)
    points = nk["n_train_points"] + nk["n_test_points"] if nk["enabled"] else 0
    held = _ntk_held(points, tr["epochs"])  # the NTKs kept once training ends
    if points:
        parts["NTK"] = _ntk_bytes(points, tr["epochs"], n_in, w, d, p, s, nk["method"])
    training = parts["network"] + parts["activations"] + parts.get("NTK", 0.0)
    after = 2.0 * p * s + held  # the trained network and its epoch-0 copy, the NTKs
    sweep = max((_training_bytes(mlp_parameters(n_in, v, d), v, d, min(batch, ws["n_train"]),
                                 max(ws["n_train"], geo["n_val"]), s, act, _optimizer_state(ws["optimizer"], 1))
                 + _ntk_bytes(points or 20, ws["epochs"], n_in, v, d, mlp_parameters(n_in, v, d), s, "layerwise")
                 for v in ws["widths"]), default=0.0)
    if sweep:
        parts["width sweep network"] = max(0.0, after + sweep - training)
    if kf["enabled"]:
        kf_training = _training_bytes(p, w, d, min(batch, kf["n_train"]), max(kf["n_train"], kf["n_test"]), s, act,
                                      state)
        flow = after + _kernel_flow_bytes(kf, mo, n_in, p, s, kf_training)
        parts["NTK kernel flow"] = max(0.0, flow - max(training, after + sweep))
    return Estimate(sum(parts.values()), parts)


ESTIMATORS = {
    "flow": estimate_flow,
    "noise_scan": estimate_noise_scan,
    "local_limit": estimate_local_limit,
    "distance_scaling": estimate_distance_scaling,
    "clustering": estimate_clustering,
    "nn": estimate_nn,
    "sample": estimate_sample,
}


#: host memory that CuPy's import, the CUDA context and its pools add to a run's peak RSS (on an H200 node, CuPy
#: 14.2: a Gaussian flow's and a distance-scaling run's peaks exceeded their CPU estimates by 276-376 MB)
CUPY_HOST_BYTES = 512 * 2**20


def array_work_on_gpu(kind: str | None = None) -> bool:
    """Whether a run's array work would go to CuPy: HPCFLOW_BACKEND=cupy (also where this node lacks the GPU: --check
    on a login node), or auto with a usable GPU here, except for a sampling alone (kind "sample"), which auto runs
    on the host (`hpcflow.backend.backend_name`'s auto_on_host). The GPU is counted, not probed with a kernel
    (`hpcflow.backend.gpu_counted`): an estimate keeps no CUDA context in its process."""
    from hpcflow.backend import gpu_counted

    choice = env_backend() or "auto"  # (a bad value refused as every command refuses it)
    return choice == "cupy" or (choice == "auto" and kind != "sample" and gpu_counted() is None)


def estimate(cfg: dict, kind: str | None = None, *, ranks: int = 1) -> Estimate:
    """Estimated peak memory (and, for flows, seconds) per rank of a validated job configuration; array work on a
    GPU adds CuPy's host memory (CUPY_HOST_BYTES). A network's torch CUDA context is not counted (not measured)."""
    kind = kind or cfg["job"]["kind"]
    if kind not in ESTIMATORS:
        raise ValueError(f"no resource estimate for job kind {kind!r}")
    est = ESTIMATORS[kind](cfg, ranks=api_integer("ranks", ranks, "an integer >= 1 (MPI ranks)", lo=1))
    if kind != "nn" and array_work_on_gpu(kind):
        est.parts["CuPy and CUDA context (host)"] = CUPY_HOST_BYTES
        est.bytes += CUPY_HOST_BYTES
    return est


def ignore_requested(environ=None) -> bool:
    """True when HPCFLOW_IGNORE_MEMORY_CHECK=1, False for 0, blank or unset; ConfigError for anything else
    (`env_switch`, the rule of HPCFLOW_QUIET too)."""
    return env_switch(ENV_IGNORE, environ, on="skip the memory check")


@contextmanager
def skipped_memory_check(skip: bool = True):
    """Within it, with `skip`, every memory check is skipped as under HPCFLOW_IGNORE_MEMORY_CHECK=1 (a command's
    --no-memory-check reaching checks it does not call itself: a tune's trials); the variable restored after."""
    ignore_requested()  # (a value that is neither 0 nor 1 is refused, not replaced)
    old = os.environ.get(ENV_IGNORE)
    if skip:
        os.environ[ENV_IGNORE] = "1"
    try:
        yield
    finally:
        if skip and old is None:
            os.environ.pop(ENV_IGNORE, None)
        elif skip:
            os.environ[ENV_IGNORE] = old


#: the HPCFLOW_* variables a user sets that hpcflow, its sbatch templates (slurm/) and its tests read
KNOWN_VARIABLES = ("HPCFLOW_THREADS", "HPCFLOW_BACKEND", "HPCFLOW_QUIET", ENV_IGNORE, "HPCFLOW_PYTHON",
                   "HPCFLOW_MPI", "HPCFLOW_CI")
#: those hpcflow sets itself for the processes it starts (`hpcflow.submit.step.SIGNALS_ENV`, a step's tasks): read,
#: so never named as unknown, but no suggestion for a user's misspelt name
INTERNAL_VARIABLES = ("HPCFLOW_STEP_SIGNALS",)
#: whether `unknown_variables_note` was said in this process
_UNKNOWN_SAID = False


def unknown_variables_note(environ=None) -> str | None:
    """One line naming the HPCFLOW_* variables of the environment that hpcflow does not read (a misspelt name
    is ignored), each with the known one it closely resembles where there is one (difflib's ratio of the names after
    HPCFLOW_, which every one shares, in upper case, at least 0.6: a THREADS missing its S or a lower-case threads,
    not X), and the known ones (KNOWN_VARIABLES); None where there are none."""
    import difflib

    env = os.environ if environ is None else environ
    unknown = sorted(k for k in env if k.startswith("HPCFLOW_") and k not in KNOWN_VARIABLES + INTERNAL_VARIABLES)
    if not unknown:
        return None
    named, prefix = [], len("HPCFLOW_")
    for name in unknown:
        like = difflib.get_close_matches(name[prefix:].upper(), [k[prefix:] for k in KNOWN_VARIABLES], n=1,
                                         cutoff=0.6)
        named.append(f"{name} (did you mean HPCFLOW_{like[0]}?)" if like else name)
    return (f"hpcflow: warning: {', '.join(named)}: not a variable hpcflow reads, so ignored; the ones it knows are "
            f"{', '.join(KNOWN_VARIABLES)}")


def say_unknown_variables(environ=None) -> None:
    """`unknown_variables_note` on stderr, once a process and by the first rank only (rank 0 of the launcher's
    variables, which say it before MPI starts; a process no launcher started is one)."""
    global _UNKNOWN_SAID
    env = os.environ if environ is None else environ
    rank = next((env[k].strip() for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
                 if env.get(k, "").strip()), "0")
    line = None if _UNKNOWN_SAID or rank != "0" else unknown_variables_note(env)
    if line is not None:
        _UNKNOWN_SAID = True
        print(line, file=sys.stderr, flush=True)


def check_environment(environ=None) -> None:
    """Validate the environment before any work: HPCFLOW_THREADS (1..MAX_THREADS), HPCFLOW_BACKEND (numpy, cupy,
    auto), HPCFLOW_QUIET and HPCFLOW_IGNORE_MEMORY_CHECK (0, 1), THREAD_VARIABLES (positive integers),
    SLURM_CPUS_PER_TASK (>= 1; read for threads and memory) and SLURM_MEM_PER_NODE / _PER_CPU (memory sizes);
    ConfigError naming the variable otherwise (the parsers the Python API reads them with: hpcflow.arguments). An
    HPCFLOW_* variable hpcflow does not read is said in one line on stderr, once (`say_unknown_variables`), where the
    process's own environment is checked (`environ` None: a command's, not an sbatch template's shell)."""
    env = os.environ if environ is None else environ
    env_threads(env)
    env_backend(env)
    env_quiet(env)
    ignore_requested(env)
    for name in THREAD_VARIABLES:
        env_thread_count(name, env)
    slurm_cpus_per_task(env)
    for name in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        slurm_mebibytes(name, env)
    if environ is None:  # (after the refusals: a refused command says one line)
        say_unknown_variables()


#: the (address space, data) figures `check_resources` decided with, by `_decided_key`: `describe` states these,
#: not ones measured after the check's own imports grew the process (under `ulimit -d 430000` --check had printed
#: "data 429 MiB of 420 MiB" beside "valid", the check having measured 413 MiB)
_DECIDED: dict = {}


def _decided_key(est: Estimate, kind: str, ranks: int) -> tuple:
    return kind, ranks, est.bytes, tuple(sorted(est.parts.items())), resource.getrlimit(resource.RLIMIT_AS), \
        resource.getrlimit(resource.RLIMIT_DATA)


def check_resources(cfg: dict, kind: str | None = None, *, ranks: int = 1, per_node: int | None = None,
                    force: bool = False, source: str = "job") -> Estimate:
    """Refuse (ConfigError) a job whose estimated peak memory per rank exceeds what the process may use (its
    `ranks`, `per_node` of them on a node where given: `memory_limit`), unless `force` or
    HPCFLOW_IGNORE_MEMORY_CHECK=1. Returns the estimate."""
    ignore = ignore_requested()
    est = estimate(cfg, kind, ranks=ranks)
    if force or ignore:
        return est
    limit, where = memory_limit(ranks=ranks, per_node=per_node)
    if est.bytes > limit:
        big, kind = est.largest(), kind or cfg["job"]["kind"]
        local = local_ranks(ranks) if per_node is None else per_node
        sizes = part_keys(cfg, kind, big)
        raise ConfigError(f"{source}: estimated peak memory {fmt_bytes(est.bytes)} per rank (largest part: {big} "
                          f"{fmt_bytes(est.parts[big])}) exceeds the {fmt_bytes(limit)} this process may use "
                          f"({where}); {_memory_advice(kind, local, sizes)}, or pass "
                          f"--no-memory-check (or {ENV_IGNORE}=1) if you know better")
    space = run_address_space(est, cfg, kind, ranks) if per_node is None else None  # (submit: another runs it)
    data = run_data(est, cfg, kind) if per_node is None else None
    if per_node is None:
        _DECIDED[_decided_key(est, kind or cfg["job"]["kind"], ranks)] = (space, data)
    if space is not None and space[0] > space[1]:
        need, soft, mapped = space
        raise ConfigError(f"{source}: estimated peak memory {fmt_bytes(est.bytes)} per rank needs {fmt_bytes(need)} "
                          f"of address space (with the {fmt_bytes(mapped)} this process maps with the libraries the "
                          f"run loads, MPI's under a launcher; and its threads' stacks, malloc arenas and OpenBLAS "
                          f"buffers), which exceeds the {fmt_bytes(soft)} this process may use (RLIMIT_AS, ulimit -v: "
                          f"address space, not resident memory); raise the limit (ulimit -v unlimited, or at least "
                          f"{limit_kib(need)} KiB), or pass --no-memory-check (or {ENV_IGNORE}=1) if you know better")
    if data is not None and data[0] > data[1]:
        need, soft, taken = data
        kind = kind or cfg["job"]["kind"]
        fixed = need - est.bytes + est.parts.get("base", 0.0)  # what no smaller size lowers
        sized = {k: v for k, v in est.parts.items() if k != "base"}
        big = max(sized, key=sized.get) if sized else None
        sizes = ("" if fixed >= soft or big is None else
                 f", or reduce {part_keys(cfg, kind, big)} (its largest sized part: {big} {fmt_bytes(sized[big])})")
        raise ConfigError(f"{source}: estimated peak memory {fmt_bytes(est.bytes)} per rank needs {fmt_bytes(need)} "
                          f"of data (with the {fmt_bytes(taken)} this process holds with the libraries the run loads, "
                          f"and its threads' stacks and OpenBLAS buffers), which exceeds the {fmt_bytes(soft)} this "
                          f"process may use (RLIMIT_DATA, ulimit -d: its heap and private writable mappings, not "
                          f"resident memory); raise the limit (ulimit -d unlimited, or at least {limit_kib(need)} "
                          f"KiB){sizes}, or pass --no-memory-check (or {ENV_IGNORE}=1) if you know better")
    return est


#: the commands that continue a run from its checkpoint with --resume (the others are run again from the start)
RESUMABLE = ("run", "nn", "submit")


def out_of_memory_line(what: str, command: str | None = None) -> str:
    """The one line of a run that ran out of memory mid-run (`hpcflow.errors.out_of_memory`: `what`), with the limits
    this process had: its resident one and, where set, its address space (RLIMIT_AS). How to run it again fits
    `command` (run, sample, ...; default: the one this process runs, `stop_signals.early_command`): --resume only
    where it continues one (`RESUMABLE`)."""
    if command is None:
        from hpcflow.stop_signals import command_name

        command = command_name().removeprefix("hpcflow").strip() or None
    sizes = "--n" if command == "sample" else "the job's sizes"
    resume = command is None or command in RESUMABLE  # (not known: as a run of a job kind with checkpoints)
    again = "then run it again" + (" (with --resume where it wrote a checkpoint)" if resume else "")
    return (f"out of memory mid-run ({what}) with {_limits_had()}: raise the limit ({_ulimits()}, or more "
            f"memory for the job) or reduce {sizes}, {again}")


def _ulimits() -> str:
    """How to lift the process's own limits: "ulimit -v unlimited" (also where neither is set: a cgroup or the node
    is then the limit), "ulimit -d unlimited" where RLIMIT_DATA alone is set, both where both are."""
    set_ = [flag for which, flag in ((resource.RLIMIT_AS, "-v"), (resource.RLIMIT_DATA, "-d"))
            if resource.getrlimit(which)[0] not in (resource.RLIM_INFINITY, 0)]
    return " and ".join(f"ulimit {flag} unlimited" for flag in set_ or ["-v"])


def _limits_had() -> str:
    """"N MiB to use (where)", and where RLIMIT_AS or RLIMIT_DATA is set but not that limit, "; its address space M
    MiB (ulimit -v)", "; its data M MiB (ulimit -d)"."""
    limit, where = memory_limit()
    text = f"{fmt_bytes(limit)} to use ({where})"
    for which, name, what, flag in ((resource.RLIMIT_AS, "RLIMIT_AS", "address space", "-v"),
                                    (resource.RLIMIT_DATA, "RLIMIT_DATA", "data", "-d")):
        soft, _ = resource.getrlimit(which)
        if not (soft == resource.RLIM_INFINITY or soft <= 0 or where.startswith(name)):
            text += f"; its {what} {fmt_bytes(soft)} (ulimit {flag})"
    return text


def out_of_memory_said(exc: BaseException, command: str | None = None) -> str | None:
    """The one line for an exception that says memory ran out (`hpcflow.errors.out_of_memory` mid-run,
    `load_refused` loading a library), else None; the command ends with status 5 (EXIT_WRITE_FAILED).
    `command`: the subcommand (run, sample, ...) the line's advice fits (`out_of_memory_line`)."""
    what = out_of_memory(exc)
    if what is not None:
        return out_of_memory_line(what, command)
    what = load_refused(exc)
    if what is None:
        return None
    return (f"out of memory loading a library ({what}) with {_limits_had()}: raise the limit ({_ulimits()}, or "
            "more memory for the job), then run it again")


# ---- the limit a command starts under ---------------------------------------------------------------------------
#: address space (RLIMIT_AS, `ulimit -v`) and data (RLIMIT_DATA, `ulimit -d`) in MiB that each command maps loading
#: its libraries (NumPy and its OpenBLAS, h5py, MPI for `info`, matplotlib for `report`, ...) before its memory check
#: or any work, less one OpenBLAS thread (`start_thread_bytes`). Measured (x86-64 Linux, 2 CPUs, CPython 3.11, NumPy's
#: OpenBLAS, MPICH with UCX; 2026-12) as the smallest limit, bisected to 1.3 MiB with `resource.setrlimit` in the
#: child, under which the command reached its own check or its end (`run`/`nn`/`submit` JOB --check, `sample --n
#: 100`, `tune --trials 1`, `report` of a quickstart run, `info`) with NumPy's two OpenBLAS threads: run, sample and
#: nn 166 MiB of address space, info 148, submit 171, tune 176, report 247; run and nn 100 MiB of data, sample 101,
#: submit 105, tune 109, info 114, report 169. Under them a command ended in OpenBLAS ("Memory allocation still
#: failed", exit 1; "blas_thread_init", a SIGINT), MPI_Init (UCX's abort) or a MemoryError while it imported. Less
#: a whole thread, so that a command whose part beyond NumPy's does not grow with the threads is not overcounted
#: (with one OpenBLAS thread: run 134 MiB, sample 126, nn 125, submit 132, report 206, each over its floor); but info
#: whole, whose MPI_Init needs as much at either count (149 MiB with one thread; under it MPI_Init aborts in C, which
#: hpcflow cannot say, though not at every limit: UCX's thread also aborted at 168-180 MiB with two)
START_SPACE = {"info": 148, "sample": 126, "run": 126, "nn": 125, "report": 207, "tune": 136, "submit": 131}
START_DATA = {"info": 74, "sample": 61, "run": 60, "nn": 60, "report": 129, "tune": 69, "submit": 65}
#: what `import numpy` alone needs with one OpenBLAS thread, which every command does before any work: 96 MiB of
#: address space, 47 MiB of data (135 and 87 MiB with two threads), in bytes, bisected as START_SPACE; under it
#: OpenBLAS ends the process itself (exit 1), so the floor keeps to it closer (NUMPY_MARGIN) than to a command's own
#: need, under which a MemoryError is said (`start_out_of_memory`)
NUMPY_SPACE = 96 * 2**20
NUMPY_DATA = 47 * 2**20
NUMPY_MARGIN = 2 * 2**20


def start_thread_bytes() -> int:
    """What NumPy's OpenBLAS maps for each thread beyond the first as it loads (`import numpy`: +39 MiB of address
    space and +40 MiB of data for the second): the thread's stack (`thread_stacks`, 8 MiB under the usual `ulimit
    -s`) and its buffer (OPENBLAS_BUFFER_BYTES), both private writable, so counted by either limit; how many threads:
    `openblas_start_threads`. Measured from one thread to two (2 CPUs); counted where NumPy's bundled OpenBLAS
    loads only (`numpy_bundled_openblas`)."""
    return thread_stacks(1) + OPENBLAS_BUFFER_BYTES


#: what MPI (mpi4py, MPICH and UCX, MPI_Init's shared memory) adds at a rank of a launched world (mpiexec -n 2, two
#: OpenBLAS threads) before its first exchange: run 214 MiB of address space against 166 MiB without a launcher
#: (+48; MPI_Init itself aborted in C, "MPIDI_POSIX_comm_bootstrap: Out of memory", at 180 MiB), info, which loads MPI
#: without a launcher too, 167 against 148 (+19: START_MPI_INFO_SPACE); none of data is counted (not measured). A
#: one-task launch (srun -n 1, a batch step: SLURM_STEP_NUM_TASKS=1) initialises MPI too (`parallel.comm.launched`),
#: a singleton's MPI_Init: run --check with one OpenBLAS thread started at 184 MiB there against 139 without (+45)
START_MPI_SPACE = 48 * 2**20
START_MPI_INFO_SPACE = 19 * 2**20
START_MPI_DATA = 0
#: a command is refused where its limit is under its own need less this (what one command maps varies by a few MiB
#: with its arguments, the environment and the machine's libraries) or NumPy's less NUMPY_MARGIN (`start_needs`), so
#: that no command that starts is refused; a refusal names its own need plus this, rounded up as `limit_kib` rounds
#: (at most the figure `check_resources` then names for a job, which counts these libraries and more)
START_MARGIN = 16 * 2**20
#: OpenBLAS starts at most this many threads (NUM_THREADS of the OpenBLAS NumPy's wheels bundle): more CPUs count
#: as these, so that the floor stays under what a command on a larger node maps
OPENBLAS_MAX_THREADS = 64


#: the names of the OpenBLAS libraries NumPy's wheels bundle (scipy-openblas since NumPy 2, libopenblas before), a
#: pthreads build that starts its threads and maps their buffers as it loads
BUNDLED_OPENBLAS = ("libscipy_openblas", "libopenblas")


def numpy_bundled_openblas(numpy_dir: str | None = None) -> bool:
    """Whether the NumPy this process would import (the package directory `numpy_dir`; default: where
    `importlib.util.find_spec` finds it, without importing it) loads the OpenBLAS its wheel bundles (BUNDLED_OPENBLAS
    in numpy.libs beside it, or numpy/.libs), whose threads start as it loads (`openblas_start_threads`). Not a NumPy
    built against another BLAS (conda's MKL or OpenMP OpenBLAS, a system one), which starts none then."""
    if numpy_dir is None:
        import importlib.util

        try:
            spec = importlib.util.find_spec("numpy")
        except (ImportError, ValueError):
            return False
        if spec is None or not spec.submodule_search_locations:
            return False
        numpy_dir = list(spec.submodule_search_locations)[0]
    numpy_dir = os.path.abspath(numpy_dir)
    for libs in (os.path.join(os.path.dirname(numpy_dir), "numpy.libs"), os.path.join(numpy_dir, ".libs")):
        try:
            names = os.listdir(libs)
        except OSError:
            continue
        if any(name.startswith(BUNDLED_OPENBLAS) for name in names):
            return True
    return False


def openblas_start_threads(environ=None) -> int:
    """The threads NumPy's OpenBLAS starts when it loads, by OpenBLAS's rule: OPENBLAS_NUM_THREADS, else
    GOTO_NUM_THREADS, else OMP_NUM_THREADS (the first that is a positive integer), else one per CPU this process may
    run on; at most those CPUs and OPENBLAS_MAX_THREADS. Only NumPy's bundled OpenBLAS starts them as it loads
    (`numpy_bundled_openblas`)."""
    env = os.environ if environ is None else environ
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    asked = cpus
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        text = env.get(name, "").strip()
        if text.isdigit() and int(text) > 0:
            asked = int(text)
            break
    return max(1, min(asked, cpus, OPENBLAS_MAX_THREADS))


def start_needs(command: str, environ=None, *, bundled: bool | None = None) -> tuple[dict, int] | None:
    """({RLIMIT_AS / RLIMIT_DATA: (floor, need)}, OpenBLAS threads) of `command` (run, info, ...) in bytes, or None
    for a command not measured: `need`, what it maps loading its libraries before any work (START_SPACE /
    START_DATA, one stack and OpenBLAS buffer per OpenBLAS thread, MPI's part under a launcher); `floor`, the limit
    under which it cannot start: the larger of `need` without the threads less START_MARGIN and NumPy's own need with
    them less NUMPY_MARGIN. The threads are those NumPy's bundled OpenBLAS starts (`openblas_start_threads`) where it
    is what NumPy loads (`bundled`, default `numpy_bundled_openblas`), else one: another BLAS starts none as it
    loads."""
    from hpcflow.stop_signals import launcher_task

    if command not in START_SPACE:
        return None
    if bundled is None:
        bundled = numpy_bundled_openblas()
    threads = openblas_start_threads(environ) if bundled else 1
    launched = launcher_task(environ) is not None
    per = start_thread_bytes()
    needs = {}
    mpi_space = START_MPI_INFO_SPACE if command == "info" else START_MPI_SPACE
    for which, table, numpy, mpi in ((resource.RLIMIT_AS, START_SPACE, NUMPY_SPACE, mpi_space),
                                     (resource.RLIMIT_DATA, START_DATA, NUMPY_DATA, START_MPI_DATA)):
        own = table[command] * 2**20 + (mpi if launched else 0)
        floor = max(own - START_MARGIN, numpy + (threads - 1) * per - NUMPY_MARGIN)
        needs[which] = (floor, own + (threads - 1) * per)
    return needs, threads


def start_refusal(command: str, *, bypass: str | None = None, environ=None) -> str | None:
    """The one line refusing `command` where RLIMIT_AS or RLIMIT_DATA is under its floor (`start_needs`): it would
    fail loading its libraries (OpenBLAS's exit, a MemoryError); else None. It names the limit and the figure to
    raise it to (the need plus START_MARGIN, rounded up by `limit_kib`), and `bypass` (the command's
    --no-memory-check) beside HPCFLOW_IGNORE_MEMORY_CHECK=1, which skip it."""
    bundled = numpy_bundled_openblas()
    known = start_needs(command, environ, bundled=bundled)
    if known is None:
        return None
    needs, threads = known
    blas = (f"NumPy's OpenBLAS starting {threads} thread{'s' if threads > 1 else ''}, one per CPU unless "
            "OPENBLAS_NUM_THREADS says fewer" if bundled else "NumPy and its BLAS, which starts no thread as it loads")
    for which, name, what, flag in ((resource.RLIMIT_AS, "RLIMIT_AS", "address space", "-v"),
                                    (resource.RLIMIT_DATA, "RLIMIT_DATA", "data", "-d")):
        soft, _ = resource.getrlimit(which)
        floor, need = needs[which]
        if soft == resource.RLIM_INFINITY or soft <= 0 or soft >= floor:
            continue
        skip = f"pass {bypass} (or {ENV_IGNORE}=1)" if bypass else f"set {ENV_IGNORE}=1"
        return (f"this process may use {fmt_bytes(soft)} of {what} ({name}, ulimit {flag}), less than the "
                f"~{fmt_bytes(need)} hpcflow {command} maps loading its libraries before any work ({blas}); "
                f"nothing was run: raise the limit (ulimit {flag} "
                f"unlimited, or at least {limit_kib(need + START_MARGIN)} KiB), or {skip} if you know better")
    return None


#: whether this process's command has begun its work (`work_began`): memory that runs out before it (loading its
#: libraries, reading the job, its checks, --check's whole course) is the start-up's (`start_out_of_memory`), not
#: the run's
_BEGAN = [False]


def work_began(began: bool = True) -> None:
    """Record that the command begins its work (its first write: --out's lock taken, the sampling, the report, the
    submission), or with False that a new command starts (`hpcflow.cli`)."""
    _BEGAN[0] = began


#: the instructions of an import statement: a frame of a traceback stopped at one was importing
IMPORT_OPS = ("IMPORT_NAME", "IMPORT_FROM", "IMPORT_STAR")


def _in_import(exc: BaseException) -> bool:
    """Whether `exc` was raised while a module was imported: an ImportError, or a traceback that runs through a
    module's body or stops at an import statement (importlib's own frames are removed from it: a MemoryError while
    it read a module ends at the `import` line). Only how the start-up's line names it (`start_out_of_memory`)."""
    import dis

    if isinstance(exc, ImportError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "<module>":
            return True
        try:
            if dis.opname[code.co_code[tb.tb_lasti]] in IMPORT_OPS:
                return True
        except IndexError:  # (no instruction at that offset: not an import)
            pass
        tb = tb.tb_next
    return False


#: commands whose whole work is their start-up (loading the libraries whose versions `hpcflow info` prints): memory
#: that runs out in them is always the start-up's
START_ONLY = ("info",)


def start_out_of_memory(exc: BaseException, command: str | None = None) -> str | None:
    """The one line for memory that ran out (`out_of_memory`, `load_refused`) in `command` (default: the one
    this process runs) before its work began (`work_began`: while it loaded its libraries, read the job or checked
    it, wherever the MemoryError was raised, a C extension's init or a thread's start too), or anywhere in a
    START_ONLY command: nothing had run, so it is a start-up refusal (exit 2) naming the limit to raise
    (`start_refusal`'s figure where the command was measured), not the mid-run line (exit 5); else None."""
    if command is None:
        from hpcflow.stop_signals import command_name

        command = command_name().removeprefix("hpcflow").strip() or None
    if command not in START_ONLY and _BEGAN[0]:
        return None
    what = out_of_memory(exc) or load_refused(exc) or (unsaid_import_failure(exc) if _in_import(exc) else None)
    if what is None:
        return None
    known = start_needs(command) if command else None
    fixes = []
    for which, flag in ((resource.RLIMIT_AS, "-v"), (resource.RLIMIT_DATA, "-d")):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY and soft > 0:
            at_least = max(known[0][which][1] + START_MARGIN, soft + 1) if known else None
            fixes.append(f"ulimit {flag} unlimited" + (f", or at least {limit_kib(at_least)} KiB" if at_least else ""))
    fix = "; ".join(fixes) or "ulimit -v unlimited, or more memory for the job"
    doing = "loading its libraries " if _in_import(exc) or load_refused(exc) else ""
    return (f"out of memory {doing}before any work ({what}) with {_limits_had()}; nothing was run: "
            f"raise the limit ({fix})")


def limit_kib(n: float) -> int:
    """`n` bytes in the KiB `ulimit -v` and `ulimit -d` take, rounded up to the next 100 MiB."""
    return math.ceil(n / (100 * 2**20)) * 100 * 1024


#: what shrinks a network job's estimate (`estimate_nn`), which every rank holds whole at any rank count: the points
#: (its sampling and tensors are counted for all of them), the network and its activations
NN_SIZES = "[geometry].n_train / n_val, [model].width / depth or [training].batch_size"
#: the keys that size each part of `estimate_nn` (by its label; "sample ..." parts by their prefix), named in full in
#: a refusal whose largest part it is, so that the --set a refusal cites (`hpcflow.jobs.registry.load_with_extras`)
#: is one that sized it; the NTK part is `nn_part_keys`'s own
NN_PART_KEYS = {
    "sample": "[geometry].n_train / [geometry].n_val",
    "tensors": "[geometry].n_train / [geometry].n_val",
    "network": "[model].width / [model].depth",
    "activations": "[training].batch_size, [model].width / [model].depth or [geometry].n_train / [geometry].n_val "
                   "(the rows evaluated at once)",
    "width sweep network": "[width_sweep].widths (its widest network), [width_sweep].n_train or "
                           "[width_sweep].epochs (an NTK kept per epoch)",
    "NTK kernel flow": "[kernel_flow].n_train / [kernel_flow].n_test or [kernel_flow].tile",
}


def nn_part_keys(cfg: dict, part: str) -> str:
    """The keys of network job `cfg` that size its estimate's `part` (`estimate_nn`), as a refusal names them; the
    generic NN_SIZES for a part no key shrinks (the interpreter with torch, the compiled loss). The NTK: the tracker
    keeps Θ (9, 9, N, N) float64 on its N = n_train_points + n_test_points points for epoch 0 and every epoch
    (`_ntk_held`), so the points (squared) and [training].epochs size it, and the "jacobian" method's per-point
    Jacobians beside them (`_ntk_bytes`)."""
    if part == "NTK":
        method = ', set [ntk].method = "layerwise" (no per-point Jacobians)' if cfg["ntk"]["method"] == "jacobian" \
            else ""
        return ("[ntk].n_train_points / [ntk].n_test_points (Θ grows as the square of their sum) or [training].epochs "
                f"(a Θ is kept for epoch 0 and every epoch){method}, or set [ntk].enabled = false")
    return NN_PART_KEYS.get(part.split(" ")[0] if part.startswith("sample ") else part, NN_SIZES)


def part_keys(cfg: dict, kind: str, part: str) -> str:
    """The keys of job `cfg` of `kind` that size its estimate's `part` (by its label), named in full ([SECTION].KEY)
    in a refusal whose largest part it is, so that the --set a refusal cites (`hpcflow.jobs.registry.set_values_named`)
    is one that sized it: a network job's `nn_part_keys`; a flow's points (its clustering distances: the mini-batch,
    or every train point for method 'full'); a noise scan's train points (its test sets are noised copies of them,
    one per level); the points clustered; a distance scaling's largest N and queries; a clustered flow's blocks (their
    sources: the halo, the clusters, the train points)."""
    if kind == "nn":
        return nn_part_keys(cfg, part)
    if kind in ("flow", "local_limit"):
        if part == "clustering distances":
            batched = cfg.get("clustering", {}).get("method") == "batched"
            return "[clustering].batch_size" if batched else "[geometry].n_train"
        if part == "cluster blocks":  # each block's sources: its train points grown by the halo
            return "[clustering].halo_cutoff / [clustering].n_clusters / [geometry].n_train"
        return "[geometry].n_train / [geometry].n_test"
    if kind == "noise_scan":
        return "[geometry].n_train or the levels of [noise].scales" if part == "noised test sets" else \
            "[geometry].n_train"
    if kind == "clustering":
        return "[points].n_points"
    if kind == "distance_scaling":
        return "the largest [scaling].n_points or [scaling].queries"
    return "the sizes"


#: job kinds whose every rank runs the whole job (`estimate` counts one process at any rank count)
WHOLE_ON_EVERY_RANK = ("noise_scan", "local_limit", "clustering")


def _memory_advice(kind: str, local: int, sizes: str = NN_SIZES) -> str:
    """How a refused job of `kind` with `local` ranks on a node fits: a network job's estimate does not shrink with
    more ranks (`estimate_nn`: data parallel, each rank counted with the whole network and points), so only fewer
    ranks per node (the same ranks over more nodes) raise its limit, or smaller `sizes` (the keys of its largest
    part: `part_keys`) lower it; nor does that of a kind whose every rank runs the whole job
    (WHOLE_ON_EVERY_RANK)."""
    if kind == "sample":
        why = "rank 0 gathers all the points beside its own share"
        fix = "sample fewer points per file (a smaller --n; several files with different --seed) or ask for more memory"
        if local > 1:
            return (f"{fix}, or run fewer ranks on the node (its {local} ranks share its memory, and {why}: more ranks "
                    "raise its peak)")
        return f"{fix} (more ranks or nodes do not lower the peak: {why})"
    if kind == "distance_scaling":
        # every rank holds its share of the N points; the queried points (queries, or all N) it holds whole
        fix = "lower the largest [scaling].n_points"
        spread = (f"spread the ranks over more nodes (its {local} ranks share this node's memory; each holds its "
                  "share of the points)" if local > 1 else "run more ranks on more nodes (each holds its share of "
                  "the points)")
        return f"{fix} or [scaling].queries (brute; the queried points are on every rank), or {spread}"
    if kind in WHOLE_ON_EVERY_RANK:
        return f"reduce {sizes} (every rank runs the whole job: more ranks or nodes do not lower its estimate)"
    if kind != "nn":
        return f"reduce {sizes}, use more nodes"
    if local > 1:
        return f"put fewer of its {local} ranks on each node (the same ranks over more nodes), or reduce {sizes}"
    return f"reduce {sizes} (more ranks or nodes do not lower a network job's estimate per rank)"


def describe(cfg: dict, kind: str | None = None, *, ranks: int = 1) -> str:
    """One phrase for `--check`: the estimated peak memory per rank against the limit (and seconds if known)."""
    est = estimate(cfg, kind, ranks=ranks)
    limit, where = memory_limit(ranks=ranks)
    text = f"estimated peak memory {fmt_bytes(est.bytes)} per rank of {fmt_bytes(limit)} ({where})"
    decided = _DECIDED.get(_decided_key(est, kind or cfg["job"]["kind"], ranks))  # what the check went by
    space, data = decided if decided is not None else (run_address_space(est, cfg, kind, ranks),
                                                            run_data(est, cfg, kind))
    if space is not None:
        text += f", address space {fmt_bytes(space[0])} of {fmt_bytes(space[1])} (RLIMIT_AS, ulimit -v)"
    if data is not None:
        text += f", data {fmt_bytes(data[0])} of {fmt_bytes(data[1])} (RLIMIT_DATA, ulimit -d)"
    if est.seconds is not None:
        text += f", roughly {est.seconds:.3g} s of kernel products"
    return text + (f" (about {est.step_seconds:.3g} s per flow step)" if est.step_seconds is not None else "")


def step_signal_note(cfg: dict, *, ranks: int, threads: int, signal_delay: float, time_s: float) -> str | None:
    """For `hpcflow submit` of a flow job on `ranks` ranks of `threads` threads each: a warning where the estimated
    seconds of one flow step exceed `signal_delay`, the seconds before the time limit (`time_s`) at which Slurm
    signals the job to stop: a flow stops, writing its checkpoint, only at a step's end, so the signal may come
    mid-step and the job be killed at its limit before it stops. None where a step fits (or no step is estimated)."""
    with _threads_set(threads):
        est = estimate(cfg, ranks=ranks)
    step = est.step_seconds
    if step is None or step <= signal_delay:
        return None
    want = math.ceil(2 * step)
    within = (f"{want}" if want < time_s else
              f"{want}, which --time ({int(time_s)} s) does not leave: raise --time too")
    return (f"warning: one flow step takes about {step:.3g} s (estimated at {ranks} rank(s) x {threads} thread(s)), "
            f"more than --signal-delay {signal_delay:g}: the time-limit signal may come mid-step, and the run, which "
            f"stops with a checkpoint only at a step's end, then has no time to stop before the limit kills it; raise "
            f"--signal-delay to at least about twice the step, {within}, or cluster the job ([clustering])")


def add_memory_check_argument(parser) -> None:
    """Add --no-memory-check (dest `no_memory_check`) to an argparse (sub)parser."""
    parser.add_argument("--no-memory-check", action="store_true", dest="no_memory_check",
                        help=f"skip the estimate of peak memory against the limit (also {ENV_IGNORE}=1)")
