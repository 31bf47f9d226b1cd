"""Silhouettes computed from a sample of rows ([quality].sample_size > 0) are shown with their standard error and
the number of rows sampled (summary.json's silhouette_METHOD_stderr, silhouette_rows): in Fig. 2's printed lines,
and in the report's (also of a run made with [quality].fig2 = false); exact ones (every row) as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analysis_runs import JOBS, ROOT, env, run_dirs

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _run(directory, *sets) -> str:
    job = directory / "clustering.toml"
    job.write_text(JOBS["clustering"][1])
    out = directory / ("sampled_" + "_".join(s.split("=")[0].split(".")[1] for s in sets))
    args = [a for s in sets for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--quiet", *args],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return str(out)


def _expected(run_dir) -> list:
    s = json.loads(open(os.path.join(run_dir, "summary.json"), encoding="utf-8").read())
    assert s["silhouette_rows"] == 20 and s["silhouette_batched_stderr"] > 0  # the premise: sampled
    return [f"silhouette_{m}: {s[f'silhouette_{m}']:.4f} ± {s[f'silhouette_{m}_stderr']:.4f} (20 sampled rows)"
            for m in ("batched", "birch", "full")]


def _in_report(d, tmp_path) -> None:
    """`hpcflow report D` prints each sampled silhouette with its standard error (`_expected`)."""
    report = subprocess.run([sys.executable, "-m", "hpcflow", "report", d, "--out", str(tmp_path / "R")], cwd=ROOT,
                            env=env(), capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "R" / "report.md").read_text()
    for want in _expected(d):
        assert want in md, md


def test_sampled_silhouettes_are_shown_with_their_standard_error(runs, tmp_path):
    from hpcflow.analysis import fig2

    d = _run(tmp_path, "quality.sample_size=20", "quality.seed=1")
    lines = fig2.numbers(fig2.load(d))
    assert [line.split(" (paper")[0] for line in lines] == _expected(d), lines
    exact = fig2.numbers(fig2.load(runs["clustering"]))  # every row: no standard error
    assert exact and all("±" not in line and "sampled" not in line for line in exact), exact
    _in_report(d, tmp_path)


def test_sampled_silhouettes_of_a_run_without_fig2_are_shown_with_their_standard_error(tmp_path):
    d = _run(tmp_path, "quality.sample_size=20", "quality.seed=1", "quality.fig2=false")
    _in_report(d, tmp_path)
