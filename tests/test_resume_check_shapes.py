"""`hpcflow run --resume --check` of a flow checkpoint whose point data or cluster/owner have another shape or type
than the job writes: refused from h5py's metadata in the one line and exit 2 of the --resume itself, files unchanged."""

import numpy as np
import pytest

from test_resume_refusals import CLUSTERED_JOB, _copy, _edit, _finished, _refused

CHANGES = {"rows": lambda v: v[:-1], "width": lambda v: v[:, :-1], "real": lambda v: v.real.copy(),
           "column": lambda v: v[:, None], "integers": lambda v: v.astype(np.int64), "float": lambda v: v.astype(float)}


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    return _finished(tmp_path_factory.mktemp("clustered"), CLUSTERED_JOB)


@pytest.mark.parametrize("name,change,want", [
    ("train/points", "rows", "(120, 5), complex128"), ("train/points", "width", "(120, 5), complex128"),
    ("test/points", "real", "(40, 5), complex128"), ("train/weights", "column", "(120,), float64"),
    ("test/omega2", "integers", "(40,), float64"), ("cluster/owner", "rows", "(3,), int64"),
    ("cluster/owner", "float", "(3,), int64"), ("cluster/owner", "column", "(3,), int64")])
def test_a_dataset_of_the_wrong_shape_or_type_is_refused_by_check_as_by_the_resume(clustered, tmp_path, capsys, name,
                                                                                   change, want):
    job, out, ck = _copy(clustered, tmp_path)
    _edit(ck, name, CHANGES[change])
    _refused(capsys, job, out, f"{name} (shape", f"the job's: {want})", "does not match what this job samples")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    from test_checkpoint import RESUME_JOB

    return _finished(tmp_path_factory.mktemp("plain"), RESUME_JOB)


def test_points_of_the_wrong_width_without_clusters_are_refused_by_check(plain, tmp_path, capsys):
    job, out, ck = _copy(plain, tmp_path)
    _edit(ck, "train/points", CHANGES["width"])
    _refused(capsys, job, out, "train/points (shape", "does not match what this job samples")


def test_an_undamaged_checkpoint_passes_check(clustered, tmp_path):
    from hpcflow.cli import main

    job, out, _ = _copy(clustered, tmp_path)
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", "--check"]) == 0
