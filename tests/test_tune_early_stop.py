"""A flow trial whose early stop ends it at a step where the median pruner would prune it is finished, not pruned:
the pruner never acts at the step that ends a run (its last step, or its early stop)."""

from __future__ import annotations

import json
import math

import optuna
from optuna.trial import TrialState

from hpcflow.tune.study import optimize
from test_tune_records import JOB, _job, _journal  # tests/ is on sys.path (pytest's default import mode)

#: early_stop = 1: a trial ends at the first step whose sigma_test is not below its best so far; the median pruner
#: judges every step from the first finished trial on
EARLY = JOB.replace('loss = "ultralocal"', 'loss = "ultralocal"\nearly_stop = 1').replace(
    'pruner = "none"', 'pruner = "median"\npruner_startup_trials = 1\npruner_warmup_steps = 0')


def test_a_trial_ended_by_its_early_stop_is_complete_where_the_pruner_would_prune_it(tmp_path):
    job, out = _job(tmp_path, EARLY), tmp_path / "s"
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.enqueue_trial({"flow.dt": 0.1})  # sigma_test falls at every step: runs its 3 steps
    study.enqueue_trial({"flow.dt": 3.0})  # high = 3.0: the largest step the space holds
    r = optimize(str(job), trials=2, out=str(out), log=lambda *_: None)
    first, second = _journal(out / "study.journal").trials
    s1, s2 = (json.loads((out / t.user_attrs["run_dir"] / "summary.json").read_text()) for t in (first, second))
    assert first.state == TrialState.COMPLETE and s1["steps_taken"] == 3
    # the second trial's sigma_test went up at step 1: its early stop ends it there, its log gain below the first's
    # at that step (the median of one finished trial), so the pruner would prune it at step 1
    assert s2["stopped"] == "step 1: no improvement for 1 step (early stop)" and s2["steps_taken"] == 1
    assert s2["sigma_test_final"] > s2["sigma_test_initial"]
    assert second.intermediate_values[1] < first.intermediate_values[1]
    assert second.state == TrialState.COMPLETE and s2["status"] == "finished", (second.state, s2["status"])
    assert second.value == math.log(s2["sigma_test_initial"] / s2["sigma_test_final"])
    assert r["counts"] == {"COMPLETE": 2}
