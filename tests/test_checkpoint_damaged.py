"""A checkpoint.h5 whose bytes are damaged (an attribute message or the global heap overwritten): --resume,
--resume --check, submit --check, the report and the analysis scripts refuse it in one line (exit 2), every rank
alike, the file untouched."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.h5read import DAMAGED

from test_checkpoint import RESUME_JOB
from test_parallel import each_rank_status, rank_statuses

#: where to overwrite 8 bytes with 0xff, found by content: (bytes marking it, offset from their start)
DAMAGES = {"attribute message": (b"schema_version\x00", -8),  # its header (version, name and type sizes)
           "global heap": (b"GCOL", 0)}  # the collection holding the variable-length string attributes


def _damage(path, how):
    """Overwrite 8 bytes of `path` at the place DAMAGES[how] names; h5py must then fail reading its attributes."""
    data = bytearray(path.read_bytes())
    mark, shift = DAMAGES[how]
    at = data.find(mark)
    assert at >= 0, f"{mark} not in {path}"
    data[at + shift:at + shift + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(DAMAGED), h5py.File(path, "r") as f:  # the damage is one h5py cannot read past
        {k: f.attrs[k] for k in f.attrs}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(job, out) of RESUME_JOB run to its end, for copies to damage."""
    from hpcflow.cli import main

    base = tmp_path_factory.mktemp("finished")
    job, out = base / "job.toml", base / "out"
    job.write_text(RESUME_JOB)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    return job, out


def _copy(finished, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished[1], out)
    return finished[0], out, out / "checkpoint.h5"


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in needles), err
    return err


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_resume_and_check_refuse_a_damaged_file_in_one_line(finished, tmp_path, capsys, how):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    (out / "summary.json").unlink()
    _damage(ck, how)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *extra]) == 2
        _one_line(capsys, f"{ck}: not a readable checkpoint", "--force")
    assert main(["submit", str(job), "--out", str(out), "--resume", "--check", "--executor", "local"]) == 2
    _one_line(capsys, f"{ck}: not a readable checkpoint", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("how", [*sorted(DAMAGES), "cut short"])
def test_a_run_without_resume_names_a_damaged_checkpoint_not_resume(finished, tmp_path, capsys, how):
    """A plain run (and its --check, submit --check) in an --out whose damaged checkpoint no summary.json describes
    says that it is damaged and that --force starts over, in one line, exit 2, nothing touched: it pointed to
    --resume, which then refused the file."""
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    (out / "summary.json").unlink()
    if how == "cut short":  # a partial copy back from a cluster
        ck.write_bytes(ck.read_bytes()[:5000])
    else:
        _damage(ck, how)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for argv in (["run", "--quiet"], ["run", "--quiet", "--check"], ["submit", "--check", "--executor", "local"]):
        assert main([argv[0], str(job), "--out", str(out), *argv[1:]]) == 2
        err = _one_line(capsys, f"--out {out} holds a damaged checkpoint.h5 (", "--force", "cannot continue it")
        assert "continue it with" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["run", str(job), "--out", str(out), "--quiet", "--force"]) == 0  # the advice runs


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_report_and_analysis_scripts_refuse_a_damaged_file_in_one_line(finished, tmp_path, capsys, how):
    from hpcflow.analysis.script import main as script
    from hpcflow.cli import main

    _, out, ck = _copy(finished, tmp_path)
    (out / "summary.json").unlink()  # an interrupted run: the checkpoint is all there is to read
    _damage(ck, how)
    before = ck.read_bytes()
    capsys.readouterr()
    for name in ("sigma_history", "table1"):
        assert script(name, [str(out), "--out", str(tmp_path / name)]) == 2
        _one_line(capsys, f"{ck}: not a readable HDF5 file", "--force")
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 2
    _one_line(capsys, f"{ck}: not a readable HDF5 file", "--force")
    assert ck.read_bytes() == before


def test_every_rank_refuses_a_damaged_file_together(finished, tmp_path):
    """Under mpiexec -n 2 each rank reads the damaged file: both exit 2 (no MPI_Abort), rank 0 prints one line."""
    job, out, ck = _copy(finished, tmp_path)
    _damage(ck, "attribute message")
    before = ck.read_bytes()
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
    args = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5"]
    cmd = each_rank_status(tmp_path / "statuses", 2, args)
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=env)
    assert rank_statuses(tmp_path / "statuses", 2) == [2, 2], r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{ck}: not a readable checkpoint" in lines[0], r.stderr
    assert ck.read_bytes() == before


