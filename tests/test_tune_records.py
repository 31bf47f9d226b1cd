"""What a study directory records (storage, job, trial directories) and the refusals that keep its trials intact."""

from __future__ import annotations

import hashlib
import math
import json
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
import pytest
from optuna.trial import TrialState

from hpcflow.cli import main
from jobtexts import GAUSSIAN_KERNEL

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 60
n_test = 60
""" + GAUSSIAN_KERNEL + """[flow]
dt = 1.0
steps = 3
loss = "ultralocal"
[tune]
sampler = "random"
seed = 5
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.01, high = 3.0, log = true}
"""


def _job(tmp_path, text=JOB, name="tiny.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _journal(path, name="tiny"):
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def _digests(root: Path) -> dict:
    """Every file under root -> its sha256 (what 'nothing lost on disk' compares)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _tune(capsys, *args):
    capsys.readouterr()
    rc = main(["tune", *map(str, args)])
    return rc, capsys.readouterr()


def test_another_storage_in_the_same_out_is_refused_and_nothing_is_overwritten(tmp_path, capsys):
    job, out, url = _job(tmp_path), tmp_path / "s", f"sqlite:///{tmp_path / 'q.db'}"
    rc, _ = _tune(capsys, job, "--trials", "2", "--out", out, "--storage", url)
    assert rc == 0
    record = json.loads((out / "study.json").read_text())
    assert record["storage"] == url and record["study"] == "tiny"
    before = _digests(out)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)  # the default journal: another study's trial 0
    assert rc == 2 and io.err.count("\n") == 1
    assert f"pass --storage {url} to add trials" in io.err
    assert _digests(out) == before and not (out / "study.journal").exists()
    rc, _ = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", url)  # the recorded one still works
    assert rc == 0 and len(optuna.load_study(study_name="tiny", storage=url).trials) == 3
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "1",
                 "--storage", url, "--check"]) == 0  # submit's checks accept the study directory of its storage


def test_a_directory_whose_record_names_no_storage_keeps_its_trials(tmp_path, capsys):
    """study.json without a storage (older layout) and trials/ of a study the storage does not hold."""
    job, out, url = _job(tmp_path), tmp_path / "s", f"sqlite:///{tmp_path / 'q.db'}"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--storage", url)[0] == 0
    record = json.loads((out / "study.json").read_text())
    del record["storage"]
    (out / "study.json").write_text(json.dumps(record))
    before = _digests(out)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 2 and "holds trials/0000, which study 'tiny' in storage" in io.err and io.err.count("\n") == 1
    assert _digests(out) == before and not (out / "study.journal").exists()
    # a journal that holds the study but whose next trial number is a directory written through another storage
    store = tmp_path / "other.journal"
    optuna.create_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(store))),
                        direction="maximize")
    journal = store.read_bytes()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", store)
    assert rc == 2 and "holds trials/0000, which study 'tiny'" in io.err and io.err.count("\n") == 1
    assert _digests(out) == before and store.read_bytes() == journal


def test_a_trial_directory_that_holds_files_is_never_written_over(tmp_path):
    """The last guard (a directory written between the checks and the trial): the worker stops, exit 2."""
    import pytest

    from hpcflow.parallel.comm import resolve
    from hpcflow.tune.study import TrialDirTaken, Worker, load, open_study, optimize

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    tj = load(str(job))
    study, _ = open_study(tj, str(out), study_name="tiny")
    (out / "trials" / "0001").mkdir()
    (out / "trials" / "0001" / "summary.json").write_text("{}")
    with pytest.raises(TrialDirTaken, match="0001 already holds the results of another trial"):
        Worker(tj, study, str(out), comm=resolve(None), log=lambda *_: None).run(1)
    assert (out / "trials" / "0001" / "summary.json").read_text() == "{}"
    trial = _journal(out / "study.journal").trials[1]
    assert trial.state == TrialState.FAIL and "already holds" in trial.user_attrs["failure"]


