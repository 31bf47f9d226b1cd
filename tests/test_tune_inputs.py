"""What `hpcflow tune` accepts and refuses of a study's job, its --set values, its storage and its queued trials, and
what its lines say."""

from __future__ import annotations

import json
import shutil

from optuna.trial import TrialState

from hpcflow.jobs import registry
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
