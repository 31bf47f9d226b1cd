"""A resume from DIR/job.toml (the copy a run writes of its job) keeps naming the job file and --set values the run
was made from: summary.json `job_file` and `overrides` stay the first run's, `resumed_with` lists each --resume's, and
the header of DIR/job.toml names them all (it named DIR/job.toml itself, and only the last --set values)."""

import json
import tomllib

import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


@pytest.mark.parametrize("verb, text, first, more, again", [
    ("run", flow_points(60, 20) + DELTA_FLOW, "flow.steps=2", "flow.steps=3", "flow.steps=4"),
    ("nn", NN_POINTS + SMALL_NET + TINY_TRAINING, "training.epochs=1", "training.epochs=2", "training.epochs=3"),
])
def test_a_resume_from_the_saved_job_keeps_the_first_runs_job_file_and_set_values(tmp_path, verb, text, first, more,
                                                                                   again):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(text)
    described = 'job.description="a b"'
    assert main([verb, str(job), "--out", str(out), "--quiet", "--set", first, "--set", described]) == 0
    saved = str(out / "job.toml")
    for n, step in enumerate((more, again), 1):
        assert main([verb, saved, "--out", str(out), "--quiet", "--resume", "--set", step]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["job_file"] == str(job) and summary["overrides"] == [first, described], summary
        assert summary["resumed_with"] == [{"job_file": saved, "overrides": [s]} for s in (more, again)[:n]]
        header = [line for line in (out / "job.toml").read_text().splitlines() if line.startswith("#")]
        assert header[0].endswith(f"the validated configuration of {job}") and first in header[1], header
        assert [line.split(" with: ")[1] for line in header[2:]] == [f"--set {s}" for s in (more, again)[:n]], header
        assert tomllib.loads((out / "job.toml").read_text())["job"]["description"] == "a b"


@pytest.mark.parametrize("verb, text, first, more", [
    ("run", flow_points(60, 20) + DELTA_FLOW, "flow.dt=0.5", "flow.steps=5"),
    ("nn", NN_POINTS + SMALL_NET + TINY_TRAINING, "training.lr=2e-3", "training.epochs=5"),
])
def test_a_resume_beside_a_damaged_job_toml_takes_the_first_runs_set_values_from_summary_json(tmp_path, capsys, verb,
                                                                                              text, first, more):
    """A finished run started with one --set, its job.toml overwritten with garbage, then extended with --resume:
    summary.json and the new job.toml still name the first run's --set values (they named the resume's as the first
    run's, unsaid), and the damaged job.toml is said; with summary.json damaged too, that is said as well."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(text)
    assert main([verb, str(job), "--out", str(out), "--quiet", "--set", first]) == 0
    (out / "job.toml").write_text("garbage\n")
    capsys.readouterr()
    again = [verb, str(job), "--out", str(out), "--quiet", "--resume", "--set", first, "--set", more]
    assert main(again) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overrides"] == [first] and summary["job_file"] == str(job), summary
    assert summary["resumed_with"] == [{"job_file": str(job), "overrides": [first, more]}], summary
    header = [line for line in (out / "job.toml").read_text().splitlines() if line.startswith("#")]
    assert header[1:] == [f"# run with: --set {first}", f"# resumed from {job} with: --set {first} --set {more}"], \
        header
    err = capsys.readouterr().err
    assert f"hpcflow {verb}: {out}/job.toml does not name the job its run was made from" in err, err
    assert "from summary.json" in err, err
    (out / "job.toml").write_text("garbage\n")
    (out / "summary.json").write_text("{")
    assert main([*again[:-1], more.replace("=5", "=6")]) == 0
    assert "neither does summary.json" in capsys.readouterr().err
