"""An SQLite --storage that names its file as SQLite's own URI (`sqlite:///file:PATH?uri=true`), as a file named
`file:NAME` (no uri=true), or through %XX escapes (a working directory holding '%' or '?'): the study is opened
where SQLAlchemy opens it, so a later run continues it (also spelt relative where it was recorded absolute)."""

from __future__ import annotations

import os
from urllib.parse import quote

import optuna
import pytest

from hpcflow.cli import main
from hpcflow.tune.storage import absolute_storage
from test_tune_records import _job, _tune  # tests/ is on sys.path (pytest's default import mode)


def _trials(url: str) -> int:
    return len(optuna.load_study(study_name="tiny", storage=url).trials)


@pytest.mark.parametrize("first, later, made", [
    ("sqlite:///file:u.db?uri=true", "sqlite:///file:u.db?uri=true", "u.db"),
    ("sqlite:///file:{abs}/u.db?uri=true", "sqlite:///file:{abs}/u.db?uri=true", "u.db"),
    ("sqlite:///file:{abs}/u.db?uri=true", "sqlite:///file:u.db?uri=true", "u.db"),
    ("sqlite:///file:u.db?uri=true", "sqlite:///file:{abs}/u.db?uri=true", "u.db"),
    ("sqlite:///file:named.db", "sqlite:///file:named.db", "file:named.db"),
])
def test_a_study_in_a_file_uri_storage_is_continued(tmp_path, monkeypatch, capsys, first, later, made):
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    first, later = (u.format(abs=quote(str(tmp_path))) for u in (first, later))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "runs/u", "--storage", first, "--quiet")
    assert rc == 0, io.err
    assert (tmp_path / made).is_file()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "runs/u", "--storage", later, "--quiet")
    assert rc == 0, io.err
    assert _trials(first) == 2 and _trials(later) == 2
    assert sorted(os.listdir(tmp_path / "runs/u/trials")) == ["0000", "0001"]


@pytest.mark.parametrize("here", ["q?d", "p%41d", "p%d"])
def test_an_sqlite_url_with_escapes_opens_the_file_it_names(tmp_path, monkeypatch, capsys, here):
    """absolute_storage (which `hpcflow submit` queues) escapes '%' and '?' of the working directory as %25 and %3F;
    the checks before the study decode them as SQLAlchemy does, not taking %3F for a missing directory."""
    job = _job(tmp_path)
    cwd = tmp_path / here
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    url = absolute_storage("sqlite:///w.db")
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "runs/u", "--storage", url, "--quiet")
    assert rc == 0, io.err
    assert sorted(os.listdir(cwd)) == ["runs", "w.db"] and sorted(os.listdir(tmp_path)) == [here, "tiny.toml"]
    for again in (url, "sqlite:///w.db"):  # the same file, spelt absolute (escaped) or relative
        rc, io = _tune(capsys, job, "--trials", "1", "--out", "runs/u", "--storage", again, "--quiet")
        assert rc == 0, io.err
    assert _trials(url) == 3
    capsys.readouterr()
    assert main(["submit", str(job), "--out", "runs/v", "--executor", "local", "--command", "tune", "--trials", "1",
                 "--storage", "sqlite:///w2.db", "--logs", str(tmp_path / "logs"), "--check"]) == 0, \
        capsys.readouterr().err
    assert not os.path.exists("runs/v") and not os.path.exists("w2.db")
