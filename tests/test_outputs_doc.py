"""docs/outputs.md against the files tiny runs of every kind write: each dataset and root attribute of a file is
listed in its section (with its rank and dtype), and each entry listed for every run is in the file; every file
that holds points, weights, |Omega|^2, metrics or distances carries the geometry conventions and its kind; each
key of every kind's summary.json (and of a tune study's) is listed with its JSON type, and each key listed for
every run is written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import h5py
import pytest

from analysis_runs import JOBS, ROOT, env, run_dirs

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
#: tests/analysis_runs.py job -> the section of docs/outputs.md listing its kind's summary.json keys (besides the
#: keys of every kind, section "summary.json")
SUMMARIES = {"flow": "summary.json:flow", "flow_gauss": "summary.json:flow", "nn": "summary.json:nn",
             "noise": "summary.json:noise_scan", "local_limit": "summary.json:local_limit",
             "scaling": "summary.json:distance_scaling", "clustering": "summary.json:clustering"}
#: keys of every kind that a tune trial's summary.json leaves out (docs/outputs.md, section summary.json:tune)
TRIAL_LEAVES_OUT = ("job_file", "hpcflow_version")
#: a flow job with a [tune] table: one trial of `hpcflow tune` writes a trial's summary.json and the study.json
TUNE_JOB = JOBS["flow"][1] + """[tune]
sampler = "random"
seed = 5
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.1, high = 3.0, log = true}
"""
#: the word a documented JSON type starts with ("float or null", "list of int"), by Python type (bool before int)
JSON_TYPES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"), (dict, "dict"))


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


def test_a_python_api_checkpoint_writes_every_entry_listed_for_every_checkpoint(tmp_path):
    """A `CheckpointWriter(path, {}, every=10)` without `static` (the README's example) writes no point data: the
    table listed train/points, train/weights, train/omega2 and test/* for every checkpoint, without a "when"."""
    from hpcflow.checkpoint import CheckpointWriter
    from hpcflow.flow import kernel_flow
    from hpcflow.geometry import Hypersurface
    from hpcflow.kernels import GaussianKernel

    X = Hypersurface.fermat(3)
    train, test = X.sample(60, seed=1, chart=(0, 1)), X.sample(30, seed=2, chart=(0, 1))
    path = tmp_path / "checkpoint.h5"
    writer = CheckpointWriter(path, {}, every=10)
    kernel_flow(GaussianKernel(0.3), train, test, dt=0.5, steps=2, on_step=writer)
    writer.close("finished")
    have = _contents(path)
    assert "train/points" not in have and "@set_fingerprints" in have
    for name, _, _, always in _sections()["checkpoint.h5"]:
        if always:
            assert any(_pattern(name).match(n) for n in have), f"docs/outputs.md lists {name}, not written"


def test_files_carry_the_geometry_conventions_and_their_kind(files):
    for key, path in files.items():
        with h5py.File(path, "r") as f:
            assert f.attrs["kind"] == KINDS[key], key
            text = f.attrs["conventions" if key == "PointSet" else "geometry_conventions"]
            assert WEIGHTS in text and "no 1/pi" in text, key
            if key != "PointSet":
                assert int(f.attrs["schema_version"]) >= 1, key


def _unsorted_objects(text: str) -> list:
    """The key lists of the JSON objects in `text`, at every depth, whose keys are not in sorted order."""
    found = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        if keys != sorted(keys):
            found.append(keys)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


def test_json_root_attributes_are_sorted_and_the_intro_names_every_variable_length_dataset(files):
    """docs/outputs.md's opening: JSON root attributes are written with sorted keys (nn.h5's `conventions` was not),
    and the variable-length datasets it names are those the files hold (it named table/stopped alone, and nn.h5
    holds width_sweep/stopped)."""
    with open(DOC, encoding="utf-8") as fh:
        intro = fh.read().split("\n## ")[0]
    said = " ".join(intro.split()).split("variable-length")[1].split(". ")[0]
    assert "sorted keys" in intro
    vlen, json_attrs = set(), set()
    for key, path in files.items():
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: vlen.add(name) if isinstance(obj, h5py.Dataset)
                         and h5py.check_vlen_dtype(obj.dtype) is not None else None)
            for name, value in f.attrs.items():
                text = value.decode() if isinstance(value, bytes) else value
                if isinstance(text, str) and text.startswith(("[", "{")):
                    json_attrs.add(key)
                    assert not _unsorted_objects(text), (key, name, _unsorted_objects(text))
    assert json_attrs >= set(FILES)  # the job's config in each at least
    assert {"table/stopped", "width_sweep/stopped"} <= vlen
    assert {name for name in re.findall(r"`([^`]+)`", said) if "/" in name} == vlen, (said, vlen)  # dataset paths


@pytest.mark.parametrize("job", ["flow", "nn", "noise", "local_limit", "scaling", "clustering"])
def test_every_kind_records_how_its_run_was_made(tmp_path_factory, job):
    """summary.json's provenance (the flow's alone had it): version, commit, the BLAS pools, MPI, hosts and the array
    backend."""
    import json

    from hpcflow import __version__

    path = os.path.join(run_dirs(tmp_path_factory)[job], "summary.json")
    with open(path, encoding="utf-8") as fh:
        summary = json.load(fh)
    prov = summary["provenance"]
    assert prov["hpcflow_version"] == __version__ and prov["hosts"] == [os.uname().nodename]
    assert prov["rank_hosts"] == [os.uname().nodename] * summary["ranks"]
    assert {p["internal_api"] for p in prov["blas"]} >= {"openblas"}
    from hpcflow.backend import gpu_available

    backend = "cupy" if os.environ.get("HPCFLOW_BACKEND", "auto") != "numpy" and gpu_available() else "numpy"
    assert (prov["backend"], prov["backends_agree"]) == (backend, True), prov  # the array backend it ran
    assert (prov["backend_device"] is None) == (backend == "numpy"), prov


def _json_word(value) -> str:
    """The JSON type of a value read back from a file: null, bool, int, float, str, list or dict."""
    return "null" if value is None else next(word for t, word in JSON_TYPES if isinstance(value, t))


def _type_problems(name: str, value, documented: str) -> list:
    """Why `value` is not of the documented type ("float or null", "list of int", "list of dicts", "dict"), or [];
    any float may be null (non-finite numbers are written as null)."""
    alternatives = [a.split() for a in documented.split(" or ")]
    words = {a[0] for a in alternatives}
    word = _json_word(value)
    if word not in words and not (word == "null" and "float" in words):
        return [f"{name} is {word}, documented as {documented}"]
    if word == "list":
        items = {a[2].rstrip("s") for a in alternatives if a[0] == "list" and len(a) > 2}
        wrong = [v for v in value if items and _json_word(v) not in items | ({"null"} if "float" in items else set())]
        return [f"{name} holds {_json_word(wrong[0])}, documented as {documented}"] if wrong else []
    return []


def _child_row(name: str):
    """(parent, child) of a `parent.child` or `parent[].child` row name; None for a top-level key."""
    m = re.fullmatch(r"([^.\[]+)(?:\[\])?\.(.+)", name)
    return m.groups() if m else None


def _summary_problems(summary: dict, rows) -> list:
    """What docs/outputs.md's rows get wrong about one summary.json: a key no row lists (a key of a dict, or of each
    dict of a list, too, where rows list its parent's keys), a value of another type than listed, a key listed
    for every run (relative to its parent) that is not written."""
    top = [r for r in rows if _child_row(r[0]) is None]
    children = [(*_child_row(r[0]), r) for r in rows if _child_row(r[0]) is not None]
    problems = []
    for key, value in summary.items():
        row = next((r for r in top if _pattern(r[0]).match(key)), None)
        if row is None:
            problems.append(f"{key} is not listed")
            continue
        problems += _type_problems(key, value, row[2])
        listed = [(child, r) for parent, child, r in children if _pattern(parent).match(key)]
        if not listed:  # a dict described in its own row
            continue
        for part in [value] if isinstance(value, dict) else value if isinstance(value, list) else []:
            for sub, v in part.items():
                row = next((r for child, r in listed if _pattern(child).match(sub)), None)
                if row is None:
                    problems.append(f"{key}: {sub} is not listed")
                else:
                    problems += _type_problems(f"{key}.{sub}", v, row[2])
            problems += [f"{key}: {child} is listed, not written" for child, r in listed
                         if r[3] and not any(_pattern(child).match(sub) for sub in part)]
    problems += [f"{r[0]} is listed, not written" for r in top if r[3] and not any(_pattern(r[0]).match(k)
                                                                                   for k in summary)]
    return list(dict.fromkeys(problems))  # a key of every dict of a list said once


@pytest.fixture(scope="module")
def summaries(tmp_path_factory) -> list:
    """[(what, summary.json or study.json as a dict, the sections listing its keys, keys listed for every run it
    leaves out)]: every tiny run's summary, and a one-trial tune study's trial summary and study.json."""
    runs = run_dirs(tmp_path_factory)
    study = tmp_path_factory.mktemp("tune")
    (study / "tune.toml").write_text(TUNE_JOB)
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "tune", str(study / "tune.toml"), "--trials", "1", "--out",
                           str(study / "out")], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    def read(*path):
        with open(os.path.join(*path), encoding="utf-8") as fh:
            return json.load(fh)

    out = [(job, read(runs[job], "summary.json"), ("summary.json", section), ())
           for job, section in SUMMARIES.items()]
    out.append(("tune trial", read(study, "out", "trials", "0000", "summary.json"),
                ("summary.json", "summary.json:flow", "summary.json:tune"), TRIAL_LEAVES_OUT))
    out.append(("tune study", read(study, "out", "study.json"), ("study.json",), ()))
    return out


def test_every_summary_key_is_described_and_every_described_key_is_written(summaries):
    """A job that starts writing a key docs/outputs.md does not list, or stops writing one it lists for every
    run, fails here; so does a documented JSON type the value does not have."""
    doc = _sections()
    problems = []
    for what, summary, sections, left_out in summaries:
        assert set(sections) <= set(doc), f"docs/outputs.md has no section {sorted(set(sections) - set(doc))}"
        rows = [(name, ndim, kind, always and name not in left_out) for s in sections for name, ndim, kind, always
                in doc[s]]
        problems += [f"{what} ({sections[-1]}): {p}" for p in _summary_problems(summary, rows)]
    assert not problems, "docs/outputs.md vs summary.json:\n" + "\n".join(problems)


def test_the_intro_says_every_string_root_attribute_is_variable_length_utf8(files):
    """It said the only variable-length types were the two `stopped` string columns: every string root attribute
    (@kind, @status, @config, @schema, @legs ...) is a variable-length UTF-8 string too."""
    with open(DOC, encoding="utf-8") as fh:
        intro = " ".join(fh.read().split("\n## ")[0].split())
    strings = set()
    for key, path in files.items():
        with h5py.File(path, "r") as f:
            for name in f.attrs:
                tid = f.attrs.get_id(name).get_type()
                if tid.get_class() == h5py.h5t.STRING:
                    assert tid.is_variable_str() and tid.get_cset() == h5py.h5t.CSET_UTF8, (key, name)
                    strings.add(name)
    assert {"kind", "status", "config", "legs", "conventions"} <= strings, strings
    said = intro.split("variable-length")[1].split(". ")[0]
    assert "every string root attribute" in said, said
    for name in ("kind", "status", "config", "legs"):
        assert f"`@{name}`" in said, (name, said)
