"""The report's advice for a trial's directory inside a study is a command that works there: for damaged data not
`--force` (which `hpcflow run` refuses inside a study) but what the study does or the trial's job.toml rerun outside
it; the study's `hpcflow tune` command with the --storage of a study kept in a database."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from analysis_runs import md_rows, run_dirs
from hpcflow.cli import main
from test_tune_records import _job, _tune


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _rows(res) -> dict:
    with open(res["md"], encoding="utf-8") as fh:
        return md_rows(fh.read().split("## Runs")[1].split("\n## ")[0])


def test_a_damaged_trial_is_advised_what_works_inside_a_study_not_force(tmp_path, capsys, runs):
    """Its row said "rerun the job with --force", which `hpcflow run` refuses inside a study."""
    from hpcflow.report.build import build_report

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    trial = out / "trials" / "0000"
    os.truncate(trial / "checkpoint.h5", 1000)
    res = build_report([str(trial), runs["flow"]], tmp_path / "r")
    fix = (f"trial 0 of the study in {out}, complete and not retried by the study; --force is refused inside a study: "
           f"rerun its job.toml into an --out outside it: `hpcflow run {trial / 'job.toml'} --out {tmp_path / 's_0000'}`")
    assert _rows(res)["0000"][2] == f"incomplete: checkpoint.h5 unreadable (damaged); {fix}"
    assert [r for p, r in res["skipped"] if p == str(trial)] == [  # listed once, as a damaged nn.h5's run is
        f"sigma histories: not drawn: checkpoint.h5 unreadable (damaged); {fix}"], res["skipped"]
    md = open(res["md"], encoding="utf-8").read()
    assert f"0000 (incomplete: checkpoint.h5 unreadable (damaged); {fix}): not drawn" in md, md
    capsys.readouterr()
    assert main(["run", str(trial / "job.toml"), "--out", str(trial), "--force", "--quiet"]) == 2  # the old advice
    assert "lies inside" in capsys.readouterr().err
    assert main([*fix.split("`")[1].split()[1:], "--quiet"]) == 0  # the new


def test_a_trial_without_its_data_file_inside_a_study_is_not_advised_force(tmp_path, capsys):
    from hpcflow.report.detect import detect

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    trial = out / "trials" / "0000"
    os.remove(trial / "checkpoint.h5")
    reason = detect(trial).reason
    assert "--force" not in reason.replace("--force is refused", ""), reason
    assert reason.endswith(f"rerun its job.toml into an --out outside it: `hpcflow run {trial / 'job.toml'} --out "
                           f"{tmp_path / 's_0000'}`"), reason


def _preempted(tmp_path, capsys, monkeypatch, *storage):
    """`_preempted_study` (SIGTERM during a step of trial 0) with these --storage arguments: (job, out)."""
    import test_tune_continue

    monkeypatch.setattr(test_tune_continue, "_tune", lambda capsys, *args: _tune(capsys, *args, *storage))
    return test_tune_continue._preempted_study(tmp_path, capsys, monkeypatch)


def test_the_advised_tune_command_of_a_study_in_a_database_names_its_storage(tmp_path, capsys, monkeypatch):
    """The command lacked --storage URL, without which `hpcflow tune` refuses the study directory."""
    from hpcflow.report.build import build_report

    url = f"sqlite:///{tmp_path / 'q.db'}"
    job, out = _preempted(tmp_path, capsys, monkeypatch, "--storage", url)
    status = _rows(build_report([str(out / "trials" / "0000")], tmp_path / "r"))["0000"][2]
    command = f"hpcflow tune {job} --trials N --out {out} --storage {url}"
    assert status.endswith(f"queued to be continued as trial 1 by `{command}`"), status
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)  # the old advice
    assert rc == 2 and "--storage" in io.err, io.err
    rc, io = _tune(capsys, *command.removeprefix("hpcflow tune ").replace("N", "1").split())
    assert rc == 0 and "trial 1 continues preempted trial 0" in io.out, io.err


@pytest.mark.parametrize("recorded", ["postgresql://u:***@db.example/optuna",
                                      "postgresql://u:hunter2@db.example/optuna"])
def test_a_study_whose_storage_url_is_recorded_masked_is_said_to_need_its_url(tmp_path, capsys, recorded):
    """study.json records a URL without its password (or, written by hand, with one): the command names URL, and
    never prints a password."""
    import json

    from hpcflow.analysis.study import continuation

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    record = json.loads((out / "study.json").read_text())
    (out / "study.json").write_text(json.dumps({**record, "storage": recorded}))
    text = continuation(str(out / "trials" / "0000"))
    assert text == (f"it lies in the study in {out}, where --resume is refused: the study's own `hpcflow tune {job} "
                    f"--trials N --out {out} --storage URL` (URL: the study's storage URL with its password, which "
                    "study.json records as postgresql://u:***@db.example/optuna) continues its trials"), text
    assert "hunter2" not in text


def test_a_damaged_run_in_a_study_directory_whose_storage_cannot_be_read_is_advised_a_rerun_outside(tmp_path, runs):
    """Where the study's storage cannot be read (its trial unknown), as where it can: the job.toml rerun into an
    --out outside the study, for the runs table's and a figure's reasons alike (a noise scan's non-finite gain)."""
    import json

    import h5py
    import numpy as np

    from hpcflow.report.build import build_report

    study = tmp_path / "s"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"study": "gone", "storage": "study.journal"}))  # no journal
    flow, noise = study / "damaged", study / "scan"
    shutil.copytree(runs["flow"], flow)
    shutil.copytree(runs["noise"], noise)
    os.truncate(flow / "checkpoint.h5", 1000)
    with h5py.File(noise / "noise_scan.h5", "a") as f:
        f["table/gain"][1] = np.nan
    res = build_report([str(flow), str(noise), runs["flow"]], tmp_path / "r")
    def fix(d):
        return (f"it lies in the study in {study}, where --force is refused: rerun its job.toml into an --out outside "
                f"it: `hpcflow run {d / 'job.toml'} --out {tmp_path / ('s_' + d.name)}`")

    rows = _rows(res)
    assert rows["damaged"][2] == f"incomplete: checkpoint.h5 unreadable (damaged); {fix(flow)}", rows["damaged"]
    assert rows["scan"][2].startswith("incomplete: noise_scan.h5 damaged: "), rows["scan"]
    assert rows["scan"][2].endswith(f"the file is damaged; {fix(noise)}"), rows["scan"]  # the fix said once


