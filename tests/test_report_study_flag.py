"""`hpcflow report TUNE RUN --study NAME` where the study directory given holds another study (its study.json names
it) wrote the report of RUN alone, listing TUNE as skipped, exit 0; README and build_report say that a --study that
none of the studies given holds is a one-line error, exit 2, nothing written. It is now, before any figure is
drawn; a study directory of another study beside one that holds NAME is still a skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, make_study, md_rows, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _study_dir(path, run_dir) -> str:
    """A tune directory of study 'table1_delta' (`make_study`) whose study.json records that name, as `hpcflow tune`
    writes it."""
    make_study(path, run_dir, [0.4, 2.0, 1.1])
    (path / "study.json").write_text(json.dumps({"study": "table1_delta", "storage": "study.journal"}))
    return str(path)


def test_a_study_flag_that_no_study_given_holds_is_one_line_exit_2(tmp_path, runs):
    tune = _study_dir(tmp_path / "tune1", runs["flow"])
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", tune, runs["flow"], "--study", "foo", "--out",
                           str(out)], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"hpcflow report: error: --study foo: {tune}: its study.json names study "
                                  "'table1_delta', not 'foo' of --study"), proc.stderr
    assert not out.exists()


def test_it_is_refused_before_any_figure_is_drawn_and_a_study_that_holds_it_is_reported(tmp_path, runs, monkeypatch):
    from hpcflow.errors import UserError
    from hpcflow.report import build

    tune = _study_dir(tmp_path / "tune1", runs["flow"])
    journal_only = tmp_path / "tune2"  # no study.json: its storage is asked for the study
    make_study(journal_only, runs["flow"], [1.0, 0.5])

    def drawn(*args, **kwargs):
        raise AssertionError("a figure was drawn")

    with monkeypatch.context() as m:
        m.setattr(build, "_run_product", drawn)
        for dirs in ([tune, runs["flow"]], [tune, str(journal_only), runs["flow"]]):
            with pytest.raises(UserError) as exc:
                build.build_report(dirs, tmp_path / "r", study_name="foo")
            assert exc.value.exit_status == 2
            said = str(exc.value)
            assert said.startswith(f"--study foo: {tune}: its study.json names study 'table1_delta'"), said
            assert (f"{journal_only}: no study 'foo'" in said) is (str(journal_only) in dirs), said
            assert not (tmp_path / "r").exists()
    other = tmp_path / "tune3"  # a study directory of study 'other', whose storage holds 'table1_delta' too
    make_study(other, runs["flow"], [1.0, 0.5])
    (other / "study.json").write_text(json.dumps({"study": "other", "storage": "study.journal"}))
    res = build.build_report([tune, str(other), runs["flow"]], tmp_path / "r", study_name="table1_delta")
    md = open(res["md"], encoding="utf-8").read()
    assert set(md_rows(md.split("## Runs")[1].split("\n## ")[0])) == {"tune1", "flow"}
    assert dict(res["skipped"])[str(other)].startswith("its study.json names study 'other', not 'table1_delta'")
    assert os.path.isfile(res["html"])
