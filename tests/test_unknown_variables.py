"""An HPCFLOW_* variable hpcflow does not read (a misspelt HPCFLOW_BACKEND=cupy ran on NumPy, unsaid) is named in one
line on stderr with the variable it resembles, once, by the first rank; the variables hpcflow, its sbatch templates
and its tests use are never named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpcflow import resources
from hpcflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: misspellings of HPCFLOW_BACKEND and HPCFLOW_THREADS (written apart, so that the scan below does not read them)
BACKNED, THREAD = "HPCFLOW_" + "BACKNED", "HPCFLOW_" + "THREAD"


@pytest.fixture
def fresh(monkeypatch):
    """Nothing said yet in this process; the thread variable a run sets is unset again after the test."""
    monkeypatch.setattr(resources, "_UNKNOWN_SAID", False, raising=False)
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.delenv("HPCFLOW_THREADS")


def test_a_misspelt_variable_is_named_with_the_one_it_resembles(tmp_path, monkeypatch, capsys, fresh):
    monkeypatch.setenv(BACKNED, "cupy")
    monkeypatch.setenv(THREAD, "abc")
    argv = ["run", str(ROOT / "jobs" / "quickstart.toml"), "--out", str(tmp_path / "out"), "--check"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpcflow: warning: "), err
    assert f"{BACKNED} (did you mean HPCFLOW_BACKEND?)" in err[0] and f"{THREAD} (did you mean HPCFLOW_THREADS?)" \
        in err[0], err
    assert main(argv) == 0 and capsys.readouterr().err == ""  # once a process


def test_only_the_first_rank_says_it(monkeypatch, capsys, fresh):
    resources.say_unknown_variables({BACKNED: "cupy", "PMI_RANK": "1"})
    assert capsys.readouterr().err == ""
    resources.say_unknown_variables({BACKNED: "cupy", "PMI_RANK": "0"})
    assert BACKNED in capsys.readouterr().err


def test_every_variable_the_repository_uses_is_known(tmp_path, monkeypatch, capsys, fresh):
    used = set()
    for folder in ("hpcflow", "slurm", "tests", "benchmarks", "analysis", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", ".sbatch", "") and "__pycache__" not in path.parts:
                used |= set(re.findall(r"HPCFLOW_[A-Z][A-Z_]*[A-Z]", path.read_text(errors="replace")))
    assert {"HPCFLOW_THREADS", "HPCFLOW_MPI", "HPCFLOW_PYTHON"} <= used  # (the scan reads the templates too)
    assert resources.unknown_variables_note({name: "1" for name in used}) is None, used


def test_an_internal_variable_is_read_but_never_offered(fresh):
    """HPCFLOW_STEP_SIGNALS, which an sbatch template's step sets for its tasks, is taken silently and is not among
    the names offered to a user's misspelt one (it was listed, documented nowhere)."""
    assert resources.unknown_variables_note({"HPCFLOW_STEP_SIGNALS": "/tmp/step"}) is None
    note = resources.unknown_variables_note({BACKNED: "cupy"})
    assert "HPCFLOW_STEP_SIGNALS" not in note and "HPCFLOW_BACKEND, " in note, note


@pytest.mark.parametrize("name", ["HPCFLOW_X", "HPCFLOW_" + "GPU", "HPCFLOW_"])  # (apart: the scan above)
def test_a_name_close_to_none_gets_no_guess_but_the_known_ones(name, fresh):
    """HPCFLOW_X was asked "did you mean HPCFLOW_CI?": every name shares HPCFLOW_, which made any two alike."""
    note = resources.unknown_variables_note({name: "1"})
    assert note.startswith(f"hpcflow: warning: {name}: not a variable hpcflow reads") and "did you mean" not in note
    assert note.endswith("the ones it knows are " + ", ".join(resources.KNOWN_VARIABLES)), note


@pytest.mark.parametrize("name, known", [("HPCFLOW_" + "threads", "HPCFLOW_THREADS"),
                                         ("HPCFLOW_" + "Backned", "HPCFLOW_BACKEND")])
def test_a_name_in_other_case_gets_the_known_one(name, known, fresh):
    """HPCFLOW_threads=1 was named with no guess: the names are compared in upper case, as they are known."""
    note = resources.unknown_variables_note({name: "1"})
    assert note.startswith(f"hpcflow: warning: {name} (did you mean {known}?): not a variable hpcflow reads"), note