@pytest.mark.parametrize("config", [[], "flow", 3, None])
def test_a_config_attribute_that_is_not_a_json_object_is_refused(finished, tmp_path, capsys, config):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f.attrs["config"] = json.dumps(config)
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    _one_line(capsys, f"{ck}: attribute 'config' is", "not the job's tables", "--force")
    assert ck.read_bytes() == before


def _per_rank(how, step, ranks):
    """A per-rank history of the wrong layout for a checkpoint at `step` written by `ranks` ranks."""
    return {"other rows": np.ones((step + 2, ranks)), "other columns": np.ones((step, ranks + 6)),
            "one value per step": np.ones(step), "text": np.array([["x"] * ranks] * step, dtype="S1")}[how]


@pytest.mark.parametrize("how", ["other rows", "other columns", "one value per step", "text"])
def test_a_per_rank_history_of_another_layout_is_refused(finished, tmp_path, capsys, how):
    """history/step_seconds is (step, @ranks) numbers: another layout is refused in one line naming it and the
    shape the step and ranks attributes ask for; a resume appended this run's rows to it (130 rows, not 1000)."""
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        step, ranks = int(f.attrs["step"]), int(f.attrs["ranks"])
        del f["history/step_seconds"]
        f["history/step_seconds"] = _per_rank(how, step, ranks)
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    _one_line(capsys, f"{ck}: dataset history/step_seconds has shape", f"not ({step}, {ranks}) numbers", "--force")
    assert ck.read_bytes() == before


def test_a_per_rank_history_from_another_rank_count_still_resumes(finished, tmp_path):
    """NaN rows (steps run at another R, as a resume at another R writes them) of @ranks columns resume; so do
    counters at the ends of their ranges: @since_best = @step (the best at step 0), @test_held = T x S (every test
    point held at every step), a rejected trial of step S + 1 (a numerical stop's), 0 bytes, a leg of unknown ranks
    and wall seconds (a version 1 checkpoint's steps)."""
    from hpcflow.checkpoint import load_resume
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f["history/step_seconds"][0] = np.nan
        f.attrs["since_best"], f.attrs["test_held"] = 3, 40 * 3
        _rejections([[4, 0.5]])(f)
        _rows(f, "history/comm_bytes", (0, 0), 0.0)
        _leg("ranks", None)(f)
        _leg("wall_seconds", None)(f)
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
    res = load_resume(ck)
    assert res.step == 5 and res.per_rank["step_seconds"].shape == (5, 1)
    assert 120 <= res.test_held <= 200 and res.legs[0]["ranks"] is None and res.legs[0]["wall_seconds"] is None


def test_a_negative_step_is_refused_as_such(finished, tmp_path, capsys):
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        f.attrs["step"] = -5
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    _one_line(capsys, f"{ck}: attribute step = -5 is negative", "--force")


def _rows(f, name, index, value):
    """Entry `index` of dataset `name` set to `value` (the dataset rewritten whole, as damage would leave it)."""
    data = f[name][()]
    data[index] = value
    f[name][...] = data


def _rejections(rows):
    def edit(f):
        del f["history/rejections"]
        f["history/rejections"] = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return edit


def _leg(key, value):
    def edit(f):
        legs = json.loads(f.attrs["legs"])
        legs[0][key] = value
        f.attrs["legs"] = json.dumps(legs)
    return edit


