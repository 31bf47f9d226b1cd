"""A stop request (SIGTERM) that a worker receives after it takes the signals, before it draws its first trial, is
said as a stop before its first trial (exit status 4, one line), not as one between trials; one received after a
trial is still said to come between trials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from optuna.trial import TrialState

from test_tune_records import _job, _journal  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]

#: `hpcflow tune` in a process that sends itself SIGTERM as its worker starts (Worker.rewrite_nn_h5, the first step
#: after the worker's handlers are installed), or, with argv[1] "after", once the first trial's line is written
SIGTERM_AT = """
import os, signal, sys
from hpcflow.cli import main
from hpcflow.tune import study
when = sys.argv.pop(1)
owner, name = (study.Worker, "rewrite_nn_h5") if when == "start" else (study, "_trial_line")
real = getattr(owner, name)

def term(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)

setattr(owner, name, term)
sys.exit(main(sys.argv[1:]))
"""


def _worker(tmp_path, when: str):
    job, out = _job(tmp_path), tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", SIGTERM_AT, when, "tune", str(job), "--trials", "2", "--out",
                           str(out), "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return done, out


def test_a_sigterm_before_the_first_trial_is_said_as_such(tmp_path):
    done, out = _worker(tmp_path, "start")
    assert done.returncode == 4 and done.stderr.count("\n") == 1, (done.returncode, done.stderr)
    assert done.stderr.startswith("hpcflow tune: stopped: signal received before this worker's first trial, so it "
                                  "ran none: run the same hpcflow tune command to run its trials"), done.stderr
    assert "between trials" not in done.stderr
    assert _journal(out / "study.journal").trials == [] and not (out / "trials").exists()


def test_a_sigterm_after_a_trial_is_still_said_to_come_between_trials(tmp_path):
    done, out = _worker(tmp_path, "after")
    assert done.returncode == 4 and "signal received between trials" in done.stderr, done.stderr
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]
