"""Flow jobs divided over 1, 2 and 3 ranks: the same histories, the work split (not repeated), halo traffic as
planned; exact mode against a dense kernel built entry by entry; a failing rank ends the job."""

import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.cluster import flow_blocks
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import pack
from hpcflow.kernels.gaussian import POLY_RTOL
from jobtexts import GAUSSIAN_KERNEL, flow_points
from reference import fd_loss_gradient
from roundoff import U, assert_product_close, gaussian_entry_error
from test_parallel import each_rank_status, mpiexec, rank_statuses

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "flow_checks.py")
SEQUENCE = os.path.join(os.path.dirname(__file__), "mpi", "cli_sequence.py")
N_TRAIN, N_TEST, STEPS, SEED = 240, 90, 3, 3
JOB = "\n" + flow_points(N_TRAIN, N_TEST, SEED) + GAUSSIAN_KERNEL + f"""[flow]
dt = 1.0
steps = {STEPS}
loss = "ultralocal"
tile = 16
"""
CLUSTERING = """
[clustering]
method = "batched"
n_clusters = 12
batch_size = 80
halo_cutoff = 0.3
"""
ENV = dict(os.environ, HPCFLOW_THREADS="1")


def _run_jobs(tmp_path, ranks, modes=("clustered", "exact")):
    """The job of each mode on `ranks` ranks, in one launch (tests/mpi/cli_sequence.py: one start-up of the ranks);
    {(mode, ranks): (summary, datasets)}, each run checked for what it wrote."""
    args = []
    for mode in modes:
        job = tmp_path / f"{mode}.toml"
        job.write_text(JOB + (CLUSTERING if mode == "clustered" else ""))
        args += ["--next", "run", str(job), "--out", str(tmp_path / f"{mode}{ranks}")]
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, SEQUENCE, *args[1:]]
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=ENV)
    assert r.returncode == 0, r.stderr
    said = re.split(r"cli_sequence: command \d+ status 0\n", r.stdout)
    assert len(said) == len(modes) + 1 and not said[-1], r.stdout  # every command ran, and ended with 0
    runs = {}
    for mode, text in zip(modes, said):
        out = tmp_path / f"{mode}{ranks}"
        assert text.count("hpcflow run: wrote") == 1  # only rank 0 prints
        assert sorted(os.listdir(out)) == ["checkpoint.h5", "job.toml", "summary.json"]
        summary = json.loads((out / "summary.json").read_text())
        with h5py.File(out / "checkpoint.h5") as f:
            data = {k: f[k][()] for k in ("history/sigma_train", "history/sigma_test", "train/g", "test/g")}
            if "cluster/labels" in f:
                data.update({k: f[k][()] for k in ("cluster/labels", "cluster/owner")})
            assert f.attrs["step"] == summary["checkpoint_step"] == STEPS
            assert f["history/step_seconds"].shape == (STEPS, ranks)
        runs[mode, ranks] = summary, data
    return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mpi_jobs")
    return {key: run for ranks in (1, 2, 3) for key, run in _run_jobs(tmp, ranks).items()}


def _halo_expected(labels, owner, ranks):
    """Rows rank r needs from others: the sources of its blocks' train and test rows that are not its own train
    rows (from the blocks rebuilt here in one process and the cluster labels and owner map of the checkpoint)."""
    X = Hypersurface.fermat(3)
    train = X.sample(N_TRAIN, seed=SEED, chart=(0, 1))
    test = X.sample(N_TEST, seed=SEED + 1, chart=(0, 1))
    blocks = flow_blocks(train.points, test.points, method="batched", n_clusters=12, batch_size=80, seed=0,
                         halo_cutoff=0.3)
    own, halo = [], []
    assert all(np.all(labels[b.train_idx] == labels[b.train_idx[0]]) for b in blocks)  # the same clusters
    for r in range(ranks):
        mine = [b for b in blocks if owner[labels[b.train_idx[0]]] == r]
        rows = np.concatenate([b.train_idx for b in mine]) if mine else np.zeros(0, dtype=int)
        src = np.unique(np.concatenate([s for b in mine for s in (b.source_idx, b.test_source_idx)])) if mine \
            else np.zeros(0, dtype=int)
        own.append(rows.size)
        halo.append(np.setdiff1d(src, rows).size)
    return own, halo


