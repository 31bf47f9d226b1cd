"""docs/outputs.md on a tune trial's wall time: a trial that continued a preempted trial's checkpoint (`resumed`
true, of a flow trial as of an nn one) has two legs, and its `wall_seconds_total` is their sum, more than its
`wall_seconds` (the doc said a trial runs as one leg, so the two were equal)."""

from __future__ import annotations

import json
import os
import re
import time

from analysis_runs import ROOT

DOC = os.path.join(ROOT, "docs", "outputs.md")


def _tune_section() -> str:
    text = open(DOC, encoding="utf-8").read()
    start = text.index("\n## summary.json of a tune trial")
    return text[start:text.index("\n## ", start + 1)]


def test_a_continued_trials_wall_seconds_total_is_its_legs_sum(tmp_path):
    """The code: the earlier leg's 5 s plus the trial's own seconds (about 3 s here), not the trial's alone."""
    from hpcflow.tune.trial import _write_summary

    summary = {"legs": [{"wall_seconds": 5.0}, {"wall_seconds": 2.0}], "wall_seconds_total": 0.0}
    got = _write_summary(str(tmp_path), summary, "flow", [1, 2], [], time.perf_counter() - 3.0, None)
    assert got["wall_seconds"] >= 3.0
    assert abs(got["wall_seconds_total"] - (5.0 + got["wall_seconds"])) < 1e-9, got
    assert json.loads((tmp_path / "summary.json").read_text())["wall_seconds_total"] > got["wall_seconds"]


def test_outputs_md_says_a_continued_trial_sums_its_legs_and_flow_trials_continue_too():
    section = _tune_section()
    row = next(line for line in section.splitlines() if line.startswith("| `wall_seconds_total`"))
    assert "runs as one leg, so it equals" not in row, row
    assert "continued" in row and "sum" in row and "more than `wall_seconds`" in row, row
    intro = " ".join(section.split("| key |")[0].split())
    assert "an nn trial's `resumed`" not in intro, intro
    assert re.search(r"`resumed`, of a flow trial as of an nn one", intro), intro