def test_a_trials_total_wall_time_is_its_legs_before_it_plus_its_own(tmp_path):
    """A trial's summary.json replaces wall_seconds by the trial's own (job.toml to summary); its total, the earlier
    legs' seconds (none) plus that, used to stay the flow's, shorter than the trial it totals."""
    from hpcflow.tune.study import optimize

    out = tmp_path / "s"
    optimize(str(_job(tmp_path)), trials=1, out=str(out), log=lambda *_: None)
    summary = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    (leg,) = summary["legs"]
    assert summary["wall_seconds_total"] == summary["wall_seconds"]
    assert 0 < leg["wall_seconds"] <= summary["wall_seconds"]  # the leg is timed to its last checkpoint write


def test_a_diverged_trial_is_pruned_never_the_best(tmp_path):
    """dt = 5000 stops this job at its first step (no positive-definite step), dt = 0.5 runs its 3 steps."""
    from hpcflow.jobs import registry
    from hpcflow.tune.study import optimize

    job = _job(tmp_path, JOB.replace("high = 3.0", "high = 9000.0"))
    out = tmp_path / "s"
    out.mkdir()
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.enqueue_trial({"flow.dt": 5000.0})
    study.enqueue_trial({"flow.dt": 0.5})
    lines = []
    r = optimize(str(job), trials=2, out=str(out), log=lines.append)
    diverged, finished = _journal(out / "study.journal").trials
    summary = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["checkpoint_step"] < 3  # the run did diverge
    assert diverged.state == TrialState.PRUNED and diverged.user_attrs["status"] == "diverged"
    assert "trial 0 PRUNED (diverged)" in lines[0]
    assert finished.state == TrialState.COMPLETE and r["best"]["number"] == 1
    assert registry.load(out / "best.toml")[1]["flow"]["dt"] == 0.5


def test_another_job_or_other_set_values_are_refused_and_best_toml_is_the_studys_job(tmp_path, capsys):
    from hpcflow.jobs import registry

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--set", "geometry.n_train=40")[0] == 0
    journal = (out / "study.journal").read_bytes()
    relu = _job(tmp_path, JOB.replace('name = "gaussian"\nform = "exp"\nwidth = 0.0333333333333333\n'
                                      'normalize = "row"', 'name = "relu_ntk"\nw_std = 1.0\nb_std = 0.1'), "relu.toml")
    refusals = [((relu, "--study", "tiny", "--set", "geometry.n_train=40"),
                 "[kernel].name = 'relu_ntk', not 'gaussian'"),
                ((job, "--set", "geometry.n_train=50"), "[geometry].n_train = 50, not 40"),
                ((job,), "[geometry].n_train = 60, not 40"),
                ((job, "--set", "geometry.n_train=40", "--set", "tune.seed=6"), "[tune].seed = 6, not 5")]
    for args, says in refusals:
        rc, io = _tune(capsys, args[0], "--trials", "1", "--out", out, *args[1:])
        assert rc == 2 and says in io.err and "--set geometry.n_train=40" in io.err and io.err.count("\n") == 1
        assert (out / "study.journal").read_bytes() == journal
    # what does not change a trial's result may change: [tune] retries and range, [checkpoint], the file's path
    moved = _job(tmp_path, JOB.replace("high = 3.0", "high = 2.0"), "moved.toml")
    rc, _ = _tune(capsys, moved, "--study", "tiny", "--trials", "1", "--out", out, "--set", "geometry.n_train=40",
                  "--set", "tune.retries=1", "--set", "checkpoint.every=1")
    assert rc == 0
    record = json.loads((out / "study.json").read_text())
    assert record["job"] == str(job.resolve()) and record["overrides"] == ["geometry.n_train=40"]
    study = _journal(out / "study.journal")
    best = registry.load(out / "best.toml")[1]
    assert best["geometry"]["n_train"] == 40 and best["flow"]["dt"] == study.best_trial.params["flow.dt"]
    assert "checkpoint.every" not in (out / "best.toml").read_text() and best["checkpoint"]["every"] != 1


