"""--resume of a flow checkpoint that a flow never writes: a metric that is not Hermitian positive definite, point
data that are not the rows the job samples, a history that is not floating point, a schema version or status
outside the schema, a job configuration without a table every job has. Each is refused in one line naming the entry
(exit 2, every rank), the files left as they were; what the flow writes still resumes."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from test_checkpoint import RESUME_JOB
from test_parallel import each_rank_status, rank_statuses

CLUSTERED_JOB = RESUME_JOB + """
[clustering]
method = "batched"
n_clusters = 3
batch_size = 60
seed = 0
halo_cutoff = 0.3
"""


def _finished(base, text):
    """(job, out) of the job `text` run to its end at one rank in base/out."""
    from hpcflow.cli import main

    base.mkdir(parents=True, exist_ok=True)
    job, out = base / "job.toml", base / "out"
    job.write_text(text)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    return job, out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return _finished(tmp_path_factory.mktemp("plain"), RESUME_JOB)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    return _finished(tmp_path_factory.mktemp("clustered"), CLUSTERED_JOB)


def _copy(run, tmp_path):
    """(job, out, out/checkpoint.h5) of a copy of the finished `run` in tmp_path."""
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    return run[0], out, out / "checkpoint.h5"


def _edit(ck, name, change):
    """Dataset `name` of checkpoint `ck` rewritten as change(values) (None: deleted); its dtype may change."""
    with h5py.File(ck, "r+") as f:
        values = f[name][()]
        del f[name]
        new = change(values)
        if new is not None:
            f[name] = new


def _set(index, value):
    def change(values):
        values[index] = value
        return values
    return change


def _refused(capsys, job, out, *needles, check=True):
    """--resume (and --resume --check when `check`) of `out` exit 2 with one line holding every needle and --force;
    nothing in `out` changes."""
    from hpcflow.cli import main

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in ([["--check"]] if check else []) + [[]]:
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(n in err for n in (str(out / "checkpoint.h5"), *needles)), err
        assert "--force" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _at_ranks(tmp_path, ranks, job, out, steps=5):
    """(statuses of each rank, stderr) of `hpcflow run JOB --out OUT --resume --set flow.steps=STEPS` at `ranks`."""
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
    cmd = each_rank_status(tmp_path / "statuses", ranks, [sys.executable, "-m", "hpcflow", "run", str(job), "--out",
                                                          str(out), "--resume", "--set", f"flow.steps={steps}"])
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=env)
    return rank_statuses(tmp_path / "statuses", ranks), r.stderr


# ---- metrics ------------------------------------------------------------------------------------------------------
#: (dataset, row, metric put there, what the refusal says): -I has leading principal minors -1, 1, -1; diag(1, 1, 0)
#: is singular (its last minor 0); the others are Hermitian positive definite but for one entry
NOT_METRICS = [("train/g", 2, -np.eye(3), "train/g at row 2 is not positive definite (leading principal minors -1, 1, "
                                          "-1)"),
               ("test/g", 39, np.diag([1.0, 1.0, 0.0]), "test/g at row 39 is not positive definite (leading principal "
                                                         "minors 1, 1, 0)"),
               ("train/g", 5, np.array([[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]]), "train/g at row 5 is not Hermitian"),
               ("train/g", 0, np.diag([1.0, 1.0 + 1e-3j, 1.0]), "train/g at row 0 is not Hermitian")]


@pytest.mark.parametrize("name,row,g,said", NOT_METRICS, ids=[s.split(" is ")[1][:20] for *_, s in NOT_METRICS])
def test_a_metric_that_is_not_hermitian_positive_definite_is_refused(finished, tmp_path, capsys, name, row, g, said):
    """A metric the flow never holds (it rejects a step that leaves one not positive definite, and holds g as its
    packed Hermitian components): --resume continued from it (σ_train jumped 1e-5 -> 1.85 for -I); now refused."""
    job, out, ck = _copy(finished, tmp_path)
    _edit(ck, name, _set(row, g))
    _refused(capsys, job, out, said, "the checkpoint is damaged")


def test_a_metric_at_the_edge_that_the_flow_accepts_is_not_refused(finished, tmp_path, capsys):
    """diag(1, 1, 1e-300) and a Hermitian matrix with complex entries are positive definite (leading minors > 0):
    they pass, as the flow's own step test passes them; a metric the flow wrote is never refused."""
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    h = np.array([[2, 1 + 1j, 0.5j], [1 - 1j, 3, 0.25], [-0.5j, 0.25, 1]])  # minors 2, 4, 3.375
    _edit(ck, "train/g", _set(0, np.diag([1.0, 1.0, 1e-300])))
    _edit(ck, "test/g", _set(-1, h))
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--check"]) == 0, \
        capsys.readouterr().err


