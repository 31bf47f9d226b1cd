"""`hpcflow run --resume` accepts a changed [job].description (text no step reads), as `hpcflow nn --resume` does:
a flow preempted after step 2 of 5 (SIGTERM at that step's checkpoint: tests/mpi/flow_stop_driver.py) and resumed
with another description ends bit for bit as the run never interrupted, and job.toml, summary.json and checkpoint.h5
record the new description; a key that changes the flow ([flow].dt) is still refused, in one line naming the keys a
resume may change, nothing touched."""

import json
import os
import subprocess
import sys
import tomllib

import h5py

from hpcflow.cli import main
from test_checkpoint import RESUME_JOB

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "flow_stop_driver.py")
STEPS, STOP = 5, 2
JOB = RESUME_JOB.replace('kind = "flow"', 'kind = "flow"\ndescription = "first text"').replace(
    "steps = 3", f"steps = {STEPS}") + "[checkpoint]\nevery = 100\n"
#: the datasets a run's results are (timings left out)
RESULTS = ("history/sigma_train", "history/sigma_test", "history/dt", "history/rejections", "train/g", "test/g")


def _results(out):
    with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
        data = {name: f[name][()] for name in RESULTS}
        config, step = json.loads(f.attrs["config"]), int(f.attrs["step"])
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    return data, config, step, summary


def _files(out):
    return {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out))}


def test_a_resume_with_another_description_is_bitwise_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    job, whole, cut = tmp_path / "job.toml", str(tmp_path / "whole"), str(tmp_path / "cut")
    job.write_text(JOB)
    assert main(["run", str(job), "--out", whole, "--quiet"]) == 0
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())
    p = subprocess.run([sys.executable, DRIVER, str(STOP), "0", "run", str(job), "--out", cut], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 4, p.stderr[-2000:]
    assert _results(cut)[2] == STOP  # preempted at step 2 of 5
    capsys.readouterr()
    changed = ["--set", "job.description=\"second text, after the stop\""]
    before = _files(cut)
    assert main(["run", str(job), "--out", cut, "--resume", "--quiet", *changed, "--set", "flow.dt=2.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[flow].dt = 2.0 differs from the checkpoint's 6.5;" in err, err
    assert "only [flow].steps, [geometry].max_batches, [checkpoint] and [job].description may change on --resume" \
        in err, err
    assert "--set flow.dt=6.5 (or start a new --out)" in err and "description" not in err.split("resume with")[1], err
    assert _files(cut) == before
    assert main(["run", str(job), "--out", cut, "--resume", "--quiet", *changed]) == 0, capsys.readouterr().err
    got, config, step, summary = _results(cut)
    want, _, want_step, want_summary = _results(whole)
    assert step == want_step == STEPS
    for name in RESULTS:  # bit for bit
        assert got[name].dtype == want[name].dtype and got[name].tobytes() == want[name].tobytes(), name
    for key in ("sigma_train_final", "sigma_test_final", "sigma_test_best", "gain_train", "gain_test"):
        assert summary[key] == want_summary[key], key
    assert summary["status"] == "finished" and summary["resumed"] is True
    with open(os.path.join(cut, "job.toml"), "rb") as fh:
        saved = tomllib.load(fh)
    for cfg in (saved, summary["config"], config):
        assert cfg["job"]["description"] == "second text, after the stop", cfg


def test_the_flows_refusal_words_follow_its_resumable_changes():
    """The words the refusal names are the list the check follows, in the words `hpcflow nn --resume` uses."""
    from hpcflow.checkpoint import RESUMABLE_CHANGES, RESUMABLE_SAID
    from hpcflow.nn.job import changes_said

    assert RESUMABLE_SAID == changes_said(RESUMABLE_CHANGES)
