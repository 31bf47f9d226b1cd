"""A network run's checkpoint.pt whose config entry (the job's JSON text) is missing, not JSON or nested deeper than
the JSON parser follows: every reader of that entry (the runs table's numbers, the sigma histories' positive
definiteness mark, the summary's job check, the whole-training check behind nn.h5's rewrite) takes it as damaged,
as `hpcflow nn --resume` does when it refuses the file, and the report and the analysis scripts say so in the run's
row or one line instead of a traceback or a fix that would be refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, forced, md_rows, run_dirs, script

#: config entries of a damaged checkpoint.pt -> the damage the row names (None: no entry)
DAMAGED = {"missing": (None, "is missing"), "not JSON": ("{not json", "is not JSON"),
           "too deep": ("[" * 100_000, "is not JSON"), "a list": ("[1, 2]", "is not a JSON object")}


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _copy(src, dst, config, *, drop=(), status=None):
    """A copy of network run `src` without the files `drop`, whose checkpoint.pt holds `config` as its config entry
    (none for None) and says `status`."""
    import torch

    shutil.copytree(src, dst)
    for name in drop:
        os.remove(os.path.join(dst, name))
    state = torch.load(os.path.join(dst, "checkpoint.pt"), weights_only=True)
    state.pop("config")
    if config is not None:
        state["config"] = config
    if status is not None:
        state["status"] = status
    torch.save(state, os.path.join(dst, "checkpoint.pt"))
    return os.fspath(dst)


def _interrupted(src, dst, config):
    """A copy of network run `src` as a run killed at its last epoch leaves it: checkpoint.pt only, "running"."""
    return _copy(src, dst, config, drop=("nn.h5", "summary.json"), status="running")


def _resume(run_dir, monkeypatch, capsys) -> tuple:
    """`hpcflow nn RUN/job.toml --out RUN --resume` in this process (hpcflow.cli.main, with the environment and
    folder the subprocesses of these tests get), which spares a start of Python and torch: (exit status, stderr)."""
    from hpcflow.cli import main

    for name in ("HPCFLOW_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.setenv(name, env()[name])
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    status = main(["nn", os.path.join(run_dir, "job.toml"), "--out", run_dir, "--resume"])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("how", sorted(DAMAGED))
def test_resume_refuses_the_checkpoint_that_the_report_calls_damaged(tmp_path, runs, how, monkeypatch, capsys):
    """The fact the rows below rest on: `hpcflow nn --resume` refuses such a checkpoint, so the report must not
    advise it."""
    status, err = _resume(_interrupted(runs["nn"], tmp_path / "net", DAMAGED[how][0]), monkeypatch, capsys)
    assert status == 2, err
    assert "entry config" in err and "damaged" in err and "Traceback" not in err


@pytest.mark.parametrize("how", sorted(DAMAGED))
def test_an_interrupted_run_with_a_damaged_config_is_marked_in_its_row(tmp_path, runs, how):
    """The runs table's numbers (`detect._network_numbers`) and the run's state read the entry; the row says it is
    damaged and the rerun, not the --resume that refuses it."""
    from hpcflow.report.build import build_report

    d = _interrupted(runs["nn"], tmp_path / "net", DAMAGED[how][0])
    build_report([d], tmp_path / "out")
    status = md_rows((tmp_path / "out" / "report.md").read_text())["net"][2]
    assert status == (f"incomplete: no summary.json, interrupted at epoch 3; checkpoint.pt's config entry "
                      f"{DAMAGED[how][1]} (damaged); {forced(d, 'nn')}"), status


def test_the_report_command_marks_every_damage_without_a_traceback(tmp_path, runs):
    dirs = [_interrupted(runs["nn"], tmp_path / how.replace(" ", "_"), DAMAGED[how][0]) for how in DAMAGED]
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", *dirs, "--out", tmp_path / "out"], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = md_rows((tmp_path / "out" / "report.md").read_text())
    for how, (_, said) in DAMAGED.items():
        assert f"checkpoint.pt's config entry {said} (damaged)" in rows[how.replace(" ", "_")][2]


def test_sigma_history_draws_interrupted_runs_with_every_damaged_config(tmp_path, runs):
    """The sigma histories' positive-definiteness mark reads n_val from the entry (`histories._n_val`): one run of
    the script draws a run of each damage (a damage that ended it would fail it), and names each run's state."""
    dirs = [_interrupted(runs["nn"], tmp_path / how.replace(" ", "_"), DAMAGED[how][0]) for how in DAMAGED]
    proc = script("sigma_history", *dirs, "--out", tmp_path / "fig")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert os.path.isfile(tmp_path / "fig" / "sigma_history.png")
    for how in DAMAGED:
        assert f"{how.replace(' ', '_')} (incomplete: no summary.json, interrupted at epoch 3)" in proc.stdout, how


@pytest.mark.parametrize("how", sorted(DAMAGED))
def test_fig4_of_an_interrupted_run_with_a_damaged_config_says_to_rerun_it(tmp_path, runs, how):
    d = _interrupted(runs["nn"], tmp_path / "net", DAMAGED[how][0])
    proc = script("fig4_ntk", d, "--out", tmp_path / "fig")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line, = proc.stderr.splitlines()
    assert line.endswith(f"checkpoint.pt's config entry {DAMAGED[how][1]} (damaged); {forced(d, 'nn')}, then draw "
                         "Fig. 4"), line
    assert "--resume" not in line


@pytest.mark.parametrize("how", sorted(DAMAGED))
def test_a_finished_run_whose_checkpoint_config_is_damaged_is_reported(tmp_path, runs, how):
    """summary.json's job is compared with the checkpoint's (`rundir._other_network_job`): a config it cannot parse
    is no other job, and the finished run's row stays as nn.h5 records it."""
    from hpcflow.analysis.rundir import inconsistency
    from hpcflow.report.build import build_report

    d = _copy(runs["nn"], tmp_path / "net", DAMAGED[how][0])
    assert inconsistency(d) == ""
    build_report([d], tmp_path / "out")
    assert md_rows((tmp_path / "out" / "report.md").read_text())["net"][2] == "finished"


@pytest.mark.parametrize("how", sorted(DAMAGED))
def test_a_finished_run_without_nn_h5_and_with_a_damaged_config_is_rerun(tmp_path, runs, how):
    """nn.h5 is written again from a checkpoint holding the whole training (`rundir._job_epochs`: the job's epochs);
    one whose job cannot be read is not such a checkpoint, and the row says why."""
    from hpcflow.analysis.rundir import nn_missing

    d = _copy(runs["nn"], tmp_path / "net", DAMAGED[how][0], drop=("nn.h5",))
    said = nn_missing(d)
    assert said == f"nn.h5 missing, checkpoint.pt's config entry {DAMAGED[how][1]} (damaged): {forced(d, 'nn')}", said
