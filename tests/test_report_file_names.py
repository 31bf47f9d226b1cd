"""The PNG file names of a report take a run's name with the characters a copy to another system cannot hold (a line
break and other control characters; < > : " | ? * and the path separators, which Windows refuses) as '_'; the name
itself is kept in the captions; names alike but for those characters still give distinct files."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


#: what a file name copied to Windows (or most other systems) cannot hold
REFUSED = re.compile(r'[<>:"|?*\\/\x00-\x1f\x7f]')


def test_png_names_of_odd_run_names_hold_no_refused_character_and_stay_distinct(tmp_path, runs):
    from hpcflow.report import build_report

    odd = ["new\nline", 'a<b>:"|?*\tc', 'a>b<:"|?*\tc', "bell\x07"]  # the middle two alike but for such characters
    dirs = [shutil.copytree(runs["flow"], tmp_path / "in" / name) for name in odd]
    out = tmp_path / "R"
    build_report([os.fspath(d) for d in dirs], out)
    pngs = [n for n in os.listdir(out) if n.endswith(".png")]
    per_rank = [n for n in pngs if n.startswith("per_rank_")]
    assert len(per_rank) == len(odd), pngs  # one per run, none overwritten
    assert not [n for n in pngs if REFUSED.search(n)], pngs
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "*new\\\\nline [delta]*" in md.replace("\\[", "[").replace("\\]", "]")  # the name in its caption
    assert "(per_rank_new_line.png)" in md


def test_file_part_keeps_a_name_that_any_system_holds():
    from hpcflow.analysis.products import file_part

    assert file_part("日本 x-1.5_a") == "日本 x-1.5_a"
    assert file_part('odd/日本\r\n<x>:"y"|?*\\z\x7f') == "odd_日本___x___y_____z_"
