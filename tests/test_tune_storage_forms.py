"""--storage values written wrongly are refused before any work (exit 2, one line) naming what works: a malformed
SQLite URL or an upper-case or misspelt scheme names the URL meant, a .db path in a missing directory says so with
its suggestion, an SQLite URL naming an Optuna journal says to pass it as a path, and a directory that cannot be
written is said alike for a journal and an SQLite file."""

from __future__ import annotations

import os

import pytest

from test_tune_records import _digests, _job, _tune  # tests/ is on sys.path
from test_tune_trials_unwritable import refuse_writes


def _refused(capsys, tmp_path, storage, monkeypatch, out="new") -> str:
    monkeypatch.chdir(tmp_path)
    job = _job(tmp_path)
    before = _digests(tmp_path)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", storage, "--quiet")
    assert rc == 2 and io.err.count("\n") == 1 and "Traceback" not in io.err, io.err
    assert _digests(tmp_path) == before and not (tmp_path / out).exists()
    return io.err


@pytest.mark.parametrize("storage", ["sqlite:/e3.db", "sqlite:e3.db", "sqlite//e3.db", "SQLITE:///e3.db",
                                     "SQLite:/e3.db"])
def test_a_malformed_sqlite_url_names_the_url_meant(tmp_path, capsys, monkeypatch, storage):
    err = _refused(capsys, tmp_path, storage, monkeypatch)
    assert err.rstrip().endswith("pass --storage sqlite:///e3.db"), err


def test_a_malformed_sqlite_url_of_another_name_is_named_too(tmp_path, capsys, monkeypatch):
    err = _refused(capsys, tmp_path, "sqlite:/e3.sqlite3x", monkeypatch)
    assert err.rstrip().endswith("pass --storage sqlite:///e3.sqlite3x"), err


def test_a_journal_in_a_directory_named_sqlite_is_a_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sqlite").mkdir()
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", "s", "--storage", "sqlite//x.journal", "--quiet")
    assert rc == 0 and (tmp_path / "sqlite" / "x.journal").is_file(), io.err


def test_a_malformed_sqlite_url_of_an_absolute_path_names_it_absolute(tmp_path, capsys, monkeypatch):
    (tmp_path / "abs").mkdir()
    err = _refused(capsys, tmp_path, f"sqlite:{tmp_path}/abs/e.db", monkeypatch)
    assert err.rstrip().endswith(f"pass --storage sqlite:///{tmp_path}/abs/e.db"), err


def test_the_url_a_malformed_one_names_is_taken(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", "s", "--storage", "sqlite:///e3.db", "--quiet")
    assert rc == 0 and (tmp_path / "e3.db").is_file(), io.err


def test_a_misspelt_scheme_is_named_with_the_one_meant(tmp_path, capsys, monkeypatch):
    err = _refused(capsys, tmp_path, "sqlit:///e1.db", monkeypatch)
    assert "unknown storage scheme 'sqlit'; did you mean sqlite:///e1.db" in err, err
    assert "server" not in err, err


def test_a_db_path_in_a_missing_directory_says_it_is_missing(tmp_path, capsys, monkeypatch):
    err = _refused(capsys, tmp_path, "s6/study.db", monkeypatch)
    assert "s6 is missing" in err and "sqlite:///s6/study.db" in err, err


def test_an_sqlite_url_naming_a_journal_says_to_pass_it_as_a_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = _job(tmp_path)
    (tmp_path / "po").mkdir()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "po/s", "--storage", "po/shared.journal", "--quiet")
    assert rc == 0, io.err
    err = _refused(capsys, tmp_path / "po", "sqlite:///shared.journal", monkeypatch)
    assert "is an Optuna journal file" in err and "pass it as a path, --storage shared.journal" in err, err


@pytest.mark.parametrize("storage, what", [("imm/x.journal", "journal file"), ("sqlite:///imm/x.db", "database file")])
def test_an_unwritable_directory_is_said_alike_for_a_journal_and_an_sqlite_file(tmp_path, capsys, monkeypatch,
                                                                                storage, what):
    (tmp_path / "imm").mkdir()
    refuse_writes(monkeypatch, lambda p: os.path.basename(os.path.dirname(p)) == "imm")
    err = _refused(capsys, tmp_path, storage, monkeypatch)
    name = storage.rpartition("/")[2]
    assert f"cannot open it (cannot create {what} imm/{name}: imm is not a writable directory: Operation not " \
        "permitted); make it writable" \
        in err, err


@pytest.mark.parametrize("given, meant", [("psql://u@db.example/s", "postgresql://u@db.example/s"),
                                          ("postgres://u@db.example/s", "postgresql://u@db.example/s"),
                                          ("pg://u@db.example/s", "postgresql://u@db.example/s"),
                                          ("sqlite3:///e2.db", "sqlite:///e2.db")])
def test_another_name_of_a_database_is_named_with_its_scheme(tmp_path, capsys, monkeypatch, given, meant):
    """psql is PostgreSQL's client, not MySQL, however alike the names look."""
    err = _refused(capsys, tmp_path, given, monkeypatch)
    assert f"unknown storage scheme {given.split(':')[0]!r}; did you mean {meant}?" in err, err


@pytest.mark.parametrize("storage, said", [
    ("sqlite:", "--storage sqlite: names no database file; pass --storage sqlite:///NAME.db"),  # was a journal 'sqlite:'
    ("SQLite:/", "--storage SQLite:/ names no database file"),
    ("sqlite://x.db", "--storage sqlite://x.db is not a well-formed SQLite URL (SQLAlchemy's is sqlite:/// and the "
                      "file's path, sqlite:////ABS for an absolute one); pass --storage sqlite:///x.db"),
    ("file:///tmp/some%20dir/x.journal", "--storage file:///tmp/some%20dir/x.journal: a journal file is given as its "
                                         "path, not a file:// URL; pass --storage /tmp/some dir/x.journal"),
])
def test_an_sqlite_url_without_a_file_and_a_file_url_are_refused_naming_what_works(storage, said, tmp_path,
                                                                                    monkeypatch):
    from hpcflow.tune.storage import StorageError, check_storage_form

    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as refused:
        check_storage_form(storage)
    assert str(refused.value).startswith(said), refused.value
    assert list(tmp_path.iterdir()) == []
