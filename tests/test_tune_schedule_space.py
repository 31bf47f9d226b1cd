"""A study of an nn job whose [tune.space] draws the learning-rate schedule: the rate setting a trial's schedule does
not read (lr_decay under cosine, lr_min under exponential) is left at its default in that trial, so every trial is a
job `hpcflow nn` accepts; the space is checked with each schedule it draws before any work."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpcflow.cli import main
from hpcflow.jobs import registry
from jobtexts import NN_POINTS  # tests/ is on sys.path (pytest's import mode)

#: a cosine job that sets lr_min, whose space draws the schedule and lr_decay (read by the exponential one only)
JOB = NN_POINTS + """[model]
kind = "multiplicative"
depth = 2
width = 8
activation = "relu"
[training]
epochs = 2
batch_size = 100
lr = 0.05
lr_schedule = "cosine"
lr_min = 1e-5
threads = 1
[ntk]
enabled = false
[tune]
sampler = "random"
pruner = "none"
[tune.space]
"training.lr_schedule" = {choices = ["cosine", "exponential"]}
"training.lr_decay" = {low = 0.5, high = 0.9}
"""
EXPONENTIAL, COSINE = "exponential", "cosine"


def _job(tmp_path, text=JOB):
    p = tmp_path / "sched.toml"
    p.write_text(text)
    return p


def _queued(path, *params) -> optuna.Study:
    """A new study 'sched' in journal `path` (maximised, as log_gain_val is) with `params` queued, in order."""
    study = optuna.create_study(study_name="sched", storage=JournalStorage(JournalFileBackend(str(path))),
                                direction="maximize")
    for p in params:
        study.enqueue_trial(p)
    return study


def _trials(path):
    return optuna.load_study(study_name="sched", storage=JournalStorage(JournalFileBackend(str(path)))).trials


def _tune(capsys, *args):
    capsys.readouterr()
    rc = main(["tune", *map(str, args)])
    return rc, capsys.readouterr()


def _last_rate(run_dir) -> float:
    """The learning rate of the last optimiser step of a trial, as its checkpoint.pt's Adam state holds it."""
    import torch

    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    return float(state["train"]["optimizer"]["param_groups"][0]["lr"])


def test_each_drawn_schedule_leaves_the_rate_setting_it_does_not_read_at_its_default(tmp_path, capsys):
    """The exponential trial failed (lr_min = 1e-5 of the job does not apply to it) and the space was refused for
    lr_decay under the job's cosine schedule: now the exponential trial draws lr_decay and sets lr_min back to 0, the
    cosine trial does not draw lr_decay and keeps lr_min = 1e-5; both train, each with the rates of its own schedule,
    and their recorded overrides make their job.toml."""
    job, out, journal = _job(tmp_path), tmp_path / "s", tmp_path / "q.journal"
    _queued(journal, {"training.lr_schedule": EXPONENTIAL, "training.lr_decay": 0.7},
            {"training.lr_schedule": COSINE, "training.lr_decay": 0.7})
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--storage", journal, "--study", "sched", "--quiet")
    assert rc == 0 and "failed" not in io.out + io.err, io.out + io.err
    trials = _trials(journal)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].params == {"training.lr_schedule": EXPONENTIAL, "training.lr_decay": 0.7}
    assert trials[1].params == {"training.lr_schedule": COSINE}  # lr_decay not drawn: inactive
    assert trials[0].user_attrs["inactive"] == ["training.lr_min"]
    assert trials[1].user_attrs["inactive"] == ["training.lr_decay"]
    expected = [(EXPONENTIAL, 0.7, 0.0), (COSINE, 1.0, 1e-5)]  # (schedule, lr_decay, lr_min) of each trial's job
    record = json.loads((out / "study.json").read_text())
    for n, (schedule, decay, lr_min) in enumerate(expected):
        run_dir = out / "trials" / f"{n:04d}"
        trial = registry.load(str(run_dir / "job.toml"))[1]
        assert [trial["training"][k] for k in ("lr_schedule", "lr_decay", "lr_min")] == [schedule, decay, lr_min]
        summary = json.loads((run_dir / "summary.json").read_text())
        made = registry.load(record["job"], summary["overrides"])[1]
        made["geometry"] = {**made["geometry"], "seed": summary["seeds"][0]}
        assert made == trial, summary["overrides"]
    # the last step of epoch 2: exponential lr * lr_decay^1; cosine lr_min (its schedule's end)
    assert math.isclose(_last_rate(out / "trials" / "0000"), 0.05 * 0.7, rel_tol=1e-12)
    assert math.isclose(_last_rate(out / "trials" / "0001"), 1e-5, rel_tol=1e-12)


