"""What a [tune.space] value gives the whole job is checked before any work: a value without test points under an
objective that needs them, and a trial that ran without them all the same says why it failed."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.tune.study import load
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)


def _refused(capsys, job, out) -> str:
    """The one line of `hpcflow tune` refusing `job` (exit 2, nothing written to `out`)."""
    capsys.readouterr()
    assert main(["tune", str(job), "--trials", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists(), err
    return err


@pytest.mark.parametrize("spec, where", [
    ("{choices = [50, 0]}", '[tune.space]."geometry.n_test".choices[1] = 0'),
    ("{low = 0, high = 50}", '[tune.space]."geometry.n_test".low = 0')])
def test_a_space_drawing_no_test_points_under_a_test_objective_is_refused(tmp_path, capsys, spec, where):
    """n_test = 0 passes its field's check, but the study's objective (log_gain_test, the default) needs test points:
    the trials that drew it ran their whole flow and failed without a word; --set geometry.n_test=0 was refused."""
    job = _job(tmp_path, JOB.replace('"flow.dt"', f'"geometry.n_test" = {spec}\n"flow.dt"'))
    err = _refused(capsys, job, tmp_path / "s")
    assert f"{where} gives a job without test points ([geometry].n_test = 0)" in err, err
    assert "[tune].objective = 'log_gain_test' needs them" in err, err
    assert load(job, ["tune.objective=log_gain_train"]).tune["objective"] == "log_gain_train"  # needs none


def test_a_job_without_test_points_may_search_how_many_it_draws(tmp_path):
    """[geometry].n_test = 0 under a test objective is refused, but not where every trial sets n_test from the space
    (each of its values is checked instead)."""
    job = _job(tmp_path, JOB.replace("n_test = 60", "n_test = 0").replace(
        '"flow.dt"', '"geometry.n_test" = {choices = [40, 60]}\n"flow.dt"'))
    assert [p.name for p in load(job).tune["space"]] == ["geometry.n_test", "flow.dt"]


def test_a_trial_that_ran_without_test_points_fails_saying_why_and_is_not_retried(tmp_path, capsys):
    """A value queued outside the range (Optuna runs it) gave a trial without test points: it failed with no reason
    recorded; now its user attribute `error` and the worker's line say why, and it is not retried (it would recur)."""
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 2').replace(
        '"flow.dt"', '"geometry.n_test" = {low = 40, high = 60}\n"flow.dt"'))
    out = tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    _journal(out / "study.journal").enqueue_trial({"geometry.n_test": 0, "flow.dt": 1.0})
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    why = "objective 'log_gain_test' needs test points, but the trial ran without ([geometry].n_test = 0)"
    assert f"hpcflow tune: trial 1 failed: NoValue: {why}" in io.out and "Traceback" not in io.out + io.err, io.out
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]  # no retry queued
    assert trials[1].user_attrs["error"] == f"NoValue: {why}"


CLUSTERED = '[clustering]\nmethod = "full"\nn_clusters = 4\n'
FLOW_REFUSED = [
    # no clustering method: every trial flowed unclustered, n_clusters drawn and unused (the same numbers bit for bit)
    ("", '"clustering.n_clusters" = {low = 2, high = 8}',
     '[tune.space]."clustering.n_clusters" is read only where [clustering].method is set, but [clustering].method is '
     'unset, so no trial would use it; set [clustering].method, search "clustering.method" too, or remove '
     '"clustering.n_clusters" from [tune.space]'),
    (CLUSTERED, '"clustering.batch_size" = {low = 10, high = 50}',  # read by method "batched" only
     """[tune.space]."clustering.batch_size" is read only where [clustering].method = 'batched', but """
     """[clustering].method = "full", so no trial would use it"""),
    (CLUSTERED, '"clustering.method" = {choices = ["full", "birch"]}\n"clustering.seed" = {low = 0, high = 5}',
     """[tune.space]."clustering.seed" is read only where [clustering].method = 'batched', which """
     """[tune.space]."clustering.method".choices = ['full', 'birch'] does not hold, so no trial would use it; add """
     'one to its choices or remove "clustering.seed" from [tune.space]'),
]


@pytest.mark.parametrize("section, space, said", FLOW_REFUSED)
def test_a_setting_no_trial_switches_on_is_refused_in_the_space(tmp_path, capsys, section, space, said):
    job = _job(tmp_path, JOB.replace('"flow.dt"', f'{space}\n"flow.dt"') + section)
    assert said in _refused(capsys, job, tmp_path / "s")