def test_a_moved_study_directory_is_still_analysed_and_older_absolute_run_dirs_are_found(tmp_path, capsys):
    import shutil

    from hpcflow.analysis.script import main as script_main
    from hpcflow.analysis.study import best_run_dirs, load_study
    from hpcflow.tune.study import optimize

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=2, out=str(out), log=lambda *_: None)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(out), str(moved))
    study, base = load_study(moved)
    (number, run_dir), = best_run_dirs(study, base)
    assert Path(run_dir) == moved / "trials" / f"{number:04d}" and (Path(run_dir) / "summary.json").is_file()
    assert script_main("table1", [str(moved), "--out", str(tmp_path / "t1")]) == 0
    assert f"tiny trial {number}" in capsys.readouterr().out
    # a study of the older layout: absolute run_dir of a directory that has since moved
    old = tmp_path / "old"
    (old / "trials").mkdir(parents=True)
    shutil.copytree(run_dir, old / "trials" / "0000")
    storage = JournalStorage(JournalFileBackend(str(old / "study.journal")))
    s = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    s.add_trial(optuna.trial.create_trial(
        params={"flow.dt": 1.0}, distributions={"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0)},
        value=0.5, user_attrs={"run_dir": str(out / "trials" / "0000")}))
    study, base = load_study(old)
    assert best_run_dirs(study, base) == [(0, str(old / "trials" / "0000"))]


def test_a_study_directory_of_an_sqlite_storage_is_analysed_through_its_record(tmp_path, capsys):
    from hpcflow.analysis.script import main as script_main
    from hpcflow.tune.study import optimize

    job, out = _job(tmp_path), tmp_path / "q"
    optimize(str(job), trials=2, out=str(out), storage=f"sqlite:///{tmp_path / 'q.db'}", log=lambda *_: None)
    assert not (out / "study.journal").exists()
    assert script_main("table1", [str(out), "--out", str(tmp_path / "t1")]) == 0
    assert "tiny trial" in capsys.readouterr().out
    from hpcflow.cli import main  # the report finds the study by its record too

    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "tiny trial" in md and "Skipped" not in md, md


def test_space_choices_the_job_refuses_are_found_before_work_and_a_refused_combination_is_not_retried(tmp_path,
                                                                                                      capsys):
    relu = JOB.replace('"flow.dt" = {low = 0.01, high = 3.0, log = true}',
                       '"kernel.name" = {choices = ["gaussian", "relu_ntk"]}')
    rc, io = _tune(capsys, _job(tmp_path, relu), "--trials", "3", "--out", tmp_path / "a")
    assert rc == 2 and io.err.count("\n") == 1 and not (tmp_path / "a").exists()
    assert """[tune.space]."kernel.name".choices[1] = 'relu_ntk' gives a job""" in io.err
    assert "[kernel].w_std is required" in io.err and "(from --set" not in io.err
    # n_train = 20 and n_clusters = 40 each pass with the job's other values, not together (40 clusters > 20 points)
    clustered = JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 2').replace(
        '"flow.dt" = {low = 0.01, high = 3.0, log = true}',
        '"geometry.n_train" = {choices = [60, 20]}\n"clustering.n_clusters" = {choices = [10, 40]}')
    clustered += '[clustering]\nmethod = "full"\nn_clusters = 10\n'
    out = tmp_path / "b"
    out.mkdir()
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    optuna.create_study(study_name="tiny", storage=storage, direction="maximize").enqueue_trial(
        {"geometry.n_train": 20, "clustering.n_clusters": 40})
    rc, io = _tune(capsys, _job(tmp_path, clustered), "--trials", "1", "--out", out)
    assert rc == 3 and "n_clusters = 40 exceeds [geometry].n_train" in io.out and "Traceback" not in io.out
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.FAIL]  # not queued again


