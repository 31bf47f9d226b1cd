"""A study created by an hpcflow whose job records lack a setting added since (here `max_batches`, the sampler's
cap beside `chart`) is continued by the same job: a setting that does not change what a trial computes may be
absent from the study's record; a refusal of a setting the record lacks says "unset", not Python's None."""

from __future__ import annotations

import json
import shutil

from hpcflow.tune.study import record_mismatch
from test_tune_records import _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)


def _without(value, key: str):
    """`value` (JSON data) with every mapping's entry `key` dropped, as an older hpcflow's record lacks it."""
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_without(v, key) for v in value]
    return value


def _recorded_before(out, key: str) -> int:
    """Rewrite the study's journal so that its record holds no `key` anywhere; the number of lines changed."""
    path = out / "study.journal"
    lines, changed = path.read_text().splitlines(), 0
    kept = []
    for line in lines:
        entry = json.loads(line)
        older = _without(entry, key)
        changed += older != entry
        kept.append(json.dumps(older))
    path.write_text("\n".join(kept) + "\n")
    return changed


def test_a_study_whose_record_predates_max_batches_takes_more_trials(tmp_path, capsys):
    job = _job(tmp_path)
    rc, _ = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s", "--quiet")
    assert rc == 0
    older = tmp_path / "older"
    shutil.copytree(tmp_path / "s", older)
    assert _recorded_before(older, "max_batches") >= 1
    assert "max_batches" not in json.dumps(_journal(older / "study.journal").user_attrs)
    rc, said = _tune(capsys, job, "--trials", "2", "--out", older, "--quiet")  # (2 more)
    assert rc == 0, said.err
    trials = _journal(older / "study.journal").get_trials()
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials), [t.state for t in trials]
    # a value set by --set differs from the (absent) record's too, and is taken: it does not change the points
    rc, said = _tune(capsys, job, "--trials", "1", "--out", older, "--quiet", "--set", "geometry.max_batches=7")
    assert rc == 0, said.err


def test_a_setting_the_record_lacks_is_said_unset():
    old = {"objective": "log_gain_test", "seed": 5, "config": {"flow": {"dt": 0.5}}}
    new = {"objective": "log_gain_test", "seed": 5, "config": {"flow": {"dt": 0.5, "clip": 2.0}}}
    assert record_mismatch(old, new) == "[flow].clip = 2.0, not unset"
    assert record_mismatch(new, old) == "[flow].clip = unset, not 2.0"
    assert record_mismatch(old, {**new, "config": {"flow": {"dt": 0.5, "clip": None}}}) is None