@pytest.mark.parametrize("section, space", [
    ("", '"clustering.method" = {choices = ["full", "batched"]}\n"clustering.n_clusters" = {low = 2, high = 8}'),
    (CLUSTERED, '"clustering.n_clusters" = {low = 2, high = 8}'),
    (CLUSTERED.replace('"full"', '"batched"'), '"clustering.batch_size" = {low = 10, high = 60}'),
    (CLUSTERED, '"clustering.method" = {choices = ["full", "batched"]}\n"clustering.merge" = {choices = ["paper"]}')])
def test_a_setting_some_trial_switches_on_stays_searchable(tmp_path, section, space):
    job = _job(tmp_path, JOB.replace('"flow.dt"', f'{space}\n"flow.dt"') + section)
    assert "flow.dt" in [p.name for p in load(job).tune["space"]]


def test_an_nn_section_switched_off_is_refused_in_the_space_unless_the_space_switches_it_on(tmp_path, capsys):
    from test_tune_nn import JOB as NN_JOB

    sweep = NN_JOB.replace('"training.lr"', '"kernel_flow.dt" = {low = 1e-4, high = 1e-2}\n"training.lr"')
    sweep += "[kernel_flow]\nn_train = 100\nn_test = 100\n"
    said = ('[tune.space]."kernel_flow.dt" is read only where [kernel_flow].enabled = true, but [kernel_flow].enabled '
            '= false, so no trial would use it')
    assert said in _refused(capsys, _job(tmp_path, sweep), tmp_path / "s")
    switched = sweep.replace('"training.lr"', '"kernel_flow.enabled" = {choices = [true, false]}\n"training.lr"')
    assert "kernel_flow.dt" in [p.name for p in load(_job(tmp_path, switched)).tune["space"]]
    widths = NN_JOB.replace('"training.lr"', '"width_sweep.epochs" = {low = 1, high = 2}\n"training.lr"')
    said = ('[tune.space]."width_sweep.epochs" is read only where [width_sweep].widths is not [], but '
            '[width_sweep].widths = [], so no trial would use it; set [width_sweep].widths, or remove')
    assert said in _refused(capsys, _job(tmp_path, widths), tmp_path / "s")


def test_a_refused_combination_of_drawn_values_is_named_as_the_trials_parameters(tmp_path, capsys):
    """n_train = 20 and n_clusters = 40 each pass with the job's other values, not together: the trial's line named
    the job file as if it held them; it names them as the trial's parameters, and the job's refusal after them."""
    import optuna

    job = _job(tmp_path, JOB.replace('"flow.dt" = {low = 0.01, high = 3.0, log = true}',
                                     '"geometry.n_train" = {choices = [60, 20]}\n'
                                     '"clustering.n_clusters" = {choices = [10, 40]}')
               + '[clustering]\nmethod = "full"\nn_clusters = 10\n')
    out = tmp_path / "s"
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    optuna.create_study(study_name="tiny", storage=storage, direction="maximize").enqueue_trial(
        {"geometry.n_train": 20, "clustering.n_clusters": 40})
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    said = ("ConfigError: the trial's parameters drawn from [tune.space] (geometry.n_train = 20, clustering.n_clusters "
            "= 40) give a job that fails its checks: [clustering].n_clusters = 40 exceeds [geometry].n_train = 20; "
            "lower n_clusters or raise n_train")
    assert rc == 3 and f"hpcflow tune: trial 0 failed: {said}\n" in io.out and str(job) not in io.out, io.out
    assert _journal(out / "study.journal").trials[0].user_attrs["error"] == said


@pytest.mark.parametrize("choices, drawn", [('["batched"]', "'batched'"), ('["birch", "full"]', "'birch'")])
def test_a_range_end_is_checked_with_each_method_the_space_switches_clustering_on_with(tmp_path, capsys, choices,
                                                                                       drawn):
    """The job has no clustering method (n_clusters not cross-checked): n_clusters = 100 passed against it, and
    every trial that drew more than the 60 train points failed (exit 0 when one drew fewer). Checked with each
    method the space draws, as with the job's own method."""
    space = f'"clustering.n_clusters" = {{low = 1, high = 100}}\n"clustering.method" = {{choices = {choices}}}'
    job = _job(tmp_path, JOB.replace('"flow.dt" = {low = 0.01, high = 3.0, log = true}', space))
    said = (f'[tune.space]."clustering.n_clusters".high = 100 (with "clustering.method" = {drawn}) gives a job that '
            "fails its checks: [clustering].n_clusters = 100 exceeds [geometry].n_train = 60")
    assert said in _refused(capsys, job, tmp_path / "s")
    fits = _job(tmp_path, job.read_text().replace("high = 100", "high = 60"))
    assert [p.name for p in load(fits).tune["space"]] == ["clustering.n_clusters", "clustering.method"]