#: (what is damaged, how, the refusal's words): each a value of the finished 3-step run (40 test points, 1 rank)
#: that the writer never stores; a resume took every one and carried it on into the new checkpoint and summary.json
OUT_OF_RANGE = [
    ("dt negative", lambda f: _rows(f, "history/dt", 1, -0.25), "history/dt[1] = -0.25 is not > 0"),
    ("dt zero", lambda f: _rows(f, "history/dt", 0, 0.0), "history/dt[0] = 0 is not > 0"),
    ("sigma_train", lambda f: _rows(f, "history/sigma_train", 2, -1.0), "history/sigma_train[2] = -1 is negative"),
    ("sigma_test", lambda f: _rows(f, "history/sigma_test", 0, -0.5), "history/sigma_test[0] = -0.5 is negative"),
    ("test_held negative", lambda f: f.attrs.__setitem__("test_held", -7), "attribute test_held = -7 is negative"),
    ("test_held beyond", lambda f: f.attrs.__setitem__("test_held", 121),
     "attribute test_held = 121 is above n_test x step = 120"),
    ("since_best negative", lambda f: f.attrs.__setitem__("since_best", -100),
     "attribute since_best = -100 is negative"),
    ("since_best beyond", lambda f: f.attrs.__setitem__("since_best", 4),
     "attribute since_best = 4 is above attribute step = 3"),
    ("best", lambda f: f.attrs.__setitem__("best", -0.5), "attribute best = -0.5 is negative"),
    ("n_test fraction", lambda f: f.attrs.__setitem__("n_test", 40.5), "attribute n_test = 40.5 is not a whole number"),
    # n_test is checked before test_held's bound reads it (test_held, 0 <= 7 <= 2 x 3 or 40 x 3, was blamed)
    ("n_test negative", lambda f: f.attrs.__setitem__("n_test", -1), "attribute n_test = -1 is negative"),
    ("n_test fraction below test_held", lambda f: f.attrs.update({"n_test": 2.5, "test_held": 7}),
     "attribute n_test = 2.5 is not a whole number"),
    ("n_test NaN", lambda f: f.attrs.__setitem__("n_test", np.nan),
     "attribute n_test holds a non-finite value (NaN or inf)"),
    ("ranks", lambda f: f.attrs.__setitem__("ranks", 0), "attribute ranks = 0 is below 1"),
    ("rejection step beyond", _rejections([[5, 1.0]]), "history/rejections[0, 0] = 5 is above attribute step + 1 = 4"),
    ("rejection step 0", _rejections([[1, 2.0], [0, 1.0]]), "history/rejections[1, 0] = 0 is below 1"),
    ("rejection step fraction", _rejections([[1.5, 1.0]]), "history/rejections[0, 0] = 1.5 is not a whole number"),
    ("rejection dt", _rejections([[2, -1.0]]), "history/rejections[0, 1] = -1 is not > 0"),
    ("comm_bytes", lambda f: _rows(f, "history/comm_bytes", (2, 0), -8.0), "history/comm_bytes[2, 0] = -8 is negative"),
    ("comm_bytes fraction", lambda f: _rows(f, "history/comm_bytes", (1, 0), 0.5),
     "history/comm_bytes[1, 0] = 0.5 is not a whole number"),
    ("step_seconds", lambda f: _rows(f, "history/step_seconds", (0, 0), -1.0),
     "history/step_seconds[0, 0] = -1 is negative"),
    ("omega2", lambda f: _rows(f, "train/omega2", 5, -0.25), "train/omega2[5] = -0.25 is not > 0"),
    ("omega2 zero", lambda f: _rows(f, "test/omega2", 39, 0.0), "test/omega2[39] = 0 is not > 0"),
    ("weight", lambda f: _rows(f, "train/weights", 7, -1.0), "train/weights[7] = -1 is negative"),
    ("leg to_step", _leg("to_step", 9), "attribute legs[0].to_step = 9 is above attribute step = 3"),
    ("leg wall_seconds", _leg("wall_seconds", -1.0), "attribute legs[0].wall_seconds = -1 is negative"),
]


def test_every_bound_reads_attributes_checked_before_it():
    """A bound (and sigma_test's NaN rule) reads only the attributes its Range declares, each an entry of RANGES
    above it: _check_values takes the values in the table's order, so what a bound reads has passed its own check.
    test_held's bound read n_test before n_test was checked, and blamed test_held for a negative n_test."""
    from hpcflow.checkpoint import RANGES

    keys = list(RANGES)
    for key, rng in RANGES.items():
        assert bool(rng.reads) == (rng.hi is not None or rng.nan == "without test points"), key
        for name in rng.reads:
            assert keys.index(f"attribute {name}") < keys.index(key), (key, name)
        if rng.hi is not None:
            rng.hi[1]({name: 3 for name in rng.reads})  # (a KeyError: it reads one it does not declare)


