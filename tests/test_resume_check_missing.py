"""`hpcflow run --resume --check` of a flow checkpoint that lacks a dataset the run writes (the point data, a
clustered job's cluster/labels and cluster/owner, the metrics) or holds cluster/labels of the wrong shape or type:
refused in the one line and exit 2 of the --resume itself, before any work, the files left as they were."""

import h5py
import numpy as np
import pytest

from test_resume_refusals import CLUSTERED_JOB, _copy, _edit, _finished, _refused


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    return _finished(tmp_path_factory.mktemp("clustered"), CLUSTERED_JOB)


@pytest.mark.parametrize("name", ["train/points", "train/weights", "test/omega2", "cluster/owner", "cluster/labels",
                                  "train/g"])
def test_a_missing_dataset_is_refused_by_check_as_by_the_resume(clustered, tmp_path, capsys, name):
    job, out, ck = _copy(clustered, tmp_path)
    _edit(ck, name, lambda values: None)
    _refused(capsys, job, out, f"{name} is missing", "incomplete")


@pytest.mark.parametrize("change", [lambda v: v[:-1], lambda v: v.astype(np.float64)], ids=["short", "float"])
def test_labels_of_the_wrong_shape_or_type_are_refused_by_check(clustered, tmp_path, capsys, change):
    job, out, ck = _copy(clustered, tmp_path)
    _edit(ck, "cluster/labels", change)
    _refused(capsys, job, out, "cluster/labels has shape", "integers")


def test_labels_out_of_range_are_refused_by_the_resume_alone(clustered, tmp_path, capsys):
    """Their values are read by the run (before sampling), not by --check: --check accepts them, nothing written."""
    from hpcflow.cli import main

    job, out, ck = _copy(clustered, tmp_path)
    with h5py.File(ck, "r+") as f:
        f["cluster/labels"][0] = 7
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", "--check"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    _refused(capsys, job, out, "cluster/labels holds the cluster 7", check=False)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    from test_checkpoint import RESUME_JOB

    return _finished(tmp_path_factory.mktemp("plain"), RESUME_JOB)


@pytest.mark.parametrize("name", ["train/points", "test/weights"])
def test_a_missing_dataset_of_a_job_without_clusters_is_refused_by_check(plain, tmp_path, capsys, name):
    job, out, ck = _copy(plain, tmp_path)
    _edit(ck, name, lambda values: None)
    _refused(capsys, job, out, f"{name} is missing", "incomplete")
