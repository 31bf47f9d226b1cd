"""A scan's data file whose own content is damaged is reported as damaged, with '-' gains, before anything its
summary.json says: a noise_scan.h5 gain that is NaN at a level that ran through was said damaged in the row's status
while the gain cells still showed numbers; a gain <= 0 (local_limit.h5 or noise_scan.h5) was reported as a summary.json
that disagrees with its file, with gains, and a NaN in another row then went unmentioned; a noise_scan.h5 whose level
histories do not fit its table (a level's group gone, a history cut short, steps beyond [flow].steps) was "finished",
its Fig. 3 drawn. Every damage names the rerun fix (a table column of another length too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from analysis_runs import JOBS, ROOT, env, forced, md_rows

pytest.importorskip("matplotlib")
FILES = {"noise": "noise_scan.h5", "local_limit": "local_limit.h5"}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """{kind: run directory} of a small noise scan (3 scales, 4 steps) and local_limit run (2 widths, 3 steps)."""
    base = tmp_path_factory.mktemp("scans")
    out = {}
    for kind in FILES:
        job = base / f"{kind}.toml"
        job.write_text(JOBS[kind][1], encoding="utf-8")
        out[kind] = base / kind
        subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out[kind])], cwd=ROOT,
                       env=env(), check=True, capture_output=True, timeout=300)
    return out


def _altered(whole, kind, tmp_path, change) -> str:
    import h5py

    d = shutil.copytree(whole[kind], tmp_path / kind)
    with h5py.File(os.path.join(d, FILES[kind]), "a") as f:
        change(f)
    return str(d)


def _set(name, i, value):
    """Entry i of dataset `name` set to `value`; with i None, the dataset (or group) replaced by `value` (None: gone)."""
    def change(f):
        if i is not None:
            f[name][i] = value
            return
        del f[name]
        if value is not None:
            f[name] = value
    return change


def _row(path):
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    info = detect(path)
    return info, row(info)


def _report(*args):
    return subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)


def test_the_whole_runs_are_finished_with_gains(whole):
    for kind in FILES:
        info, row = _row(str(whole[kind]))
        assert row[2] == "finished" and row[8] != "-" and row[9] != "-", row


def _cut(name, n):
    def change(f):
        values = f[name][()][:n]
        del f[name]
        f[name] = values
    return change


@pytest.mark.parametrize("kind, change, says", [
    ("noise", _set("table/gain", 1, np.nan), "dataset 'table/gain' holds nan at level 1"),
    ("noise", _set("table/gain", 1, np.inf), "dataset 'table/gain' holds inf at level 1"),
    ("noise", _set("table/gain", 1, -2.0), "dataset 'table/gain' holds -2.0 at level 1, not a gain > 0"),
    ("local_limit", _set("table/gain_train", 1, -2.0), "dataset 'table/gain_train' holds -2.0 at row 1"),
    ("noise", _set("scale_2", None, None), "no dataset 'scale_2/sigma_train'"),
    ("noise", _cut("scale_1/sigma_test", 2),
     "dataset 'scale_1/sigma_test' holds 2 values, but table/steps_taken gives 4 steps at level 1"),
    ("noise", _set("table/steps_taken", None, np.array([4, 5, 4])),
     "dataset 'table/steps_taken' holds 5 at level 1, not a count of steps taken from 0 to [flow].steps = 4"),
    ("noise", _set("table/scale", None, np.array([0.0, 0.01])), "datasets of one table have different lengths"),
])
def test_a_damaged_scan_file_is_damaged_with_no_gains(whole, tmp_path, kind, change, says):
    d = _altered(whole, kind, tmp_path, change)
    info, row = _row(d)
    assert not info.complete and info.damaged, info
    assert row[2].startswith(f"incomplete: {FILES[kind]} damaged: {says}"), row[2]
    assert row[2].endswith(f"; {forced(d)}") and "pass the run directory" not in row[2], row[2]
    assert row[8:10] == ["-", "-"], row


def test_damage_in_the_file_is_said_before_a_summary_that_disagrees(whole, tmp_path):
    """Row 0's gain changed to another positive number (the summary then disagrees) and row 1's made NaN."""
    def change(f):
        f["table/gain_train"][0] = 2.0
        f["table/gain_train"][1] = np.nan

    info, row = _row(_altered(whole, "local_limit", tmp_path, change))
    assert row[2].startswith("incomplete: local_limit.h5 damaged: dataset 'table/gain_train' holds nan at row 1"), row
    assert "inconsistent" not in row[2] and row[8:10] == ["-", "-"], row


@pytest.mark.parametrize("kind, name", [("noise", "table/gain"), ("local_limit", "table/gain_train")])
def test_a_scan_with_a_gain_below_zero_is_refused_alone_and_a_dash_row_beside_another(whole, tmp_path, kind, name):
    d = _altered(whole, kind, tmp_path, _set(name, 1, -2.0))
    proc = _report(d, "--out", tmp_path / "R")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "nothing to report" in err and FILES[kind] in err, err
    other = "local_limit" if kind == "noise" else "noise"
    proc = _report(d, whole[other], "--out", tmp_path / "R2")
    assert proc.returncode == 0, proc.stderr
    row = md_rows((tmp_path / "R2" / "report.md").read_text())[os.path.basename(d)]
    assert f"{FILES[kind]} damaged" in row[2] and row[8:10] == ["-", "-"], row
