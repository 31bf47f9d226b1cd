"""`kernel_flow(..., resume=load_resume(path))` of the Python API with sets or arguments other than those the
checkpoint was written with: refused before any work with one ValueError naming `resume` and what differs. A train
set of more points than the checkpoint's failed with NumPy's IndexError in FlowResume.rows, and so did a test set
where the checkpoint was written with test=None; a train set of the same size but other points, another kernel or
another dt went on silently, continuing the metrics of other points (σ jumped at the resumed step). The rows are
compared with the point data where the checkpoint holds them (the CLI's, to rounding), else with the fingerprint
the writer records of them (bitwise), at any rank count. `load_resume` of a missing file advises a Python caller
too, not with the command line's words alone."""

import dataclasses
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.checkpoint import CheckpointWriter, load_resume
from hpcflow.errors import InputFileError
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import DeltaKernel, GaussianKernel

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "resume_fit_checks.py")
N_TRAIN, N_TEST, DT, WIDTH = 60, 30, 1e-3, 0.2
X = Hypersurface.fermat(3)


def _sample(n, seed):
    return X.sample(n, seed=seed, chart=(0, 1), threads=1)


TRAIN, TEST = _sample(N_TRAIN, 1), _sample(N_TEST, 2)


def _flow(train=TRAIN, test=TEST, steps=4, **kw):
    args = {"dt": DT, "kernel": GaussianKernel(WIDTH), **kw}
    return kernel_flow(args.pop("kernel"), train, test, steps=steps, **args)


def _static(train, test):
    """The point data of both sets, as `hpcflow run` gives the writer (`static`, `n_rows`)."""
    static, n_rows = {}, {}
    for kind, ps in (("train", train), ("test", test)):
        for f in ("points", "weights", "omega2"):
            static[f"{kind}/{f}"] = (np.arange(len(ps)), getattr(ps, f))
            n_rows[f"{kind}/{f}"] = len(ps)
    return static, n_rows


def _written(path, test=TEST, *, with_points=False, steps=2):
    """A checkpoint at step `steps` of the flow of TRAIN and `test` (DT, GaussianKernel(WIDTH)); with_points: holding
    the sets' point data, as the CLI's do."""
    static, n_rows = _static(TRAIN, test) if with_points else (None, None)
    writer = CheckpointWriter(path, {}, every=1, static=static, n_rows=n_rows)
    _flow(test=test, steps=steps, on_step=writer)
    writer.close("finished")
    return load_resume(path)


@pytest.fixture(scope="module")
def full():
    """The uninterrupted 4-step flow of TRAIN and TEST."""
    return _flow()


def _bitwise(result, full):
    for name in ("g_train", "g_test", "sigma_train", "sigma_test", "dt_history"):
        np.testing.assert_array_equal(getattr(result, name), getattr(full, name), err_msg=name)


@pytest.mark.parametrize("train, test, written_test, said", [
    (N_TRAIN + 30, N_TEST, N_TEST, "the train set has 90 points, where checkpoint {} holds 60"),  # (IndexError)
    (N_TRAIN - 20, N_TEST, N_TEST, "the train set has 40 points, where checkpoint {} holds 60"),  # (went on)
    (N_TRAIN, N_TEST, 0, "the test set has 30 points, where checkpoint {} was written without test points "
                         "(test=None)"),  # (IndexError)
    (N_TRAIN, 0, N_TEST, "test=None (no test points), where checkpoint {} holds 30 test points")],  # (went on)
    ids=["more train", "fewer train", "test where none", "none where test"])
def test_sets_of_other_sizes_are_refused_naming_resume(tmp_path, full, train, test, written_test, said):
    path = tmp_path / "checkpoint.h5"
    state = _written(path, TEST if written_test else None)
    with pytest.raises(ValueError) as refused:
        _flow(_sample(train, 1), _sample(test, 2) if test else None, resume=state)
    message = str(refused.value)
    assert message.startswith("resume: " + said.format(path)) and "resume=None" in message, message
    assert "\n" not in message
    if written_test:  # the sets it was written with continue it as if never interrupted
        _bitwise(_flow(resume=state), full)


def _one_ulp(ps, field, row):
    """A copy of PointSet `ps` whose `field` differs in one unit in the last place at `row` (its first entry's real
    part)."""
    values = getattr(ps, field).copy()
    flat = values.reshape(len(values), -1)
    part = flat.real if np.iscomplexobj(flat) else flat
    part[row, 0] = np.nextafter(part[row, 0], np.inf)
    assert not np.array_equal(values, getattr(ps, field))
    return dataclasses.replace(ps, **{field: values})


