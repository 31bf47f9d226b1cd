"""A network whose metric is not positive definite at validation points after its last epoch (σ there uses the signed
det g and can look better than any healthy network's) is flagged beside its σ, saying at how many of how many
validation points: in the report's runs table (its own row, a study's row whose best trial it is, an interrupted run's
row from its checkpoint.pt), in sigma_history.py's and fig4_ntk.py's printed lines and in the caption of its Fig. 4 in
the report; a healthy network carries no such mark."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import pytest

from analysis_runs import ROOT, env, make_study, md_rows, script
from jobtexts import NN_POINTS, SMALL_NET

N_VAL = 100  # NN_POINTS' validation points
JOB = NN_POINTS + SMALL_NET + """[training]
epochs = 2
batch_size = 100
threads = 1
{lr}
[ntk]
n_train_points = 4
n_test_points = 4
"""
#: SGD at this learning rate leaves the metric indefinite at validation points; the default Adam run stays healthy
DIVERGING = 'optimizer = "sgd"\nlr = 1e4'


def _nn(base, name: str, lr: str) -> str:
    job, out = base / f"{name}.toml", base / name
    job.write_text(JOB.format(lr=lr))
    p = subprocess.run([sys.executable, "-m", "hpcflow", "nn", str(job), "--out", str(out), "--quiet"], cwd=ROOT,
                       env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return str(out)


def _last_count(run_dir) -> int:
    with h5py.File(os.path.join(run_dir, "nn.h5"), "r") as f:
        return int(f["history/val_not_positive_definite"][-1])


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    base = tmp_path_factory.mktemp("definite")
    out = {"indefinite": _nn(base, "indefinite", DIVERGING), "healthy": _nn(base, "healthy", "")}
    assert _last_count(out["indefinite"]) > 0 and _last_count(out["healthy"]) == 0  # what the tests rely on
    return out


def _mark(run_dir) -> str:
    return f"metric not positive definite at {_last_count(run_dir)} of {N_VAL} validation points"


def _report_md(tmp_path, *dirs) -> str:
    p = subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, dirs), "--out", str(tmp_path / "rep")],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return (tmp_path / "rep" / "report.md").read_text()


def _report(tmp_path, *dirs) -> dict:
    return md_rows(_report_md(tmp_path, *dirs).split("## Runs")[1].split("\n## ")[0])


def test_the_runs_table_flags_a_network_not_positive_definite_at_validation_points(tmp_path, nets):
    rows = _report(tmp_path, nets["indefinite"], nets["healthy"])
    status = rows["indefinite"][2]
    assert status.startswith("finished; ") and _mark(nets["indefinite"]) in status, status
    assert rows["healthy"][2] == "finished", rows["healthy"]


def test_a_study_whose_best_trial_is_not_positive_definite_says_so(tmp_path, nets):
    make_study(tmp_path / "tune", nets["indefinite"], [0.4, 2.0])
    make_study(tmp_path / "tune_ok", nets["healthy"], [0.4, 2.0])
    rows = _report(tmp_path, tmp_path / "tune", tmp_path / "tune_ok")
    assert "best trial 1" in rows["tune"][2] and _mark(nets["indefinite"]) in rows["tune"][2], rows["tune"]
    assert "not positive definite" not in rows["tune_ok"][2], rows["tune_ok"]


def test_an_interrupted_run_is_flagged_from_its_training_checkpoint(tmp_path, nets):
    """A run killed before nn.h5 and its summary: the row's σ and the mark are its checkpoint.pt's."""
    d = tmp_path / "killed"
    shutil.copytree(nets["indefinite"], d)
    os.remove(d / "nn.h5")
    os.remove(d / "summary.json")
    status = _report(tmp_path, d)["killed"][2]
    assert status.startswith("incomplete") and _mark(nets["indefinite"]) in status, status


def test_sigma_history_prints_the_mark_beside_the_sigmas(tmp_path, nets):
    p = script("sigma_history", nets["indefinite"], nets["healthy"], "--out", tmp_path / "figs")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = {line.split(" ")[0].rstrip(":"): line for line in p.stdout.splitlines() if "sigma train" in line}
    assert _mark(nets["indefinite"]) in lines["indefinite"], lines
    assert "not positive definite" not in lines["healthy"], lines


def test_fig4_ntk_prints_the_mark_beside_its_numbers(tmp_path, nets):
    p = script("fig4_ntk", nets["indefinite"], nets["healthy"], "--out", tmp_path / "figs")
    assert p.returncode == 0, p.stderr[-2000:]
    epochs = {line.split(" ")[0].rstrip(":"): line for line in p.stdout.splitlines() if line.endswith("epochs: 2")}
    assert epochs["indefinite"] == f"indefinite ({_mark(nets['indefinite'])}: sigma uses the signed det g): epochs: 2"
    assert epochs["healthy"] == "healthy: epochs: 2", epochs


def test_the_report_captions_fig4_of_a_network_not_positive_definite(tmp_path, nets):
    md = _report_md(tmp_path, nets["indefinite"], nets["healthy"]).split("## Fig. 4")[1].split("\n## ")[0]
    captions = {line.strip("*").split(" ")[0]: line for line in md.splitlines() if line.startswith("*")}
    assert _mark(nets["indefinite"]) in captions["indefinite"], captions
    assert captions["healthy"] == "*healthy*", captions
