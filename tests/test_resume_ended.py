"""A flow that ended by its own rule before [flow].steps (a numerical stop, its early stop) is finished: --resume,
with more steps too, has nothing to do, changes nothing on disk and exits as the run did (3 at 2 ranks, 0); a
diverged run whose summary was never written resumes without recording its failed step's rejections twice, nor
moving its per-rank rows. A run that holds every step but no summary.json (a partial copy, a kill after the last
checkpoint, a failed extension) gets it from the checkpoint by --resume, at any rank count, with checkpoint.h5 left
byte for byte; one written before its last write gets only the status and stop line that write would have set."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.flow import early_stop_said
from jobtexts import GAUSSIAN_KERNEL, flow_points
from test_parallel import mpiexec

GEOMETRY = flow_points(400, 300)
#: dt just above this flow's stability edge: step 10 finds no positive-definite dt (exit 3)
DIVERGES = GEOMETRY + GAUSSIAN_KERNEL + """[flow]
dt = 17.0
steps = 12
loss = "ultralocal"
"""
EARLY = GEOMETRY + """[kernel]
name = "delta"
[flow]
dt = 0.3162
steps = 40
early_stop = 3
"""
#: a clustered Gaussian flow of 6 steps, a checkpoint every 2 (the quickstart's flow on fewer points)
CLUSTERED = flow_points(300, 200) + GAUSSIAN_KERNEL + """[flow]
dt = 2.0
steps = 6
loss = "ultralocal"
[clustering]
method = "batched"
n_clusters = 4
batch_size = 150
halo_cutoff = 0.3
[checkpoint]
every = 2
"""
ENV = dict(os.environ, HPCFLOW_THREADS="1")
#: summary.json keys that a summary written from the checkpoint holds otherwise (docs/outputs.md, summary.json:flow)
NOT_FROM_CHECKPOINT = ("per_rank", "provenance", "wall_seconds", "wall_seconds_total")
PER_RANK = ("step_seconds", "kernel_seconds", "comm_seconds", "comm_bytes")


def _files(out) -> dict:
    return {name: (out / name).read_bytes() for name in ("summary.json", "checkpoint.h5", "job.toml")}


def _checkpoint(out):
    with h5py.File(out / "checkpoint.h5", "r") as f:
        return int(f.attrs["step"]), f["history/rejections"][()].tolist(), json.loads(f.attrs["legs"])


def _run(job, out, *more):
    return main(["run", str(job), "--out", str(out), "--quiet", *more])


def test_a_diverged_run_has_nothing_to_resume_at_two_ranks(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(DIVERGES)
    assert _run(job, out) == 3
    summary = json.loads((out / "summary.json").read_text())
    step = summary["checkpoint_step"]
    assert summary["status"] == "diverged" and step < 12
    before = _files(out)
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out),
                        "--resume", "--quiet"], capture_output=True, text=True, timeout=120, env=ENV)
    assert p.returncode == 3 and p.stderr.count("\n") == 1 and p.stdout == "", p.stdout + p.stderr
    assert f"after step {step} " in p.stderr and "nothing to do" in p.stderr and "--set flow.dt=" in p.stderr
    assert _files(out) == before
    capsys.readouterr()
    assert _run(job, out, "--resume", "--set", "flow.steps=20") == 3  # more steps repeat the same step: nothing
    assert "nothing to do" in capsys.readouterr().err and _files(out) == before
    assert _run(job, out, "--resume", "--check") == 3  # --check says what the run would, with its status
    assert "nothing to do" in capsys.readouterr().err and _files(out) == before
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--resume", "--check"]) == 2
    assert "nothing is queued" in capsys.readouterr().err


def test_a_diverged_run_killed_before_its_summary_records_its_rejections_once(tmp_path):
    """Its checkpoint holds the failed step's rejected trials; the resume retries that step and records them anew,
    and takes no step: the per-rank rows stay those of steps 1 to S (none moved up, no row added)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(DIVERGES)
    assert _run(job, out) == 3
    step, rejections, legs = _checkpoint(out)
    rows = _per_rank(out)
    assert all(v.shape == (step, 1) and np.all(v[:, 0] > 0) for k, v in rows.items() if k != "comm_bytes")
    os.remove(out / "summary.json")  # killed between the checkpoint and the summary: an interrupted run
    assert _run(job, out, "--resume") == 3
    again, rejections_again, legs_again = _checkpoint(out)
    assert (again, rejections_again) == (step, rejections) and len(legs_again) == len(legs) + 1
    for name, table in _per_rank(out).items():
        np.testing.assert_array_equal(table, rows[name], err_msg=name)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected_steps"] == len(rejections) and summary["status"] == "diverged"


