"""Fig. 2 takes a sampled silhouette's standard error and row count from fig2_distances.h5's own @stderr_METHOD and
@sample_rows, so the file copied without its summary.json still shows the "±"; a file written before those
attributes existed reads as before (its run's summary.json, or no "±" without it); a damaged one is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import pytest

from analysis_runs import JOBS, ROOT, env

pytest.importorskip("matplotlib")

METHODS = ("batched", "birch", "full")
OLD = ("sample_rows", *(f"stderr_{m}" for m in METHODS))  # the attributes a file written before them lacks


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("fig2_file_stderr")
    job = base / "clustering.toml"
    job.write_text(JOBS["clustering"][1])
    out = base / "run"
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--quiet",
                           "--set", "quality.sample_size=20", "--set", "quality.seed=1"], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return str(out)


def _copy(run, dest, *, summary=False, drop=()) -> str:
    """fig2_distances.h5 of `run` alone (with its summary.json where `summary`) in directory `dest`, less the root
    attributes `drop`."""
    os.makedirs(dest)
    shutil.copy(os.path.join(run, "fig2_distances.h5"), dest)
    if summary:
        shutil.copy(os.path.join(run, "summary.json"), dest)
    with h5py.File(os.path.join(dest, "fig2_distances.h5"), "r+") as f:
        for name in drop:
            del f.attrs[name]
    return str(dest)


def _attrs(run) -> dict:
    with h5py.File(os.path.join(run, "fig2_distances.h5"), "r") as f:
        return {k: f.attrs[k] for k in f.attrs if k.startswith(("silhouette_", "stderr_", "sample_rows"))}


def _lines(d) -> list:
    from hpcflow.analysis import fig2

    return [line.split(" (paper")[0] for line in fig2.numbers(fig2.load(d))]


def test_a_copied_file_alone_shows_the_standard_error_it_records(sampled_run, tmp_path):
    from hpcflow.analysis import fig2

    d = _copy(sampled_run, tmp_path / "copy")
    a = _attrs(d)
    assert a["sample_rows"] == 20 and min(a[f"stderr_{m}"] for m in METHODS) > 0  # the premise: sampled
    want = [f"silhouette_{m}: {a[f'silhouette_{m}']:.4f} ± {a[f'stderr_{m}']:.4f} (20 sampled rows)" for m in METHODS]
    assert _lines(d) == want
    titles = [ax.get_title() for ax in fig2.plot(fig2.load(d)).axes if ax.get_title()]
    for m in ("batched", "full"):
        shown = f"silhouette {a[f'silhouette_{m}']:.3f} ± {a[f'stderr_{m}']:.3f}"
        assert any(t.endswith(shown) for t in titles), titles
    report = subprocess.run([sys.executable, "-m", "hpcflow", "report", d, "--out", str(tmp_path / "R")], cwd=ROOT,
                            env=env(), capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "R" / "report.md").read_text()
    for line in want:
        assert f"copy: {line}" in md, md


def test_a_file_written_before_the_attributes_reads_as_before(sampled_run, tmp_path):
    alone = _lines(_copy(sampled_run, tmp_path / "alone", drop=OLD))
    assert len(alone) == 3 and all("±" not in line and "sampled" not in line for line in alone), alone
    s = json.loads(open(os.path.join(sampled_run, "summary.json"), encoding="utf-8").read())
    with_summary = _lines(_copy(sampled_run, tmp_path / "with_summary", summary=True, drop=OLD))
    assert with_summary == [f"silhouette_{m}: {s[f'silhouette_{m}']:.4f} ± {s[f'silhouette_{m}_stderr']:.4f} "
                            "(20 sampled rows)" for m in METHODS]


@pytest.mark.parametrize("name, value", [("stderr_full", -0.25), ("stderr_birch", float("nan")),
                                         ("stderr_batched", "x"), ("sample_rows", 0), ("sample_rows", 10 ** 6)])
def test_a_damaged_attribute_is_refused_naming_it(sampled_run, tmp_path, name, value):
    from hpcflow.analysis import fig2
    from hpcflow.analysis.rundir import MissingData

    d = _copy(sampled_run, tmp_path / "damaged")
    with h5py.File(os.path.join(d, "fig2_distances.h5"), "r+") as f:
        f.attrs[name] = value
    with pytest.raises(MissingData, match=f"fig2_distances.h5: attribute '{name}' "):
        fig2.load(d)
