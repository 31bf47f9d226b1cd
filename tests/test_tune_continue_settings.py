"""The README's list of the [tune] settings a continued study refuses to change, and of those it lets change, is what
`hpcflow tune` does: each setting changed by --set on a study of the tiny job, refused (exit 2) or continued."""

from __future__ import annotations

import os
import re

import pytest

from hpcflow.cli import main
from hpcflow.tune.space import TUNE_SECTION
from test_tune_refusals import _copy, study as one_trial_study  # tests/ is on sys.path (pytest's default import mode)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: a value other than the tiny job's (random sampler, seed 5, no pruner, log_gain_test: maximize) for each setting
CHANGED = {"objective": "log_gain_train", "direction": "minimize", "sampler": "tpe", "seed": 6, "pruner": "median",
           "pruner_startup_trials": 2, "pruner_warmup_steps": 2, "retries": 1, "stale_seconds": 700,
           "heartbeat_seconds": 30}


def _readme_lists() -> tuple[set, set]:
    """(the [tune] settings the README says a continued study refuses, those it says may change)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = " ".join(fh.read().split())
    refused = re.search(r"and so is another `\[tune\]` (.*?) \(as given", text)
    free = re.search(r"the other `\[tune\]` settings \((.*?)\)", text)
    assert refused and free, "the README's sentence on [tune] settings of a continued study is not found"
    return set(re.findall(r"`(\w+)`", refused.group(1))), set(re.findall(r"`(\w+)`", free.group(1)))


study = one_trial_study  # the fixture: a study of one finished trial of the tiny job, and the job file


def test_every_tune_setting_is_listed_once():
    refused, free = _readme_lists()
    assert not refused & free and refused | free == set(TUNE_SECTION) - {"space"} == set(CHANGED)


@pytest.mark.parametrize("key", sorted(CHANGED))
def test_a_continued_study_refuses_exactly_the_settings_the_readme_names(study, tmp_path, capsys, key):
    """The README named objective and seed as the settings that may not change; direction is refused too."""
    job, out = _copy(study, tmp_path)
    capsys.readouterr()
    rc = main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet", "--set",
               f"tune.{key}={CHANGED[key]}"])
    err = capsys.readouterr().err
    refused, _ = _readme_lists()
    assert rc == (2 if key in refused else 0), (rc, err)
    if rc == 2:
        assert f"[tune].{key}" in err and err.count("\n") == 1, err
