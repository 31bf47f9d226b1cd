"""The flow's state hooks: an interrupted and resumed flow is bitwise the uninterrupted one (from a recorded
view and from a checkpoint file); a diverging flow stops with its last finite state (exit status 3 for a job)."""

import json

import numpy as np
import pytest

from hpcflow import cli
from hpcflow.checkpoint import CheckpointWriter, load_resume
from hpcflow.experiments import flow_job
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import GaussianKernel
from test_flow import LoudOnTestKernel

STOP_AT = 3
KW = dict(dt=4.0, steps=8, early_stop=5, loss="ultralocal")  # halvings at steps 1-2, held test points


@pytest.fixture(scope="module")
def sets():
    X = Hypersurface.fermat(3)
    return X.sample(120, seed=21, chart=(0, 1)), X.sample(60, seed=22, chart=(0, 1))


def _kernel(train):
    return LoudOnTestKernel(GaussianKernel(0.3), train.points, 30.0)  # loud test updates: some are held


class RecordedResume:
    """A resume built from a FlowView recorded by on_step (copies of its rows)."""

    def __init__(self, view):
        for name in ("step", "sigma_train", "sigma_test", "dt", "rejections", "test_held", "best", "since_best",
                     "stopped"):
            setattr(self, name, getattr(view, name))
        self._rows = {"train": [a.copy() for a in view.train_rows()], "test": [a.copy() for a in view.test_rows()]}

    def rows(self, kind, global_idx):
        idx, v = self._rows[kind]
        return v[np.searchsorted(idx, global_idx)]


def _assert_bitwise(a, b):
    for key in ("sigma_train", "sigma_test", "dt_history", "g_train", "g_test"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert (a.rejections, a.test_held, a.steps_taken, a.stopped, a.stop_kind) == \
        (b.rejections, b.test_held, b.steps_taken, b.stopped, b.stop_kind)


@pytest.mark.parametrize("via", ["view", "checkpoint"])
def test_interrupted_and_resumed_flow_is_bitwise_the_uninterrupted_one(sets, tmp_path, via):
    train, test = sets
    full = kernel_flow(_kernel(train), train, test, **KW)
    assert "early stop" in full.stopped and full.steps_taken > STOP_AT  # the window is open at STOP_AT
    path = tmp_path / "checkpoint.h5"
    writer = CheckpointWriter(path, {"flow": {}}, every=1) if via == "checkpoint" else None
    seen = []

    def interrupt(view):
        seen.append(view)
        if writer is not None:
            writer(view)
        return view.step == STOP_AT

    part = kernel_flow(_kernel(train), train, test, on_step=interrupt, **KW)
    cut = seen[-1]
    assert part.stop_kind == "stopped" and cut.step == STOP_AT and cut.final
    assert {s for s, _ in cut.rejections} == {1, 2} and cut.test_held > 0 and 0 < cut.since_best < 5
    if writer is not None:
        writer.close("stopped")
        resume = load_resume(path)
        assert resume.step == STOP_AT
    else:
        resume = RecordedResume(cut)
    rest = kernel_flow(_kernel(train), train, test, resume=resume, **KW)
    _assert_bitwise(rest, full)


def test_resuming_an_early_stopped_flow_takes_no_further_step(sets):
    train, test = sets
    views = []
    full = kernel_flow(_kernel(train), train, test, on_step=views.append, **KW)
    again = kernel_flow(_kernel(train), train, test, resume=RecordedResume(views[-1]), **KW)
    assert views[-1].final and full.stop_kind == "early_stop"
    _assert_bitwise(again, full)


def test_a_writer_resumed_with_no_step_left_keeps_every_per_rank_row(sets, tmp_path):
    """A resume of an early-stopped flow's checkpoint takes no step; its writer's final call at the resumed step is
    no step of its run: history/ row k - 1 stays step k's (the writer appended a row for it and kept the last S rows,
    so every row moved up one step and the last was 0.0)."""
    import h5py

    train, test = sets
    path = tmp_path / "checkpoint.h5"
    writer = CheckpointWriter(path, {"flow": {}}, every=2)
    full = kernel_flow(_kernel(train), train, test, on_step=writer, **KW)
    writer.close("finished")
    names = ("step_seconds", "kernel_seconds", "comm_seconds", "comm_bytes")

    def rows():
        with h5py.File(path, "r") as f:
            return {k: f[f"history/{k}"][()] for k in names}

    before = rows()
    assert full.stop_kind == "early_stop" and before["step_seconds"].shape == (full.steps_taken, 1)
    assert np.all(before["step_seconds"] > 0) and np.all(before["kernel_seconds"] > 0)
    resume = load_resume(path)
    again = CheckpointWriter(path, {"flow": {}}, every=1, resume=resume)
    rest = kernel_flow(_kernel(train), train, test, resume=resume, on_step=again, **KW)
    assert again.close("finished") == full.steps_taken and rest.steps_taken == full.steps_taken
    for name, table in rows().items():
        np.testing.assert_array_equal(table, before[name], err_msg=name)


class ExplodingKernel:
    """Gaussian updates, until the train update of step `after` + 1 sends the diagonal to ~1e200: finite
    and positive definite entries whose determinant overflows, so sigma is not finite."""

    mixes_components = False
    name = "exploding"

    def __init__(self, after):
        self.base, self.after, self.calls = GaussianKernel(0.3), after, 0

    def block(self, x1, x2):
        return self.base.block(x1, x2)

    def params(self):
        return {"after": self.after}

    def apply(self, x, x_src, grad, *, tile):
        u = self.block(x, x_src) @ grad
        if x is x_src:
            self.calls += 1
            if self.calls > self.after:
                u[:, :3] = -1e200
        return u


def test_diverging_flow_stops_with_the_last_finite_state(sets):
    train, test = sets
    res = kernel_flow(ExplodingKernel(2), train, test, dt=0.05, steps=6)
    ref = kernel_flow(ExplodingKernel(2), train, test, dt=0.05, steps=2)
    assert res.stop_kind == "diverged" and "not finite" in res.stopped and "\n" not in res.stopped
    assert res.steps_taken == 2 and np.all(np.isfinite(res.sigma_train)) and len(res.sigma_test) == 3
    np.testing.assert_array_equal(res.g_train, ref.g_train)
    np.testing.assert_array_equal(res.g_test, ref.g_test)


def test_diverging_job_writes_outputs_then_exits_3(tmp_path, monkeypatch, capsys):
    job = tmp_path / "job.toml"
    job.write_text('[job]\nkind = "flow"\n[geometry]\nchart = [0, 1]\nn_train = 80\nn_test = 30\nseed = 1\n'
                   '[kernel]\nname = "delta"\n[flow]\ndt = 0.05\nsteps = 5\n')
    monkeypatch.setattr(flow_job, "check_kernel", lambda kcfg, source, *entries, **kept: ExplodingKernel(3))
    status = cli.main(["run", str(job), "--out", str(tmp_path / "out")])
    assert status == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged" in err[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    resume = load_resume(tmp_path / "out" / "checkpoint.h5")
    assert summary["status"] == "diverged" and summary["checkpoint_step"] == resume.step == 3
    assert len(resume.sigma_train) == 4 and np.all(np.isfinite(resume.sigma_train))
