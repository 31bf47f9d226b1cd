"""The runs table's wall-time column is one quantity in every row, the whole run's seconds summed over its legs, and
its heading says so: a run resumed once (two legs) shows its earlier leg's recorded seconds plus its last leg's, as
summary.json or checkpoint.h5 records them, never the last leg's alone."""

from __future__ import annotations

import json
import os
import shutil

from hpcflow.report.runs_table import COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--set", "flow.steps=4", "--set", "geometry.n_train=200", "--set", "geometry.n_test=200",
         "--set", "clustering.batch_size=100", "--set", "checkpoint.every=2", "--quiet"]


def _resumed(tmp_path):
    """A quickstart flow run of 4 steps extended with --resume to 6: two legs."""
    from hpcflow.cli import main

    d = tmp_path / "resumed"
    job = os.path.join(ROOT, "jobs", "quickstart.toml")
    assert main(["run", job, "--out", str(d), *SMALL]) == 0
    assert main(["run", str(d / "job.toml"), "--out", str(d), "--resume", *SMALL, "--set", "flow.steps=6"]) == 0
    return d


def _cell(d) -> str:
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    return row(detect(str(d)))[COLUMNS.index(next(c for c in COLUMNS if c.startswith("wall time")))]


def test_the_wall_time_heading_says_its_cells_are_summed_over_legs():
    assert [c for c in COLUMNS if c.startswith("wall time")] == ["wall time [s], all legs"]


def test_the_wall_time_column_is_the_sum_over_legs_its_heading_promises(tmp_path):
    d = _resumed(tmp_path)
    s = json.loads((d / "summary.json").read_text())
    legs = s["legs"]
    assert len(legs) == 2 and legs[0]["to_step"] == legs[1]["from_step"], legs
    # the earlier leg as recorded, the last to the end of its summary.json
    whole = legs[0]["wall_seconds"] + s["wall_seconds"]
    assert _cell(d) == f"{whole:.4g} (2 legs)"
    # a summary of the two legs that holds the last leg's wall_seconds alone (no wall_seconds_total) is summed
    # alike: the column never shows one leg's seconds beside '(2 legs)'
    older = tmp_path / "older"
    shutil.copytree(d, older)
    s.pop("wall_seconds_total")
    (older / "summary.json").write_text(json.dumps(s))
    assert legs[0]["wall_seconds"] > 0 and f"{s['wall_seconds']:.4g}" != f"{whole:.4g}"
    assert _cell(older) == f"{whole:.4g} (2 legs)"
