"""With [tune].pruner = "none" the pruner's settings have no effect: one given a value other than its default is
refused before any work (exit 2, one line naming the key and the fix), as a job file's key given where it does not
apply; at its default it is accepted."""

from __future__ import annotations

import pytest

from test_tune_records import JOB, _job, _tune  # tests/ is on sys.path


@pytest.mark.parametrize("key, value, default", [("pruner_warmup_steps", 3, 10), ("pruner_startup_trials", 0, 5)])
def test_a_pruner_setting_with_no_pruner_is_refused(tmp_path, capsys, key, value, default):
    assert 'pruner = "none"' in JOB
    job = _job(tmp_path, JOB.replace('pruner = "none"', f'pruner = "none"\n{key} = {value}'))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s", "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"[tune].{key} = {value} does not apply to [tune].pruner = 'none'" in io.err, io.err
    assert f"give its default {default}" in io.err and "set pruner = 'median'" in io.err, io.err
    assert not (tmp_path / "s").exists()


def test_a_pruner_setting_at_its_default_or_with_the_median_pruner_is_taken(tmp_path, capsys):
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\npruner_warmup_steps = 10'))
    assert _tune(capsys, job, "--trials", "1", "--out", tmp_path / "a", "--quiet")[0] == 0
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "median"\npruner_warmup_steps = 3'), name="m.toml")
    assert _tune(capsys, job, "--trials", "1", "--out", tmp_path / "b", "--quiet")[0] == 0