@pytest.mark.parametrize("ranks", [2])
def test_every_rank_refuses_a_metric_only_the_last_rank_reads(finished, tmp_path, ranks):
    """The last train row is in the last rank's share of the rows alone: every rank exits 2, one line."""
    job, out, ck = _copy(finished, tmp_path)
    _edit(ck, "train/g", _set(-1, -np.eye(3)))
    before = ck.read_bytes()
    statuses, err = _at_ranks(tmp_path, ranks, job, out)
    assert statuses == [2] * ranks, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "train/g at row 119 is not positive definite" in lines[0], err
    assert "arguments" not in lines[0], err  # a refusal of the file, not of a rank's arguments
    assert ck.read_bytes() == before


# ---- point data ---------------------------------------------------------------------------------------------------
def _ulp(values):
    values[-1] = np.nextafter(values[-1], np.inf)  # one unit in the last place: not the sampler's bits
    return values


def _relative(rtol):
    def change(values):
        values[-1] *= 1 + rtol
        return values
    return change


#: (dataset, change, what the refusal says)
OTHER_POINTS = [("train/points", _set((0, 0), 5), "train/points at row 0 (by "),
                ("train/weights", _relative(1e-3), "train/weights at row 119 (by "),  # (< 0: a damaged file)
                ("test/omega2", _relative(1e-6), "test/omega2 at row 39 (by "),
                ("test/points", lambda v: v[:10], "test/points (shape (10, 5), type complex128; the job's: (40, 5), "
                                                  "complex128) does not match"),
                ("train/omega2", lambda v: None, "dataset train/omega2 is missing")]


@pytest.mark.parametrize("name,change,said", OTHER_POINTS, ids=[s[:24] for *_, s in OTHER_POINTS])
def test_point_data_that_the_job_does_not_sample_are_refused(finished, tmp_path, capsys, name, change, said):
    """The resume samples the points again and reads only the metrics from the checkpoint: point data that differ
    (metrics of other points) were overwritten and the flow went on; now refused, the fix named."""
    job, out, ck = _copy(finished, tmp_path)
    _edit(ck, name, change)
    fix = "resume with the hpcflow that wrote it" if "missing" not in said else "the checkpoint is incomplete"
    # (--check samples nothing: it cannot compare them, but refuses a missing one, from the file's metadata)
    _refused(capsys, job, out, said, fix, check="missing" in said)


def test_cluster_labels_missing_are_refused(clustered, tmp_path, capsys):
    job, out, ck = _copy(clustered, tmp_path)
    _edit(ck, "cluster/labels", lambda v: None)
    _refused(capsys, job, out, "dataset cluster/labels is missing")


@pytest.mark.parametrize("name, change", [("train/points", _relative(2 ** -52)), ("test/omega2", _ulp),
                                          ("train/weights", _relative(1e-12))])
def test_point_data_equal_to_rounding_resume(clustered, tmp_path, capsys, name, change):
    """A requeued job may resume on another node, whose libm/SIMD kernels give the sampler's points, weights and
    |Omega|^2 other last bits: such a checkpoint resumes (the metrics belong to the points), and the point data are
    rewritten as the job samples them. Compared bit for bit, a one-ulp difference was refused. (The clusters are the
    checkpoint's own: tests/test_resume_stored_labels.py.)"""
    from hpcflow.cli import main

    job, out, ck = _copy(clustered, tmp_path)
    with h5py.File(ck) as f:
        sampled = f[name][()]
    _edit(ck, name, change)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=6"]) == 0, \
        capsys.readouterr().err
    with h5py.File(ck) as f:
        assert f.attrs["step"] == 6
        np.testing.assert_array_equal(f[name][()], sampled)


