"""--storage refusals before any work (exit 2, one line, nothing written): an in-memory SQLite database, which ends
with the worker, so that the study it holds could never be continued; and a file that an SQLite URL names which is
not an SQLite database (said as such, not as a server that does not answer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_tune_records import JOB  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def _tune(tmp_path, storage: str):
    (tmp_path / "tiny.toml").write_text(JOB)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "hpcflow", "tune", "tiny.toml", "--trials", "2", "--out", "s",
                           "--quiet", "--storage", storage], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("storage", ["sqlite:///:memory:", "sqlite:///file:m?mode=memory&cache=shared&uri=true",
                                     "sqlite+pysqlite:///:memory:"])
def test_an_in_memory_database_is_refused_before_any_trial(tmp_path, storage):
    done = _tune(tmp_path, storage)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == (f"hpcflow tune: error: --storage {storage} names an in-memory database, which ends with "
                           "this worker (no other worker sees it, and the study could never be continued); pass "
                           "--storage sqlite:///NAME.db (a file in the working directory; sqlite:////ABS for an "
                           "absolute path)\n"), done.stderr
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]  # no --out, no database file


@pytest.mark.parametrize("content", [b"SQLite format 3\n", b"not a database at all, not a journal either\n"])
def test_a_file_that_is_not_an_sqlite_database_is_said_to_be_one_and_kept(tmp_path, content):
    (tmp_path / "fake.db").write_bytes(content)
    done = _tune(tmp_path, "sqlite:///fake.db")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == ("hpcflow tune: error: --storage sqlite:///fake.db: fake.db is not an SQLite database; "
                           "pass another --storage\n"), done.stderr
    assert (tmp_path / "fake.db").read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.db", "tiny.toml"]


def test_an_empty_file_is_still_taken_as_a_new_sqlite_database(tmp_path):
    """SQLite makes its database in an empty file: that is no refusal."""
    (tmp_path / "new.db").write_bytes(b"")
    done = _tune(tmp_path, "sqlite:///new.db")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new.db").read_bytes().startswith(b"SQLite format 3\0")