def test_a_trials_job_toml_reruns_it_bit_for_bit_and_test_seed_defaults_to_seed_plus_one(tmp_path, capsys):
    from hpcflow.tune.study import optimize

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), overrides=["flow.steps=2"], log=lambda *_: None)
    trial = _journal(out / "study.journal").trials[0]
    text = (out / "trials" / "0000" / "job.toml").read_text()
    s0, s1 = trial.user_attrs["seeds"]
    assert f"seed = {s0}" in text and f"test_seed = {s1}" in text and "[tune" not in text
    assert f"seeds [{s0}, {s1}]" in (out / "best.toml").read_text()
    assert main(["run", str(out / "trials" / "0000" / "job.toml"), "--out", str(tmp_path / "again")]) == 0
    a = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    b = json.loads((tmp_path / "again" / "summary.json").read_text())
    for key in ("sigma_train_initial", "sigma_test_initial", "gain_train", "gain_test", "sigma_test_final"):
        assert a[key] == b[key], key  # the same points and flow: bit for bit
    assert trial.value == pytest.approx(math.log(b["gain_test"]), rel=1e-12)
    plain = _job(tmp_path, JOB.replace("[tune]", "[geometry_unused]").split("[geometry_unused]")[0], "plain.toml")
    # the summary's overrides, as a run's: the study's --set values and the trial's parameters, which with its
    # seeds rerun the trial from the job file
    assert a["overrides"][0] == "flow.steps=2" and len(a["overrides"]) == 2 and a["checkpoint_step"] == 2
    assert float(a["overrides"][1].removeprefix("flow.dt=")) == trial.params["flow.dt"]
    sets = [x for o in [*a["overrides"], f"geometry.seed={s0}", f"geometry.test_seed={s1}"] for x in ("--set", o)]
    assert main(["run", str(plain), "--out", str(tmp_path / "set"), *sets]) == 0
    c = json.loads((tmp_path / "set" / "summary.json").read_text())
    assert (c["sigma_test_final"], c["gain_train"]) == (a["sigma_test_final"], a["gain_train"])
    # unset test_seed is seed + 1: the same test points as test_seed = seed + 1 written out
    assert main(["run", str(plain), "--out", str(tmp_path / "u"), "--set", "geometry.seed=7"]) == 0
    assert main(["run", str(plain), "--out", str(tmp_path / "v"), "--set", "geometry.seed=7",
                 "--set", "geometry.test_seed=8"]) == 0
    assert main(["run", str(plain), "--out", str(tmp_path / "w"), "--set", "geometry.seed=7",
                 "--set", "geometry.test_seed=9"]) == 0
    u, v, w = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "uvw")
    assert u["sigma_test_initial"] == v["sigma_test_initial"] != w["sigma_test_initial"]
    assert u["sigma_train_initial"] == w["sigma_train_initial"]


