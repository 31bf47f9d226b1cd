"""A trial's directory reported beside its study: its row was named '0001' alone, and Table 1 listed its run twice
(as the study's best trial and again as '0001'). It is named with its study now, `tune/trials/0001`, and Table 1 has
its run once, as the study's best trial; a trial that is not the best keeps its own row."""

from __future__ import annotations

import json
import shutil

import pytest

from analysis_runs import make_study, md_rows, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_trial_beside_its_study_is_named_with_it_and_is_one_row_of_table_1(tmp_path, runs):
    from hpcflow.report.build import build_report

    tune = tmp_path / "tune"
    make_study(tune, "trials/0001", [0.4, 2.0, 1.1])  # trial 1 is the best
    (tune / "study.json").write_text(json.dumps({"study": "table1_delta", "storage": "study.journal"}))
    for n in ("0001", "0002"):
        shutil.copytree(runs["flow"], tune / "trials" / n)
    res = build_report([str(tune), str(tune / "trials" / "0001"), str(tune / "trials" / "0002")], tmp_path / "r")
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    assert set(md_rows(md.split("## Runs")[1].split("\n## ")[0])) == {"tune", "tune/trials/0001", "tune/trials/0002"}
    table1 = md_rows(md.split("## Table 1")[1].split("\n## ")[0])
    assert set(table1) == {"tune: table1_delta trial 1", "tune/trials/0002"}, table1
    assert "tune/trials/0001 [delta]: sigma train" in md  # the sigma histories name it so too