@pytest.mark.parametrize("edit, said", [c[1:] for c in OUT_OF_RANGE], ids=[c[0] for c in OUT_OF_RANGE])
def test_a_value_outside_its_range_is_refused_and_nothing_is_rewritten(finished, tmp_path, capsys, edit, said):
    """A checkpoint value the writer never stores (a negative step size, sigma, count, timing or weight, an
    |Omega|^2 <= 0, a fraction of a count, a counter beyond what the steps allow): --resume and --check refuse it
    in the one line of a damaged checkpoint naming the entry, its value and where (exit 2), and every file of the
    run stays as it was (a resume wrote test_held -7 into summary.json; a negative |Omega|^2 or weight was refused
    as "does not match what this job samples")."""
    _refused_as_damaged(finished, tmp_path, capsys, edit, f"{said}, where the flow writes ")


def _refused_as_damaged(finished, tmp_path, capsys, edit, said):
    """A copy of the finished run, its checkpoint changed by edit(h5py file): --resume and --resume --check exit 2
    in one line "CHECKPOINT: SAID..." of a damaged checkpoint naming --force, every file of the run as it was."""
    from hpcflow.cli import main

    job, out, ck = _copy(finished, tmp_path)
    with h5py.File(ck, "r+") as f:
        edit(f)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *extra]) == 2
        _one_line(capsys, f"{ck}: {said}", "the checkpoint is damaged", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _retyped(name, dtype):
    def edit(f):
        values = f[name][()]
        del f[name]
        f[name] = values.astype(dtype)
    return edit


def _one_dimensional(values):
    def edit(f):  # one rejection at step 1 with dt 3, as a (2,) dataset
        del f["history/rejections"]
        f["history/rejections"] = np.array(values, dtype=np.float64)
    return edit


def _legs(change):
    def edit(f):
        f.attrs["legs"] = json.dumps(change(json.loads(f.attrs["legs"])))
    return edit


#: (what is damaged, how, the refusal's words): entries of the finished 3-step run (one leg) in a form the writer never
#: stores, which a resume took: rounded values (its result then not bit for bit the uninterrupted run's), a 1-D
#: rejections dataset read as (step, dt) rows, legs that are not the runs up to @step (summary.json's legs lost the
#: earlier run, or showed a gap)
NOT_AS_WRITTEN = [
    ("train/g complex64", _retyped("train/g", np.complex64), "dataset train/g has type complex64, not complex128"),
    ("test/g complex64", _retyped("test/g", np.complex64), "dataset test/g has type complex64, not complex128"),
    ("sigma_train float32", _retyped("history/sigma_train", np.float32),
     "dataset history/sigma_train has type float32, not float64"),
    ("dt float16", _retyped("history/dt", np.float16), "dataset history/dt has type float16, not float64"),
    ("comm_seconds float32", _retyped("history/comm_seconds", np.float32),
     "dataset history/comm_seconds has type float32, not float64"),
    ("rejections 1-D", _one_dimensional([1.0, 3.0]), "dataset history/rejections has shape (2,), not (k, 2)"),
    ("legs empty", _legs(lambda legs: []), "attribute legs is empty ([]), where the flow writes one entry per run up "
                                           "to attribute step = 3"),
    ("legs short of step", _legs(lambda legs: [{**legs[0], "to_step": 1}]),
     "attribute legs[0].to_step = 1 is not attribute step = 3"),
    ("legs gap", _legs(lambda legs: [{**legs[0], "to_step": 1}, {**legs[0], "from_step": 2}]),
     "attribute legs[1].from_step = 2 is not legs[0].to_step = 1"),
    ("legs first not from 0", _legs(lambda legs: [{**legs[0], "from_step": 1}]),
     "attribute legs[0].from_step = 1 is not step 0"),
]


@pytest.mark.parametrize("edit, said", [c[1:] for c in NOT_AS_WRITTEN], ids=[c[0] for c in NOT_AS_WRITTEN])
def test_an_entry_in_a_form_the_writer_never_stores_is_refused_and_nothing_is_rewritten(finished, tmp_path, capsys,
                                                                                        edit, said):
    """--resume and --check refuse it in the one line of a damaged checkpoint naming the entry (exit 2), and every
    file of the run stays as it was; before, each resumed with exit 0."""
    _refused_as_damaged(finished, tmp_path, capsys, edit, said)