def test_a_setting_the_study_searched_keeps_the_studys_value_when_a_later_job_fixes_it(tmp_path, capsys):
    """best.toml is the study's job with the best trial's parameters: a job that stops searching flow.dt and fixes
    it elsewhere would run trials best.toml cannot describe, so it is refused; at the study's value it runs."""
    from hpcflow.jobs import registry

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    journal = (out / "study.journal").read_bytes()
    steps = '"flow.steps" = {low = 2, high = 3}'
    moved = _job(tmp_path, JOB.replace("dt = 1.0", "dt = 2.5").replace(
        '"flow.dt" = {low = 0.01, high = 3.0, log = true}', steps), "steps.toml")
    rc, io = _tune(capsys, moved, "--study", "tiny", "--trials", "1", "--out", out)
    assert rc == 2 and io.err.count("\n") == 1 and "[flow].dt = 2.5, not 1.0 (the study searched it" in io.err
    assert (out / "study.journal").read_bytes() == journal and not (out / "trials" / "0001").exists()
    kept = _job(tmp_path, JOB.replace('"flow.dt" = {low = 0.01, high = 3.0, log = true}', steps), "kept.toml")
    assert _tune(capsys, kept, "--study", "tiny", "--trials", "2", "--out", out)[0] == 0
    study = _journal(out / "study.journal")
    for t in study.trials:  # each trial's own job.toml against the study's job with its parameters
        ran = registry.load(out / "trials" / f"{t.number:04d}" / "job.toml")[1]["flow"]
        described = registry.load(job, [f"{k}={v!r}" for k, v in t.params.items()])[1]["flow"]
        assert (ran["dt"], ran["steps"]) == (described["dt"], described["steps"]), t.number
    best = registry.load(out / "best.toml")[1]["flow"]
    ran = registry.load(out / "trials" / f"{study.best_trial.number:04d}" / "job.toml")[1]["flow"]
    assert (best["dt"], best["steps"]) == (ran["dt"], ran["steps"])


@pytest.mark.parametrize("param", ["x", "flow.dt"])
def test_a_study_another_program_ran_is_refused_not_adopted(tmp_path, capsys, param):
    """A study of the same name in the journal without hpcflow's record, its trials run by plain Optuna: refused
    before any work (nothing appended to the journal), naming its parameters when this job does not search them."""
    out = tmp_path / "s"
    out.mkdir()
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name="tiny", storage=storage, direction="maximize").optimize(
        lambda t: t.suggest_float(param, 0.1, 1.0), n_trials=2)
    journal = (out / "study.journal").read_bytes()
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", out)
    says = "parameters 'x' that this job does not search" if param == "x" else "that hpcflow tune did not run"
    assert rc == 2 and io.err.count("\n") == 1 and "study 'tiny' in the storage records no hpcflow job" in io.err
    assert says in io.err and "pass another --study" in io.err
    assert (out / "study.journal").read_bytes() == journal and not (out / "trials").exists()
    assert not (out / "best.toml").exists()


SPACE = '"flow.dt" = {low = 0.01, high = 3.0, log = true}'
REDRAWN = [  # a later job's [tune.space] entries; each with the suggest call that gives Optuna the same distribution
    ('"flow.dt" = {low = 0.5, high = 2.0, log = true}', lambda t: t.suggest_float("flow.dt", 0.5, 2.0, log=True)),
    ('"flow.dt" = {low = 0.5, high = 2.0, step = 0.5}', lambda t: t.suggest_float("flow.dt", 0.5, 2.0, step=0.5)),
    ('"flow.dt" = {choices = [0.5, 1.0]}', lambda t: t.suggest_categorical("flow.dt", [0.5, 1.0])),
    ('"flow.steps" = {choices = [2, 3]}', lambda t: t.suggest_categorical("flow.steps", [2, 3])),
    ('"flow.steps" = {choices = [3, 2]}', lambda t: t.suggest_categorical("flow.steps", [3, 2])),
    ('"flow.steps" = {low = 2, high = 3}', lambda t: t.suggest_int("flow.steps", 2, 3)),
]