def test_other_rows_of_the_same_size_are_refused_by_the_fingerprint_bit_for_bit(tmp_path, full):
    """A checkpoint written without point data (the API's CheckpointWriter without `static`) records a fingerprint
    of each set: another sample of the same size, and one weight or |Omega|^2 of a test point one ulp away, are
    refused; the sets it was written with resume bit for bit."""
    state = _written(tmp_path / "checkpoint.h5")
    cases = [("train", _sample(N_TRAIN, 9), TEST), ("train", _one_ulp(TRAIN, "weights", 17), TEST),
             ("test", TRAIN, _one_ulp(TEST, "omega2", N_TEST - 1)), ("train", _one_ulp(TRAIN, "g_fs", 3), TEST)]
    for kind, train, test in cases:
        with pytest.raises(ValueError, match=rf"^resume: the {kind} set's rows \(points, g_fs, omega2, weights\) "
                                             rf"are not those checkpoint .* was written with"):
            _flow(train, test, resume=state)
    _bitwise(_flow(resume=state), full)
    with h5py.File(tmp_path / "checkpoint.h5") as f:
        assert "train/points" not in f and "set_fingerprints" in f.attrs


def test_other_rows_are_compared_with_the_point_data_the_checkpoint_holds(tmp_path, full):
    """Where the checkpoint holds the point data (as `hpcflow run`'s), a set of other points is refused naming the
    dataset and row; one equal to rounding (1e-13 relative: another node's sampler) resumes, as the CLI's."""
    state = _written(tmp_path / "checkpoint.h5", with_points=True)
    with pytest.raises(ValueError, match=r"^resume: the train set is not the one checkpoint .* was written with: its "
                                         r"train/points at row 0 \(by "):
        _flow(_sample(N_TRAIN, 9), resume=state)
    near = dataclasses.replace(TRAIN, weights=TRAIN.weights * (1 + 1e-13))
    assert _flow(near, resume=state).steps_taken == 4
    _bitwise(_flow(resume=state), full)


@pytest.mark.parametrize("held", ["point data", "fingerprints", "neither"])
def test_a_resume_copies_to_the_host_only_the_fields_it_compares(tmp_path, monkeypatch, full, held):
    """The flow's rows are copied to the host for the comparison with the checkpoint (on the GPU, whole sets) only
    where they are compared and only the fields compared: points, weights and |Omega|^2 against the point data
    (not g_fs, the largest), all four against a fingerprint, none where the checkpoint holds neither (written before
    fingerprints were recorded). Every field was copied in each case. (The weights are not watched: the flow sums
    them on the host anyway.)"""
    import hpcflow.flow as flow

    path = tmp_path / "checkpoint.h5"
    _written(path, with_points=held == "point data")
    if held == "neither":
        with h5py.File(path, "r+") as f:
            del f.attrs["set_fingerprints"]
    state = load_resume(path)
    copied, to_host = set(), flow.to_host

    def seen(a):
        copied.update(f"{kind}/{name}" for kind, ps in (("train", TRAIN), ("test", TEST))
                      for name in ("points", "g_fs", "omega2")
                      if isinstance(a, np.ndarray) and np.shares_memory(a, getattr(ps, name)))
        return to_host(a)

    monkeypatch.setattr(flow, "to_host", seen)
    _bitwise(_flow(resume=state), full)
    fields = {"point data": ("points", "omega2"), "fingerprints": ("points", "g_fs", "omega2"), "neither": ()}[held]
    assert copied == {f"{kind}/{name}" for kind in ("train", "test") for name in fields}, copied


def test_a_state_whose_sets_were_checked_reads_no_point_data_again(tmp_path, monkeypatch, full):
    """A FlowResume marked `sets_checked` (`hpcflow run` compares its sampled rows with the checkpoint's first)
    reads and compares no point data in the flow; unmarked, other points are refused."""
    import hpcflow.checkpoint as checkpoint

    state = _written(tmp_path / "checkpoint.h5", with_points=True)
    read, rows_at = [], checkpoint._rows_at

    def counted(ds, idx, *args, **kw):
        read.append(ds.name)
        return rows_at(ds, idx, *args, **kw)

    monkeypatch.setattr(checkpoint, "_rows_at", counted)
    _bitwise(_flow(resume=dataclasses.replace(state, sets_checked=True)), full)
    assert read == [], read
    with pytest.raises(ValueError, match=r"^resume: the train set is not the one checkpoint .* was written with"):
        _flow(_sample(N_TRAIN, 9), resume=state)
    assert "/train/points" in read, read


@pytest.mark.parametrize("kw, said", [
    ({"kernel": GaussianKernel(0.3)}, "kernel=GaussianKernel(width=0.3"),
    ({"kernel": DeltaKernel()}, "kernel=DeltaKernel() where checkpoint {} was written with kernel=GaussianKernel("),
    ({"dt": 0.5}, "dt=0.5 where checkpoint {} was written with dt=0.001"),
    ({"loss": "ultralocal", "clip": 2.0}, "loss='ultralocal', clip=2.0 where checkpoint {} was written with "
                                          "loss='sigma', clip=None")], ids=["width", "delta", "dt", "loss and clip"])
