"""The README's line on inputs given twice: the analysis scripts take a run directory or its data file, `hpcflow
report` directories alone (it refuses a data file). It read as if the report took a data file too ("... or as a run
directory and its own data file) is read once ..., as `hpcflow report` reports it once")."""

from __future__ import annotations

import os

import pytest

from analysis_runs import ROOT


def _paragraph() -> str:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    at = text.index("An input of these scripts given twice")
    start, end = text.rindex("\n\n", 0, at), text.index("\n\n", at)
    return " ".join(text[start:end].split())


def test_report_refuses_a_data_file_as_the_readme_says(tmp_path):
    from hpcflow.errors import InputFileError
    from hpcflow.report import build_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.h5").write_bytes(b"")
    with pytest.raises(InputFileError, match="not a directory; give run or tune directories"):
        build_report([str(run / "checkpoint.h5")], str(tmp_path / "R"))
    para = _paragraph()
    assert "as `hpcflow report` reports it once" not in para, para
    said = para.split("`hpcflow report`", 1)
    assert len(said) == 2 and "directories alone" in said[1].split(".")[0], para
