"""How many trials a worker may still add: its own `--trials N` across Slurm requeues, and the study's
`--max-trials M`.

A worker's own count. A requeued Slurm job runs the same command again with the same job (SLURM_JOB_ID, or
SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID) and a higher SLURM_RESTART_COUNT; every trial records the job and run
count of its worker (`storage.mark_worker`). A worker with SLURM_RESTART_COUNT > 0 subtracts from N the trials
that earlier runs of its job finished (`finished_before`): complete, pruned, or failed by their own error (user
attribute `error`); a trial failed otherwise (`failure`: preempted, worker gone, over the cap; or by Optuna's RDB
heartbeat) did not finish, and its queued retry is run instead. Without Slurm, or at SLURM_RESTART_COUNT 0, a
command adds N trials.

The cap. A trial *counts* toward M (`counts`) when it is complete, pruned, running or waiting (queued), or failed
without a retry queued for it; a failed trial whose parameters were queued again is counted through its retry,
and a trial failed as over the cap is not counted. Trial numbers are given in the storage's order, so after
a worker has drawn trial n it decides alone whether n is within the cap: fewer than M counted trials numbered
below n (`within_cap`). No two workers can both take the M-th place: a trial that loses that race is failed
at once (`failure = OVER_CAP`, nothing computed, its queued parameters queued again) and the worker stops.
"""

from __future__ import annotations

#: the `failure` user attribute of a trial drawn over --max-trials (nothing computed; not counted)
OVER_CAP = "over --max-trials"


def predecessor(t) -> int | None:
    """The number of the failed trial that `t` retries (retry_history of Optuna's RetryHeartbeatStaleTrialCallback,
    RetryFailedTrialCallback before Optuna 4.9, or this package's `retry_of`), or None."""
    history = t.system_attrs.get("retry_history")
    if isinstance(history, list) and history:
        return history[-1]
    return t.user_attrs.get("retry_of")


def counts(t, retried: set) -> bool:
    """Whether trial `t` counts toward --max-trials; `retried`: numbers of trials that some trial retries."""
    from optuna.trial import TrialState

    if t.state != TrialState.FAIL:
        return True
    return not str(t.user_attrs.get("failure", "")).startswith(OVER_CAP) and t.number not in retried


def counted(trials) -> list[int]:
    """The numbers of the trials that count toward --max-trials, ascending."""
    retried = {p for t in trials if (p := predecessor(t)) is not None}
    return sorted(t.number for t in trials if counts(t, retried))


def within_cap(trials, number: int, max_trials: int) -> bool:
    """Whether trial `number` may run: fewer than `max_trials` counted trials numbered below it."""
    return sum(1 for n in counted(trials) if n < number) < max_trials


def room(trials, max_trials: int) -> bool:
    """Whether the next trial a worker draws can be within the cap: the first queued (WAITING) trial, which Optuna
    hands out first, would be; or, with none queued, fewer than `max_trials` trials count."""
    from optuna.trial import TrialState

    waiting = [t.number for t in trials if t.state == TrialState.WAITING]
    if waiting:
        return within_cap(trials, min(waiting), max_trials)
    return len(counted(trials)) < max_trials


def finished(t) -> bool:
    """Whether a worker finished trial `t`: complete, pruned, or failed by its own error (`error` set, no
    `failure`: not stopped from outside)."""
    from optuna.trial import TrialState

    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and "error" in t.user_attrs and "failure" not in t.user_attrs)


def finished_before(trials, job: str | None, restart: int) -> int:
    """Trials that earlier runs (SLURM_RESTART_COUNT below `restart`) of Slurm job `job` finished."""
    if job is None or restart <= 0:
        return 0
    return sum(1 for t in trials if t.user_attrs.get("slurm_job") == job and finished(t)
               and isinstance(t.user_attrs.get("slurm_restart"), int) and t.user_attrs["slurm_restart"] < restart)
