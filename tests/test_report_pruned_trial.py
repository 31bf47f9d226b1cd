"""A trial's run directory reported on its own, which its study's pruner stopped, says so from the study's records
(the flow's own words, "callback asked to stop", named no cause), and a study's row counts the trials pruned as
diverged as `hpcflow tune`'s closing line does ("pruned (diverged)")."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

from analysis_runs import md_rows, run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _study(tmp_path, runs, statuses):
    """A tune directory whose trials 0.. are flow runs (copies) ended with `statuses` (summary.json status):
    "finished" complete, "stopped" pruned by the pruner, "diverged" pruned as diverged."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "study.json").write_text(json.dumps({"study": "s", "storage": "study.journal"}))
    storage = JournalStorage(JournalFileBackend(str(tune / "study.journal")))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for i, status in enumerate(statuses):
        d = tune / "trials" / f"{i:04d}"
        shutil.copytree(runs["flow"], d)
        s = json.loads((d / "summary.json").read_text())
        if status != "finished":  # checkpoint.h5 says so too, as the run writes it
            s.update(status=status, stopped=f"step 6: {'callback asked to stop' if status == 'stopped' else 'x'}")
            with h5py.File(d / "checkpoint.h5", "a") as f:
                f.attrs["status"], f.attrs["stopped"] = status, s["stopped"]
        (d / "summary.json").write_text(json.dumps(s))
        trial = study.ask()  # (no parameter: its run directory records none to disagree with)
        trial.set_user_attr("run_dir", f"trials/{i:04d}")
        trial.set_user_attr("status", status)
        trial.report(0.1 * (i + 1), 3)
        study.tell(trial, 0.1 * (i + 1) if status == "finished" else None,
                   state=optuna.trial.TrialState.COMPLETE if status == "finished" else optuna.trial.TrialState.PRUNED)
    return tune


def test_a_pruned_trial_reported_on_its_own_says_its_study_pruned_it(tmp_path, runs):
    from hpcflow.analysis.rundir import run_state
    from hpcflow.report.build import build_report

    tune = _study(tmp_path, runs, ["finished", "stopped"])
    trial = tune / "trials" / "0001"
    said = f"pruned by the study's median pruner (trial 1 of the study in {tune})"
    assert run_state(trial).stopped == said
    res = build_report([str(trial)], str(tmp_path / "R"))
    md = open(res["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["0001"]
    assert row[2] == f"stopped: {said}", row
    assert "callback" not in md
    # a run outside a study that stopped so keeps its own words
    alone = tmp_path / "alone"
    shutil.copytree(trial, alone)
    assert run_state(alone).stopped == "step 6: callback asked to stop"


@pytest.mark.parametrize("statuses, words", [(["finished", "diverged"], "1 pruned (diverged)"),
                                             (["finished", "diverged", "diverged"], "2 pruned (all diverged)"),
                                             (["finished", "diverged", "stopped"],
                                              "2 pruned (1 of them diverged, 1 stopped by the pruner)"),
                                             (["finished", "stopped"], "1 pruned")])
def test_a_study_row_counts_its_diverged_trials_as_tune_does(tmp_path, runs, statuses, words):
    from hpcflow.report.build import build_report

    tune = _study(tmp_path, runs, statuses)
    md = open(build_report([str(tune)], str(tmp_path / "R"))["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["tune"]
    assert f"{len(statuses)} trials: 1 complete, {words}" in row[2], row
    optuna_section = md.split("## Optuna")[1] if "## Optuna" in md else md
    assert f"{len(statuses)} trials: 1 complete, {words}" in optuna_section
