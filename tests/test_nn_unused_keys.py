"""Keys of [ntk], [width_sweep] and [kernel_flow] given a value while the section's switch is off have no effect:
accepted (`hpcflow tune` may search them beside the switch), and said in one note line at the start of the run (rank
0, under --quiet too: a warning of a likely mistake, which --quiet, progress only, does not silence), naming each
such key the job file or --set gives, not the defaults."""

import json

from hpcflow.cli import main
from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING

#: the tiny nn job: [ntk] enabled = false, no width sweep, no kernel flow
JOB = NN_POINTS + SMALL_NET + TINY_TRAINING.replace("epochs = 4", "epochs = 1")


def _notes(err: str) -> list:
    return [line for line in err.splitlines() if "is not used" in line or "are not used" in line]


def test_keys_of_switched_off_sections_are_named_in_one_note_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)  # (an in-process --quiet run may have set it)
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB + "[kernel_flow]\nsteps = 7\ndt = 0.01\n")
    sets = ["--set", "width_sweep.epochs=3", "--set", "ntk.n_train_points=7", "--set", "ntk.method=jacobian",
            "--set", "ntk.seed=4", "--set", "ntk.n_test_points=10"]  # (n_test_points: its default)
    assert main(["nn", str(job), "--out", str(out), *sets]) == 0
    said = capsys.readouterr().out
    assert _notes(said) == [
        "hpcflow nn: note: [ntk] n_train_points = 7, method = 'jacobian', seed = 4 are not used: [ntk].enabled = "
        "false; [width_sweep] epochs = 3 is not used: [width_sweep].widths = [] (no sweep); [kernel_flow] dt = 0.01, "
        "steps = 7 are not used: [kernel_flow].enabled = false"], said
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and "width_sweep" not in summary and "kernel_flow" not in summary
    # --check says it too, with --quiet as well
    assert main(["nn", str(job), "--out", str(tmp_path / "other"), "--check", "--set", "kernel_flow.steps=9"]) == 0
    assert _notes(capsys.readouterr().out) == [
        "hpcflow nn: note: [kernel_flow] dt = 0.01, steps = 9 are not used: [kernel_flow].enabled = false"]
    assert main(["nn", str(job), "--out", str(tmp_path / "other"), "--check", "--quiet"]) == 0
    assert _notes(capsys.readouterr().out) == [
        "hpcflow nn: note: [kernel_flow] dt = 0.01, steps = 7 are not used: [kernel_flow].enabled = false"]
    # none where the keys are at their defaults, or where the sections are on
    job.write_text(JOB + "[kernel_flow]\nsteps = 50\n[width_sweep]\nepochs = 10\n")
    assert main(["nn", str(job), "--out", str(tmp_path / "a"), "--check"]) == 0
    assert _notes(capsys.readouterr().out) == []
    on = [x for s in ("kernel_flow.enabled=true", "kernel_flow.steps=7", "kernel_flow.n_train=50",
                      "kernel_flow.n_test=50", "width_sweep.widths=[4]", "width_sweep.epochs=1",
                      "width_sweep.n_train=100", "ntk.enabled=true", "ntk.n_train_points=3") for x in ("--set", s)]
    assert main(["nn", str(job), "--out", str(tmp_path / "b"), "--check", *on]) == 0
    assert _notes(capsys.readouterr().out) == []


def test_hpcflow_run_of_a_network_job_names_the_unused_keys_too(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    job = tmp_path / "job.toml"
    job.write_text(JOB + "[kernel_flow]\nsteps = 7\n")
    assert main(["run", str(job), "--out", str(tmp_path / "out"), "--set", "ntk.seed=4"]) == 0
    assert _notes(capsys.readouterr().out) == [
        "hpcflow run: note: [ntk] seed = 4 is not used: [ntk].enabled = false; [kernel_flow] steps = 7 is not used: "
        "[kernel_flow].enabled = false"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "finished"
    assert main(["run", str(job), "--out", str(tmp_path / "other"), "--check", "--set", "kernel_flow.dt=0.5"]) == 0
    assert _notes(capsys.readouterr().out) == [
        "hpcflow run: note: [kernel_flow] dt = 0.5, steps = 7 are not used: [kernel_flow].enabled = false"]
    assert main(["run", str(job), "--out", str(tmp_path / "q"), "--check", "--quiet"]) == 0
    assert _notes(capsys.readouterr().out) == [
        "hpcflow run: note: [kernel_flow] steps = 7 is not used: [kernel_flow].enabled = false"]
