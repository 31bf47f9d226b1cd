"""Optuna studies of a tiny network job: per-epoch σ_val reports, pruning that stops training, data-parallel
trials at 2 ranks with the values of one process, and objectives that do not fit the job kind."""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import optuna
import pytest
from optuna.trial import TrialState

from hpcflow.tune.study import optimize
from hpcflow.tune.trial import trial_seeds

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "nn"
[geometry]
n_train = 300
n_val = 150
[model]
depth = 2
width = 8
[training]
epochs = 3
batch_size = 60
lr = 1e-2
loss = "ultralocal"
threads = 1
[ntk]
enabled = false
[tune]
sampler = "random"
seed = 5
objective = "sigma_val"
pruner = "none"
[tune.space]
"training.lr" = {low = 1e-3, high = 3e-2, log = true}
"model.activation" = {choices = ["relu", "gelu"]}
"""


def _job(tmp_path, text=JOB):
    p = tmp_path / "nn_tiny.toml"
    p.write_text(text)
    return p


def _study(out, name="nn_tiny"):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))))


def _history(run_dir):
    with h5py.File(Path(run_dir) / "nn.h5", "r") as f:
        return f["history/sigma_val"][:], f.attrs["status"]


def test_an_nn_study_reports_sigma_val_every_epoch_and_draws_fresh_points(tmp_path):
    out = tmp_path / "study"
    r = optimize(str(_job(tmp_path)), trials=3, out=str(out), log=lambda *_: None)
    assert r["counts"] == {"COMPLETE": 3}
    study = _study(out)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # sigma_val is minimised
    for t in study.get_trials():
        run = out / t.user_attrs["run_dir"]
        summary = json.loads((run / "summary.json").read_text())
        sigma_val, status = _history(run)
        assert status == "finished" and len(sigma_val) == 4 and summary["kind"] == "nn"
        assert summary["config"]["training"]["lr"] == t.params["training.lr"]
        assert summary["config"]["model"]["activation"] == t.params["model.activation"]
        assert summary["config"]["geometry"]["seed"] == trial_seeds(5, t.number)[0]  # fresh points per trial
        assert summary["wall_seconds_total"] == summary["wall_seconds"] >= summary["legs"][-1]["wall_seconds"]
        assert t.value == sigma_val[-1]  # the objective is the last epoch's σ_val as written to nn.h5
        assert t.intermediate_values == {e: sigma_val[e] for e in (1, 2, 3)}  # one report per epoch
        assert t.user_attrs["sigma_val_final"] == sigma_val[-1]
        assert sigma_val[-1] < sigma_val[0]  # every sampled rate trains (3 epochs of 5 steps)
    assert len({t.user_attrs["seeds"][0] for t in study.get_trials()}) == 3
    run = [line for line in (out / "best.toml").read_text().splitlines() if line.startswith("# Run: ")]
    # hpcflow nn, the command that can resume a network run; the suggested --out lies beside the study's
    assert shlex.split(run[0][len("# Run: "):]) == ["hpcflow", "nn", str(out / "best.toml"), "--out",
                                                    f"{out}_best"]


def _queued(out, *params):
    """A new study in DIR/study.journal with these parameter sets queued as its first trials."""
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.create_study(study_name="nn_tiny", storage=storage, direction="minimize")
    for p in params:
        study.enqueue_trial(p)


def test_a_network_worse_than_the_median_stops_training_at_that_epoch(tmp_path):
    out = tmp_path / "study"
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "median"\npruner_startup_trials = 1\n'
                                     'pruner_warmup_steps = 0'))
    _queued(out, {"training.lr": 3e-2, "model.activation": "relu"},
            {"training.lr": 1e-3, "model.activation": "relu"})  # 30x smaller steps: a higher σ_val at epoch 1
    r = optimize(str(job), trials=2, out=str(out), log=lambda *_: None)
    assert r["counts"] == {"COMPLETE": 1, "PRUNED": 1}
    done, pruned = _study(out).get_trials()
    assert pruned.state == TrialState.PRUNED and list(pruned.intermediate_values) == [1]
    assert pruned.intermediate_values[1] > done.intermediate_values[1]
    run = out / pruned.user_attrs["run_dir"]
    summary = json.loads((run / "summary.json").read_text())
    sigma_val, status = _history(run)
    assert summary["status"] == status == "stopped" and summary["epochs"] == 1 and len(sigma_val) == 2
    import torch

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)  # resumable from where it stopped
    assert ckpt["status"] == "stopped" and ckpt["train"]["epoch"] == 1


def test_data_parallel_trials_give_the_values_of_one_process(tmp_path, ranks=2):  # 3 ranks: tests/test_nn_mpi.py
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    job = _job(tmp_path)
    one, many = tmp_path / "one", tmp_path / "many"
    for out in (one, many):  # the same two parameter sets in both studies (each worker seeds its own sampler)
        _queued(out, {"training.lr": 2e-2, "model.activation": "relu"}, {"training.lr": 5e-3, "model.activation": "gelu"})
    optimize(str(job), trials=2, out=str(one), log=lambda *_: None)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, "-m", "hpcflow", "tune", str(job), "--trials", "2",
                        "--out", str(many)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("best trial") == 1
    a, b = _study(one).get_trials(), _study(many).get_trials()
    assert [t.state for t in b] == [TrialState.COMPLETE] * 2 and [t.params for t in a] == [t.params for t in b]
    for ta, tb in zip(a, b):
        summary = json.loads((many / tb.user_attrs["run_dir"] / "summary.json").read_text())
        assert summary["ranks"] == ranks
        assert sum(p["n_train_local"] for p in summary["per_rank"]) == 300  # the points are divided
        for e in (1, 2, 3):  # the same training up to summation order (float64)
            assert math.isclose(ta.intermediate_values[e], tb.intermediate_values[e], rel_tol=1e-10)
        assert math.isclose(ta.value, tb.value, rel_tol=1e-10)


@pytest.mark.parametrize("kind_job, objective, expected", [
    ("nn", "log_gain_test", "'log_gain_test' is for flow jobs; a nn job takes one of 'log_gain_val'"),
    ("flow", "sigma_val", "'sigma_val' is for nn jobs; a flow job takes one of 'log_gain_test'"),
])
def test_an_objective_of_the_other_job_kind_is_exit_2_before_any_trial(tmp_path, kind_job, objective, expected):
    text = JOB if kind_job == "nn" else """