@pytest.mark.parametrize("mode", ["clustered", "exact"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_divided_flow_equals_one_rank_and_splits_the_work(runs, mode, ranks):
    (one, d1), (many, dr) = runs[(mode, 1)], runs[(mode, ranks)]
    assert one["status"] == many["status"] == "finished" and many["ranks"] == ranks and one["rejected_steps"] == 0
    for key in ("history/sigma_train", "history/sigma_test", "train/g", "test/g"):
        np.testing.assert_allclose(dr[key], d1[key], rtol=1e-10, atol=0)
    assert one["sigma_train_final"] < 0.8 * one["sigma_train_initial"]  # the flow does something
    pr1, pr = one["per_rank"], many["per_rank"]
    assert [p["rank"] for p in pr] == list(range(ranks))
    total = pr1[0]["kernel_entries"]
    entries = [p["kernel_entries"] for p in pr]
    assert sum(entries) == total and max(entries) <= 1.25 * total / ranks  # divided, not repeated
    assert sum(p["points"] for p in pr) == N_TRAIN and sum(p["test_points"] for p in pr) == N_TEST
    if mode == "clustered":
        np.testing.assert_array_equal(dr["cluster/labels"], d1["cluster/labels"])
        own, halo = _halo_expected(dr["cluster/labels"], dr["cluster/owner"], ranks)
        assert [p["points"] for p in pr] == own and [p["halo_rows"] for p in pr] == halo
        assert [p["clusters"] for p in pr] == [int(np.sum(dr["cluster/owner"] == r)) for r in range(ranks)]
        # halo points once (5 complex = 10 doubles) and 9 gradient components every step
        assert [p["comm_bytes"] for p in pr] == [h * 8 * (10 + 9 * STEPS) for h in halo]
    else:
        # all train points once, all train gradients every step (Allgatherv), and the partial sums of the
        # symmetric tile pairs for this rank's rows from every other rank (9 components + the row-sum column)
        for p in pr:
            others = N_TRAIN - p["points"]
            assert p["halo_rows"] == others
            assert p["comm_bytes"] == 8 * (10 * others + STEPS * (9 * others + 10 * (ranks - 1) * p["points"]))


def _fs_distance_entrywise(a, b):
    """FS distance by the wedge form, one pair at a time: atan2(|a ^ b|, |<a, b>|) (Lagrange's identity)."""
    d = np.empty((len(a), len(b)))
    for i, z in enumerate(a):
        for j, w in enumerate(b):
            dot = abs(np.vdot(z, w))
            wedge = sum(abs(z[k] * w[m] - z[m] * w[k]) ** 2 for k in range(len(z)) for m in range(k + 1, len(z)))
            d[i, j] = np.arctan2(np.sqrt(wedge), dot)
    return d


# 1 rank, and 3 (a first, a middle and a last rank; the tile pairs spread unevenly): 2 ranks have a first and a
# last alone, as do the 2-rank runs of test_divided_flow_equals_one_rank_and_splits_the_work[2-exact]
@pytest.mark.parametrize("ranks", [1, 3])
def test_exact_mode_step_equals_dense_kernel_times_gradient(tmp_path, ranks):
    """One exact-mode step on R ranks against K (entry by entry, eq. 3.6) times the finite-difference gradient
    of the total loss; the bound carries the kernel's rounding and the gradient's error through the product."""
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, "dense", str(tmp_path)]
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=ENV)
    assert r.returncode == 0, r.stderr
    X = Hypersurface.fermat(3)
    train, test = X.sample(61, seed=41, chart=(0, 1)), X.sample(23, seed=42, chart=(0, 1))
    v = pack(train.g_fs)
    grad, grad_err = fd_loss_gradient(v, train.omega2, train.weights, np.arange(len(train)), loss="sigma",
                                      weighted=True)
    entries = np.load(tmp_path / "dense_entries.npy")
    n_tr, n_te = len(train), len(test)
    tiles = np.diff(np.append(np.arange(0, n_tr, 8), n_tr))
    assert entries.sum() == (n_tr * n_tr + np.sum(tiles ** 2)) // 2 + n_te * n_tr  # each symmetric tile once
    assert entries.max() <= 1.25 * entries.sum() / ranks
    for pts, name in ((train, "train"), (test, "test")):
        v0, v1 = pack(pts.g_fs), np.load(tmp_path / f"dense_{name}.npy")
        d = _fs_distance_entrywise(pts.points, train.points)
        k = np.exp(-d / (2 * 0.3))
        err = gaussian_entry_error(d, 0.3, poly_rtol=POLY_RTOL)
        extra = np.abs(k) @ grad_err + 4 * U * (np.abs(v0) + np.abs(v1)) / 0.05
        assert_product_close((v0 - v1) / 0.05, k, grad, a_err=err, extra=extra, what=f"{name} update")


@pytest.mark.parametrize("ranks", [3])  # the last rank raises: rank 0 and a middle rank are ended (2 ranks: rank 0)
def test_rank_raising_inside_the_flow_ends_every_rank(tmp_path, ranks):
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, "raise", str(tmp_path)]
    r = subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90, env=ENV)
    assert r.returncode not in (0, 124), r.returncode  # non-zero, and not the timeout's status
    assert f"rank {ranks - 1}: ERROR RuntimeError: injected kernel failure" in r.stderr


