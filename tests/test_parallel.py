"""hpcflow.parallel at 1, 2 and 3 ranks: shares, exact global sums, gathers, decisions, abort on error."""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hpcflow.errors import UserError
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import counts, displs, share
from hpcflow.parallel.partition import bitmap, covered
from hpcflow.parallel.reduce import exact_sum, expansion
from jobtexts import GAUSSIAN_KERNEL

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "parallel_checks.py")
RANK_STATUS = os.path.join(os.path.dirname(__file__), "mpi", "rank_status.py")


def mpiexec():
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert exe, "mpiexec not found: install the test extra (mpich wheel)"
    return exe


def each_rank_status(statuses, ranks: int, cmd: list) -> list:
    """`mpiexec -n ranks cmd...` with every rank's exit status written to the folder `statuses` (mpiexec's own
    status is the ranks' statuses ORed: a 4 and a 0 read 4); read them back with `rank_statuses`."""
    os.makedirs(statuses, exist_ok=True)
    return [mpiexec(), "-n", str(ranks), sys.executable, RANK_STATUS, str(statuses), *cmd]


def rank_statuses(statuses, ranks: int) -> list:
    """The exit status of each rank 0..ranks-1 (None: the rank recorded none, e.g. it was killed with its
    wrapper)."""
    found = []
    for r in range(ranks):
        path = os.path.join(statuses, f"rank{r}")
        if not os.path.exists(path):
            found.append(None)
            continue
        with open(path, encoding="utf-8") as fh:
            found.append(int(fh.read()))
    return found


def test_each_rank_status_records_what_every_rank_returned(tmp_path):
    """The wrapper's records against statuses known in advance (mpiexec itself reports 1 | 2 = 3 here)."""
    code = "from mpi4py import MPI; import sys; sys.exit(MPI.COMM_WORLD.allreduce(1) - 3 + MPI.COMM_WORLD.Get_rank())"
    r = subprocess.run(["timeout", "60", *each_rank_status(tmp_path, 3, [sys.executable, "-c", code])],
                       capture_output=True, text=True, timeout=90)
    assert rank_statuses(tmp_path, 3) == [0, 1, 2], r.stderr  # each rank's own, after a collective of all three
    assert r.returncode not in (0, 124)


@pytest.mark.parametrize("n,size", [(0, 3), (1, 3), (10, 3), (7, 1), (5, 8), (np.int64(11), np.int32(4))])
def test_shares_cover_range_once(n, size):
    c = counts(n, size)
    assert c.sum() == n and c.max() - c.min() <= 1
    seen = np.concatenate([np.arange(*share(n, size, r)) for r in np.arange(size)])
    np.testing.assert_array_equal(seen, np.arange(n))
    np.testing.assert_array_equal(displs(c), [share(n, size, r)[0] for r in range(size)])