[job]
kind = "flow"
[kernel]
name = "gaussian"
[tune]
[tune.space]
"flow.dt" = {low = 0.01, high = 3.0, log = true}
"""
    text = text.replace('objective = "sigma_val"\n', "").replace("[tune]\n", f'[tune]\nobjective = "{objective}"\n')
    out = tmp_path / "study"
    r = subprocess.run([sys.executable, "-m", "hpcflow", "tune", str(_job(tmp_path, text)), "--trials", "1",
                        "--out", str(out)], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "[tune].objective" in lines[0] and expected in lines[0]
    assert not out.exists()


def test_a_network_whose_metric_is_not_positive_definite_is_no_good_value(tmp_path):
    """An additive network trained by SGD at lr 1e3 ends with det g < 0 at validation points, where σ_val (signed
    det g) can look better than a healthy network's: the trial is pruned as a diverged one, reports no value from
    such an epoch, is not the study's best, and --sampler gp sees it as infeasible."""
    from hpcflow.tune.gp import DIVERGED, observed

    out = tmp_path / "study"
    job = _job(tmp_path, JOB.replace('depth = 2', 'depth = 2\nkind = "additive"').replace('width = 8', 'width = 16')
               .replace('loss = "ultralocal"', 'optimizer = "sgd"')
               .replace('"training.lr" = {low = 1e-3, high = 3e-2, log = true}',
                        '"training.lr" = {choices = [1e-2, 1e3]}'))
    _queued(out, {"training.lr": 1e-2, "model.activation": "gelu"}, {"training.lr": 1e3, "model.activation": "gelu"})
    r = optimize(str(job), trials=2, out=str(out), log=lambda *_: None)
    assert r["counts"] == {"COMPLETE": 1, "PRUNED": 1}
    healthy, bad = _study(out).get_trials()
    summary = json.loads((out / bad.user_attrs["run_dir"] / "summary.json").read_text())
    with h5py.File(out / bad.user_attrs["run_dir"] / "nn.h5") as f:
        counts = f["history/val_not_positive_definite"][()]
    assert counts[-1] > 0 and summary["checkpoint_step"] == 3  # trained to the end, not stopped by the pruner
    assert summary["status"] == bad.user_attrs["status"] == "not_positive_definite"  # pruned for its metric
    assert bad.state == TrialState.PRUNED and bad.user_attrs["val_not_positive_definite_final"] == counts[-1]
    assert set(bad.intermediate_values) == {e for e in (1, 2, 3) if counts[e] == 0}
    assert healthy.state == TrialState.COMPLETE and r["best"]["number"] == healthy.number
    seen = {t.number: t for t in observed(_study(out).get_trials(), bad.distributions, maximize=False)}
    assert seen[bad.number].system_attrs[DIVERGED] == 1.0 and seen[bad.number].value == healthy.value
