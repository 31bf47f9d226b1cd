"""Job kind "clustering" (Fig. 2, §3.1) through `hpcflow run`: summary, Fig. 2 data, bad input -> exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from hpcflow.cli import main
from hpcflow.geometry import fs_distance
from roundoff import fs_distance_error

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "clustering"
[points]
n_points = {n}
seed = 2
[clustering]
n_clusters = {k}
batch_size = {b}
seed = 1
"""


def _write(tmp_path, n=240, k=4, b=60, extra=""):
    path = tmp_path / "job.toml"
    path.write_text(JOB.format(n=n, k=k, b=b) + extra)
    return str(path)


def test_clustering_job_writes_silhouettes_and_fig2_data(tmp_path):
    out = str(tmp_path / "run")
    assert main(["run", _write(tmp_path), "--out", out]) == 0
    with open(os.path.join(out, "summary.json")) as fh:
        summary = json.load(fh)
    assert summary["n_batches"] == 4 and summary["n_points"] == 240
    with h5py.File(os.path.join(out, "fig2_distances.h5")) as f:
        z, d = f["points"][()], f["distance"][()]
        labels = {m: f[f"labels/{m}"][()] for m in ("batched", "full", "birch")}
        ob, dob = f["order/batched"][()], f["distance_batched"][()]
        dof = f["distance_full"][()]
    ref = fs_distance(z)  # the matrix of the stored points, up to the rounding of a differently tiled product
    assert np.all(np.abs(d - ref) <= 2 * fs_distance_error(ref))
    for m, lab in labels.items():
        ref = silhouette_score(fs_distance(z), lab, metric="precomputed")
        assert summary[f"silhouette_{m}"] == pytest.approx(ref, abs=1e-12)
        assert sum(summary[f"cluster_sizes_{m}"]) == 240
    np.testing.assert_array_equal(np.sort(ob), np.arange(240))
    assert np.all(np.diff(labels["batched"][ob]) >= 0)  # ordered cluster by cluster
    np.testing.assert_array_equal(dob, d[np.ix_(ob, ob)])
    assert np.allclose(np.sort(dof.ravel()), np.sort(d.ravel()))


