"""A flow that ended by its own rule before [flow].steps (a numerical stop, its early stop) is finished: --resume,
with more steps too, has nothing to do, changes nothing on disk and exits as the run did (3 at 2 ranks, 0); a
diverged run whose summary was never written resumes without recording its failed step's rejections twice."""

import json
import os
import subprocess
import sys

import h5py

from hpcflow.cli import main
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
ENV = dict(os.environ, HPCFLOW_THREADS="1")


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
    """Its checkpoint holds the failed step's rejected trials; the resume retries that step and records them anew."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(DIVERGES)
    assert _run(job, out) == 3
    step, rejections, legs = _checkpoint(out)
    os.remove(out / "summary.json")  # killed between the checkpoint and the summary: an interrupted run
    assert _run(job, out, "--resume") == 3
    again, rejections_again, legs_again = _checkpoint(out)
    assert (again, rejections_again) == (step, rejections) and len(legs_again) == len(legs) + 1
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
