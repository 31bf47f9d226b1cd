"""The sampler's seed: a new study run by one worker samples the same parameters for the same [tune].seed (in
another process, at another time) and other ones for another seed; a worker that joins the study (a later run, a
concurrent worker) draws parameters of its own, not those the study's first worker drew."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from test_tune_records import JOB as RANDOM_JOB  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]

#: a TPE search of two settings (its first trials are drawn at random from the sampler's seed)
JOB = RANDOM_JOB.replace('sampler = "random"', 'sampler = "tpe"') + \
    '"kernel.width" = {low = 0.01, high = 1.0, log = true}\n'


def _tune(tmp_path, out: str, *extra) -> list[dict]:
    """The parameters of the study's trials, in trial order, after `hpcflow tune` in a process of its own."""
    job = tmp_path / "tiny.toml"
    job.write_text(JOB)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "hpcflow", "tune", str(job), "--trials", "3", "--out", out,
                           "--quiet", *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    storage = JournalStorage(JournalFileBackend(str(tmp_path / out / "study.journal")))
    return [t.params for t in optuna.load_study(study_name="tiny", storage=storage).trials]


def test_new_studies_of_one_worker_sample_the_same_parameters_for_the_same_seed_only(tmp_path):
    first, again = _tune(tmp_path, "a"), _tune(tmp_path, "b")
    assert len(first) == 3 and len({p["flow.dt"] for p in first}) == 3
    assert again == first  # bit for bit: the same draws
    other = _tune(tmp_path, "c", "--set", "tune.seed=1")
    assert len(other) == 3 and not {p["flow.dt"] for p in other} & {p["flow.dt"] for p in first}


def test_a_worker_that_joins_the_study_draws_other_parameters_than_its_first_worker(tmp_path):
    first = _tune(tmp_path, "a")
    both = _tune(tmp_path, "a")  # the study's next 3 trials, drawn by a worker that did not create it
    assert both[:3] == first and len(both) == 6
    assert not {p["flow.dt"] for p in both[3:]} & {p["flow.dt"] for p in first}