def test_a_drawn_lr_min_is_not_set_in_a_trial_of_the_exponential_schedule(tmp_path, capsys):
    """A space drawing the schedule and lr_min passed the check, and every trial that drew the exponential schedule
    failed (its drawn lr_min does not apply): now such a trial does not draw lr_min and trains with lr * 1^epoch."""
    text = JOB.replace("lr_min = 1e-5\n", "").replace('"training.lr_decay" = {low = 0.5, high = 0.9}',
                                                      '"training.lr_min" = {low = 1e-6, high = 1e-3, log = true}')
    job, out, journal = _job(tmp_path, text), tmp_path / "s", tmp_path / "q.journal"
    _queued(journal, {"training.lr_schedule": EXPONENTIAL, "training.lr_min": 1e-4},
            {"training.lr_schedule": COSINE, "training.lr_min": 1e-4})
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--storage", journal, "--study", "sched", "--quiet")
    assert rc == 0 and "failed" not in io.out + io.err, io.out + io.err
    trials = _trials(journal)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert [t.params for t in trials] == [{"training.lr_schedule": EXPONENTIAL},
                                          {"training.lr_schedule": COSINE, "training.lr_min": 1e-4}]
    assert [t.user_attrs["inactive"] for t in trials] == [["training.lr_min"], ["training.lr_decay"]]
    summary = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    assert summary["overrides"] == ['training.lr_schedule="exponential"', "training.lr_min=0.0"]
    assert math.isclose(_last_rate(out / "trials" / "0000"), 0.05, rel_tol=1e-12)  # lr_decay = 1: constant
    assert math.isclose(_last_rate(out / "trials" / "0001"), 1e-4, rel_tol=1e-12)


def test_best_toml_drops_the_setting_its_trials_schedule_does_not_read(tmp_path, capsys):
    """best.toml of an exponential best trial of the cosine job with lr_min = 1e-5 holds no lr_min (the trial left
    it at its default), so `hpcflow nn` accepts it and trains what the trial trained."""
    job, out, journal = _job(tmp_path), tmp_path / "s", tmp_path / "q.journal"
    _queued(journal, {"training.lr_schedule": EXPONENTIAL, "training.lr_decay": 0.7})
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", journal, "--study", "sched", "--quiet")
    assert rc == 0, io.out + io.err
    best = registry.load(str(out / "best.toml"))[1]
    assert "lr_min" not in (out / "best.toml").read_text()
    trial = registry.load(str(out / "trials" / "0000" / "job.toml"))[1]
    assert best["training"] == trial["training"] and best["training"]["lr_decay"] == 0.7


def test_every_value_is_checked_with_each_schedule_the_space_draws(tmp_path, capsys):
    """lr_decay = 1e-200 takes the exponential schedule's rate below 1e-300 within two epochs: refused before any
    work, naming the value and the schedule it fails with (it was refused as a key the job's cosine does not read)."""
    job = _job(tmp_path, JOB.replace("low = 0.5, high = 0.9", "low = 1e-200, high = 0.9"))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s")
    assert rc == 2 and io.err.count("\n") == 1 and io.out == "", io.err
    assert ('[tune.space]."training.lr_decay".low = 1e-200 (with "training.lr_schedule" = \'exponential\') gives a '
            "job that fails its checks") in io.err and "lr_decay closer to 1" in io.err, io.err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("space, named, fix", [
    ('"training.lr_schedule" = {choices = ["cosine"]}\n"training.lr_decay" = {low = 0.5, high = 0.9}',
     "training.lr_decay", "add 'exponential' to its choices"),
    ('"training.lr_min" = {low = 1e-6, high = 1e-4}', "training.lr_min", "set lr_schedule = 'cosine'"),
])
def test_a_rate_setting_no_drawn_schedule_reads_is_refused(tmp_path, capsys, space, named, fix):
    """A searched rate setting that no trial's schedule reads (lr_decay with cosine the only choice; lr_min of an
    exponential job that does not search the schedule) is refused in one line naming it and the fix, not with the
    job's advice to --set it to its default (a --set of a searched setting is refused)."""
    text = JOB.split("[tune.space]")[0].replace('lr_schedule = "cosine"\nlr_min = 1e-5', "")
    if named == "training.lr_min":
        text = text.replace("lr = 0.05", 'lr = 0.05\nlr_schedule = "exponential"')
    rc, io = _tune(capsys, _job(tmp_path, text + "[tune.space]\n" + space + "\n"), "--trials", "1", "--out",
                   tmp_path / "s")
    assert rc == 2 and io.err.count("\n") == 1 and io.out == "", io.err
    assert f'[tune.space]."{named}" is read only by lr_schedule' in io.err and fix in io.err, io.err
    assert "--set" not in io.err and not (tmp_path / "s").exists()


