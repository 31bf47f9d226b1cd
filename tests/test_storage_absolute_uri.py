"""`absolute_storage` makes a relative SQLite --storage name the same database from any working directory, as
SQLAlchemy opens it: also SQLite's own URI form (`sqlite:///file:REL?uri=true`, relative to the working directory,
which stayed relative) and `sqlite:///file:NAME` without uri=true (SQLAlchemy opens the file named `file:NAME`).
Each URL is opened by SQLAlchemy in one directory, its absolute form in another: the same file, none made there."""

from __future__ import annotations

import os

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")

from hpcflow.tune.storage import absolute_storage  # noqa: E402


def _write(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("create table marker (x int)"))
            conn.commit()
    finally:
        engine.dispose()


def _tables(url: str) -> list:
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url, made", [
    ("sqlite:///file:rel.db?uri=true", "rel.db"),
    ("sqlite:///file:sub%20dir/r.db?mode=rwc&uri=True", "sub dir/r.db"),
    ("sqlite+pysqlite:///file:./p.db?uri=1", "p.db"),
    ("sqlite:///file:named.db", "file:named.db"),
    ("sqlite:///plain.db?timeout=20", "plain.db"),
])
@pytest.mark.parametrize("here", ["here", "odd %41 #dir?"])
def test_the_absolute_url_opens_the_same_file_from_elsewhere(tmp_path, monkeypatch, url, made, here):
    first, other = tmp_path / here, tmp_path / "elsewhere"
    (first / "sub dir").mkdir(parents=True)
    other.mkdir()
    monkeypatch.chdir(first)
    _write(url)
    assert os.path.isfile(first / made)
    absolute = absolute_storage(url)
    assert absolute != url
    monkeypatch.chdir(other)
    assert _tables(absolute) == ["marker"]
    assert os.listdir(other) == []


@pytest.mark.parametrize("url", ["sqlite:///file::memory:?uri=true",
                                 "sqlite:///file:m?mode=memory&cache=shared&uri=true",
                                 "sqlite:///file:/abs/x.db?uri=true", "sqlite:///:memory:", "sqlite://",
                                 "postgresql://u@h/db"])
def test_a_database_in_memory_or_absolute_or_elsewhere_is_kept(url):
    assert absolute_storage(url) == url


def test_an_upper_case_scheme_is_kept_as_sqlalchemy_refuses_it():
    """SQLAlchemy's dialect names are lower case: SQLITE:/// names no database it opens, so nothing is made of it."""
    with pytest.raises(sqlalchemy.exc.NoSuchModuleError):
        sqlalchemy.create_engine("SQLITE:///x.db")
    assert absolute_storage("SQLITE:///x.db") == "SQLITE:///x.db"