def test_an_nn_range_end_is_checked_with_each_schedule_and_the_switch_the_space_draws(tmp_path, capsys):
    """kernel_flow.n_train = 1000 exceeds the job's 300 train points once kernel_flow is on, which only the space
    switches: every trial that drew it failed (exit 3 when all did). Refused, naming the schedule and the switch."""
    from test_tune_nn import JOB as NN_JOB

    space = ('"kernel_flow.enabled" = {choices = [false, true]}\n"kernel_flow.n_train" = {low = 10, high = 1000}\n'
             '"training.lr_schedule" = {choices = ["cosine", "exponential"]}\n"training.lr"')
    job = _job(tmp_path, NN_JOB.replace('"training.lr"', space) + "[kernel_flow]\nn_train = 50\nn_test = 100\n")
    said = ("""[tune.space]."kernel_flow.n_train".high = 1000 (with "training.lr_schedule" = 'cosine', """
            """"kernel_flow.enabled" = True) gives a job that fails its checks: [kernel_flow].n_train = 1000 exceeds """
            "the 300 sampled points ([geometry].n_train); lower it")
    assert said in _refused(capsys, job, tmp_path / "s")
    fits = _job(tmp_path, job.read_text().replace("high = 1000", "high = 300"))
    assert "kernel_flow.n_train" in [p.name for p in load(fits).tune["space"]]


def test_each_value_is_checked_only_with_the_switch_values_that_read_it(tmp_path):
    """The checks of a searched setting take each value of its switch that reads it (batch_size: method 'batched'
    only; n_clusters: both), and the other searched settings at the job's values (which the space draws): (values) x
    (switch choices), not the product of the whole space."""
    from hpcflow.tune.study import space_settings

    space = ('"clustering.method" = {choices = ["full", "batched"]}\n"clustering.n_clusters" = {choices = [2, 4]}\n'
             '"clustering.batch_size" = {low = 10, high = 50}')
    text = JOB.replace('"flow.dt" = {low = 0.01, high = 3.0, log = true}', space).replace(
        "[flow]", '[clustering]\nmethod = "batched"\nn_clusters = 4\nbatch_size = 20\n[flow]')
    job = load(_job(tmp_path, text))
    checked = [next(alternatives)[0] for alternatives in space_settings(job.tune["space"], job.cfg)]  # (the first)
    assert checked == [
        """[tune.space]."clustering.method".choices[0] = 'full'""",
        """[tune.space]."clustering.method".choices[1] = 'batched'""",
        """[tune.space]."clustering.n_clusters".choices[0] = 2 (with "clustering.method" = 'full')""",
        """[tune.space]."clustering.n_clusters".choices[0] = 2 (with "clustering.method" = 'batched')""",
        """[tune.space]."clustering.n_clusters".choices[1] = 4 (with "clustering.method" = 'full')""",
        """[tune.space]."clustering.n_clusters".choices[1] = 4 (with "clustering.method" = 'batched')""",
        """[tune.space]."clustering.batch_size".low = 10 (with "clustering.method" = 'batched')""",
        """[tune.space]."clustering.batch_size".high = 50 (with "clustering.method" = 'batched')"""]


def test_a_searched_settings_value_the_space_never_draws_is_not_what_the_others_are_checked_with(tmp_path, capsys):
    """A job's n_clusters = 50 that [tune.space] searches in 2..5: no trial takes 50, so batch_size 20 (with method
    'batched') is checked with n_clusters at an end of its range, where it fits the 20-point mini-batches; it was
    refused (50 clusters in batches of 20) though every trial would run. A value that fits neither end is still
    refused, naming the values it was checked with."""
    space = ('"clustering.method" = {choices = ["batched"]}\n"clustering.batch_size" = {choices = [20, 30]}\n'
             '"clustering.n_clusters" = {low = LOW, high = HIGH}')
    text = JOB.replace('"flow.dt" = {low = 0.01, high = 3.0, log = true}', space).replace(
        "[flow]", '[clustering]\nmethod = "full"\nn_clusters = 50\n[flow]')
    job = _job(tmp_path, text.replace("LOW", "2").replace("HIGH", "5"))
    assert [p.name for p in load(job).tune["space"]][-1] == "clustering.n_clusters"
    rc, _ = _tune(capsys, job, "--trials", "2", "--out", tmp_path / "ok")
    assert rc == 0 and len(_journal(tmp_path / "ok" / "study.journal").trials) == 2
    # 21..25: past the 20-point batches at both ends, so batch_size 20 gives no valid trial
    err = _refused(capsys, _job(tmp_path, text.replace("LOW", "21").replace("HIGH", "25")), tmp_path / "no")
    assert ("""[tune.space]."clustering.batch_size".choices[0] = 20 (with "clustering.method" = 'batched', """
            """"clustering.n_clusters" = 21) gives a job that fails its checks""") in err, err


