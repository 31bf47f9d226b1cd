"""Study storages that analysis cannot open (a file that is no database, an empty or foreign SQLite file, an unknown
scheme, a database driver not installed): one line naming the URL and the fix, exit 2, nothing written into the
storage; in `hpcflow report` the study is a skipped entry and an 'unreadable' row."""

from __future__ import annotations

import json
import sqlite3

import pytest

from analysis_runs import make_study, md_rows

pytest.importorskip("matplotlib")


def _not_a_database(tmp):
    path = tmp / "summary.json"
    path.write_text(json.dumps({"status": "finished"}))
    return f"sqlite:///{path}", "is not a readable SQLite database"


def _empty_file(tmp):
    (tmp / "e.db").write_bytes(b"")
    return f"sqlite:///{tmp}/e.db", "not an Optuna database (it has no table 'studies')"


def _foreign_database(tmp):
    conn = sqlite3.connect(tmp / "other.db")
    conn.execute("CREATE TABLE results (x REAL)")
    conn.commit()
    conn.close()
    return f"sqlite:///{tmp}/other.db", "not an Optuna database (it has no table 'studies')"


def _unknown_scheme(tmp):
    return "notascheme://x", "SQLAlchemy knows no database 'notascheme'"


def _driver_missing(tmp):
    pytest.importorskip("sqlalchemy")
    for module in ("psycopg", "psycopg2"):  # SQLAlchemy's drivers for postgresql://, not installed here
        try:
            __import__(module)
            pytest.fail(f"{module} is installed: postgresql:// would reach for a server")
        except ImportError:
            pass
    return "postgresql://u:secret@db/x", "the database driver is not installed"


CASES = {"not_a_database": _not_a_database, "empty_file": _empty_file, "foreign_database": _foreign_database,
         "unknown_scheme": _unknown_scheme, "driver_missing": _driver_missing}


def _files(tmp) -> dict:
    return {p.name: p.read_bytes() for p in tmp.iterdir() if p.is_file()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_storage_that_cannot_be_opened_is_one_line_exit_2_and_left_as_it_was(tmp_path, capsys, case):
    """optuna_view.py and table1.py: one line naming the URL (its password masked) and the fix, exit 2; the files
    beside it unchanged (Optuna's tables were created in an empty SQLite file, and the others were tracebacks)."""
    from hpcflow.analysis.script import main

    store = tmp_path / "store"
    store.mkdir()
    url, words = CASES[case](store)
    before = _files(store)
    for name in ("optuna_view", "table1"):
        assert main(name, [url, "--out", str(tmp_path / "F")]) == 2
        err = capsys.readouterr().err
        shown = url.replace(":secret@", ":***@")
        assert err.count("\n") == 1 and f"{name}: error: {shown}: " in err and words in err, err
        assert "secret" not in err and "pass a tune directory" in err
    assert _files(store) == before and not (tmp_path / "F").exists()


def test_a_study_directory_whose_storage_cannot_be_opened_is_a_skipped_entry_in_the_report(tmp_path, capsys):
    """study.json naming an SQLite file that is no Optuna database (ImportError and NoSuchModuleError alike): the
    report is written (with a study that reads), the unreadable study's row reads 'unreadable: ...' naming the
    directory and the URL, said once there (it was a traceback, exit 1)."""
    from hpcflow.cli import main

    url, words = _empty_file(tmp_path)
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "study.json").write_text(json.dumps({"study": "x", "storage": url}))
    (tmp_path / "U").mkdir()
    (tmp_path / "U" / "study.json").write_text(json.dumps({"study": "x", "storage": "notascheme://x"}))
    make_study(tmp_path / "ok", "trials/0000", [0.5])  # a study that reads, with a trial: a row to show
    assert main(["report", *(str(tmp_path / d) for d in ("S", "U", "ok")), "--out", str(tmp_path / "R")]) == 0
    assert (tmp_path / "e.db").read_bytes() == b""
    md = (tmp_path / "R" / "report.md").read_text()
    rows = md_rows(md.split("## Runs")[1].split("\n## ")[0])
    for name, said in (("S", words), ("U", "SQLAlchemy knows no database 'notascheme'")):
        status = rows[name][2]
        assert status.startswith(f"unreadable: {tmp_path / name}: its study.json names the storage ") and said in \
            status, status
        skipped = [line for line in md.splitlines() if line.startswith(f"- `{tmp_path / name}`")]
        assert skipped == [], skipped  # its row says why, once (its figures and Table 1 repeated it)
