"""What `hpcflow tune` accepts and refuses of a study's job, its --set values, its storage and its queued trials, and
what its lines say."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
from optuna.trial import TrialState

from hpcflow.jobs import registry
from hpcflow.tune import objective
from hpcflow.tune import study as tune_study
from hpcflow.tune.trial import trial_seeds
from test_tune_records import JOB, _digests, _job, _journal, _tune  # tests/ is on sys.path (pytest's import mode)


def _flow_cfg(path, overrides=()):
    return registry.load(str(path), list(overrides))[1]


def test_a_later_worker_may_change_the_test_seed_as_it_may_the_seed(tmp_path, capsys):
    """[geometry].test_seed, like seed, is replaced by every trial's own point seed: a later worker whose job sets
    another one joins the study (it was refused); its trial's points are the trial's, not the job's."""
    with_seed = lambda s: JOB.replace("n_test = 60", f"n_test = 60\ntest_seed = {s}")  # noqa: E731
    first, later = _job(tmp_path, with_seed(5), "a.toml"), _job(tmp_path, with_seed(6), "b.toml")
    out = tmp_path / "s"
    assert _tune(capsys, first, "--trials", "1", "--out", out, "--study", "tiny", "--quiet")[0] == 0
    rc, io = _tune(capsys, later, "--trials", "1", "--out", out, "--study", "tiny", "--quiet")
    assert rc == 0 and io.err == "", io.err
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    geo = _flow_cfg(out / "trials" / "0001" / "job.toml")["geometry"]
    assert [geo["seed"], geo["test_seed"]] == list(trial_seeds(5, 1))


def test_a_set_of_a_point_seed_is_refused_before_any_work(tmp_path, capsys):
    """--set geometry.seed=3 / geometry.test_seed=5 ran the study with every trial's own seeds and said nothing
    (exit 0); [tune.space] refuses them, and so does --set now: one line naming [tune].seed, nothing written."""
    job = _job(tmp_path)
    for key in ("geometry.seed=3", "geometry.test_seed=5"):
        out = tmp_path / key.split("=")[0]
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--set", key)
        assert rc == 2 and io.err.count("\n") == 1 and io.out == "", io.err
        assert f"--set {key} sets {key.split('=')[0]}" in io.err and "[tune].seed" in io.err, io.err
        assert not out.exists()


def test_a_trials_overrides_make_its_job_of_the_studys_job_file(tmp_path, capsys):
    """A trial's summary.json `overrides` are the study's --set values (study.json's) and its parameters: applied to
    the study's job file with the trial's seeds they give the trial's job.toml, also for a trial of a later worker
    whose job writes the study's --set value in (its own --set values were recorded, so flow.steps was lost)."""
    job, out = _job(tmp_path), tmp_path / "s"
    steps4 = _job(tmp_path, JOB.replace("steps = 3", "steps = 4"), "steps4.toml")
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--set", "flow.steps=4", "--quiet")[0] == 0
    assert _tune(capsys, steps4, "--trials", "1", "--out", out, "--study", "tiny", "--quiet")[0] == 0
    record = json.loads((out / "study.json").read_text())
    assert record["job"] == str(job) and record["overrides"] == ["flow.steps=4"]
    for n in (0, 1):
        run_dir = out / "trials" / f"{n:04d}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["overrides"][0] == "flow.steps=4", summary["overrides"]
        made = _flow_cfg(record["job"], summary["overrides"])
        made["geometry"] = {**made["geometry"], "seed": summary["seeds"][0], "test_seed": summary["seeds"][1]}
        trial = _flow_cfg(run_dir / "job.toml")
        assert made == trial and trial["flow"]["steps"] == 4


def test_a_new_out_joining_a_shared_storage_says_it_joins_the_study(tmp_path, capsys):
    """A second --out on the study's shared journal said it held no study.json and wrote it 'again' (as of a
    directory whose study.json was lost): it joins the study, whose trials lie in the first --out."""
    job, shared = _job(tmp_path), tmp_path / "x" / "shared.journal"
    shared.parent.mkdir()
    first, second = tmp_path / "sA", tmp_path / "sB"
    assert _tune(capsys, job, "--trials", "1", "--out", first, "--storage", shared, "--quiet")[0] == 0
    rc, io = _tune(capsys, job, "--trials", "1", "--out", second, "--storage", shared, "--quiet")
    assert rc == 0, io.err
    assert (f"hpcflow tune: --out {second} joins study 'tiny' in storage {shared}, whose trials so far lie in "
            f"{first}; wrote its study.json\n") in io.out, io.out
    assert "held no study.json" not in io.out
    assert json.loads((second / "study.json").read_text())["storage"] == str(shared)
    assert (second / "trials" / "0001" / "summary.json").is_file()


