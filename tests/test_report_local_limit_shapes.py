"""A local_limit run whose local_limit.h5 holds a history of the wrong shape (a width's sigma_test replaced by a 2x2
array, cut to fewer values than the steps its table says were taken, or gone) was listed as "finished" with its
gains: no figure reads the file, and only its gains were checked. Its histories are checked against its table
(docs/outputs.md: width_i/sigma_* hold table/steps_taken + 1 values, one per width), and a damaged file's row says so
with '-' gains, as a file cut short does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from analysis_runs import JOBS, ROOT, env, forced


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """A small local_limit run (2 widths, 3 steps)."""
    base = tmp_path_factory.mktemp("local_limit")
    job = base / "job.toml"
    job.write_text(JOBS["local_limit"][1], encoding="utf-8")
    out = base / "ll"
    subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out)], cwd=ROOT, env=env(),
                   check=True, capture_output=True, timeout=300)
    return out


def _altered(whole, tmp_path, change) -> str:
    import h5py

    d = shutil.copytree(whole, tmp_path / "ll")
    with h5py.File(os.path.join(d, "local_limit.h5"), "a") as f:
        change(f)
    return str(d)


def _replace(name, value):
    def change(f):
        del f[name]
        if value is not None:
            f[name] = value
    return change


def _row(path):
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    return detect(path), row(detect(path))


@pytest.mark.parametrize("name, value, says", [
    ("width_0/sigma_test", np.zeros((2, 2)), "dataset 'width_0/sigma_test' has shape (2, 2), not 1-dimensional"),
    ("width_1/sigma_train", np.full(2, 0.5),
     "dataset 'width_1/sigma_train' holds 2 values, but table/steps_taken gives 3 steps at row 1, so 4 values "
     "(step 0 and each step)"),
    ("width_1/sigma_test", None, "no dataset 'width_1/sigma_test'"),
    ("table/steps_taken", np.array([3, 3, 3]), "datasets of one table have different lengths"),
])
def test_a_local_limit_file_whose_histories_do_not_fit_its_table_is_damaged_with_no_gains(whole, tmp_path, name,
                                                                                          value, says):
    info, row = _row(str(whole))
    assert row[2] == "finished" and row[8].startswith("w=1: ") and row[9].startswith("w=1: "), row
    d = _altered(whole, tmp_path, _replace(name, value))
    info, row = _row(d)
    assert not info.complete and info.damaged, info
    assert row[2].startswith(f"incomplete: local_limit.h5 damaged: {says}"), row[2]
    assert row[2].endswith(f"; {forced(d)}"), row[2]
    assert row[8:10] == ["-", "-"], row  # gain train, gain test


def test_a_history_of_the_steps_its_table_says_is_whole(whole, tmp_path):
    """A width whose flow stopped early: its histories hold steps_taken + 1 values, and its row is no damage."""
    def stopped_early(f):
        for part in ("train", "test"):
            values = f[f"width_1/sigma_{part}"][()][:2]
            del f[f"width_1/sigma_{part}"]
            f[f"width_1/sigma_{part}"] = values
        f["table/steps_taken"][1] = 1

    info, row = _row(_altered(whole, tmp_path, stopped_early))
    assert not info.damaged, info.damaged
    assert row[8] != "-" and row[9] != "-", row
