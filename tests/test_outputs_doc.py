"""docs/outputs.md against the files tiny runs of every kind write: each dataset and root attribute of a file is
listed in its section (with its rank and dtype), and each entry listed for every run is in the file; every file
that holds points, weights, |Omega|^2, metrics or distances carries the geometry conventions and its kind."""

from __future__ import annotations

import os
import re

import h5py
import pytest

from analysis_runs import ROOT, run_dirs

DOC = os.path.join(ROOT, "docs", "outputs.md")
#: section heading (the file name in backticks) -> (tests/analysis_runs.py job, file in its directory)
FILES = {"checkpoint.h5": ("flow", "checkpoint.h5"), "nn.h5": ("nn", "nn.h5"),
         "noise_scan.h5": ("noise", "noise_scan.h5"), "local_limit.h5": ("local_limit", "local_limit.h5"),
         "distances.h5": ("scaling", "distances.h5"), "fig2_distances.h5": ("clustering", "fig2_distances.h5")}
#: the `kind` attribute a reader tells the files apart by (the job kinds' own names)
KINDS = {"checkpoint.h5": "hpcflow.flow_checkpoint", "nn.h5": "hpcflow.nn", "noise_scan.h5": "hpcflow.noise_scan",
         "local_limit.h5": "hpcflow.local_limit", "distances.h5": "hpcflow.distance_scaling",
         "fig2_distances.h5": "hpcflow.clustering_fig2", "PointSet": "hpcflow.PointSet"}
#: a phrase of the geometry conventions (hpcflow/geometry/__init__.py: w = |Omega|^2 / det g_FS, unnormalised)
WEIGHTS = "weights = omega2/det(g_fs) (unnormalised)"
DTYPES = {"float64": "f8", "int64": "i8", "complex128": "c16"}


def _sections() -> dict:
    """{file: [(name, ndim or None, dtype text, listed for every run)]} from the tables of docs/outputs.md."""
    out = {}
    with open(DOC, encoding="utf-8") as fh:
        parts = fh.read().split("\n## ")[1:]
    for part in parts:
        heading = part.splitlines()[0]
        names = re.findall(r"`([^`]+)`", heading)
        key = names[0] if names else heading.split(":")[-1].strip().split()[0]
        rows = []
        for line in part.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            m = re.fullmatch(r"`([^`]+)`", cells[0]) if line.startswith("| `") else None
            if m:
                ndim = None if not cells[1] else cells[1].count(",") + 1 - cells[1].endswith(",)")
                rows.append((m.group(1), ndim, cells[2], not cells[3].startswith("when")))
        out[key] = rows
    return out


def _contents(path) -> dict:
    """{"@attr": None, "dataset/path": h5py.Dataset-like (ndim, dtype)} of one file."""
    out = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": None for k in f.attrs})
        f.visititems(lambda name, obj: out.__setitem__(name, (obj.ndim, obj.dtype))
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def _pattern(name: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(name)) + r"\Z")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from hpcflow.cli import main

    runs = run_dirs(tmp_path_factory)
    out = {key: os.path.join(runs[job], name) for key, (job, name) in FILES.items()}
    out["PointSet"] = os.fspath(tmp_path_factory.mktemp("pointset") / "points.h5")
    assert main(["sample", "--n", "200", "--seed", "1", "--threads", "1", "--quiet", "--out", out["PointSet"]]) == 0
    return out


def test_every_file_is_described_and_every_described_entry_exists(files):
    doc = _sections()
    assert set(files) <= set(doc), sorted(doc)
    for key, path in files.items():
        rows, have = doc[key], _contents(path)
        for name, info in have.items():
            listed = [r for r in rows if _pattern(r[0]).match(name)]
            assert listed, f"{key}: {name} is not in docs/outputs.md"
            if info is not None:  # a dataset: its rank and dtype as documented
                _, ndim, dtype, _ = listed[0]
                assert ndim == info[0], (key, name, ndim, info[0])
                if dtype in DTYPES:
                    assert info[1] == DTYPES[dtype], (key, name, dtype, info[1])
                else:
                    assert "str" in dtype and h5py.check_string_dtype(info[1]) is not None, (key, name, dtype)
        for name, _, _, always in rows:
            if always:
                assert any(_pattern(name).match(n) for n in have), f"{key}: docs/outputs.md lists {name}, not written"


def test_files_carry_the_geometry_conventions_and_their_kind(files):
    for key, path in files.items():
        with h5py.File(path, "r") as f:
            assert f.attrs["kind"] == KINDS[key], key
            text = f.attrs["conventions" if key == "PointSet" else "geometry_conventions"]
            assert WEIGHTS in text and "no 1/pi" in text, key
            if key != "PointSet":
                assert int(f.attrs["schema_version"]) >= 1, key


@pytest.mark.parametrize("job", ["flow", "nn", "noise", "local_limit", "scaling", "clustering"])
def test_every_kind_records_how_its_run_was_made(tmp_path_factory, job):
    """summary.json's provenance (the flow's alone had it): version, commit, the BLAS pools, MPI and hosts."""
    import json

    from hpcflow import __version__

    path = os.path.join(run_dirs(tmp_path_factory)[job], "summary.json")
    with open(path, encoding="utf-8") as fh:
        summary = json.load(fh)
    prov = summary["provenance"]
    assert prov["hpcflow_version"] == __version__ and prov["hosts"] == [os.uname().nodename]
    assert prov["rank_hosts"] == [os.uname().nodename] * summary["ranks"]
    assert {p["internal_api"] for p in prov["blas"]} >= {"openblas"}