@pytest.mark.parametrize("args, exc, said", [
    ((10.5, 2, 0), ValueError, "n=10.5 is invalid; pass a whole number in [0, 2**62] (items)"),  # was (0, 5)
    ((10, 2.5, 0), ValueError, "size=2.5 is invalid; pass a whole number in [0, 2**62] (ranks)"),
    ((10, 2, float("nan")), ValueError, "rank=nan is invalid"),
    ((10, 2, "0"), TypeError, "rank='0' is invalid; pass a whole number in [0, 2**62] (this rank)"),
    ((10, 2, True), TypeError, "rank=True is invalid"),
    ((10, 2, -1), ValueError, "rank is out of range; pass a rank in 0..1"),  # was (5, 10), rank 1's rows
    ((10, 2, 2), ValueError, "rank is out of range; pass a rank in 0..1"),
    ((-1, 2, 0), ValueError, "n is out of range; pass n >= 0 items"),  # was (0, 0)
    ((10, 0, 0), ValueError, "size is out of range; pass size >= 1 ranks"),  # was ZeroDivisionError
    ((10, -2, 0), ValueError, "size is out of range"),
    ((2**63, 2, 0), ValueError, "n=9223372036854775808 is invalid; pass a whole number in [0, 2**62] (items)"),
    ((1e300, 3, 0), ValueError, "n=1e+300 is invalid; pass a whole number in [0, 2**62]"),  # (a whole number)
])
def test_share_refuses_what_is_no_rank_of_a_count(args, exc, said):
    with pytest.raises(exc, match=r"^share\(n=.*\): " + re.escape(said)) as info:
        share(*args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("args, exc, said", [
    ((10.5, 2), ValueError, "n=10.5 is invalid; pass a whole number in [0, 2**62] (items)"),  # was [5, 5], 10 items
    ((10, None), TypeError, "size=None is invalid"),
    ((-4, 2), ValueError, "n is out of range; pass n >= 0 items"),  # was [-2, -2]
    ((10, 0), ValueError, "size is out of range; pass size >= 1 ranks"),  # was ZeroDivisionError
    ((10, -2), ValueError, "size is out of range"),  # was an empty array
])
def test_counts_refuses_what_is_no_count_of_items_over_ranks(args, exc, said):
    with pytest.raises(exc, match=r"^counts\(n=.*\): " + re.escape(said)) as info:
        counts(*args)
    assert "\n" not in str(info.value)


def test_whole_valued_floats_are_counts_as_every_whole_number_argument():
    """README: every whole-number argument takes an int, a NumPy integer or a float of whole value (share(10.0, 3, 0)
    raised TypeError "n is a float, not an integer")."""
    assert share(10.0, 3, 0) == (0, 4) and share(np.float64(10), np.int32(3), 2.0) == (7, 10)
    assert all(type(v) is int for v in share(10.0, 3.0, 1.0))
    np.testing.assert_array_equal(counts(1e1, 3.0), [4, 3, 3])
    np.testing.assert_array_equal(displs([4.0, np.int64(3), 3]), [0, 4, 7])
    np.testing.assert_array_equal(displs(np.array([2, 0, 5], dtype=np.uint8)), [0, 2, 2])
    assert displs([]).shape == (0,)  # no ranks, no offsets (was [0])


@pytest.mark.parametrize("cnt, exc, said", [
    ([3, -5, 2], ValueError, "cnt[1]=-5 is invalid"),  # was [0, 3, -2]
    (np.array([3, -5, 2]), ValueError, "cnt[1]=-5 is invalid"),
    ([1.5, 2], ValueError, "cnt[0]=1.5 is invalid"),  # was [0, 1]
    ([[1, 2], [3, 4]], ValueError, "cnt has shape (2, 2), not 1-D"),  # was flattened: [0, 1, 3, 6]
    ("ab", TypeError, "cnt is a str"),  # was "invalid literal for int()"
    (None, TypeError, "cnt is a NoneType"),
    ([2**62] * 3, ValueError, "the counts add up to more than 2**62"),  # int64 prefix sums wrapped: [0, 2**62, -2**63]
    ([True, 2], TypeError, "cnt[0]=True is invalid"),
    ([None], TypeError, "cnt[0]=None is invalid"),
])
def test_displs_refuses_what_is_no_list_of_counts(cnt, exc, said):
    with pytest.raises(exc) as info:
        displs(cnt)
    msg = str(info.value)
    assert msg.startswith("displs(cnt=") and said in msg and msg.endswith(
        "pass counts of items per rank: a 1-D sequence of whole numbers >= 0, 2**62 at most in all"), msg
    assert "\n" not in msg


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 1003])
def test_bitmap_and_coverage_count_the_indices(n):
    """One rank's bitmap is np.packbits of the index mask; `covered` counts the distinct indices."""
    rng = np.random.default_rng(n)
    for idx in (np.arange(n), np.sort(rng.choice(n, n // 3, replace=False)), np.arange(n)[::5]):
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        np.testing.assert_array_equal(bitmap(idx, n), np.packbits(mask))
        assert covered([(idx, n), (idx[:1], n + 1)], comm=pcomm.SerialComm()) == [idx.size, min(idx.size, 1)]


def test_exact_sum_is_correctly_rounded_for_any_split():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5000) * np.exp(rng.uniform(-40, 40, 5000))
    want = math.fsum(x.tolist())  # correctly rounded by Shewchuk's algorithm
    for parts in (1, 2, 3, 17):
        terms = [t for p in np.array_split(x, parts) for t in expansion(p)]
        assert math.fsum(terms) == want
    assert exact_sum(x) == want
    assert math.isnan(exact_sum(np.array([1.0, np.nan])))


def test_launch_trap_is_refused(monkeypatch):
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    with pytest.raises(UserError, match="srun --mpi=pmi2"):
        pcomm.check_launch()
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    pcomm.check_launch()


def test_threads_per_rank_follows_environment(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # a process bound to 8 CPUs
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setenv("HPCFLOW_THREADS", "3")
    assert pcomm.threads_per_rank() == 3
    monkeypatch.setenv("HPCFLOW_THREADS", "64")  # an explicit choice beyond the mask is taken as given
    assert pcomm.threads_per_rank() == 64
    monkeypatch.delenv("HPCFLOW_THREADS")
    assert pcomm.threads_per_rank() == 8
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert pcomm.threads_per_rank() == 5
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "16")  # more than the process may run on: the mask bounds it
    assert pcomm.threads_per_rank() == 8
    monkeypatch.setenv("HPCFLOW_THREADS", "x")
    with pytest.raises(UserError, match="HPCFLOW_THREADS"):
        pcomm.threads_per_rank()
    monkeypatch.delenv("HPCFLOW_THREADS")
    for bad in ("0", "abc", "4x", "-3"):  # values Slurm never writes: refused, not read as "not set" (the mask)
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", bad)
        with pytest.raises(UserError, match=f"SLURM_CPUS_PER_TASK='{bad}'"):
            pcomm.threads_per_rank()


def test_launch_is_told_by_the_launchers_variables(monkeypatch):
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    for env in ({"PMI_RANK": "0"}, {"PMIX_RANK": "1"}, {"OMPI_COMM_WORLD_SIZE": "4"}, {"SLURM_PROCID": "0"},
                {"SLURM_STEP_NUM_TASKS": "2"}, {"MV2_COMM_WORLD_RANK": "0"}, {"HYDRA_CONTROL_FD": "5"}):
        assert pcomm.launched({"HOME": "/h", **env}), env
    for env in ({}, {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "4"}, {"MPI_HOME": "/opt", "PMI": "x"}):
        assert not pcomm.launched(env), env


def test_a_plain_process_flows_without_initialising_mpi(tmp_path):
    """comm=None in a process no launcher started (a notebook, a login node): one rank, and mpi4py never
    imported, so MPI is not initialised (Open MPI's singleton init can fail or hang on a login node): neither by
    the library calls nor by a whole `hpcflow run`, whose provenance used to import mpi4py for the library's
    version; its summary says MPI was not loaded."""
    job = tmp_path / "job.toml"
    job.write_text('[job]\nkind = "flow"\n[geometry]\nchart = [0, 1]\nn_train = 40\nn_test = 20\n' + GAUSSIAN_KERNEL
                   + '[flow]\ndt = 1.0\nsteps = 2\n')
    code = ("import sys\n"
            "from hpcflow.geometry.hypersurface import Hypersurface\n"
            "from hpcflow.flow import kernel_flow\n"
            "from hpcflow.kernels import make_kernel\n"
            "from hpcflow.parallel import comm\n"
            "from hpcflow.cli import main\n"
            "X = Hypersurface.fermat(3)\n"
            "tr, te = X.sample(40, seed=1, chart=(0, 1)), X.sample(20, seed=2, chart=(0, 1))\n"
            "res = kernel_flow(make_kernel('gaussian', width=0.3), tr, te, dt=1.0, steps=2)\n"
            "tr.save(sys.argv[1])\n"
            "assert res.sigma_train[-1] < res.sigma_train[0]\n"
            "print(type(comm.resolve()).__name__, 'mpi4py' in sys.modules)\n"
            "assert main(['run', sys.argv[2], '--out', sys.argv[3], '--quiet']) == 0\n"
            "print('mpi4py' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(pcomm.LAUNCH_PREFIXES)}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tr.h5"), str(job), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, env=dict(env, HPCFLOW_THREADS="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert (lines[0], lines[-1]) == ("SerialComm False", "False"), r.stdout  # after the flow; after the run
    assert (tmp_path / "tr.h5").exists()
    library = json.loads((tmp_path / "out" / "summary.json").read_text())["provenance"]["mpi_library"]
    assert library.startswith("not loaded") and "mpi4py " in library, library


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_collectives_under_mpiexec(ranks):
    env = dict(os.environ, HPCFLOW_THREADS="1")
    r = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, SCRIPT], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert sorted(o["rank"] for o in outs) == list(range(ranks))
    for o in outs:
        assert o["size"] == ranks and o["mpi_loaded"]  # a launched process asks MPI, also at one rank
        assert o["mpi_library"][0].startswith(o["mpi_library"][1]), o["mpi_library"]
        assert o["sum"] == o["fsum"]  # the same bits for every rank count
        assert o["gathered_ok"] and o["any"] and not o["none"] and o["max"] == ranks - 1
        share = max(1, len(os.sched_getaffinity(0)) // ranks)  # mpiexec binds nothing: the ranks share our mask
        assert o["slurm_threads"] == min(64, share)
        assert o["mixed_threads"] == (1 if o["rank"] == 0 else min(64, share))
        arrived, waited = o["arrived"]
        assert arrived and (o["rank"] == ranks - 1 or waited >= 0.25)  # the others waited for the late rank
        if o["rank"] < ranks - 1:  # the last rank never came: the others gave up after 0.5 s, not at once
            gave_up, waited = o["gave_up"]
            assert not gave_up and 0.5 <= waited < 30


@pytest.mark.parametrize("ranks", [2, 3])
def test_one_rank_raising_ends_every_rank(ranks):
    """... and what the failing rank had printed to stdout (a batch job's log: block-buffered) is not lost."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = subprocess.run(["timeout", "60", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, "raise"],
                       capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode not in (0, 124), r.returncode  # non-zero, and not the timeout's status
    assert f"rank {ranks - 1}: ERROR RuntimeError: injected failure" in r.stderr
    assert f"rank {ranks - 1} printed before failing" in r.stdout


CLUSTERED_FLOW = """
[job]
kind = "flow"
[geometry]
n_train = 200
n_test = 50
""" + GAUSSIAN_KERNEL + """[flow]
dt = 1.0
steps = 2
loss = "ultralocal"
[clustering]
method = "batched"
n_clusters = 4
batch_size = 100
"""


TUNE = """
[tune]
sampler = "random"
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.5, high = 1.0}
"""


@pytest.mark.parametrize("command", ["run", "tune"])
def test_thread_pools_loaded_after_the_limit_follow_it(tmp_path, command):
    """SciPy's OpenBLAS and scikit-learn's OpenMP load after `limit_threads` (during sampling and Birch clustering);
    with no *_NUM_THREADS set they used to start one thread per CPU of the node in every rank (and a tune worker
    limited no pool at all). The run's provenance lists every pool loaded by its end (threadpoolctl)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(CLUSTERED_FLOW.replace('method = "batched"', 'method = "birch"').replace("batch_size = 100\n", "")
                   + TUNE)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    env.update(HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd())
    extra = ["--trials", "1"] if command == "tune" else []
    r = subprocess.run([sys.executable, "-m", "hpcflow", command, str(job), "--out", str(out), "--quiet", *extra],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = out / "trials" / "0000" / "summary.json" if command == "tune" else out / "summary.json"
    pools = json.loads(summary.read_text())["provenance"]["blas"]
    assert {p["internal_api"] for p in pools} >= {"openblas", "openmp"}  # NumPy's, SciPy's and sklearn's pools
    assert [p["num_threads"] for p in pools] == [1] * len(pools), pools