@pytest.mark.parametrize("n, k, b, match", [
    (240, 70, 60, "n_clusters = 70"),  # k larger than a mini-batch
    (240, 4, 1, "batch_size = 1"),    # B < 2
    (0, 4, 60, "n_points = 0"),       # empty point set
])
def test_bad_clustering_job_exits_2_without_results(tmp_path, capsys, n, k, b, match):
    out = tmp_path / "run"
    assert main(["run", _write(tmp_path, n, k, b), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before the output directory is created


@pytest.mark.parametrize("n, k, b, extra, key", [
    (10, 10, 10, "", "[clustering].n_clusters = 10 with [points].n_points = 10"),  # every point its own cluster
    (240, 4, 60, "birch_threshold = 3.0\n", "[clustering].birch_threshold = 3"),  # Birch finds one subcluster
    (240, 4, 60, "[quality]\nsample_size = 1\n", "[quality].sample_size = 1"),  # no standard error of one row
])
def test_a_clustering_without_a_silhouette_is_refused_naming_the_file_and_key(tmp_path, capsys, n, k, b, extra, key):
    """A silhouette needs 2 <= clusters <= N - 1: n_clusters = N is refused before any work, a Birch threshold that
    leaves one cluster right after Birch (the cheap method, run first): one line naming the job file and the key
    (the message used to be 'silhouette needs 2 <= number of clusters <= N-1 ...' alone, after sklearn's warning)."""
    job = _write(tmp_path, n, k, b, extra)
    out = tmp_path / "run"
    assert main(["run", job, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hpcflow run: error: {job}: {key}") and "silhouette" in err[0], err
    assert not out.exists()


def test_a_birch_threshold_from_set_that_leaves_one_cluster_names_the_set(tmp_path, capsys):
    """The refusal after Birch ran (one cluster left) lacked the "(from --set ...)" every refusal of a --set value
    ends with: it now names the --set in force, and only where the value came from one."""
    out = tmp_path / "run"
    job = _write(tmp_path, 240, 4, 60)
    for sets, suffix in ((["clustering.birch_threshold=3"], " (from --set clustering.birch_threshold=3)"),
                         (["clustering.birch_threshold=0.5", "clustering.seed=3", "clustering.birch_threshold=3.0"],
                          " (from --set clustering.birch_threshold=3.0)")):
        assert main(["run", job, "--out", str(out), "--quiet", *[x for s in sets for x in ("--set", s)]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"hpcflow run: error: {job}: [clustering].birch_threshold = 3: "
                                                   "birch clustering found 1 cluster of the 4 asked for"), err
        assert err[0].endswith("; lower birch_threshold" + suffix), err
        assert not out.exists()
    job = _write(tmp_path, 240, 4, 60, "birch_threshold = 3.0\n")  # the file's own value: no --set to name
    assert main(["run", job, "--out", str(out), "--quiet", "--set", "clustering.seed=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("; lower birch_threshold") and "--set" not in err, err


def test_a_silhouette_sample_larger_than_the_points_is_refused_before_any_work(tmp_path):
    """[quality].sample_size = 500 of 240 points was accepted, and the silhouette silently averaged the 240 (exact,
    stderr 0) instead of the 500 rows asked for; 240 itself is every point and runs."""
    job = _write(tmp_path, 240, 4, 60, "[quality]\nsample_size = 500\nfig2 = false\n")
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "hpcflow", "run", job, "--out", str(out)], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_QUIET="1"))
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert err[0].startswith(f"hpcflow run: error: {job}: [quality].sample_size = 500 with [points].n_points = 240")
    assert "at most 240" in err[0] and "set 0" in err[0]
    assert not out.exists()
    assert main(["run", _write(tmp_path, 240, 4, 60, "[quality]\nsample_size = 240\nfig2 = false\n"),
                 "--out", str(out), "--quiet"]) == 0
    with open(out / "summary.json") as fh:
        assert json.load(fh)["silhouette_rows"] == 240


def test_a_birch_that_finds_fewer_clusters_says_so_in_one_line(tmp_path, capsys):
    """Birch with a threshold that leaves 9 of the 10 clusters asked for: the run goes on (the silhouette of 9
    clusters is defined) and says so in one line of its own instead of sklearn's warning."""
    out = str(tmp_path / "run")
    assert main(["run", _write(tmp_path, 240, 10, 60, "birch_threshold = 1.5\n"), "--out", out, "--quiet"]) == 0
    cap = capsys.readouterr()
    with open(os.path.join(out, "summary.json")) as fh:
        summary = json.load(fh)
    assert len(summary["cluster_sizes_birch"]) == 9 and len(summary["cluster_sizes_full"]) == 10
    assert ("clustering: birch found 9 of the 10 clusters asked for ([clustering].birch_threshold = 1.5 is large for "
            "these points); its silhouette is of 9 clusters") in cap.out.splitlines()
    assert "Warning" not in cap.err


def test_a_clustering_without_fig2_is_a_report_row_and_fig2_says_how_to_draw_it(tmp_path, capsys):
    """[quality].fig2 = false writes summary.json alone: the report lists the run (no figure) instead of skipping
    it as holding none of the data files, and fig2_heatmaps names the setting to change, not another directory."""
    from hpcflow.analysis.script import main as script_main

    out = tmp_path / "run"
    assert main(["run", _write(tmp_path, n=60, k=3, b=30, extra="[quality]\nfig2 = false\n"), "--out", str(out),
                 "--quiet"]) == 0
    assert sorted(os.listdir(out)) == ["job.toml", "summary.json"]
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| run | clustering | finished | 60 / - |" in md and "Skipped" not in md, md
    fig2 = md.split("## Fig. 2")[1]  # its silhouettes from summary.json, without heatmaps
    summary = json.loads((out / "summary.json").read_text())
    for key in ("silhouette_batched", "silhouette_full"):
        assert f"run: {key}: {summary[key]:.4f}" in fig2 and "no heatmaps: [quality].fig2 = false" in fig2, fig2
    assert not [p for p in os.listdir(tmp_path / "report") if p.endswith(".png")]
    capsys.readouterr()
    assert script_main("fig2_heatmaps", [str(out), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "made with [quality].fig2 = false" in err, err
    assert "--set quality.fig2=true" in err and not (tmp_path / "figs").exists()


def test_a_birch_refusal_from_set_under_mpiexec_is_one_line_for_the_job(tmp_path):
    """At 2 ranks the refusal after Birch is every rank's (`raise_together`): one line for the job, naming the --set,
    as the same value in the job file gives. Adding the "(from --set ...)" to a new error lost the mark that every
    rank refuses alike, and each rank said its own line ("hpcflow: rank 0: error: ...", "rank 1: ...")."""
    from test_parallel import mpiexec

    job = _write(tmp_path, 240, 4, 60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "SLURM_", "OMPI_", "PMIX_"))}
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", job, "--out",
                        str(tmp_path / "run"), "--quiet", "--set", "clustering.birch_threshold=3"], capture_output=True,
                       text=True, timeout=300, env=dict(env, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1"))
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert err[0].startswith(f"hpcflow run: error: {job}: [clustering].birch_threshold = 3: birch clustering found 1"
                             " cluster") and err[0].endswith(" (from --set clustering.birch_threshold=3)"), err
    assert not (tmp_path / "run").exists()
