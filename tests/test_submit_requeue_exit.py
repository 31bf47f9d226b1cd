"""A `hpcflow submit` Slurm job that submitit requeues (its run stopped with the checkpoint on SIGUSR2) ends the leg
with status 0: submitit's requeue ends the process with sys.exit(-1), status 255, which srun logged as an error at
every requeue ("srun: error: NODE: task 0: Exited with exit code 255") and, with --kill-on-bad-exit, ended the job's
other tasks. A local job keeps submitit's own status, which its controller reads as the request to start it again.
Task 0 of a Slurm leg says that the job requeued itself."""

from __future__ import annotations

import logging
import os
import signal
from types import SimpleNamespace

import pytest
from submitit.core.job_environment import SignalHandler
from submitit.local.local import LOCAL_REQUEUE_RETURN_CODE

import hpcflow.cli
import hpcflow.submit.task
from hpcflow.submit.task import HpcflowTask


def _submitit_exits(*_):
    """submitit's requeue on Slurm once `scontrol requeue` has returned: its own exit."""
    SignalHandler._exit(SimpleNamespace(_logger=logging.getLogger("submitit")))


def _local_exits(*_):
    raise SystemExit(LOCAL_REQUEUE_RETURN_CODE)  # (submitit's LocalJobEnvironment._requeue)


@pytest.mark.parametrize("executor, requeue, status", [("slurm", _submitit_exits, 0),
                                                       ("local", _local_exits, LOCAL_REQUEUE_RETURN_CODE)])
@pytest.mark.parametrize("checkpoint", [True, False])
@pytest.mark.parametrize("procid", ["0", "1"])
def test_a_leg_requeued_by_submitit_on_slurm_ends_with_status_0(monkeypatch, capsys, executor, requeue, status,
                                                                 checkpoint, procid):
    """On Slurm task 0 then says the job requeued itself, after the run's "continue with: ... --resume" line: not to be
    run by hand as well (both over the same --out)."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", executor)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_PROCID", procid)
    for name in ("SLURM_RESTART_COUNT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hpcflow.submit.task, "leave_mpi", lambda: None)
    monkeypatch.setattr(hpcflow.submit.task, "_mark_requeue", lambda: None)
    old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        signal.signal(signal.SIGUSR2, requeue)  # as submitit installs it

        def run(argv):
            if checkpoint:  # the run writes its checkpoint and stops with 4; else it is requeued at once
                signal.signal(signal.SIGUSR1, lambda *_: None)
            else:
                signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGUSR2)  # Slurm's signal before the time limit
            return 4

        monkeypatch.setattr(hpcflow.cli, "main", run)
        with pytest.raises(SystemExit) as ended:
            HpcflowTask().run(["run", "j.toml", "--out", "d"])
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert ended.value.code == status
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hpcflow submit:")]
    if executor == "slurm" and procid == "0":
        assert len(said) == 1 and said[0].startswith("hpcflow submit: the job has requeued itself (scontrol requeue "
                                                     "77): it continues the run"), said
        assert "do not run the command above by hand" in said[0], said
    else:
        assert not said, said
