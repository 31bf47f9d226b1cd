"""A SIGTERM or SIGUSR1 where no trial's checkpoint writer holds it (a tune worker's start-up, its end) ends
`hpcflow tune` as it ends the other commands: one line, status 143 / 138 (128 + the signal), no lock left; a request
that comes while a study file's lock is held waits until it is released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpcflow.stop_signals import Stopped, interrupts_end_the_job
from hpcflow.tune.storage import file_lock
from test_tune_records import _job, _journal  # tests/ is on sys.path (pytest's default import mode)

DRIVER = Path(__file__).resolve().parent / "mpi" / "tune_stop_driver.py"


def _tune_signalled(where, sig, job, out):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(DRIVER), where, sig, "tune", str(job), "--trials", "1", "--out",
                           str(out), "--quiet"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("sig, status", [("SIGTERM", 143), ("SIGUSR1", 138)])
def test_a_stop_request_during_start_up_ends_tune_in_one_line(tmp_path, sig, status):
    job, out = _job(tmp_path), tmp_path / "s"
    r = _tune_signalled("startup", sig, job, out)
    assert r.returncode == status and r.stderr == f"hpcflow tune: stopped by {sig}\n", r.stderr
    assert not out.exists()  # nothing written: the request came before --out was taken


def test_a_stop_request_while_best_toml_is_written_waits_for_its_lock_then_ends_tune(tmp_path):
    job, out = _job(tmp_path), tmp_path / "s"
    r = _tune_signalled("end", "SIGUSR1", job, out)
    assert r.returncode == 138 and r.stderr == "hpcflow tune: stopped by SIGUSR1\n", r.stderr
    assert (out / "best.toml").is_file() and not (out / "best.toml.lock").exists()  # written whole, lock released
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]
    assert not [p for p in os.listdir(out) if p.endswith(".lock")]


def test_a_study_files_lock_holds_stop_requests_until_it_is_released(tmp_path):
    calls = []
    before = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        lock = file_lock(str(tmp_path / "study.journal"))
        lock.acquire()
        signal.raise_signal(signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR1)  # delivered twice (scancel --full): taken once
        assert calls == [] and os.path.islink(tmp_path / "study.journal.lock")
        lock.release()
        assert calls == [signal.SIGUSR1] and not os.path.lexists(tmp_path / "study.journal.lock")
        signal.raise_signal(signal.SIGUSR1)  # not held: at once
        assert calls == [signal.SIGUSR1] * 2
    finally:
        signal.signal(signal.SIGUSR1, before)
    with pytest.raises(Stopped), interrupts_end_the_job("hpcflow tune"):  # a request that ends the command
        lock.acquire()
        signal.raise_signal(signal.SIGTERM)
        assert os.path.islink(tmp_path / "study.journal.lock")
        lock.release()  # it comes here, once the link is gone
    assert not os.path.lexists(tmp_path / "study.journal.lock")