def test_another_kernel_dt_or_loss_is_refused_naming_resume(tmp_path, full, kw, said):
    """A resume with another kernel or dt went on silently from the checkpoint's metrics (σ jumped). A checkpoint
    written before the arguments were recorded (no @flow_arguments) still resumes."""
    path = tmp_path / "checkpoint.h5"
    state = _written(path)
    with pytest.raises(ValueError) as refused:
        _flow(resume=state, **kw)
    message = str(refused.value)
    assert message.startswith("resume: ") and said.format(path) in message and "resume=None" in message, message
    with h5py.File(path, "r+") as f:
        del f.attrs["flow_arguments"]
    _bitwise(_flow(resume=load_resume(path)), full)


def test_a_kernel_hyperparameter_recorded_on_one_side_only_is_not_compared(tmp_path, full):
    """A checkpoint whose recorded kernel lacks a hyperparameter the kernel now has (one added in a later version),
    or has one it no longer has, resumes: the hyperparameters present in both are compared, and one of those
    other than the flow's is still refused, naming it alone. (The recorded kernel was compared as a whole: every
    checkpoint of an earlier version was refused.)"""
    import json

    path = tmp_path / "checkpoint.h5"
    _written(path)
    with h5py.File(path, "r+") as f:
        arguments = json.loads(f.attrs["flow_arguments"])
        params = arguments["kernel"]["params"]
        assert params["squarings"] == GaussianKernel(WIDTH).params()["squarings"]
        del params["squarings"]
        params["retired_option"] = 7
        f.attrs["flow_arguments"] = json.dumps(arguments)
    _bitwise(_flow(resume=load_resume(path)), full)
    with pytest.raises(ValueError) as refused:
        _flow(resume=load_resume(path), kernel=GaussianKernel(0.3))
    message = str(refused.value)
    assert message.startswith(f"resume: kernel=GaussianKernel(width=0.3) where checkpoint {path} was written with "
                              "kernel=GaussianKernel(width=0.2); "), message


def test_a_checkpoint_of_one_rank_resumes_at_two_and_other_rows_are_refused_by_both(tmp_path):
    """The fingerprint is the same for every split of the rows over the ranks: a checkpoint the API wrote at one
    rank resumes at two (each rank keeping its share of whole sets), and a set of other points is refused by
    both ranks alike."""
    path = tmp_path / "checkpoint.h5"
    _written(path)
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(DRIVER)) + os.pathsep
               + os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    r = subprocess.run(["timeout", "120", mpiexec(), "-n", "2", sys.executable, DRIVER, str(path)],
                       capture_output=True, text=True, timeout=150, env=env)
    lines = [line for line in r.stdout.splitlines() if line.startswith("rank")]  # (rank 0's, then rank 1's)
    assert r.returncode == 0 and len(lines) == 4, (r.stdout, r.stderr)
    assert lines[0] == "rank 0: same sets: 4 steps" and lines[2] == "rank 1: same sets: 4 steps", lines
    assert lines[1].startswith("rank 0: other sets: ValueError: resume: the train set's rows"), lines
    assert lines[3] == lines[1].replace("rank 0", "rank 1", 1), lines


def test_load_resume_of_a_missing_file_advises_the_api_and_the_command_line(tmp_path):
    """It said only 'start the run again with --force (replaces it) or use a new --out' to a Python caller."""
    for path, why in ((tmp_path / "missing.h5", "does not exist"), (tmp_path, "is not a file")):
        with pytest.raises(InputFileError) as refused:
            load_resume(path)
        message = str(refused.value)
        assert message.startswith(f"{path}: no checkpoint to resume from ({why}); "), message
        assert "kernel_flow with resume=None" in message and "--force" in message and "--out" in message, message
    with pytest.raises(TypeError, match=r"^path=None is not a file path"):
        load_resume(None)


def test_a_state_past_steps_is_refused_naming_resume_and_steps_at_it_continues(tmp_path, full):
    """A step-3 state given steps=2 returned its 3-step history as the 2-step flow; at steps = its step the flow
    returns it unchanged, and above, it goes on bitwise."""
    path = tmp_path / "checkpoint.h5"
    state = _written(path, steps=3)
    with pytest.raises(ValueError) as refused:
        _flow(resume=state, steps=2)
    message = str(refused.value)
    assert message.startswith(f"resume: checkpoint {path} is at step 3, past steps=2; pass steps >= 3"), message
    assert "\n" not in message
    _bitwise(_flow(resume=state, steps=3), _flow(steps=3))
    _bitwise(_flow(resume=state), full)
