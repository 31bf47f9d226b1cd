"""--resume of a clustered flow takes the clusters from the checkpoint's cluster/labels instead of clustering the
points again: the clustering is not run, the resumed run equals the uninterrupted one bit for bit (1 and 2 ranks),
and labels no clustering gives (a damaged checkpoint) are refused in one line, exit 2, nothing rewritten."""

import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from test_mpi import ENV, SEQUENCE
from test_parallel import mpiexec
from test_resume_refusals import CLUSTERED_JOB, _copy, _edit, _finished, _refused

#: datasets a resumed run and the uninterrupted run hold alike, bit for bit
SAME = ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g", "train/points",
        "cluster/labels", "cluster/owner")


def _datasets(out) -> dict:
    with h5py.File(out / "checkpoint.h5") as f:
        return {k: f[k][()] for k in SAME} | {"step": int(f.attrs["step"])}


def _assert_same(a, b):
    da, db = _datasets(a), _datasets(b)
    assert da["step"] == db["step"] == 6
    for key in SAME:
        np.testing.assert_array_equal(da[key], db[key], err_msg=key)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("sigma_train_final", "sigma_test_final", "gain_train", "gain_test", "steps_taken", "status"):
        assert sa[key] == sb[key], key
    return sa, sb


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
    """(job, out) of the clustered job run to its step 3 at one rank."""
    return _finished(tmp_path_factory.mktemp("three"), CLUSTERED_JOB)  # ([flow].steps = 3)


def test_a_resume_does_not_cluster_and_equals_the_uninterrupted_run(three_steps, tmp_path, monkeypatch, capsys):
    """One rank, in process: the resume to step 6 never calls the clustering (spied on), records so in summary.json
    (clustering_from_checkpoint, no batches clustered), and holds what the 6-step run holds, bit for bit."""
    import hpcflow.cluster.distributed as distributed
    from hpcflow.cli import main

    calls = []
    real = distributed._labels

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(distributed, "_labels", spy)
    job, out, _ = _copy(three_steps, tmp_path / "cut")
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=6"]) == 0, \
        capsys.readouterr().err
    assert calls == []  # the clusters came from the checkpoint
    whole = tmp_path / "whole"
    assert main(["run", str(job), "--out", str(whole), "--quiet", "--set", "flow.steps=6"]) == 0, \
        capsys.readouterr().err
    assert calls == [1]  # a run that is not resumed clusters its points
    resumed, uninterrupted = _assert_same(out, whole)
    assert [(p["clustering_from_checkpoint"], p["clustering_batches"]) for p in resumed["per_rank"]] == [(True, 0)]
    assert uninterrupted["per_rank"][0]["clustering_from_checkpoint"] is False
    assert uninterrupted["per_rank"][0]["clustering_batches"] == 2  # 120 train points in batches of 60


def test_a_resume_flows_the_stored_clusters(three_steps, tmp_path, capsys):
    """A train point moved to another of the 3 clusters in the checkpoint (a clustering another node could give):
    the resume flows that point in the stored cluster and writes the labels back as stored (it clustered again and
    overwrote them with its own)."""
    from hpcflow.cli import main

    job, out, ck = _copy(three_steps, tmp_path)
    with h5py.File(ck) as f:
        labels = f["cluster/labels"][()]
    labels[0] = (labels[0] + 1) % 3
    _edit(ck, "cluster/labels", lambda v: labels)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=4"]) == 0, \
        capsys.readouterr().err
    with h5py.File(ck) as f:
        assert f.attrs["step"] == 4
        np.testing.assert_array_equal(f["cluster/labels"][()], labels)


def _float_labels(v):
    return v.astype(np.float64)


def _out_of_range(v):
    v[7] = 3  # the job's n_clusters is 3: clusters 0..2
    return v


def _negative(v):
    v[7] = -1
    return v


def _empty_cluster(v):
    v[v == 2] = 1  # cluster 2 left without a train point
    return v


#: (change of cluster/labels, what the one-line refusal says)
DAMAGED = [(_float_labels, "dataset cluster/labels has shape (120,) and type float64, not (120,) integers"),
           (lambda v: v[:100], "dataset cluster/labels has shape (100,) and type int64, not (120,) integers"),
           (_out_of_range, "dataset cluster/labels holds the cluster 3, outside 0..2"),
           (_negative, "dataset cluster/labels holds the cluster -1, outside 0..2"),
           (_empty_cluster, "dataset cluster/labels gives cluster 2 no train point")]


@pytest.mark.parametrize("change,said", DAMAGED, ids=["float", "short", "range", "negative", "empty"])
def test_damaged_labels_are_refused(three_steps, tmp_path, capsys, change, said):
    """Labels no clustering of the job gives: a cluster out of 0..n_clusters-1 or one left empty (resumed before,
    flowing blocks the run never had), not integers or not one per train point: refused in one line, exit 2."""
    job, out, ck = _copy(three_steps, tmp_path)
    _edit(ck, "cluster/labels", change)
    _refused(capsys, job, out, said, "the checkpoint is damaged", check=False)


def test_two_ranks_resume_from_the_stored_clusters_bit_for_bit(tmp_path):
    """Two ranks: 3 steps, --resume to 6, and the uninterrupted 6-step run, in one launch: the resume clusters
    nothing on either rank and holds every dataset and summary number of the uninterrupted run, bit for bit."""
    job = tmp_path / "job.toml"
    job.write_text(CLUSTERED_JOB.replace("steps = 3", "steps = 6"))
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    args = ["run", str(job), "--out", str(cut), "--quiet", "--set", "flow.steps=3", "--next",
            "run", str(job), "--out", str(cut), "--quiet", "--resume", "--next",
            "run", str(job), "--out", str(whole), "--quiet"]
    cmd = [mpiexec(), "-n", "2", sys.executable, SEQUENCE, *args]
    r = subprocess.run(["timeout", "150", *cmd], capture_output=True, text=True, timeout=180, env=ENV)
    assert r.returncode == 0, r.stderr
    assert re.findall(r"cli_sequence: command \d+ status \d+", r.stdout) == [
        f"cli_sequence: command {k} status 0" for k in range(3)], r.stdout
    resumed, uninterrupted = _assert_same(cut, whole)
    assert resumed["ranks"] == 2
    assert [(p["clustering_from_checkpoint"], p["clustering_batches"]) for p in resumed["per_rank"]] == [(True, 0)] * 2
    assert [p["clustering_from_checkpoint"] for p in uninterrupted["per_rank"]] == [False] * 2


def _missing(v):
    return None  # cluster/labels deleted


@pytest.mark.parametrize("change,said", [(_missing, "dataset cluster/labels is missing"),
                                         (lambda v: np.where(np.arange(len(v)) == 7, 7, v),
                                          "dataset cluster/labels holds the cluster 7, outside 0..2")],
                         ids=["missing", "range"])
def test_damaged_labels_are_refused_in_one_line_at_two_ranks(three_steps, tmp_path, change, said):
    """Two ranks: cluster/labels missing, or a cluster 7 of the job's 3: every rank exits 2 and the world hears one
    line, `hpcflow run: error: ...` naming the dataset, as for every other refusal of the checkpoint (not a line per
    rank); the checkpoint's bytes stay as they were."""
    from test_resume_refusals import _at_ranks

    job, out, ck = _copy(three_steps, tmp_path)
    _edit(ck, "cluster/labels", change)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    statuses, err = _at_ranks(tmp_path, 2, job, out)
    assert statuses == [2, 2], err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcflow run: error: "), err
    assert said in lines[0] and str(ck) in lines[0] and "--force" in lines[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
