"""Noise levels whose noised test points all fail are levels without a test gain, not stopped flows: their flows take
every step with the train points alone, and the exit line, summary.json and noise_scan.h5 say so; Fig. 3 left draws
nothing for them and says so in the scan's legend entry, which also says whether the test points were projected onto X
or left off X."""

from __future__ import annotations

import json

import h5py
import matplotlib
import numpy as np

from analysis_runs import JOBS

matplotlib.use("Agg")


def _run(tmp_path, name, *sets):
    from hpcflow.cli import main

    job = tmp_path / "noise.toml"
    job.write_text(JOBS["noise"][1])
    out = tmp_path / name
    args = ["run", str(job), "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    return main(args), out


def test_levels_without_test_points_are_not_called_stopped_flows(tmp_path, capsys):
    rc, out = _run(tmp_path, "few", "noise.max_newton=1")
    assert rc == 3
    err = capsys.readouterr().err
    with h5py.File(out / "noise_scan.h5", "r") as f:
        taken = f["table/steps_taken"][()]
        hist = [len(f[f"scale_{i}/sigma_train"][()]) - 1 for i in range(3)]
        n_points = [len(f[f"scale_{i}/points"][()]) for i in range(3)]
        attr = f.attrs["stopped"]
    assert n_points == [80, 0, 0]
    assert list(taken) == hist == [4, 4, 4]  # every level's flow took all [flow].steps = 4
    s = json.loads((out / "summary.json").read_text())
    assert s["stopped"] == attr
    for text in (s["stopped"], err):
        assert "flows of" not in text and "last finite step" not in text, text
        assert "2 of 3 scales have no test gain (scale 0.01: no test gain: 0 of 80" in text, text
        assert "scale 0.1: no test gain" in text and "steps taken: 4, 4" in text, text


def test_fig3_legend_says_projection_and_missing_levels_without_a_stop_entry(tmp_path):
    from hpcflow.analysis import fig3_noise

    _, few = _run(tmp_path, "few", "noise.max_newton=1")
    _, off = _run(tmp_path, "off", "noise.project=false")
    fig = fig3_noise.plot([fig3_noise.load(few), fig3_noise.load(off)])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["delta, projected onto X (few); no test points left at scale 0.01, 0.1",
                     "delta, left off X (off)"], texts
    drawn = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "x"]
    assert all(np.isfinite(ln.get_ydata()).all() for ln in drawn)