NN_BASE = """[job]
kind = "nn"
[geometry]
n_train = 2000
n_val = 500
[model]
kind = "multiplicative"
depth = 2
width = 16
[training]
epochs = 2
batch_size = 500
lr = 5e-2
lr_schedule = "cosine"
lr_min = 1e-5
threads = 1
[ntk]
enabled = false
"""


def test_a_value_valid_only_with_mixed_ends_of_the_others_is_not_refused(tmp_path):
    """lr_min = 5e-3 (its high end) needs lr above it, and the width sweep's rate at width 256, lr (1/16)^e, above it
    too: lr at its high end 4e-2 with the exponent at its low end 0.5 gives 1e-2 >= 5e-3, a valid trial, though the
    space's low ends (lr 1e-3) and its high ends (e = 1.5: 6.25e-4 at width 256) both give none; it was refused."""
    space = ('[tune]\nsampler = "random"\n[tune.space]\n"training.lr" = {low = 1e-3, high = 4e-2, log = true}\n'
             '"training.lr_min" = {low = 1e-5, high = 5e-3, log = true}\n'
             '"width_sweep.lr_exponent" = {low = 0.5, high = 1.5}\n')
    sweep = "[width_sweep]\nwidths = [16, 256]\nwidth_ref = 16\nlr_exponent = 2.0\nepochs = 1\nn_train = 500\n"
    job = load(_job(tmp_path, NN_BASE + sweep + space))
    assert [p.name for p in job.tune["space"]][1] == "training.lr_min"
    # narrower: no lr / exponent pair of the space's ends keeps the width-256 rate above 5e-3 (4e-2/16 = 2.5e-3)
    with pytest.raises(ConfigError, match=r'"training.lr_min".high = 0.005 .* other combinations'):
        load(_job(tmp_path, NN_BASE + sweep + space.replace("low = 0.5, high = 1.5", "low = 1.0, high = 1.5"),
                  name="narrow.toml"))


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_a_setting_of_another_section_is_checked_with_the_switch_values_the_space_draws(tmp_path, enabled):
    """n_val = 300 is below every [kernel_flow].n_test the space draws (350..400), which the kernel flow needs, but
    a trial that draws enabled = false runs without it: accepted whatever the job file's own enabled (refused where
    it said true, accepted where it said false)."""
    space = ('[kernel_flow]\nenabled = ENABLED\nn_train = 200\nn_test = 450\n[tune]\nsampler = "random"\n'
             '[tune.space]\n"kernel_flow.enabled" = {choices = [true, false]}\n'
             '"geometry.n_val" = {low = 300, high = 500}\n"kernel_flow.n_test" = {low = 350, high = 400}\n')
    job = load(_job(tmp_path, NN_BASE + space.replace("ENABLED", enabled)))
    assert {p.name for p in job.tune["space"]} == {"kernel_flow.enabled", "geometry.n_val", "kernel_flow.n_test"}


def test_a_refusal_names_only_the_values_its_trial_sets(tmp_path):
    """lr = 1e-3 is below every lr_min the space draws (1e-2..3e-2), which the cosine schedule needs: refused,
    naming the values of the trial checked, not lr_decay, which a cosine trial leaves at its default (it named
    lr_decay = 0.5)."""
    base = NN_BASE.replace('lr_schedule = "cosine"\nlr_min = 1e-5', 'lr_schedule = "exponential"\nlr_decay = 0.95')
    space = ('[tune]\nsampler = "random"\n[tune.space]\n"training.lr_schedule" = {choices = ["exponential", '
             '"cosine"]}\n"training.lr" = {low = 1e-3, high = 4e-2, log = true}\n'
             '"training.lr_min" = {low = 1e-2, high = 3e-2, log = true}\n'
             '"training.lr_decay" = {low = 0.5, high = 0.9}\n')  # (the job's 0.95 not drawn: an end is taken)
    with pytest.raises(ConfigError) as refused:
        load(_job(tmp_path, base + space))
    said = str(refused.value)
    assert """[tune.space]."training.lr".low = 0.001 (with "training.lr_schedule" = 'cosine'""" in said, said
    assert "lr_decay" not in said.split("gives a job")[0], said