@pytest.mark.parametrize("name", ["HPCFLOW_THREADS", "SLURM_CPUS_PER_TASK"])
def test_a_bad_environment_variable_on_one_rank_is_refused_once_by_every_rank(tmp_path, name):
    """HPCFLOW_THREADS=0 (or SLURM_CPUS_PER_TASK=0, which was read as "not set") on rank 2 only (a node with another
    environment): one line, exit 2, nothing written. HPCFLOW_THREADS used to be read before the ranks' common checks:
    an error per bad rank, MPI_Abort, exit 9."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    args = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out)]
    cmd = [mpiexec(), "-n", "2", *args, ":", "-n", "1", "-env", name, "0", *args]
    r = subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90, env=ENV)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hpcflow run: error: {name}='0'"), r.stderr
    assert not out.exists()


def test_a_collective_numerical_stop_is_said_once(tmp_path):
    """dt = 1e9 with no halving leaves no positive-definite step: exit 3, and the stop said once, not once per rank
    and not twice (the CLI's "stopped:" line holds the reason; the library's own warning is not shown beside it)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    cmd = [mpiexec(), "-n", "3", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--set",
           "flow.dt=1e9", "--set", "flow.max_halvings=0"]
    r = subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90, env=ENV)
    assert r.returncode == 3, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert said.count("hpcflow run: stopped: step 1: no dt >= 1e+09 keeps all metrics positive definite") == 1, said
    assert said.count("no dt >=") == 1 and "flow stopped:" not in said, said


def test_run_extended_by_resume_at_another_rank_count(runs, tmp_path):
    """Two steps on 2 ranks, then --resume on 3 ranks up to step 3: the 3-step run of one rank to 1e-10."""
    job = tmp_path / "job.toml"
    job.write_text(JOB + CLUSTERING)
    out = tmp_path / "ext"
    for ranks, extra in ((2, ["--set", f"flow.steps={STEPS - 1}"]), (3, ["--resume"])):
        cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out),
               *extra]
        r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=ENV)
        assert r.returncode == 0, r.stderr
    one, d1 = runs[("clustered", 1)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint_step"] == STEPS and summary["ranks"] == 3 and summary["status"] == "finished"
    for key in ("sigma_train_final", "sigma_test_final", "gain_train", "gain_test"):
        assert summary[key] == pytest.approx(one[key], rel=1e-10, abs=0)
    with h5py.File(out / "checkpoint.h5") as f:
        for key in ("history/sigma_train", "history/sigma_test", "train/g", "test/g"):
            np.testing.assert_allclose(f[key][()], d1[key], rtol=1e-10, atol=0)
        assert f["history/step_seconds"].shape == (STEPS, 3)


def test_ranks_without_clusters_take_part_in_every_collective(tmp_path):
    """2 clusters on 3 ranks: the third owns no rows; the flow still ends, equal to the single-rank flow."""
    cmd = [mpiexec(), "-n", "3", sys.executable, SCRIPT, "idle", str(tmp_path)]
    r = subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90, env=ENV)
    assert r.returncode == 0, r.stderr
    lines = sorted(line for line in r.stdout.splitlines() if line.startswith("idle ok"))
    assert len(lines) == 3 and "rank 2: 0 rows, 0 halo rows" in lines[2]
    assert all(" 0 rows" not in line and " 0 halo rows" not in line for line in lines[:2])


def test_sigterm_then_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    """SIGTERM on one rank during step 3: checkpoint of step 3, exit 4 on every rank; --resume at the same R
    gives every dataset and summary number of the uninterrupted run, bit for bit."""
    job = tmp_path / "job.toml"
    job.write_text((JOB + CLUSTERING).replace(f"steps = {STEPS}", "steps = 6"))
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    # the resume, then the uninterrupted run, in one launch (cli_sequence.py: one start-up of the ranks); the
    # uninterrupted run starts from its own job and seed, so nothing the resume leaves in the process enters it
    launches = [([SCRIPT, "preempt", str(cut), str(job)], 4),
                ([SEQUENCE, "run", str(job), "--out", str(cut), "--resume", "--next", "run", str(job), "--out",
                  str(whole)], 0)]
    for k, (args, status) in enumerate(launches):
        cmd = [mpiexec(), "-n", "2", sys.executable, *args]
        if k == 0:  # the signalled run: every rank's own status, not mpiexec's (the ranks' ORed: 4 | 0 reads 4)
            cmd = each_rank_status(tmp_path / "statuses", 2, [sys.executable, *args])
        r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=ENV)
        assert r.returncode == status, r.stderr
        if k == 1:  # both commands ran, and ended with 0
            assert re.findall(r"cli_sequence: command \d+ status \d+", r.stdout) == [
                "cli_sequence: command 0 status 0", "cli_sequence: command 1 status 0"], r.stdout
        if k == 0:
            assert rank_statuses(tmp_path / "statuses", 2) == [4, 4]
            with h5py.File(cut / "checkpoint.h5") as f:
                assert f.attrs["step"] == 3 and f.attrs["status"] == "preempted"
            assert not (cut / "summary.json").exists()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (cut, whole))
    for key in ("sigma_train_final", "sigma_test_final", "gain_train", "gain_test", "steps_taken", "test_held",
                "rejected_steps", "checkpoint_step", "status"):
        assert a[key] == b[key], key
    with h5py.File(cut / "checkpoint.h5") as f, h5py.File(whole / "checkpoint.h5") as g:
        for key in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g", "train/points",
                    "cluster/labels", "cluster/owner"):
            np.testing.assert_array_equal(f[key][()], g[key][()], err_msg=key)
        assert f["history/step_seconds"].shape == g["history/step_seconds"].shape == (6, 2)
