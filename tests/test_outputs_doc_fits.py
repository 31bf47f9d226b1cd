"""docs/outputs.md's `@fits` row of distances.h5 names every key the file's attribute holds: the fits of mean, min
and max, and the fit over N >= [scaling].fit_from (`mean_from`), which also records that fit_from."""

import json
import re
from pathlib import Path

import h5py
import numpy as np

from hpcflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
JOB = ('job = { kind = "distance_scaling" }\ngeometry = { manifold = "fermat", dim = 3 }\n'
       'scaling = { n_points = [40, 80, 160], fit_from = 80 }\n')


def _fits_row() -> str:
    text = (ROOT / "docs" / "outputs.md").read_text()
    section = text[text.index("## distance_scaling: `distances.h5`"):]
    return next(line for line in section.splitlines() if line.startswith("| `@fits` |"))


def _keys(obj, out=None) -> set:
    out = set() if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            _keys(v, out)
    return out


def test_every_key_of_fits_is_documented(tmp_path):
    job = tmp_path / "scaling.toml"
    job.write_text(JOB)
    assert main(["run", str(job), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    with h5py.File(tmp_path / "out" / "distances.h5", "r") as f:
        fits = json.loads(f.attrs["fits"])
        n, mean = f["table/n"][()], f["table/mean"][()]
    assert set(fits) == {"mean", "min", "max", "mean_from"}
    assert fits["mean_from"]["fit_from"] == 80
    # two sizes (80, 160) in the fit from 80 on: the line through the two points, exact; no error estimate
    b = np.log(mean[2] / mean[1]) / np.log(n[2] / n[1])
    assert abs(fits["mean_from"]["b"] - b) < 1e-9 * abs(b)
    assert fits["mean_from"]["a_err"] is None and fits["mean_from"]["b_err"] is None
    row = _fits_row()
    missing = sorted(k for k in _keys(fits) if f"`{k}`" not in row)
    assert missing == [], (missing, row)
    assert re.search(r"`a_err`, `b_err` null when only two sizes are fitted", row), row