def test_a_study_directory_whose_journal_is_missing_or_empty_says_so(tmp_path, capsys):
    """A copied study directory without its study.journal, or with it emptied, was said to hold trials 'another
    storage wrote' (pass the --storage that holds it): study.json names that journal, which is to be restored."""
    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    for how, said in (("rm", "is missing"), ("empty", "is an empty file")):
        copy = tmp_path / how
        shutil.copytree(out, copy)
        journal = copy / "study.journal"
        journal.unlink() if how == "rm" else journal.write_bytes(b"")
        before = _digests(copy)
        rc, io = _tune(capsys, job, "--trials", "1", "--out", copy)
        assert rc == 2 and io.err.count("\n") == 1 and io.out == "", io.err
        assert (f"--out {copy} holds trials/0000 of study 'tiny', but its storage {journal}, which study.json names, "
                f"{said}; restore it (from a backup)") in io.err, io.err
        assert "another storage" not in io.err and _digests(copy) == before


def test_a_queued_value_optuna_refuses_fails_its_trial_in_one_line(tmp_path, capsys):
    """A trial queued by plain Optuna with dt = -5 for a log range printed a 25-line traceback and counted as an
    internal error: one line names the parameter and the value, the trial fails without a retry, the study goes on."""
    job, out = _job(tmp_path, JOB.replace("pruner = \"none\"", "pruner = \"none\"\nretries = 2")), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    _journal(out / "study.journal").enqueue_trial({"flow.dt": -5.0})
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--quiet")
    assert rc == 0 and "Traceback" not in io.out + io.err, io.out + io.err
    failed = [line for line in io.out.splitlines() if "trial 1" in line]
    assert len(failed) == 1 and failed[0].startswith("hpcflow tune: trial 1 failed: "), io.out
    assert '"flow.dt"' in failed[0] and "-5.0" in failed[0] and "log = true" in failed[0], failed[0]
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]  # no retry
    assert "-5.0" in trials[1].user_attrs["error"]


def test_the_max_trials_line_says_how_many_the_study_holds(tmp_path, capsys):
    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "3", "--out", out, "--quiet")[0] == 0
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--max-trials", "2", "--quiet")
    assert rc == 0 and "hpcflow tune: study holds 3 trials (complete, pruned, running, queued, or failed without a " \
        "retry), --max-trials is 2; this worker stops" in io.out, io.out
    assert len(_journal(out / "study.journal").trials) == 3


def test_the_view_of_a_study_of_one_trial_says_one_trial(tmp_path, capsys):
    from hpcflow.analysis.optuna_view import numbers

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    assert numbers(_journal(out / "study.journal"))[0] == "study tiny: 1 trial: 1 complete"


def test_the_summary_line_says_which_pruned_trials_diverged(tmp_path, capsys):
    """dt = 1000 diverges this flow (no positive-definite step): the trial is pruned, and the summary line said
    '1 pruned' as if the pruner had stopped it. The first trial draws dt from [0.01, 3.0], where every value
    completes (its sampler's seed is the worker's own); the job then takes dt up to 10000 (a study takes other
    bounds) for the queued dt = 1000."""
    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    _job(tmp_path, JOB.replace("high = 3.0", "high = 10000.0"))
    _journal(out / "study.journal").enqueue_trial({"flow.dt": 1000.0})
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    trials = _journal(out / "study.journal").trials
    assert trials[1].state == TrialState.PRUNED and trials[1].user_attrs["status"] == "diverged"
    assert rc == 0 and "hpcflow tune: study 'tiny': 1 complete, 1 pruned (diverged)\n" in io.out, io.out


def test_a_worker_stopped_by_a_signal_says_whether_it_wrote_best_toml(tmp_path, capsys, monkeypatch):
    """SIGTERM during trial 1 (trial 0 complete): exit 4 naming best.toml, which it wrote; SIGTERM during the first
    trial of a study: no trial is complete, and the line says that no best.toml was written."""
    job = _job(tmp_path, JOB.replace("steps = 3", "steps = 6"))
    real = objective.Tracker.step

    def sigterm_in(trial):
        def step(self, info, sigma0):
            if info["step"] == 2 and len(_journal(out / "study.journal").trials) == trial + 1:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(self, info, sigma0)
        return step

    for trial, said in ((1, "wrote {out}/best.toml (best trial 0 so far)"),
                        (0, "no trial is complete yet, so no best.toml")):
        out = tmp_path / f"s{trial}"
        monkeypatch.setattr(objective.Tracker, "step", sigterm_in(trial))
        rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--quiet")
        assert rc == 4 and f"signal received during trial {trial}" in io.err, io.err
        assert said.format(out=out) in io.err and io.err.count("\n") == 1, io.err
        assert (out / "best.toml").is_file() == (trial == 1)


