"""Regression guard: every shipped Table 1 job (as printed and tuned) lowers sigma_train, at reduced N."""

import glob
import json
import os

import pytest

from hpcflow.cli import main

JOBS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "jobs", "table1_*.toml")))


def test_all_table1_variants_are_shipped():
    names = {os.path.basename(p)[:-5] for p in JOBS}
    assert {"table1_relu", "table1_gaussian", "table1_gaussian_inverse", "table1_delta"} <= names
    assert {n + "_tuned" for n in ("table1_relu", "table1_gaussian", "table1_delta")} <= names


@pytest.mark.parametrize("job", JOBS, ids=lambda p: os.path.basename(p))
def test_table1_job_lowers_sigma_train(job, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["run", job, "--out", str(out), "--set", "geometry.n_train=400", "--set", "geometry.n_test=100",
                   "--set", "flow.steps=8"])
    assert status == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["steps_taken"] == 8 and s["sigma_train_final"] < 0.95 * s["sigma_train_initial"], s
