"""`hpcflow submit` queues a copy of the job file it checked (read-only, in a folder of its own in the logs folder,
under the job file's own name) and every start of the job runs that copy: the job file was read again from disk at
every start, so an edit after submission changed a queued job, or broke a requeued one ("[flow].dt = 3.0 differs from
the checkpoint's 6.5", FAILED 2), or was taken silently ([flow].steps, [checkpoint])."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpcflow.cli import main
from test_submit import JOB

TUNE_JOB = JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n'


def _queued(monkeypatch, logs: Path) -> list:
    """executor.submit replaced by one that records the command lines queued and returns a finished local job."""
    from hpcflow.submit import executor

    queued = []

    def submit(ex, task, argvs):
        queued.extend(argvs)
        paths = SimpleNamespace(stdout=logs / "5_0_log.out", stderr=logs / "5_0_log.err")
        return [SimpleNamespace(job_id=str(5 + i), paths=paths) for i in range(len(argvs))]

    monkeypatch.setattr(executor, "submit", submit)
    return queued


@pytest.mark.parametrize("command", ["run", "tune"])
def test_the_queued_job_runs_a_copy_of_the_checked_job_file(tmp_path, monkeypatch, capsys, command):
    job, logs = tmp_path / "my job.toml", tmp_path / "logs"
    text = JOB if command == "run" else TUNE_JOB
    job.write_text(text)
    queued = _queued(monkeypatch, logs)
    extra = ["--command", "tune", "--trials", "2", "--array", "2"] if command == "tune" else []
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--logs", str(logs),
                 *extra]) == 0
    said = capsys.readouterr().out
    copies = {argv[1] for argv in queued}
    assert len(queued) == (2 if command == "tune" else 1) and len(copies) == 1, queued  # (a tune's workers share it)
    copy = Path(copies.pop())
    assert copy != job and copy.name == job.name and copy.parent.parent == logs, copy  # (a tune's study: its stem)
    assert copy.parent.name.startswith("job-") and copy.read_text() == text
    assert not os.stat(copy).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only
    assert str(copy) in said, said  # the command line said names the copy the job runs
    job.write_text(text.replace("dt = 2.0", "dt = 3.0"))  # an edit after submission
    assert copy.read_text() == text


def test_a_job_file_edited_while_it_is_checked_is_refused_and_nothing_is_queued(tmp_path, monkeypatch, capsys):
    import hpcflow.submit.check as check

    job, logs = tmp_path / "job.toml", tmp_path / "logs"
    job.write_text(JOB)
    queued = _queued(monkeypatch, logs)
    checked = check.check_job

    def edited_meanwhile(*args, **kwargs):
        result = checked(*args, **kwargs)
        job.write_text(JOB.replace("dt = 2.0", "dt = 3.0"))
        return result

    monkeypatch.setattr(check, "check_job", edited_meanwhile)
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--logs",
                 str(logs)]) == 2
    err = capsys.readouterr().err
    assert err == (f"hpcflow submit: error: {job} changed while hpcflow submit checked it; nothing was queued: submit "
                   "it again\n"), err
    assert queued == [] and not logs.exists()


def test_check_writes_no_copy(tmp_path, capsys):
    job, logs = tmp_path / "job.toml", tmp_path / "logs"
    job.write_text(JOB)
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--logs", str(logs),
                 "--check"]) == 0
    assert f"hpcflow run {job} " in capsys.readouterr().out and not logs.exists()


@pytest.mark.parametrize("failing", ["make_executor", "submit"])
def test_a_submission_that_queues_nothing_leaves_no_copy(tmp_path, monkeypatch, failing):
    """Whatever ends the submission before a job is queued (the executor's set-up failing as sbatch's refusal does)
    takes the copy and the logs folder it made away again."""
    from hpcflow.submit import executor

    job, logs = tmp_path / "job.toml", tmp_path / "logs"
    job.write_text(JOB)

    def fails(*args, **kwargs):
        raise (executor.SubmitError("sbatch: refused") if failing == "submit" else RuntimeError("no executor"))

    monkeypatch.setattr(executor, failing, fails)
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--logs", str(logs)]
    if failing == "submit":
        assert main(argv) == 2
    else:
        with pytest.raises(RuntimeError, match="no executor"):
            main(argv)
    assert not logs.exists() or not any(logs.rglob("*.toml")), sorted(logs.rglob("*"))