@pytest.mark.parametrize("ranks", [2])
def test_a_checkpoint_of_one_rank_resumes_at_two_and_other_rows_are_refused_by_both(finished, clustered, tmp_path,
                                                                                    ranks):
    """The sampler's rows are the same bits at every R (and the cluster owners, which depend on R, are not
    compared): a one-rank checkpoint resumes at two ranks, exact and clustered. A row held by one rank alone (the
    last train point, of the last rank's share or, clustered, of the cluster one rank owns) is refused by every rank
    in one line."""
    for run, name, row in ((finished, "train/points", (-1, -1)), (clustered, "train/weights", -1)):
        where = tmp_path / ("clustered" if run is clustered else "plain")
        job, out, ck = _copy(run, where)
        statuses, err = _at_ranks(where, ranks, job, out)
        assert statuses == [0] * ranks, err
        with h5py.File(ck) as f:
            assert f.attrs["step"] == 5 and f.attrs["ranks"] == ranks
            value = f[name][row]
        _edit(ck, name, _set(row, 2 * value + 1))
        before = ck.read_bytes()
        statuses, err = _at_ranks(where, ranks, job, out, steps=6)
        assert statuses == [2] * ranks, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"{name} at row 119 (by " in lines[0] and "does not match" in lines[0], err
        assert ck.read_bytes() == before


# ---- histories, version, status, job ------------------------------------------------------------------------------
def _as_bytes(values):
    return np.array([repr(float(x)).encode() for x in values])


#: (dataset or @attribute, new value or change, what the refusal says)
BAD_ENTRIES = [("history/dt", _as_bytes, "dataset history/dt has type |S"),
               ("history/sigma_train", lambda v: v.astype("S24"), "dataset history/sigma_train has type |S24, not "
                                                                    "floating point"),
               ("history/sigma_train", lambda v: np.round(v * 1e6).astype(np.int64), "history/sigma_train has type "
                                                                                      "int64"),
               ("history/rejections", lambda v: v.astype(np.int64), "history/rejections has type int64"),
               ("history/step_seconds", lambda v: v.astype(np.int64), "history/step_seconds has shape"),
               ("history/comm_bytes", lambda v: "x", "history/comm_bytes has shape () and type |S1"),
               ("@schema_version", 99, "attribute schema_version = 99 is not one this hpcflow"),
               ("@status", "banana", "attribute status = 'banana' is not one of running, preempted, finished")]


@pytest.mark.parametrize("name,change,said", BAD_ENTRIES, ids=[f"{n} {s[-12:]}" for n, _, s in BAD_ENTRIES])
def test_histories_that_are_not_floating_point_and_unknown_versions_or_statuses_are_refused(finished, tmp_path,
                                                                                           capsys, name, change, said):
    """b'6.5' reads as the number 6.5 and int64 σ as numbers: they were resumed (a per-rank history of one string
    stopped the run with a traceback); a later schema version and a status outside the schema too."""
    job, out, ck = _copy(finished, tmp_path)
    if name.startswith("@"):
        with h5py.File(ck, "r+") as f:
            f.attrs[name[1:]] = change
    else:
        _edit(ck, name, change)
    _refused(capsys, job, out, said)


@pytest.mark.parametrize("drop,said", [(("kernel",), "lacks [kernel], which"), (("kernel", "name"), "lacks "
                                                                                                      "[kernel].name")])
def test_a_job_configuration_without_a_required_table_or_key_is_damaged(finished, tmp_path, capsys, drop, said):
    """A config without [kernel] made --resume advise --set kernel.name=none (and every other kernel key), which
    then failed: it is a damaged checkpoint, not another job."""
    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        cfg = json.loads(f.attrs["config"])
        if len(drop) == 1:
            del cfg[drop[0]]
        else:
            del cfg[drop[0]][drop[1]]
        f.attrs["config"] = json.dumps(cfg)
    _refused(capsys, job, out, f"attribute 'config' {said}", "the checkpoint is damaged")
