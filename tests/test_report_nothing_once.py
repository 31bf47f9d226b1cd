"""`hpcflow report DIR` of a directory holding only a study.json (its journal gone): the one-line refusal names DIR
once ("nothing to report: DIR: DIR: no study.journal" said it twice)."""

from __future__ import annotations

import json

import pytest


def test_a_study_json_without_its_journal_is_refused_naming_the_directory_once(tmp_path):
    from hpcflow.errors import UserError
    from hpcflow.report import build_report

    d = tmp_path / "fakestudy"
    d.mkdir()
    (d / "study.json").write_text(json.dumps({"study": "s", "storage": "study.journal", "job": "/x/job.toml"}))
    with pytest.raises(UserError) as err:
        build_report([str(d)], str(tmp_path / "R"))
    text = str(err.value)
    assert text.startswith(f"nothing to report: {d}: no study.journal"), text
    assert text.count(str(d)) == 1, text
    assert not (tmp_path / "R" / "report.md").exists()
