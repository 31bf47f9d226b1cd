"""A preempted trial's directory inside a study: the report's advice is what continues it (the study's retry, queued
for its next `hpcflow tune` or run as another trial), never `--resume`, which `hpcflow run` refuses there."""

from __future__ import annotations

from hpcflow.cli import main
from test_tune_continue import _preempted_study
from test_tune_records import _tune


def _status(path, out) -> str:
    from analysis_runs import md_rows
    from hpcflow.report.build import build_report

    res = build_report([str(path)], out)
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    return md_rows(md.split("## Runs")[1].split("\n## ")[0])[path.name][2]


def test_a_preempted_trial_is_said_to_be_continued_by_the_study_not_by_resume(tmp_path, capsys, monkeypatch):
    """`hpcflow report S/trials/0000` said "preempted ...; continue it with --resume", which `hpcflow run --resume`
    refuses inside a study. Now: queued to be continued as trial 1 by the study's `hpcflow tune`; once that ran,
    continued as trial 1 in S/trials/0001, the directory holding the result."""
    job, out = _preempted_study(tmp_path, capsys, monkeypatch)
    trial = out / "trials" / "0000"
    capsys.readouterr()
    assert main(["run", str(trial / "job.toml"), "--out", str(trial), "--resume", "--quiet"]) == 2
    assert "lies inside" in capsys.readouterr().err  # what the old advice led to
    status = _status(trial, tmp_path / "r1")
    assert status.startswith("incomplete: preempted"), status
    assert "--resume" not in status.split(";", 1)[1], status
    assert status.endswith(f"trial 0 of the study in {out}, queued to be continued as trial 1 by `hpcflow tune {job} "
                           f"--trials N --out {out}`"), status
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0 and "trial 1 continues preempted trial 0" in io.out, io.err
    status = _status(trial, tmp_path / "r2")
    assert status.endswith(f"trial 0 of the study in {out}, continued by the study as trial 1 "
                           f"({out / 'trials' / '0001'}): report that directory"), status
    assert _status(out / "trials" / "0001", tmp_path / "r3") == "finished"
