"""With [tune].pruner = "none" the pruner's settings have no effect, but are accepted, as README's job-file rule has a
switched-off setting's other keys (so that `--set tune.pruner=none` switches the pruner off beside them): one given a
value other than its default is named in one note line on stdout once the checks pass (with --quiet too: a warning
of a likely mistake, which --quiet does not silence), as `hpcflow nn` names a switched-off section's keys."""

from __future__ import annotations

import pytest

from test_tune_records import JOB, _job, _tune  # tests/ is on sys.path

NOTE = "hpcflow tune: note: [tune] {} is not used: [tune].pruner = \"none\"\n"


@pytest.mark.parametrize("key, value", [("pruner_warmup_steps", 3), ("pruner_startup_trials", 0)])
def test_a_pruner_setting_with_no_pruner_is_taken_with_one_note(tmp_path, capsys, key, value):
    assert 'pruner = "none"' in JOB
    job = _job(tmp_path, JOB.replace('pruner = "none"', f'pruner = "none"\n{key} = {value}'))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s")
    assert rc == 0 and io.err == "", io.err
    assert io.out.count(NOTE.format(f"{key} = {value}")) == 1 and io.out.count("note:") == 1, io.out
    assert io.out.startswith(NOTE.format(f"{key} = {value}")), io.out  # before the trial's lines
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s", "--quiet")
    assert rc == 0 and io.err == "", io.err
    assert io.out.count(NOTE.format(f"{key} = {value}")) == 1 and io.out.count("note:") == 1, io.out


def test_both_pruner_settings_are_named_in_one_line(tmp_path, capsys):
    job = _job(tmp_path, JOB.replace('pruner = "none"',
                                     'pruner = "none"\npruner_startup_trials = 2\npruner_warmup_steps = 3'))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s")
    assert rc == 0 and io.out.count("note:") == 1, io.out
    assert NOTE.format("pruner_startup_trials = 2, pruner_warmup_steps = 3").replace(" is not", " are not") in io.out


def test_the_shipped_study_switches_its_pruner_off_with_set(tmp_path, capsys):
    """jobs/tune_nn.toml sets pruner_warmup_steps; --set tune.pruner=none switches the pruner off beside it."""
    from hpcflow.jobs.schema import read_toml
    from hpcflow.tune.space import unused_note
    from hpcflow.tune.study import load

    from analysis_runs import ROOT

    path = f"{ROOT}/jobs/tune_nn.toml"
    warmup = read_toml(path)["tune"]["pruner_warmup_steps"]
    job = load(path, ["tune.pruner=none"])
    assert job.tune["pruner"] == "none" and job.tune["pruner_warmup_steps"] == warmup
    assert unused_note(job.tune) == f'note: [tune] pruner_warmup_steps = {warmup} is not used: [tune].pruner = "none"'


@pytest.mark.parametrize("table", ['pruner = "none"\npruner_warmup_steps = 10', 'pruner = "median"\n'
                                   'pruner_warmup_steps = 3'])
def test_a_pruner_setting_at_its_default_or_with_the_median_pruner_says_nothing(tmp_path, capsys, table):
    job = _job(tmp_path, JOB.replace('pruner = "none"', table))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s")
    assert rc == 0 and "note:" not in io.out, io.out
