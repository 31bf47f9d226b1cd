"""Every attribute and dataset of a flow checkpoint.h5 that --resume reads, replaced by a value of the wrong type or
shape (a string, an array of another shape, a complex number where the flow writes a real one or a real one where it
writes a complex one, a group where it writes a dataset): --resume and --resume --check refuse it in one line that
names that attribute or dataset (exit 2, the files left as they were). The entries are those of a real checkpoint, so
an entry added to the writer is covered here too. The attributes that only describe the file (its schema text and
conventions, the hpcflow that wrote it) are read by no resume, which writes them anew: it resumes (the hpcflow
that wrote it as any text: one not a string is a damaged checkpoint, `test_flow_root_version`)."""

import json
import re
import shutil

import h5py
import numpy as np
import pytest

from test_resume_refusals import CLUSTERED_JOB, _finished

#: attributes no resume reads (the writer writes them anew at every write)
DESCRIPTIVE = ("schema", "conventions", "geometry_conventions", "hpcflow_version")
#: attributes of free text, where another string is no fault
FREE_TEXT = ("stopped",)
#: datasets compared with the points and clusters the job samples again, which --resume --check does not sample
SAMPLED = ("cluster/labels", "cluster/owner", *(f"{s}/{k}" for s in ("train", "test") for k in ("points", "weights",
                                                                                                "omega2")))
#: attributes the reader reads where present, though `hpcflow run` writes none (its checkpoint holds the point data)
OPTIONAL = ("set_fingerprints",)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(job, out) of a clustered flow run to its end: its checkpoint holds every dataset `hpcflow run` writes."""
    return _finished(tmp_path_factory.mktemp("clustered"), CLUSTERED_JOB)


def _entries(run):
    """(attribute names, dataset names) of the run's checkpoint."""
    with h5py.File(run[1] / "checkpoint.h5", "r") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sorted(f.attrs), sorted(names)


def _wrong(value):
    """{how: a value of the wrong type or shape in place of `value`}."""
    v = np.asarray(value)
    out = {"string": "abc", "shape": np.stack([v, v], axis=-1) if v.ndim else np.full((2, 3), v)}
    if v.dtype.kind == "c":
        out["real"] = v.real.copy()
    elif v.dtype.kind in "iuf":
        out["complex"] = v + 0.5j
    else:
        out["complex"] = np.complex128(1 + 1j)
        out["shape"] = np.full((2, 3), 1.0)
    return out


def _cases():
    """(kind, name, how) of every wrong value of every attribute and dataset the reader reads; the names are those of
    the fixture's checkpoint, which `test_the_cases_cover_every_entry_of_a_checkpoint` compares with the file."""
    attrs = ["best", "config", "engine", "flow_arguments", "kind", "legs", "n_test", "n_train", "ranks",
             "schema_version", "since_best", "status", "step", "stopped", "test_held", *OPTIONAL]
    datasets = ["cluster/labels", "cluster/owner", *(f"history/{k}" for k in ("comm_bytes", "comm_seconds", "dt",
                "kernel_seconds", "rejections", "sigma_test", "sigma_train", "step_seconds")),
                *(f"{s}/{k}" for s in ("test", "train") for k in ("g", "omega2", "points", "weights"))]
    out = []
    for name in attrs:
        hows = ["shape", "complex"] + ([] if name in FREE_TEXT else ["string"])
        out += [("attr", name, how) for how in hows]
    for name in datasets:
        real = name.endswith(("/g", "/points"))
        out += [("dataset", name, how) for how in ("string", "shape", "real" if real else "complex", "group")]
    return out


def test_the_cases_cover_every_entry_of_a_checkpoint(finished):
    attrs, datasets = _entries(finished)
    named = {(kind, name) for kind, name, _ in _cases()}
    assert {("attr", a) for a in attrs if a not in DESCRIPTIVE} | {("attr", a) for a in OPTIONAL} \
        == {k for k in named if k[0] == "attr"}
    assert {("dataset", d) for d in datasets} == {k for k in named if k[0] == "dataset"}


def _copy(run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    return run[0], out, out / "checkpoint.h5"


def _replace(ck, kind, name, how):
    """Entry `name` of checkpoint `ck` replaced by its wrong value `how` (`_wrong`)."""
    with h5py.File(ck, "r+") as f:
        if kind == "attr":
            old = f.attrs.get(name, json.dumps({"train": None, "test": None}))
            f.attrs[name] = _wrong(old)[how]
            return
        old = f[name][()]
        del f[name]
        if how == "group":
            f.create_group(name)
        else:
            f[name] = _wrong(old)[how]


def _refused(capsys, job, out, named, *, check=True):
    """--resume --check (where `check`) and --resume of `out`: exit 2, one line naming the checkpoint, the entry
    (regex `named`) and --force; nothing in `out` changes."""
    from hpcflow.cli import main

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in ([["--check"]] if check else []) + [[]]:
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert str(out / "checkpoint.h5") in err and "--force" in err, err
        assert re.search(named, err), (named, err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("kind,name,how", _cases(), ids=[f"{n}-{h}" for _, n, h in _cases()])
def test_an_entry_of_the_wrong_type_or_shape_is_refused_by_name(finished, tmp_path, capsys, kind, name, how):
    """The counters (step, n_train, ...) as a string or an array were refused as "a dataset or attribute has the
    wrong type or shape (could not convert string to float: 'abc')", naming none; as a complex number they resumed
    from its real part."""
    job, out, ck = _copy(finished, tmp_path)
    _replace(ck, kind, name, how)
    named = rf"attribute '?{name}\b" if kind == "attr" else rf"(?<![\w/]){re.escape(name)}\b"
    _refused(capsys, job, out, named, check=name not in SAMPLED)


@pytest.mark.parametrize("step", ["abc", np.int64(3), 3.0])
def test_step_as_a_string_is_named_and_a_whole_number_of_either_type_resumes(finished, tmp_path, capsys, step):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f.attrs["step"] = step
    if step == "abc":
        _refused(capsys, job, out, r"attribute step = 'abc' is not an integer; the checkpoint is damaged, start over")
    else:
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
        with h5py.File(ck, "r") as f:
            assert int(f.attrs["step"]) == 5


@pytest.mark.parametrize("key,value", [("from_step", "0"), ("to_step", [3]), ("wall_seconds", "1.5"),
                                       ("ranks", True), ("threads", {"n": 1})])
def test_a_leg_value_that_is_not_a_number_is_named(finished, tmp_path, capsys, key, value):
    """A leg's from_step of "0" was refused as "the wrong type or shape (could not convert string to float)"."""
    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        legs = json.loads(f.attrs["legs"])
        legs[0][key] = value
        f.attrs["legs"] = json.dumps(legs)
    _refused(capsys, job, out, rf"attribute legs\[0\]\.{key} = .* is not a number, where the flow writes")


@pytest.mark.parametrize("name", DESCRIPTIVE)
def test_attributes_no_resume_reads_are_written_anew(finished, tmp_path, name):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r") as f:
        kept = f.attrs[name]
    with h5py.File(ck, "r+") as f:  # (hpcflow_version: another version's text; one not a string is refused as
        # damaged, `test_flow_root_version`)
        f.attrs[name] = "0.0.1" if name == "hpcflow_version" else np.full((2, 3), 0.5j)
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
    with h5py.File(ck, "r") as f:
        assert f.attrs[name] == kept and int(f.attrs["step"]) == 5