def test_an_early_stopped_run_has_nothing_to_resume(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(EARLY)
    assert _run(job, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps_taken"] < 40 and "early stop" in summary["stopped"]
    before = _files(out)
    capsys.readouterr()
    for more in ([], ["--set", "flow.steps=60"], ["--check"], ["--set", "flow.steps=60", "--check"]):
        assert _run(job, out, "--resume", *more) == 0
        said = capsys.readouterr()
        assert f"at step {summary['steps_taken']} by its early stop" in said.out and "nothing to do" in said.out
        assert "valid" not in said.out, said.out  # --check: what the run would say, no estimate of steps not run
        assert _files(out) == before


def _per_rank(out) -> dict:
    with h5py.File(out / "checkpoint.h5", "r") as f:
        return {k: f[f"history/{k}"][()] for k in PER_RANK}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _contents(path) -> dict:
    """{"@attr": value, "dataset": array} of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": f.attrs[k] for k in f.attrs})
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _same_contents(a: dict, b: dict, *, but=()) -> None:
    assert set(a) == set(b)
    for key in set(a) - set(but):
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def _from_checkpoint(out, original: dict, said: str) -> dict:
    """summary.json of `out` written from its checkpoint: the original's keys and values but NOT_FROM_CHECKPOINT,
    its wall times the legs' as checkpoint.h5 records them; the line printed says so."""
    summary = json.loads((out / "summary.json").read_text())
    assert "per_rank" in original and "per_rank" not in summary
    kept = {k: v for k, v in original.items() if k not in NOT_FROM_CHECKPOINT}
    assert {k: v for k, v in summary.items() if k not in NOT_FROM_CHECKPOINT} == kept
    legs = original["legs"]
    assert summary["wall_seconds"] == legs[-1]["wall_seconds"] > 0
    assert summary["wall_seconds_total"] == pytest.approx(sum(g["wall_seconds"] for g in legs))
    assert set(summary["provenance"]) == set(original["provenance"])
    assert "no step run" in said and "checkpoint.h5 holds the run to its end" in said, said
    return summary


def _finished_copy(base, name):
    """A copy of the finished run in `base` without its summary.json (the checkpoint's bytes kept)."""
    out = base.parent / name
    shutil.copytree(base, out)
    os.remove(out / "summary.json")
    return out


def test_a_summary_from_the_checkpoint_says_it_was_written_and_estimates_no_memory(tmp_path, capsys):
    """--resume --check of a run whose checkpoint holds every step estimated the peak memory of sampling and steps
    it does not do; the --resume itself, beside an earlier run's files that a killed --force run set aside, said
    it had "nothing to add to that run" though it writes summary.json. Now --check says there is nothing to
    estimate, the warning that names the folder says this --resume completes the run from the checkpoint, and the
    folder is removed once it has (the --force run that set it aside is done)."""
    from hpcflow.jobs import replaced

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(CLUSTERED)
    assert _run(job, out) == 0
    aside = replaced.set_aside(str(out))  # as a killed --force run leaves it
    for name in os.listdir(aside):
        os.link(os.path.join(aside, name), out / name)
    os.remove(out / "summary.json")
    capsys.readouterr()
    assert _run(job, out, "--resume", "--check") == 0
    said = capsys.readouterr().out
    assert "no step to run" in said and "estimated peak memory" not in said, said
    assert "no memory estimate: it samples no point and runs no step" in said, said
    assert _run(job, out, "--resume") == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and aside in err and "nothing to add" not in err, err
    assert f"this --resume completes that run ({out / 'summary.json'}, from the checkpoint)" in err, err
    assert f"removed {aside}" in err, err  # the run that set them aside has completed: its --force is done
    assert (out / "summary.json").exists() and replaced.leftovers(str(out)) == []

def test_a_finished_run_without_its_summary_gets_it_from_the_checkpoint(tmp_path, capsys):
    """checkpoint.h5 and job.toml stay byte for byte, summary.json is the run's (the documented keys aside); --check
    says what the resume would do; a second --resume has nothing to do. A resume of it at 2 ranks:
    `test_a_run_without_its_summary_gets_it_at_any_rank_count`."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(CLUSTERED)
    assert _run(job, out) == 0
    original = json.loads((out / "summary.json").read_text())
    assert original["status"] == "finished" and original["checkpoint_step"] == 6 and original["n_blocks"] == 4
    copy = _finished_copy(out, "copy")
    sums = {name: _sha(copy / name) for name in ("checkpoint.h5", "job.toml")}
    capsys.readouterr()
    assert _run(job, copy, "--resume", "--check") == 0
    said = capsys.readouterr().out
    assert "no step to run" in said and "nothing run" in said and not (copy / "summary.json").exists(), said
    assert _run(job, copy, "--resume") == 0
    _from_checkpoint(copy, original, capsys.readouterr().out)
    assert {name: _sha(copy / name) for name in sums} == sums
    files = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert _run(job, copy, "--resume") == 0  # now finished: nothing to do, nothing rewritten
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == files


def test_a_run_without_its_summary_gets_it_at_any_rank_count(tmp_path, capsys):
    """A 2-rank run's checkpoint, its summary.json removed: --resume at 2 ranks and at 1 rank writes the 2-rank
    run's summary (ranks 2) and leaves checkpoint.h5 byte for byte: its per-rank rows (2 columns) kept, no leg."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(CLUSTERED)
    mpi = [mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--quiet"]
    p = subprocess.run([*mpi, "--out", str(out)], capture_output=True, text=True, timeout=120, env=ENV)
    assert p.returncode == 0, p.stderr
    original = json.loads((out / "summary.json").read_text())
    assert original["ranks"] == 2 and len(original["per_rank"]) == 2
    sha = _sha(out / "checkpoint.h5")
    assert all(v.shape == (6, 2) and not np.isnan(v).any() for v in _per_rank(out).values())
    two, one = _finished_copy(out, "two"), _finished_copy(out, "one")
    p = subprocess.run([*mpi, "--out", str(two), "--resume"], capture_output=True, text=True, timeout=120, env=ENV)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    capsys.readouterr()
    assert _run(job, one, "--resume") == 0
    said = capsys.readouterr().out
    assert _sha(two / "checkpoint.h5") == _sha(one / "checkpoint.h5") == sha
    _from_checkpoint(two, original, p.stdout)
    assert _from_checkpoint(one, original, said)["ranks"] == 2


def _written_before_its_end(out, stopped: str = ""):
    """Make checkpoint.h5 of `out` the one its run wrote at its last step before its close (a periodic write:
    status "running", its stop line not yet set), as a run killed between the two leaves it; its contents before."""
    before = _contents(out / "checkpoint.h5")
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f.attrs["status"] = "running"
        f.attrs["stopped"] = stopped
    os.remove(out / "summary.json")
    return before


@pytest.mark.parametrize("text", ["steps", "early stop"])
def test_a_checkpoint_written_before_its_runs_end_is_finished_by_resume_without_a_step(tmp_path, capsys, text):
    """The status and stop line its close would have written are set, every other entry kept (no leg, no row); the
    summary is the run's."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(CLUSTERED if text == "steps" else EARLY)
    assert _run(job, out) == 0
    original = json.loads((out / "summary.json").read_text())
    if text == "early stop":  # the line its close writes: that of the early stop, as the flow says it
        assert original["stopped"] == early_stop_said(original["steps_taken"], 3)
    before = _written_before_its_end(out)
    capsys.readouterr()
    assert _run(job, out, "--resume") == 0
    said = capsys.readouterr().out
    after = _contents(out / "checkpoint.h5")
    assert (after["@status"], after["@stopped"]) == ("finished", original["stopped"])
    _same_contents(after, before)
    _from_checkpoint(out, original, said)


def test_a_diverged_resume_of_a_killed_force_run_keeps_the_earlier_run(tmp_path, capsys):
    """A --force run that diverges, killed before its summary, beside the earlier run's files it set aside: its
    --resume ends diverged (exit 3), writing summary.json after the folder; the run has not finished, so the folder
    stays through the next plain run (refused), byte for byte: that run's results are no reason to drop the earlier
    one's."""
    from hpcflow.jobs import replaced

    earlier_job, job = tmp_path / "earlier.toml", tmp_path / "job.toml"
    earlier_job.write_text(CLUSTERED)
    job.write_text(DIVERGES)
    out, other = tmp_path / "out", tmp_path / "other"
    assert _run(earlier_job, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    aside = replaced.set_aside(str(out))  # as the killed --force run left it
    assert _run(job, other) == 3
    os.remove(other / "summary.json")
    for name in ("checkpoint.h5", "job.toml"):
        os.replace(other / name, out / name)
    capsys.readouterr()
    assert _run(job, out, "--resume") == 3
    err = capsys.readouterr().err
    assert aside in err and "removes them once it has finished" in err and "hpcflow: removed" not in err, err
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"
    assert os.stat(out / "summary.json").st_mtime_ns >= os.stat(aside).st_mtime_ns
    assert _run(job, out) == 2
    err = capsys.readouterr().err
    assert "hpcflow: removed" not in err and aside in err, err
    assert replaced.leftovers(str(out)) == [os.path.basename(aside)]
    assert {name: open(os.path.join(aside, name), "rb").read() for name in os.listdir(aside)} == before
