"""Submissions that `hpcflow submit` refuses before anything is queued (exit 2, one line), --check alike."""

from __future__ import annotations

import pytest

from hpcflow.cli import main

TUNE = "jobs/tune_delta.toml"


@pytest.mark.parametrize("check", [[], ["--check"]])
def test_sqlite_storage_with_several_workers_is_refused(tmp_path, capsys, check):
    db = tmp_path / "x.db"
    argv = ["submit", TUNE, "--out", str(tmp_path / "out"), "--executor", "local", "--command", "tune",
            "--trials", "4", "--array", "2", "--storage", f"sqlite:///{db}", *check]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--storage" in err[0] and "--array 2" in err[0] and "journal" in err[0]
    assert not db.exists() and not (tmp_path / "out").exists() and not (tmp_path / "out_logs").exists()


@pytest.mark.parametrize("options", [["--partition", "foo"], ["--gpus-per-node", "1"], ["--mem", "1G"],
                                     ["--partition", "foo", "--gpus-per-node", "2"], ["--cpus-per-task", "64"],
                                     ["--cpus-per-task", "1"], ["--mpi", "pmi2"], ["--mpi", "none"],
                                     ["--mem", "1G", "--mpi", "pmix"]])
@pytest.mark.parametrize("check", [[], ["--check"]])
def test_slurm_only_requests_are_refused_by_the_local_executor(tmp_path, capsys, options, check):
    argv = ["submit", "jobs/table1_gaussian.toml", "--out", str(tmp_path / "out"), "--executor", "local", *options,
            *check]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(o in err[0] for o in options if o.startswith("--")) and "--executor slurm" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out_logs").exists()


def test_submit_shows_a_storage_password_nowhere(tmp_path, capsys):
    """The line --check prints (the command it would queue, pasted into batch logs and terminals) and the SQLite
    refusal show the storage URL without its password; the line is still one a shell splits back into the command,
    the password left out ('?password=***' used to swallow the closing quote of the shell-quoted URL)."""
    import shlex
    import warnings

    url = f"sqlite:///{tmp_path / 'x.db'}?password=s3cret"
    argv = ["submit", TUNE, "--out", str(tmp_path / "out"), "--executor", "local", "--command", "tune",
            "--trials", "2", "--storage", url, "--check"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's: pysqlite ignores the query argument
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out, out
    queued = shlex.split(out.split(": ", 1)[1].split(": ", 1)[1])
    assert queued[queued.index("--storage") + 1] == url.replace("s3cret", "***"), queued
    assert main([*argv[:8], "--trials", "4", "--array", "2", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err and "an SQLite storage" in err, err


def test_the_local_executors_cpus_refusal_names_the_threads_its_job_takes(tmp_path, capsys):
    """--cpus-per-task 64 on a smaller host was taken and ignored (the job ran on the host's CPUs): the refusal names
    the CPUs this process may use and HPCFLOW_THREADS, which the job takes; without it the same job is queued (--check)."""
    import os

    base = ["submit", "jobs/quickstart.toml", "--out", str(tmp_path / "out"), "--executor", "local", "--check"]
    assert main([*base, "--cpus-per-task", "64"]) == 2
    err = capsys.readouterr().err
    assert f"the CPUs this process may use ({len(os.sched_getaffinity(0))} here)" in err and "HPCFLOW_THREADS=" in err
    assert main(base) == 0, capsys.readouterr().err


@pytest.mark.parametrize("option", ["--study", "--storage"])
@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("check", [[], ["--check"]])
def test_an_empty_study_or_storage_is_refused_as_tune_refuses_it(tmp_path, capsys, monkeypatch, option, value, check):
    """`--study ''` (or `--storage ''`) was dropped from the queued `hpcflow tune` line (exit 0, the default study
    used), where `hpcflow tune` itself refuses it."""
    monkeypatch.setenv("HPCFLOW_THREADS", "1")  # the tune below sets it (limit_threads): unset again after the test
    monkeypatch.delenv("HPCFLOW_THREADS")
    argv = ["submit", TUNE, "--out", str(tmp_path / "out"), "--executor", "local", "--command", "tune",
            "--trials", "2", option, value, *check]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hpcflow submit: error: {option} is empty; give one or leave the option out"], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out_logs").exists()
    assert main(["tune", TUNE, "--out", str(tmp_path / "out"), "--trials", "1", option, value]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"hpcflow tune: error: {option} is empty; give one or "
                                                             "leave the option out"]
