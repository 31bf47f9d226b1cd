"""A study whose only trial's worker was killed is counted alike in every line that counts its trials: the runs
table's row, the report's "Skipped" lines and analysis/optuna_view.py's refusal say "interrupted" (the storage's
RUNNING, its worker gone), never "running" in one place and "interrupted" in another."""

from __future__ import annotations

import os
import subprocess
import sys

from analysis_runs import ROOT, env, md_rows
from test_report_trial_advice import _dies
from test_tune_records import JOB, _job


def test_a_killed_workers_trial_is_interrupted_in_the_row_the_skipped_lines_and_optuna_view(tmp_path):
    from hpcflow.report.build import build_report

    job = _job(tmp_path, JOB.replace("[tune]\n", "[checkpoint]\nevery = 1\n[tune]\n"))
    out = tmp_path / "s"
    _dies(["tune", str(job), "--trials", "1", "--out", str(out)])
    res = build_report([str(out)], tmp_path / "r")
    md = open(res["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["s"]
    assert row[2].startswith("1 trial: 1 interrupted (trial 0 RUNNING in the storage"), row[2]
    skipped = [r for p, r in res["skipped"] if p == str(out)]
    assert len(skipped) == 2 and all("(trials: 1 interrupted)" in r for r in skipped), skipped
    assert "running)" not in md, md

    p = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "optuna_view.py"), str(out), "--out",
                        str(tmp_path / "v")], env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "0 completed trial(s) (trials: 1 interrupted)" in p.stderr, p.stderr