def test_the_advised_tune_command_carries_the_studys_set_values_and_continues_it_run_verbatim(tmp_path, capsys,
                                                                                                monkeypatch):
    """The command lacked the study's --set values: the study refuses a job without them (another flow.steps)."""
    import shlex

    from hpcflow.report.build import build_report

    sets = ["--set", "flow.steps=6", "--set", 'job.description="a tiny study"']  # a value a shell must get quoted
    job, out = _preempted(tmp_path, capsys, monkeypatch, *sets)
    status = _rows(build_report([str(out / "trials" / "0000")], tmp_path / "r"))["0000"][2]
    assert status.count("`") == 2 and "queued to be continued as trial 1 by `" in status, status
    argv = shlex.split(status.split("`")[1])
    assert argv == ["hpcflow", "tune", str(job), "--trials", "N", "--out", str(out), *sets], argv
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)  # the command without them
    assert rc == 2 and "flow" in io.err and "steps" in io.err, io.err
    rc, io = _tune(capsys, *["1" if w == "N" else w for w in argv[2:]])
    assert rc == 0 and "trial 1 continues preempted trial 0" in io.out, io.err
    summary = json.loads((out / "trials" / "0001" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 6, summary


#: `hpcflow tune` whose worker dies (SIGKILL-like, no handler runs) right after its trial's first flow checkpoint: the
#: trial stays RUNNING in the storage, its checkpoint.h5 part way
DIES_AFTER_A_CHECKPOINT = """
import os, sys
import hpcflow.checkpoint as ck
real = ck.CheckpointWriter.write
def dies(self, view, *, status):
    real(self, view, status=status)
    if status == "running":
        os._exit(9)
ck.CheckpointWriter.write = dies
from hpcflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _dies(argv) -> None:
    """Run `hpcflow ARGV...` (the tune command) in a worker that dies after its trial's first checkpoint."""
    import subprocess
    import sys

    from analysis_runs import env

    p = subprocess.run([sys.executable, "-c", DIES_AFTER_A_CHECKPOINT, *argv, "--quiet"], env=env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 9, p.stdout + p.stderr


def _gone_advice(trial_dir, report_dir) -> tuple[str, list]:
    """(what the report's row of a gone worker's trial says the study does with it, its advised command's words with
    N = 1)."""
    import shlex

    from hpcflow.report.build import build_report

    status = _rows(build_report([str(trial_dir)], report_dir))[trial_dir.name][2]
    said = status.split("`")
    assert len(said) == 3, status
    return said[2], ["1" if w == "N" else w for w in shlex.split(said[1])]


@pytest.mark.parametrize("retries", [0, 1])
def test_a_gone_workers_trial_is_said_retried_only_as_the_studys_retries_allow(tmp_path, capsys, retries):
    """Its row said the study's next hpcflow tune "marks it failed and retries it", while with [tune] retries = 0 (the
    default), or its retries used, the study fails it and never runs its parameters again."""
    from test_tune_records import JOB, _journal

    job = _job(tmp_path, JOB.replace("[tune]\n", f"[checkpoint]\nevery = 1\n[tune]\nretries = {retries}\n"))
    out = tmp_path / "s"
    _dies(["tune", str(job), "--trials", "1", "--out", str(out)])
    first = out / "trials" / "0000"
    said, argv = _gone_advice(first, tmp_path / "r0")
    assert argv == ["hpcflow", "tune", str(job), "--trials", "1", "--out", str(out)], argv
    if retries == 0:
        assert said == (" marks it failed and does not run it again: [tune] retries = 0 (retries = 1 in its job file "
                        "would have it retried afresh)"), said
    else:
        assert said == (" marks it failed and retries it afresh (new points) as a new trial: retry 1 of [tune] "
                        "retries = 1"), said

    if retries == 1:  # the retry's worker dies too: its parameters have had their one retry
        _dies(argv[1:])
        trials = _journal(out / "study.journal").trials
        assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == trials[0].params
        assert trials[1].user_attrs["seeds"] != trials[0].user_attrs["seeds"]  # afresh: new points
        first = out / "trials" / "0001"
        said, again = _gone_advice(first, tmp_path / "r1")
        assert again == argv and said == (" marks it failed and does not run it again: its parameters have had 1 of "
                                          "[tune] retries = 1"), said
    rc, io = _tune(capsys, *argv[2:])  # the advised command, as it is: what it does is what the row said
    assert rc == 0, io.err
    trials = _journal(out / "study.journal").trials
    gone = int(first.name)
    assert trials[gone].state.name == "FAIL" and "worker gone" in trials[gone].user_attrs["failure"]
    assert len(trials) == gone + 2 and trials[-1].state.name == "COMPLETE"
    assert trials[-1].user_attrs.get("retry_of") is None and trials[-1].params != trials[gone].params  # not retried


def test_a_damaged_nn_trial_is_advised_a_rerun_with_hpcflow_nn(tmp_path, capsys):
    """Its row advised a rerun of its job.toml "with hpcflow run", the command for flow jobs; README's for network
    jobs is `hpcflow nn` (the only one that continues them)."""
    from test_tune_nn import JOB as NN_JOB

    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--set", "training.epochs=1")[0] == 0
    trial = out / "trials" / "0000"
    for name in ("checkpoint.pt", "nn.h5"):
        os.truncate(trial / name, 700)
    from hpcflow.report.detect import detect

    said = detect(trial).reason
    assert said.endswith(f"trial 0 of the study in {out}, complete and not retried by the study; --force is refused "
                         f"inside a study: rerun its job.toml into an --out outside it: `hpcflow nn {trial / 'job.toml'} "
                         f"--out {tmp_path / 's_0000'}`"), said
    capsys.readouterr()
    assert main([*said.split("`")[1].split()[1:], "--quiet"]) == 0
    summary = json.loads((tmp_path / "s_0000" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 1, summary


#: a directory name a shell must get quoted
ODD = "my st'udy dir"


def test_the_advised_rerun_outside_a_study_works_pasted_in_a_directory_with_a_space_and_a_quote(tmp_path, capsys):
    """The job.toml rerun was not quoted: a shell split the study directory's name at its space (and its quote left
    the line unfinished)."""
    import shlex

    from hpcflow.report.detect import detect

    job, out = _job(tmp_path), tmp_path / ODD / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    trial = out / "trials" / "0000"
    os.truncate(trial / "checkpoint.h5", 1000)
    said = detect(trial).reason
    assert said.count("`") == 2, said
    argv = shlex.split(said.split("`")[1])
    assert argv == ["hpcflow", "run", str(trial / "job.toml"), "--out", str(tmp_path / ODD / "s_0000")], argv
    capsys.readouterr()
    assert main([*argv[1:], "--quiet"]) == 0  # pasted as it is: the trial's job, run outside the study
    summary = json.loads((tmp_path / ODD / "s_0000" / "summary.json").read_text())
    trial_summary = json.loads((trial / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["config"] == trial_summary["config"], summary
    assert summary["gain_train"] == trial_summary["gain_train"]  # the trial's run, bit for bit


def test_the_advised_nn_resume_works_pasted_in_a_directory_with_a_space_and_a_quote(tmp_path, runs):
    """`hpcflow nn DIR/job.toml --out DIR --resume` of a finished network run whose nn.h5 is gone was not quoted."""
    import shlex

    from hpcflow.report.detect import detect

    d = tmp_path / ODD / "nn"
    shutil.copytree(runs["nn"], d)
    os.remove(d / "nn.h5")
    said = detect(d).missing
    assert said.startswith("nn.h5 missing: write it again with hpcflow nn "), said
    argv = shlex.split(said.removeprefix("nn.h5 missing: write it again with "))
    assert argv == ["hpcflow", "nn", str(d / "job.toml"), "--out", str(d), "--resume"], argv
    assert main([*argv[1:], "--quiet"]) == 0  # pasted as it is: nn.h5 written again
    assert (d / "nn.h5").is_file() and detect(d).missing == ""
