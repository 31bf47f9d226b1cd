"""fig2_distances.h5 says how its silhouettes were computed: `@sample_rows` (the rows each averages) and
`@stderr_METHOD` (the standard error of `@silhouette_METHOD`), as summary.json does. With [quality].sample_size > 0
the file's silhouettes are estimates over sampled rows, which the file alone did not say. Checked against the
silhouettes computed here from the file's own distance matrix and labels."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis_runs import JOBS, ROOT, env

METHODS = ("batched", "full", "birch")


def _run(tmp_path, *sets) -> str:
    job = tmp_path / "clustering.toml"
    job.write_text(JOBS["clustering"][1])
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--quiet",
                           *[a for s in sets for a in ("--set", s)]], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return str(out)


def _silhouettes(d: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each point's silhouette (Rousseeuw): a = mean distance to the other points of its cluster, b = the least mean
    distance to the points of another cluster, (b - a) / max(a, b); 0 for a point alone in its cluster."""
    s = np.zeros(len(labels))
    for i, own in enumerate(labels):
        mates = (labels == own) & (np.arange(len(labels)) != i)
        if not mates.any():
            continue
        a = d[i, mates].mean()
        b = min(d[i, labels == other].mean() for other in set(labels.tolist()) - {own})
        s[i] = (b - a) / max(a, b)
    return s


@pytest.mark.parametrize("rows", [20, 0])
def test_the_file_records_the_rows_and_standard_error_of_its_silhouettes(tmp_path, rows):
    sets = ("quality.sample_size=20", "quality.seed=1") if rows else ()
    run = _run(tmp_path, *sets)
    with open(f"{run}/summary.json", encoding="utf-8") as fh:
        summary = json.load(fh)
    with h5py.File(f"{run}/fig2_distances.h5", "r") as f:
        attrs = dict(f.attrs)
        d = f["distance"][()]
        labels = {m: f[f"labels/{m}"][()] for m in METHODS}
    n = len(d)
    np.fill_diagonal(d, 0.0)  # d(z, z) = 0 (arccos of a rounded 1)
    assert attrs["sample_rows"] == summary["silhouette_rows"] == (rows or n)
    if rows:  # the rows drawn as [quality].seed draws them: N choose `rows`, without replacement
        picked = np.sort(np.random.default_rng(1).choice(n, size=rows, replace=False))
    for m in METHODS:
        s = _silhouettes(d, labels[m])
        if not rows:
            assert attrs[f"stderr_{m}"] == 0.0 and attrs[f"silhouette_{m}"] == pytest.approx(s.mean(), abs=1e-9)
            continue
        s = s[picked]
        se = math.sqrt(sum((x - s.mean()) ** 2 for x in s) / (rows - 1)) / math.sqrt(rows)
        assert attrs[f"silhouette_{m}"] == pytest.approx(s.mean(), abs=1e-9), m
        assert se > 1e-3 and attrs[f"stderr_{m}"] == pytest.approx(se, rel=1e-6), m
        assert attrs[f"stderr_{m}"] == summary[f"silhouette_{m}_stderr"], m


def test_fig2_reads_a_sampled_file_with_its_new_attributes(tmp_path):
    """The standard errors and row count are not `silhouette_*` attributes, which Fig. 2 reads as scores in [-1, 1]."""
    from hpcflow.analysis import fig2

    data = fig2.load(_run(tmp_path, "quality.sample_size=20", "quality.seed=1"))
    assert sorted(data["silhouette"]) == [f"silhouette_{m}" for m in sorted(METHODS)], data["silhouette"]
    assert data["rows"] == 20 and sorted(data["stderr"]) == sorted(data["silhouette"]), data
