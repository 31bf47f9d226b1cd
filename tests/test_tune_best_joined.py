"""best.toml of a study that two workers add trials to: whichever worker writes it last, it names the study's best
completed trial as the storage holds it then, not the best of the trials that worker ran or saw when it started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpcflow.jobs import registry
from test_tune_records import JOB, _job  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]

#: a worker whose trials are all worse than any real one: each trial's objective is its real value less 100; its
#: first trial waits for the flag file argv[1] (so that another worker's trials complete meanwhile)
WORSE = """
import os, sys, time
from hpcflow.cli import main
from hpcflow.tune import study
real, flag = study.objectives.from_summary, sys.argv.pop(1)

def worse(name, summary):
    end = time.monotonic() + 120
    while not os.path.exists(flag) and time.monotonic() < end:
        time.sleep(0.05)
    return real(name, summary) - 100.0

study.objectives.from_summary = worse
sys.exit(main(sys.argv[1:]))
"""


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _load(out: Path, storage: list):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    where = storage[1] if storage else JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name="tiny", storage=where)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_the_worker_that_ends_last_with_worse_trials_writes_the_studys_best(tmp_path, kind):
    """Worker B opens the study and draws its first trial before worker A runs any; A's trials complete, A writes
    best.toml and ends; then B's trials, all worse than A's, complete and B ends last: its best.toml names A's best
    trial, with A's parameters and value, not B's best."""
    job, out, flag = _job(tmp_path, JOB), tmp_path / "s", tmp_path / "a-done"
    storage = [] if kind == "journal" else ["--storage", f"sqlite:///{tmp_path / 'q.db'}"]
    args = ["tune", str(job), "--trials", "2", "--out", str(out), "--quiet", *storage]
    first = subprocess.run([sys.executable, "-m", "hpcflow", *args[:3], "1", *args[4:]], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=300)  # creates the study (trial 0)
    assert first.returncode == 0, first.stderr
    b = subprocess.Popen([sys.executable, "-c", WORSE, str(flag), *args], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = 300
        while not any(t.state == TrialState.RUNNING for t in _load(out, storage).trials):
            assert b.poll() is None and deadline > 0, b.communicate()
            deadline -= 0.1
            time.sleep(0.1)
        a = subprocess.run([sys.executable, "-m", "hpcflow", *args], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=300)
        assert a.returncode == 0, a.stderr
        flag.write_text("")
        out_b, err_b = b.communicate(timeout=300)
    finally:
        if b.poll() is None:
            b.kill()
            b.wait()
    assert b.returncode == 0, err_b
    study = _load(out, storage)
    values = {t.number: t.value for t in study.trials}
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5, values
    mine_b = [n for n, v in values.items() if v < -50]  # B's two trials, 100 below any real value
    assert len(mine_b) == 2 and max(values[n] for n in mine_b) < min(v for v in values.values() if v > -50)
    best = max(values, key=values.get)
    assert best not in mine_b and study.best_trial.number == best
    ended = {n: t.datetime_complete for n, t in enumerate(study.trials)}
    assert min(ended[n] for n in mine_b) > max(ended[n] for n in values if n not in mine_b)  # B ended last
    # B's closing line and best.toml show the value as the trial's own line (of the first run's or A's output): 4
    # significant digits where no other trial's value reads the same to 4 (B's are 100 below), more where one does
    shown = re.search(rf"^hpcflow tune: best trial {best}: value (\S+), params ", out_b, re.M).group(1)
    assert float(shown) == pytest.approx(values[best], rel=5e-4)
    if len({f"{v:.4g}" for v in values.values()}) == len(values):
        assert re.search(rf"^hpcflow tune: trial {best} COMPLETE value={re.escape(shown)} ", first.stdout + a.stdout,
                         re.M), first.stdout + a.stdout
        assert len(shown.replace("-", "").replace(".", "").lstrip("0")) <= 4, shown
    text = (out / "best.toml").read_text()
    assert f": trial {best}, log_gain_test = {shown}\n" in text, text
    assert registry.load(out / "best.toml")[1]["flow"]["dt"] == pytest.approx(study.trials[best].params["flow.dt"],
                                                                              rel=1e-12)
    assert not (out / "best.toml.lock").exists()
