"""The analysis and report of the experiment job kinds (clustering, distance_scaling, noise_scan, local_limit): the
fix the report names for an incomplete run, Fig. 3 right's theory line and fits, damaged data refused, and what the
runs table shows of these kinds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis_runs import JOBS, ROOT, _run_job, env, forced, md_rows, script

K3_SCALING = JOBS["scaling"][1].replace("dim = 3", "dim = 2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{name: run directory} of small noise_scan, distance_scaling (quintic and K3), clustering and local_limit
    runs (a clustering run without fig2_distances.h5 too)."""
    root = str(tmp_path_factory.mktemp("experiment_runs"))
    extra = {"scaling_k3": ("run", K3_SCALING),
             "clustering_nofig": ("run", JOBS["clustering"][1] + "[quality]\nfig2 = false\n")}
    JOBS.update(extra)
    try:
        names = ("noise", "scaling", "scaling_k3", "clustering", "clustering_nofig", "local_limit")
        for name in names:
            proc = _run_job(root, name)
            assert proc.returncode == 0, f"{name}: {proc.stderr}"
    finally:
        for key in extra:
            JOBS.pop(key)
    return {name: os.path.join(root, name) for name in names}


def report(out, *dirs):
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, dirs), "--out", str(out)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(out, "report.md"), encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("name", ["noise", "scaling", "clustering", "local_limit"])
def test_incomplete_run_without_checkpoints_is_rerun_not_resumed(runs, tmp_path, name):
    """A run of a kind without checkpoints whose summary.json is gone: `hpcflow run --resume` refuses such a kind,
    so the report's fix is the rerun with --force."""
    copy = tmp_path / "cut"
    shutil.copytree(runs[name], copy)
    os.remove(copy / "summary.json")
    refused = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(copy / "job.toml"), "--out", str(copy),
                              "--resume"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "has no checkpoints" in refused.stderr
    status = md_rows(report(tmp_path / "rep", copy))["cut"][2]
    assert status.startswith("incomplete: no summary.json") and "--resume" not in status
    assert status.endswith(f"; {forced(copy)}"), status


def _legend(ax) -> list:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("name, dim, paper", [("scaling", 6, True), ("scaling_k3", 4, False)])
def test_fig3_scaling_theory_of_the_runs_manifold(runs, name, dim, paper):
    """The uniform-density exponent -1/D of the run's own manifold (the quintic: real dimension 6, K3: 4, as its
    summary.json's theory_b says), the paper's quintic fit drawn for the quintic alone, the fit of the mean on
    N >= fit_from drawn as the job computed it, and the distances labelled in radians."""
    from hpcflow.analysis import fig3_scaling

    with open(os.path.join(runs[name], "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["theory_b"] == pytest.approx(-1 / dim)
    data = fig3_scaling.load(runs[name])
    lines = fig3_scaling.numbers(data)
    assert f"uniform density on real dim {dim}: b=-1/{dim}" in lines
    assert not any("real dim" in line and f"dim {dim}:" not in line for line in lines)
    fig = fig3_scaling.plot(data)
    ax = fig.axes[0]
    assert any(label.startswith("paper") for label in _legend(ax)) is paper
    assert "rad" in ax.get_ylabel()
    tail = summary["fit_mean_from"]
    start = tail["fit_from"]
    drawn = [line for line in ax.get_lines() if line.get_label().startswith(f"fit N >= {start}")]
    assert len(drawn) == 1
    x, y = np.asarray(drawn[0].get_xdata()), np.asarray(drawn[0].get_ydata())
    assert x.min() >= start
    np.testing.assert_allclose(y, tail["a"] * x ** tail["b"], rtol=1e-9)


def test_fig2_colour_bar_in_radians(runs):
    from hpcflow.analysis import fig2

    fig = fig2.plot(fig2.load(runs["clustering"]))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars and "rad" in bars[0].get_ylabel()


def _nan_in_batched(path):
    with h5py.File(path, "r+") as f:
        d = f["distance_batched"][()]
        d[1, 2] = np.nan
        f["distance_batched"][...] = d


def _silhouette_5(path):
    with h5py.File(path, "r+") as f:
        f.attrs["silhouette_full"] = 5.0


def _mean_2(path):
    with h5py.File(path, "r+") as f:
        f["table/mean"][1] = 2.0  # > pi/2, the largest FS distance (eq. 3.2)


@pytest.mark.parametrize("name, file, spoil, figure, said", [
    ("clustering", "fig2_distances.h5", _nan_in_batched, "fig2_heatmaps", "dataset 'distance_batched' holds nan"),
    ("clustering", "fig2_distances.h5", _silhouette_5, "fig2_heatmaps", "attribute 'silhouette_full' holds 5.0"),
    ("scaling", "distances.h5", _mean_2, "fig3_scaling", "dataset 'table/mean' holds 2.0 at row 1"),
])
def test_values_out_of_range_refused(runs, tmp_path, name, file, spoil, figure, said):
    """A distance that is NaN or beyond pi/2, or a silhouette outside [-1, 1], is no value a run writes: one line
    naming the file and the dataset or attribute, the rerun, exit status 2, nothing written."""
    copy = tmp_path / "run"
    shutil.copytree(runs[name], copy)
    spoil(copy / file)
    proc = script(figure, copy, "--out", tmp_path / "figs")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(copy / file) in lines[0] and said in lines[0]
    assert lines[0].endswith(f"damaged; {forced(copy)}"), lines[0]
    assert not (tmp_path / "figs").exists()


def test_runs_table_shows_noise_scan_gains(runs, tmp_path):
    """A noise scan's row gives its gains at no noise and at the largest scale, as its summary.json's table holds
    them (the test gain of each level; the train gain, one train flow for every level)."""
    with open(os.path.join(runs["noise"], "summary.json"), encoding="utf-8") as fh:
        table = json.load(fh)["table"]
    quiet, loud = min(table, key=lambda r: r["scale"]), max(table, key=lambda r: r["scale"])
    assert quiet["scale"] == 0.0 and loud["scale"] == 0.1  # the job's [noise].scales ends
    cells = md_rows(report(tmp_path / "rep", runs["noise"]))["noise"]
    train, test = cells[8], cells[9]
    assert test == f"scale=0: {quiet['gain']:.4g}; scale=0.1: {loud['gain']:.4g}"
    assert train == f"scale=0: {quiet['gain_train']:.4g}; scale=0.1: {loud['gain_train']:.4g}"


def test_clustering_without_fig2_shows_its_silhouettes(runs, tmp_path):
    """A clustering run made with [quality].fig2 = false draws no heatmaps; its silhouettes, in its summary.json
    alone, are in the Fig. 2 section of the report, under its name."""
    with open(os.path.join(runs["clustering_nofig"], "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    text = report(tmp_path / "rep", runs["clustering_nofig"], runs["noise"])
    assert "## Fig. 2: FS distance heatmaps" in text
    assert text.index("## Fig. 2") < text.index("## Fig. 3 left")  # in its place among the sections
    for method in ("batched", "full", "birch"):
        value = summary[f"silhouette_{method}"]
        assert f"clustering_nofig: silhouette_{method}: {value:.4f}" in text