def _optuna_takes(first, then) -> bool:
    """Whether Optuna's own storage takes a value drawn by `then` in a study whose first trial drew by `first`."""
    study = optuna.create_study()
    first(study.ask())
    try:
        then(study.ask())
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("spec, draw", REDRAWN)
def test_a_space_entry_optuna_would_refuse_at_every_trial_is_refused_before_any_work(tmp_path, capsys, spec, draw):
    """Bounds and steps may change; another log setting, kind or list of choices is what Optuna's storage refuses
    at every draw (a traceback per trial): refused up front, naming the entry and what the study's trials drew."""
    first = JOB.replace(SPACE, SPACE + '\n"flow.steps" = {choices = [2, 3]}')
    job, out = _job(tmp_path, first), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    name = spec.split('"')[1]
    taken = _optuna_takes(lambda t: (t.suggest_float("flow.dt", 0.01, 3.0, log=True),
                                     t.suggest_categorical("flow.steps", [2, 3])), draw)
    later = _job(tmp_path, first.replace(next(line for line in first.splitlines() if line.startswith(f'"{name}"')),
                                         spec), "later.toml")
    journal = (out / "study.journal").read_bytes()
    rc, io = _tune(capsys, later, "--study", "tiny", "--trials", "1", "--out", out)
    if taken:
        assert rc == 0 and "Traceback" not in io.out and "1 fail" not in io.out, io.out
        assert _journal(out / "study.journal").trials[1].state == TrialState.COMPLETE
    else:
        assert rc == 2 and io.err.count("\n") == 1, io.err
        assert f'[tune.space]."{name}" = ' in io.err and "whose trials drew it from {" in io.err
        assert (out / "study.journal").read_bytes() == journal


def test_best_toml_names_the_run_directory_of_another_study_directory_on_the_same_journal(tmp_path, capsys):
    """--out E1, E2, E1 on one --storage journal: trial 1 (the best, queued with a dt that gains more in 3 steps
    than dt = 0.01) lies in E2, and E1's best.toml names E2/trials/0001, or says it is not found once E2 is gone."""
    import re
    import shutil

    from hpcflow.tune.study import load, write_best

    job, shared = _job(tmp_path), tmp_path / "shared.journal"
    study = optuna.create_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(shared))),
                                direction="maximize")
    for dt in (0.01, 1.0, 0.01):
        study.enqueue_trial({"flow.dt": dt})
    for out in ("E1", "E2", "E1"):
        assert _tune(capsys, job, "--trials", "1", "--out", tmp_path / out, "--storage", shared)[0] == 0
    best = _journal(shared).best_trial
    assert best.number == 1 and not (tmp_path / "E1" / "trials" / "0001").exists()
    header = (tmp_path / "E1" / "best.toml").read_text().split("\n[")[0]
    named = re.search(r"trial run directory (\S+);", header).group(1)
    assert Path(named) == tmp_path / "E2" / "trials" / "0001"
    assert f"seed = {best.user_attrs['seeds'][0]}" in (Path(named) / "job.toml").read_text()
    shutil.move(str(tmp_path / "E2"), str(tmp_path / "gone"))
    write_best(_journal(shared), load(str(job)), str(tmp_path / "E1"), "tiny")
    header = (tmp_path / "E1" / "best.toml").read_text().split("\n[")[0]
    assert "trial run directory" not in header and f"trials/0001 of {tmp_path / 'E2'} is not found" in header


def test_a_worker_whose_trials_did_not_finish_while_another_workers_trial_runs_exits_0(tmp_path, capsys):
    """No finished trial yet is exit 3 only when nothing still runs: a worker whose trial diverged, or which ran
    none (--max-trials taken), while another worker's trial runs says so and exits 0 (an array task)."""
    job, out = _job(tmp_path, JOB.replace("high = 3.0", "high = 9000.0")), tmp_path / "s"
    out.mkdir()
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    optuna.create_study(study_name="tiny", storage=storage, direction="maximize").enqueue_trial({"flow.dt": 5000.0})
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)  # alone: its only trial diverged
    assert rc == 3 and "no trial has finished yet; this worker's trials: 1 diverged" in io.out, io.out
    assert "see the failures above" not in io.out
    study = _journal(out / "study.journal")
    study.ask()  # another worker's trial, running (started just now)
    study.enqueue_trial({"flow.dt": 5000.0})
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0 and "this worker's trials: 1 diverged; 1 trial of other workers still runs" in io.out, io.out
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--max-trials", "3")
    assert rc == 0 and "this worker ran no trial (the study holds --max-trials trials); 1 trial" in io.out, io.out
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.PRUNED, TrialState.RUNNING,
                                                                         TrialState.PRUNED]
