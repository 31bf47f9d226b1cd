"""Table 1 of a checkpoint whose last sigma_train is 0 or negative (a damaged file: a sigma is a positive mean) has
no train gain: '-' with the reason, in table1.md and in the printed line, without Python's division warning (it
printed the warning for 0, and the "gain" -3.7 for -0.1)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from analysis_runs import md_rows, run_dirs, script


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _last_sigma(src, dst, value: float) -> str:
    shutil.copytree(src, dst)
    with h5py.File(dst / "checkpoint.h5", "a") as f:
        f["history/sigma_train"][-1] = value
    return str(dst)


def test_no_train_gain_for_a_sigma_that_is_not_positive(runs, tmp_path):
    zero = _last_sigma(runs["flow"], tmp_path / "zero", 0.0)
    negative = _last_sigma(runs["flow"], tmp_path / "negative", -0.1)
    with h5py.File(tmp_path / "zero" / "checkpoint.h5", "r") as f:
        steps, se = len(f["history/sigma_train"]) - 1, f["history/sigma_test"][()]
    proc = script("table1", zero, negative, "--out", tmp_path / "figs")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = md_rows((tmp_path / "figs" / "table1.md").read_text())
    for name, value in (("zero", "0"), ("negative", "-0.1")):
        why = f"sigma_train {value} at step {steps}, not > 0"
        assert rows[name][9] == f"- ({why})", rows[name]
        assert float(rows[name][10]) == pytest.approx(se[0] / se[-1], rel=1e-3)  # the test gain stays
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"{name} [delta]"))
        assert f"gain train - ({why}), gain test {se[0] / se[-1]:.6g}" in line, line
    assert np.all(se > 0)