def test_submit_check_takes_a_space_that_draws_the_schedule(tmp_path, capsys):
    """`hpcflow submit --check` of the study (its [tune.space] values looked at for a GPU each asks for, with the
    settings of a trial) accepts the cosine job with lr_min whose space draws the exponential schedule."""
    job, out = _job(tmp_path), tmp_path / "s"
    rc = main(["submit", str(job), "--out", str(out), "--executor", "slurm", "--command", "tune", "--trials", "2",
               "--check"])
    io = capsys.readouterr()
    assert rc == 0 and "is valid (kind nn)" in io.out, io.out + io.err


def test_a_study_whose_older_record_sets_the_key_its_schedule_does_not_read_goes_on(tmp_path, capsys):
    """A study an older hpcflow created with a cosine job that set lr_decay = 0.9 (accepted then, refused now as a key
    the cosine schedule does not read): the job without it was refused ("[training].lr_decay = 1.0, not 0.9") and
    best.toml, made of the record's job, held it, so `hpcflow nn best.toml --check` refused it. Both train alike: the
    study goes on, and best.toml leaves lr_decay out."""
    from hpcflow.tune.study import RECORD, load

    text = JOB.split("[tune.space]")[0] + '[tune.space]\n"training.lr" = {low = 0.01, high = 0.1, log = true}\n'
    job, out, journal = _job(tmp_path, text), tmp_path / "s", tmp_path / "q.journal"
    old = load(str(job)).record()  # the record as the older hpcflow wrote it: with the key in its job and config
    old["job_data"]["training"]["lr_decay"] = old["config"]["training"]["lr_decay"] = 0.9
    _queued(journal, {"training.lr": 0.05}).set_user_attr(RECORD, old)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", journal, "--study", "sched", "--quiet")
    assert rc == 0 and io.err == "", io.out + io.err
    study = optuna.load_study(study_name="sched", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert study.user_attrs[RECORD]["job_data"]["training"]["lr_decay"] == 0.9  # the record is kept as written
    best = (out / "best.toml").read_text()
    assert "lr_decay" not in best and 'lr_schedule = "cosine"' in best and "lr_min = 1e-05" in best, best
    assert main(["nn", str(out / "best.toml"), "--out", str(tmp_path / "b"), "--check"]) == 0, capsys.readouterr()
    trial = registry.load(str(out / "trials" / "0000" / "job.toml"))[1]
    assert registry.load(str(out / "best.toml"))[1]["training"] == trial["training"]


def test_a_set_of_an_nn_jobs_point_seed_names_no_test_seed(tmp_path, capsys):
    """--set geometry.seed=4 of an nn job is refused as every trial's own seed replaces it; the line said that the
    trials' seeds replace [geometry] seed and test_seed, which an nn job does not have."""
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", tmp_path / "s", "--set", "geometry.seed=4")
    assert rc == 2 and io.err.count("\n") == 1 and io.out == "", io.err
    assert "--set geometry.seed=4 sets geometry.seed" in io.err and "[tune].seed" in io.err, io.err
    assert "its seed replaces [geometry].seed" in io.err and "test_seed" not in io.err, io.err
    assert not (tmp_path / "s").exists()