def test_a_storage_that_is_no_journal_is_not_to_be_restored(tmp_path, capsys):
    """--storage naming a text file of another kind was advised to be restored 'from a copy': it is no journal at
    all; a journal whose first line is damaged (its later lines operations) is still to be restored."""
    job = _job(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\nworld\n")
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "a", "--storage", notes)
    assert rc == 2 and "another kind of file, not a damaged journal" in io.err, io.err
    assert "restore" not in io.err and not (tmp_path / "a").exists()
    assert _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s", "--quiet")[0] == 0
    lines = (tmp_path / "s" / "study.journal").read_bytes().split(b"\n")
    damaged = tmp_path / "damaged.journal"
    damaged.write_bytes(b"\n".join([b"garbage", *lines[1:]]))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "b", "--storage", damaged)
    assert rc == 2 and "restore it from a copy" in io.err and "another kind" not in io.err, io.err


def _steps4(tmp_path):
    return _job(tmp_path, JOB.replace("steps = 3", "steps = 4"), "steps4.toml")


def test_a_record_written_after_a_workers_check_is_compared_with_its_job(tmp_path, capsys, monkeypatch):
    """Two workers creating one study together: the second's check found no record, the first then wrote its own
    (flow.steps = 3), and the second read that record back and ran its own job's trials (steps = 4) in the study,
    unrefused: now it is refused in one line before it draws a trial, and the record stays the first's."""
    first, second, out = _job(tmp_path), _steps4(tmp_path), tmp_path / "s"
    real = tune_study.refuse_unfit

    def first_writes_meanwhile(study, job, study_name):
        real(study, job, study_name)
        if study.user_attrs.get(tune_study.RECORD) is None:
            study.set_user_attr(tune_study.RECORD, tune_study.load(str(first)).record())

    monkeypatch.setattr(tune_study, "refuse_unfit", first_writes_meanwhile)
    rc, io = _tune(capsys, second, "--trials", "1", "--out", out, "--study", "tiny", "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"{second}: study 'tiny' was created with {first} and no --set; this job has [flow].steps = 4, not 3" \
        in io.err, io.err
    study = _journal(out / "study.journal")
    assert study.trials == [] and study.user_attrs[tune_study.RECORD]["job"] == str(first)


@pytest.mark.parametrize("after", ["check", "trial 0"])
def test_a_worker_whose_record_another_wrote_over_stops_before_its_next_trial(tmp_path, capsys, monkeypatch, after):
    """The first worker read back its own record, then the second wrote its own over it (a journal keeps the last
    write; they read back their own each): the first ran all its trials of flow.steps = 3 in a study that records
    steps = 4. Now it looks at the record before each trial and stops in one line, drawing no more."""
    first, second, out = _job(tmp_path), _steps4(tmp_path), tmp_path / "s"
    write_over = lambda study: study.set_user_attr(  # noqa: E731
        tune_study.RECORD, tune_study.load(str(second)).record())
    if after == "check":
        real_check = tune_study.check_record

        def check_then_written_over(study, job, study_name):
            record = real_check(study, job, study_name)
            write_over(study)
            return record

        monkeypatch.setattr(tune_study, "check_record", check_then_written_over)
    else:
        real_line = tune_study._trial_line

        def line_then_written_over(study, number, where):
            write_over(study)
            return real_line(study, number, where)

        monkeypatch.setattr(tune_study, "_trial_line", line_then_written_over)
    rc, io = _tune(capsys, first, "--trials", "3", "--out", out, "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"{first}: study 'tiny' was created with {second} and no --set; this job has [flow].steps = 3, not 4" \
        in io.err, io.err
    assert len(_journal(out / "study.journal").trials) == (0 if after == "check" else 1)


def test_a_trial_the_pruner_stopped_is_not_counted_as_diverged(tmp_path):
    """A trial the pruner stopped at an epoch where its nn metric was not positive definite at some validation points
    (status "stopped", val_not_positive_definite_final > 0) was counted as diverged, in the summary line and in the
    worker's own counts: only the trials pruned for their status ("diverged", "not_positive_definite") are."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from hpcflow.commands.tune import pruned_why

    study = optuna.create_study(direction="maximize")
    for status, not_pd in (("stopped", 4), ("diverged", 0), ("not_positive_definite", 2), ("stopped", 0)):
        study.add_trial(create_trial(state=TrialState.PRUNED, params={"flow.dt": 1.0},
                                     distributions={"flow.dt": FloatDistribution(0.01, 3.0, log=True)},
                                     intermediate_values={1: 0.5},
                                     user_attrs={"status": status, "val_not_positive_definite_final": not_pd}))
    result = tune_study.report(study, tune_study.load(str(_job(tmp_path))), str(tmp_path), "tiny")
    assert result["counts"] == {"PRUNED": 4} and result["diverged"] == 2, result
    assert pruned_why(result) == " (2 of them diverged, 2 stopped by the pruner)"
    assert tune_study.outcomes(study, [0, 1, 2, 3]) == {"complete": 0, "pruned": 2, "diverged": 2, "failed": 0}
