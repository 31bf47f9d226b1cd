"""A tune's relative --storage (a journal path, an SQLite URL's file, relative to the working directory) is made
absolute in the command line `hpcflow submit` prints and queues, as the job file and --out are: the line printed,
pasted in another directory, kept the relative storage and opened another study there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpcflow.cli import main
from test_tune_records import JOB  # tests/ is on sys.path (pytest's default import mode)
from test_submit import ROOT


@pytest.mark.parametrize("given, where", [("../shared.journal", "shared.journal"),
                                          ("sqlite:///tune_sql.db", "here/tune_sql.db"),
                                          ("sqlite:///tune_sql.db?timeout=20", "here/tune_sql.db")])
def test_the_printed_command_opens_the_same_storage_from_another_directory(tmp_path, monkeypatch, capsys, given,
                                                                           where):
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)  # (../shared.journal from there is another file)
    (tmp_path / "tiny.toml").write_text(JOB)
    monkeypatch.chdir(tmp_path / "here")
    assert main(["submit", "../tiny.toml", "--out", "study", "--executor", "local", "--command", "tune", "--trials",
                 "1", "--storage", given, "--check"]) == 0
    line = re.search(r": (hpcflow tune .*)$", capsys.readouterr().out.splitlines()[0]).group(1)
    argv = shlex.split(line)
    storage = argv[argv.index("--storage") + 1]
    assert os.path.isabs(storage.split(":///", 1)[-1]), line
    r = subprocess.run([sys.executable, "-m", *argv, "--quiet"], cwd=tmp_path / "elsewhere" / "deeper",
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert [p.name for p in (tmp_path / "elsewhere").rglob("*")] == ["deeper"]  # no storage of its own there
    path = str(tmp_path / where)
    store = (JournalStorage(JournalFileBackend(path)) if where.endswith(".journal")
             else RDBStorage(f"sqlite:///{path}"))
    trials = optuna.load_study(study_name="tiny", storage=store).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE]
    assert (tmp_path / "here" / "study" / "study.json").is_file()
