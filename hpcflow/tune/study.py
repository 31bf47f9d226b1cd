"""An Optuna study over the `[tune]` space of a flow or nn job; each trial a fresh-point flow (or network
training) in DIR/trials/NNNN/.

Rank 0 talks to the storage and broadcasts each trial (parameters, seeds, run directory); every rank runs the
flow (trains the network, data parallel) and takes rank 0's pruning decision at every step (epoch). Before each
trial the ranks decide together whether a stop request reached any of them (`stop_between_trials`).
Re-running on the same storage and study name adds trials (a requeued Slurm job only those it has not finished;
`--max-trials` caps the study: `budget`). A trial that raises is recorded as failed (its parameters queued again
while `retries` allow) and the study goes on, but for a write the file system refused (disk full, quota,
permissions: every later trial would fail alike), which stops the worker with exit status 5, the trial's
parameters queued again; `DIR/best.toml` is the job with the best parameters filled in.
"""

from __future__ import annotations

import errno
import importlib
import itertools
import json
import math
import os
import signal
import socket
import traceback
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpcflow.atomic import write_failure
from hpcflow.errors import (EXIT_PREEMPTED, ConfigError, MissingDependencyError, OutputPathError, Preempted, RunStop,
                            UserError, WriteFailed)
from hpcflow.jobs.schema import shown as toml_shown
from hpcflow.stop_signals import Stopped, finished, requests
from hpcflow.tune import budget
from hpcflow.tune import objective as objectives
from hpcflow.tune import space as spaces
from hpcflow.tune.storage import (AFTER_TRAINING, CONTINUED_FAILURE, LockAbandoned, LockLost, StorageError,
                                  check_journal_place, close_storage, continue_after_training, dir_refusal,
                                  existing_storage, file_lock, heartbeat, is_journal, make_writable, mark_worker,
                                  masked, open_storage, recorded_storage, recover_stale, refused_reason,
                                  replace_refusal, requeue, same_storage, slurm_worker, sqlite_path, storage_file,
                                  storage_label, storage_option, storage_shown, storages_closed, lock_file_entry,
                                  forget_stops, retries_used)
from hpcflow.tune.trial import NOT_POSITIVE_DEFINITE, run_trial, trial_seeds


class TrialDirTaken(OutputPathError):
    """A trial's run directory holds another trial's files: the worker stops (exit 2), nothing is overwritten."""


class WriteDenied(WriteFailed):
    """A write refused for its permissions (EACCES, EPERM: a journal or database made read-only or immutable while
    the study ran): every later trial's would be refused too, so the worker stops (exit status 5)."""

    @property
    def fix(self) -> str:
        return "make it writable again (its permissions, chattr -i)"


def refused_write(exc: BaseException) -> OSError | None:
    """The write the file system refused that `exc` is or was raised from (`write_failure`), or a permission error
    (EACCES, EPERM) there as WriteDenied; None for any other error (the trial's own failure)."""
    refused = write_failure(exc)
    seen = set()
    while refused is None and exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
            return WriteDenied(exc.errno, exc.strerror or os.strerror(exc.errno),
                               exc.filename or "the study's storage")
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return refused


def as_write_failed(refused: OSError) -> WriteFailed:
    """A write the file system refused (`refused_write`) as the WriteFailed that ends the worker (exit status 5)."""
    if isinstance(refused, WriteFailed):
        return refused
    return WriteFailed(refused.errno, refused.strerror or os.strerror(refused.errno),
                       refused.filename or "the study's storage")


class OverCap(Exception):
    """The trial just drawn is beyond --max-trials (another worker took the last place first): failed unrun."""


@dataclass
class TuneJob:
    """A validated job file with its [tune] table and the command-line overrides it is run with."""

    path: str
    overrides: list
    cfg: dict
    tune: dict
    #: the --set values the study was created with (its record's `overrides`, `open_study`); None: not read yet
    study_overrides: list | None = None

    def settings(self, params: dict) -> dict:
        """What a trial with parameters `params` sets on the job: `params`, but for the rate setting its learning-rate
        schedule does not read, left at (or set back to) its default (`spaces.trial_settings`)."""
        return spaces.trial_settings(self.cfg, params)[0]

    def inactive(self, params: dict) -> list:
        """The settings that a trial with parameters `params` leaves at their defaults as its drawn schedule does not
        read them (`spaces.trial_settings`): its user attribute `inactive`."""
        return spaces.trial_settings(self.cfg, params)[1]

    def trial_overrides(self, params: dict) -> list:
        """The --set values a trial records: the study's (those it was created with, whichever job and --set values
        this worker runs), then its settings (`settings`); with the trial's seeds they make its job of the study's
        job file."""
        base = self.overrides if self.study_overrides is None else self.study_overrides
        return [*base, *spaces.overrides(self.settings(params))]

    def trial_cfg(self, params: dict) -> dict:
        """The validated job with the settings of `params` (`settings`), exactly as `hpcflow run --set ...` would
        read it (this worker's job file and --set values, which compute what the study's do: `record_mismatch`)."""
        from hpcflow.jobs import registry
        from hpcflow.jobs.toml_out import value

        setting = spaces.overrides(self.settings(params))
        try:
            return registry.load(self.path, [*self.overrides, *setting])[1]
        except UserError as exc:  # a combination of values each of which the job takes (`check_space`): no retry
            drawn = ", ".join(f"{name} = {value(v)}" for name, v in params.items())
            raise ConfigError(f"the trial's parameters drawn from [tune.space] ({drawn}) give a job that fails its "
                              f"checks: {refusal(self.path, exc, setting)}") from None

    def record(self) -> dict:
        """What a study is created with (study user attribute RECORD): the job file and --set values, the job as
        written (best.toml starts from it) and as validated (later workers must match it), objective and seed."""
        from hpcflow.jobs.output import jsonable
        from hpcflow.jobs.schema import apply_overrides, read_toml

        data = apply_overrides(read_toml(self.path), self.overrides, source=self.path)
        data.pop("tune", None)
        return json.loads(json.dumps(jsonable({
            "job": os.path.abspath(self.path), "overrides": list(self.overrides), "job_data": data,
            "config": self.cfg, "objective": self.tune["objective"], "seed": self.tune["seed"],
            "space": [p.name for p in self.tune["space"]]})))


#: study user attribute holding `TuneJob.record()` of the job the study was created with
RECORD = "hpcflow_job"
#: the most characters of a failed trial's error said (its line) and recorded (user attribute `error`): a refused
#: combination of parameters names them and the job's refusal
ERROR_CHARS = 500
#: user attribute `failure` of a trial that a second Ctrl-C interrupted (`Worker.objective`)
INTERRUPTED = "interrupted"
#: seconds a failing rank of an MPI worker waits at `abort_on_error`'s barrier for the others before the Abort: rank 0
#: records the failed trial in the storage first (a journal on a slow shared file system), which may outlast ABORT_WAIT
RECORD_WAIT = 5.0
#: job settings a later worker may change: they do not change what a trial computes ([tune] aside from its
#: objective and seed, which are compared on their own; searched settings are set by every trial, and the point
#: seeds, [geometry] seed and test_seed, by every trial from [tune].seed: `trial_seeds`; max_batches, the cap on the
#: sampler's batches, which does not change the points of a sampling that ends, and which the records of studies
#: created before it existed lack)
FREE_SETTINGS = {("job", "description"), ("geometry", "seed"), ("geometry", "test_seed"), ("checkpoint", None),
                 ("geometry", "max_batches"), ("points", "max_batches")}


def record_mismatch(old: dict, new: dict) -> str | None:
    """The first setting in which job record `new` differs from the study's `old` one, as a phrase, or None.

    Only the settings `new` searches may differ: every other one must keep the study's value, also one that the
    study's job searched. So each trial ran with the study's job and its own parameters, whichever job drew it,
    and best.toml (the study's job with the best trial's parameters) holds exactly what the best trial ran."""
    for key in ("objective", "seed"):
        if old.get(key) != new.get(key):
            return f"[tune].{key} = {toml_shown(new.get(key))}, not {toml_shown(old.get(key))}"
    searched = {tuple(n.split(".", 1)) for n in new.get("space", [])}
    searched_before = {tuple(n.split(".", 1)) for n in old.get("space", [])}
    a, b = compared(old.get("config", {})), compared(new.get("config", {}))
    for section in sorted(set(a) | set(b)):
        if (section, None) in FREE_SETTINGS:
            continue
        sa, sb = a.get(section, {}), b.get(section, {})
        for key in sorted(set(sa) | set(sb), key=lambda k: (k != "name", k)):  # a kernel's name says most
            if (section, key) in FREE_SETTINGS or (section, key) in searched:
                continue
            if sa.get(key) != sb.get(key):
                why = (" (the study searched it; a job that does not must keep the study's "
                       f"{_said(sa, key)}, which "
                       "best.toml gives its trials, or search it too)" if (section, key) in searched_before else "")
                return f"[{section}].{key} = {_said(sb, key)}, not {_said(sa, key)}{why}"
    return None


def _said(section: dict, key: str) -> str:
    """A record's setting as a refusal shows it: as the job file writes it, "unset" where the record lacks it (a
    study created by an hpcflow without that setting) or holds None (not set)."""
    return "unset" if section.get(key) is None else toml_shown(section[key])


def is_nn(cfg) -> bool:
    """Whether job config or data `cfg` is of an nn job."""
    return isinstance(cfg, dict) and isinstance(cfg.get("job"), dict) and cfg["job"].get("kind") == "nn"


def compared(cfg: dict) -> dict:
    """A record's validated job `cfg` as `record_mismatch` compares it: an nn job's as it trains
    (`hpcflow.nn.job.effective`, as `hpcflow nn --resume` compares a checkpoint's job), so that the record of an
    older hpcflow whose job set the rate key its schedule does not read (lr_decay = 0.9 of a cosine job, accepted
    then, refused now) matches the same job without it."""
    if not is_nn(cfg):
        return cfg
    from hpcflow.nn.job import effective

    return effective(cfg)


def drop_unread_rate(data: dict) -> None:
    """Drop from nn job data `data` (a job file's tables) the rate key that its learning-rate schedule does not read
    (`hpcflow.nn.rates.UNUSED_BY`): a study's record written by an older hpcflow may hold one (lr_decay of a cosine
    job), which `hpcflow nn` now refuses; its trials trained as without it."""
    from hpcflow.nn.rates import RATE_FIELDS, UNUSED_BY

    training = data.get("training") if is_nn(data) else None
    if not isinstance(training, dict):
        return
    unread = UNUSED_BY.get(training.get("lr_schedule", RATE_FIELDS["lr_schedule"].default))
    if unread is not None:
        training.pop(unread[0], None)


def check_record(study, job: TuneJob, study_name: str) -> dict:
    """Refuse what `refuse_unfit` refuses; a study without a record (just created, points queued for it, or the
    older layout) then gets this job's. Returns the study's record, compared with this job's whichever way it came:
    another worker may have written its own since `refuse_unfit` looked, or write over this one's later (a
    journal keeps the last write: `Worker.check_record` looks again before each trial)."""
    refuse_unfit(study, job, study_name)
    new = job.record()
    old = study.user_attrs.get(RECORD)
    if old is None:
        study.set_user_attr(RECORD, new)
        old = study.user_attrs.get(RECORD)  # read back: of two workers creating the study at once, one record wins
    refuse_mismatch(old, new, job, study_name)
    return old


def refuse_unfit(study, job: TuneJob, study_name: str) -> None:
    """Refuse (ConfigError), without writing, a job that computes trials differently from the one the study was
    created with, so that its trials stay comparable and best.toml runs; a study without a record is refused only
    where it holds trials of another program (`refuse_foreign`); then another direction and a [tune.space] entry
    Optuna would refuse (`refuse_redrawn`)."""
    old = study.user_attrs.get(RECORD)
    if old is not None:  # the job first: a changed objective is named as such, not by the direction it implies
        refuse_mismatch(old, job.record(), job, study_name)
    else:
        refuse_foreign(study, job, study_name)
    direction, theirs = job.tune["direction"], study.direction.name.lower()
    if theirs != direction:
        if job.tune["direction_given"]:  # (`spaces.validate_section`: else its objective's)
            raise ConfigError(f"{job.path}: study {study_name!r} in the storage is to {theirs}, but [tune].direction "
                              f"is {toml_shown(direction)}; pass another --study or fix the direction")
        raise ConfigError(f"{job.path}: study {study_name!r} in the storage is to {theirs}, but [tune].objective = "
                          f"{toml_shown(job.tune['objective'])} is to {direction} (the job sets no [tune].direction); "
                          f"pass another --study, or set [tune].direction = {toml_shown(theirs)} to add trials to it")
    refuse_redrawn(study, job, study_name)


def refuse_mismatch(old: dict, new: dict, job: TuneJob, study_name: str) -> None:
    """Refuse (ConfigError) job record `new` where it differs from the study's `old` one (`record_mismatch`)."""
    what = record_mismatch(old, new)
    if what:
        given = " ".join(f"--set {o}" for o in old.get("overrides", [])) or "no --set"
        raise ConfigError(f"{job.path}: study {study_name!r} was created with {old.get('job')} and {given}; this job "
                          f"has {what}: run the same job and --set values, or pass another --study and --out")


def refuse_foreign(study, job: TuneJob, study_name: str) -> None:
    """Refuse (ConfigError) to adopt a study without hpcflow's record whose trials another program ran or queued:
    adopted are only queued trials (enqueue_trial) and trials with a run directory (the older layout), and only
    when their parameters are all settings this job searches."""
    from optuna.trial import TrialState

    space = {p.name for p in job.tune["space"]}
    trials = study.get_trials(deepcopy=False)
    names = {n for t in trials for n in [*t.params, *(t.system_attrs.get("fixed_params") or {})]}
    ours = all(t.state == TrialState.WAITING or "run_dir" in t.user_attrs for t in trials)
    if ours and names <= space:
        return
    extra = sorted(names - space)
    why = (f"parameters {', '.join(map(repr, extra))} that this job does not search" if extra else
           "trials that hpcflow tune did not run (no run directory)")
    raise ConfigError(f"{job.path}: study {study_name!r} in the storage records no hpcflow job and holds "
                      f"{len(trials)} trial{'s' * (len(trials) != 1)}, with {why}; pass another --study, or another "
                      "--out or --storage")


def refuse_redrawn(study, job: TuneJob, study_name: str) -> None:
    """Refuse (ConfigError) a [tune.space] entry that Optuna would refuse at every trial: a parameter keeps its
    kind (float range, int range or choices), its log setting and its choices for the whole study (Optuna's
    check_distribution_compatibility, which the storage applies to every drawn value); bounds and step may change."""
    from optuna.distributions import CategoricalDistribution, check_distribution_compatibility

    trials = study.get_trials(deepcopy=False)
    for p in job.tune["space"]:
        stored = next((t.distributions[p.name] for t in trials if p.name in t.distributions), None)
        drawn = distribution(p)
        try:
            stored is None or check_distribution_compatibility(stored, drawn)
        except ValueError:
            why = ("another kind (float range, int range or choices)" if type(stored) is not type(drawn) else
                   "other choices" if isinstance(stored, CategoricalDistribution) else
                   f"log = {str(drawn.log).lower()} where its trials had log = {str(stored.log).lower()}")
            raise ConfigError(f'{job.path}: [tune.space]."{p.name}" = {shown(drawn)} does not fit study '
                              f"{study_name!r}, whose trials drew it from {shown(stored)}: Optuna takes other bounds "
                              f"or steps for a parameter of a study, not {why}; restore it, or pass another --study "
                              "and --out") from None


def distribution(p: spaces.Param):
    """The Optuna distribution `suggest` draws parameter `p` from."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.kind == "categorical":
        return CategoricalDistribution(list(p.choices))
    if p.kind == "int":
        return IntDistribution(p.low, p.high, log=p.log, step=p.step or 1)
    return FloatDistribution(p.low, p.high, log=p.log, step=p.step)


def shown(d) -> str:
    """An Optuna distribution as the [tune.space] table that gives it."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from hpcflow.jobs.toml_out import value

    if isinstance(d, CategoricalDistribution):
        return value({"choices": list(d.choices)})
    step = None if isinstance(d, IntDistribution) and d.step == 1 else d.step
    return value({"low": d.low, "high": d.high, "log": d.log or None, "step": step})


def load(path, overrides=(), *, sampler: str | None = None) -> TuneJob:
    """Validate a job file and its [tune] table (and the sampler's dependencies) before any work."""
    from hpcflow.jobs import registry

    check_kind(path, overrides)
    _, cfg, extras = registry.load_with_extras(path, list(overrides))
    if "tune" not in extras:
        raise ConfigError(f"{path}: no [tune] table; add [tune.space] with the settings to search "
                          "(see jobs/tune_gaussian.toml)")
    tune = extras["tune"]
    if sampler is not None:
        tune["sampler"] = sampler
    searched = {p.name for p in tune["space"]}
    if without_test_points(tune["objective"], cfg) and spaces.N_TEST not in searched:  # (searched: `check_space`)
        raise ConfigError(f"{path}: [tune].objective = {toml_shown(tune['objective'])} needs test points but "
                          "[geometry].n_test = 0; set n_test or objective = \"log_gain_train\"")
    with registry.set_values_named(overrides):
        refuse_idle(path, tune["space"], cfg)
    check_sampler(tune["sampler"])
    refuse_searched_overrides(path, overrides, tune["space"], kind=cfg["job"]["kind"])
    check_space(path, overrides, tune["space"], cfg, objective=tune["objective"])
    return TuneJob(str(path), list(overrides), cfg, tune)


#: job kind -> (section, key, what one of it is) of the setting that counts a trial's work: the flow's steps, the
#: network's training epochs (both may be 0, as a run that only measures its start)
WORK = {"flow": ("flow", "steps", "flow step"), "nn": ("training", "epochs", "training epoch")}


def refuse_idle(path, space, cfg) -> None:
    """Refuse (ConfigError) a study none of whose trials would do any work (`WORK`: [flow].steps = 0, an nn job's
    [training].epochs = 0, and no value above 0 of it in [tune.space]): every trial's objective would be taken at the
    start (a gain of 0 in each), so its search would only spend trials and best.toml would name an arbitrary one.
    `cfg`: the validated job."""
    section, key, what = WORK[cfg["job"]["kind"]]
    name = f"{section}.{key}"
    searched = next((p for p in space if p.name == name), None)
    if searched is None and cfg[section][key] == 0:
        raise ConfigError(f"{path}: [{section}].{key} = 0: no trial would run a {what}, so the study would only spend "
                          f'trials on a value taken at the start; set [{section}].{key} >= 1, or search "{name}" in '
                          "[tune.space] over a range above 0")
    if searched is not None and searched.kind == "categorical" and not any(c > 0 for c in searched.choices):
        raise ConfigError(f'{path}: [tune.space]."{name}".choices = {list(searched.choices)!r}: no trial would run '
                          f"a {what}, so the study would only spend trials on a value taken at the start; add a "
                          "choice above 0")


def check_kind(path, overrides=()) -> None:
    """Refuse (ConfigError) a job of a kind that tune does not search (its [job].kind, after --set), before its
    [tune] table is looked at: that table's advice, or its refusal for the kind ("remove it"), would not help."""
    from hpcflow.jobs import registry

    source = str(path)
    kind = registry.job_kind(registry.apply_overrides(registry.read_toml(path), list(overrides), source=source),
                             source=source)
    kinds = registry.EXTRA_SECTIONS["tune"][1]
    if kind not in kinds:
        raise ConfigError(f"{path}: [job].kind = {toml_shown(kind)}: hpcflow tune searches jobs of kinds "
                          f"{', '.join(kinds)} only; tune a flow or nn job (see jobs/tune_gaussian.toml), or run "
                          "this one with hpcflow run")


def refuse_searched_overrides(path, overrides, space, *, kind: str = "flow") -> None:
    """Refuse (ConfigError) a --set of a setting [tune.space] searches, or of a point seed (`spaces.POINT_SEEDS`, which
    [tune.space] refuses too): every trial sets its own value over it, so the --set would be ignored while the
    study's record and every trial's overrides list it. `kind`: the job's (an nn job has no test_seed)."""
    from hpcflow.jobs.schema import parse_override

    searched = {p.name for p in space}
    replaced = "its seed replaces [geometry].seed" if kind == "nn" else \
        "its seeds replace [geometry] seed and test_seed"
    for text in overrides:
        section, key, _ = parse_override(text)
        if f"{section}.{key}" in spaces.POINT_SEEDS:
            raise ConfigError(f"{path}: --set {text} sets {section}.{key}, but every trial draws its own points from "
                              f"[tune].seed and its number ({replaced}), so the --set would be ignored; drop it (a "
                              "new study with another [tune].seed draws other points)")
        if f"{section}.{key}" in searched:
            name, value = f"{section}.{key}", text.partition("=")[2].strip()
            raise ConfigError(f'{path}: --set {text} sets {name}, which [tune.space] searches (every trial sets its '
                              f'own value, so the --set would be ignored); remove "{name}" from [tune.space] to hold '
                              f"it at {value}, or drop the --set to search it")


def refusal(path, exc: UserError, setting) -> str:
    """The one line of job `path`'s refusal `exc` with the --set values `setting` of [tune.space] values, as said of
    those values: without the job file's path at its start (the file does not hold them) and the "(from --set
    TEXT)" of each of them (no --set gave them)."""
    from hpcflow.arguments import escaped

    msg = " ".join(str(exc).split())
    for text in setting:
        msg = msg.replace(f" (from --set {escaped(text)})", "")
    return msg[len(f"{path}: "):] if msg.startswith(f"{path}: ") else msg


def without_test_points(objective: str, cfg: dict) -> bool:
    """Whether objective `objective` needs test points that validated job `cfg` has none of ([geometry].n_test = 0)."""
    return spaces.OBJECTIVES[objective][1] and cfg["geometry"].get("n_test") == 0


def check_space(path, overrides, space, cfg, *, objective: str | None = None) -> None:
    """Validate the whole job with each choice, and with the low and high of each range, of the search space (with
    each learning-rate schedule it draws: `space_settings`): values that pass their field's own check but not the
    job's cross-field checks are refused before any work (ConfigError naming `[tune.space]."NAME".choices[i]`), not
    found by every trial that draws them, and so are the [geometry].n_test values that give no test points where
    `objective` needs them; first a rate setting that no schedule of the study reads (`refuse_unread`) and a setting
    whose section no trial switches on (`refuse_switched_off`). `cfg`: the validated job."""
    from hpcflow.jobs import registry

    refuse_unread(path, space, cfg)
    refuse_switched_off(path, space, cfg)
    for alternatives in space_settings(space, cfg):
        refused = []
        for what, setting in alternatives:  # (a generator: the next is built only where one fails)
            try:
                drawn = registry.load(path, [*overrides, *setting])[1]
            except UserError as exc:
                refused.append(f"{path}: {what} gives a job that fails its checks: {refusal(path, exc, setting)}")
                continue
            sets_n_test = any(text.partition("=")[0] == spaces.N_TEST for text in setting)  # (else the job's: `load`)
            if objective is not None and sets_n_test and without_test_points(objective, drawn):
                refused.append(f"{path}: {what} gives a job without test points ([geometry].n_test = 0), but "
                               f"[tune].objective = {toml_shown(objective)} needs them; search only n_test >= 2, or "
                               "set objective = \"log_gain_train\"")
                continue
            break
        else:
            others = f" (and with the {len(refused) - 1} other combinations of the space's ends tried)" \
                if len(refused) > 1 else ""
            raise ConfigError(refused[0] + others)


def refuse_unread(path, space, cfg) -> None:
    """Refuse (ConfigError) a rate setting that [tune.space] searches while no learning-rate schedule of the study's
    trials reads it (`spaces.READ_BY`: lr_decay where every trial's schedule is cosine, lr_min where every one is
    exponential): no trial would draw it. `cfg`: the validated job."""
    if spaces.unread(cfg, {}) is None:  # a job without a schedule
        return
    names = {p.name: p for p in space}
    searched = names.get(spaces.SCHEDULE)
    drawn = tuple(searched.choices) if searched is not None else (cfg["training"]["lr_schedule"],)
    for name, reader in spaces.READ_BY.items():
        if name not in names or reader in drawn:
            continue
        read = f'[tune.space]."{name}" is read only by lr_schedule = {reader!r}'
        if searched is None:
            raise ConfigError(f"{path}: {read}, but [training].lr_schedule = {drawn[0]!r}, so no trial would use it; "
                              f'set lr_schedule = {reader!r}, search "{spaces.SCHEDULE}" too, or remove "{name}" '
                              "from [tune.space]")
        raise ConfigError(f'{path}: {read}, which [tune.space]."{spaces.SCHEDULE}".choices = {list(drawn)!r} does not '
                          f'hold, so no trial would use it; add {reader!r} to its choices or remove "{name}" from '
                          "[tune.space]")


def refuse_switched_off(path, space, cfg) -> None:
    """Refuse (ConfigError) a setting that [tune.space] searches while no trial of the study would read it: its
    switch (`spaces.SWITCHED`: clustering.method for [clustering], kernel_flow.enabled, width_sweep.widths) takes no
    value that reads it, neither the job's nor one [tune.space] draws (n_clusters searched without a clustering
    method gave every trial the same flow). `cfg`: the validated job."""
    names = {p.name: p for p in space}
    for p in space:
        switch = spaces.switch_of(p.name)
        if switch is None:
            continue
        name, reads, said = switch
        section, _, key = name.partition(".")
        drawn = names.get(name)
        values = tuple(drawn.choices) if drawn is not None and drawn.kind == "categorical" else (cfg[section][key],)
        if drawn is not None and drawn.kind != "categorical" or any(reads(v) for v in values):
            continue
        read = f'[tune.space]."{p.name}" is read only where {said}'
        if drawn is not None:
            raise ConfigError(f'{path}: {read}, which [tune.space]."{name}".choices = {list(values)!r} does not hold, '
                              f'so no trial would use it; add one to its choices or remove "{p.name}" from '
                              "[tune.space]")
        from hpcflow.jobs.toml_out import value

        given = "is unset" if values[0] is None else f"= {value(values[0])}"
        search = "" if isinstance(values[0], list) else f', search "{name}" too'
        raise ConfigError(f"{path}: {read}, but [{section}].{key} {given}, so no trial would use it; set "
                          f'[{section}].{key}{search}, or remove "{p.name}" from [tune.space]')


def space_settings(space, cfg):
    """For each choice, and the low and high of each range, of the search space of validated job `cfg` (the values whose
    jobs are checked before any trial), its alternatives, one of which must give a valid job: (`[tune.space].
    "NAME".choices[i] = VALUE` or its `.low` / `.high`, the trial's --set overrides). Each value is taken with each
    value the space draws of the settings that decide how a trial reads it (said: `(with "training.lr_schedule" =
    'cosine', "clustering.method" = 'batched')`), every combination of them: an nn job's lr_schedule, and the switch of
    its section (`spaces.SWITCHED`: clustering.method, kernel_flow.enabled), where the space searches them, but for a
    switch value that does not read it (its section off: not cross-checked) and a rate setting with a schedule that does
    not read it (no trial draws it then); the overrides are those of such a trial (`TuneJob.settings`: the rate setting
    its schedule does not read at its default). The other searched settings keep the job's values where the space draws
    them: with each value of every other one the checks would grow as the product of all the space's values, where so
    they are at most (values) x (schedules) x (switch choices); a combination of two searched values that the job
    refuses fails the trial that draws it, which names them as its parameters (`TuneJob.trial_cfg`). A searched setting
    whose job value no trial draws (n_clusters = 100 searched in 2..10) takes instead the low ends of the space, or else
    its high ends (`drawn_ends`): no trial would be checked with the job's value."""
    named = {p.name: p for p in space}
    for p in space:
        values = list(enumerate(p.choices)) if p.kind == "categorical" else [("low", p.low), ("high", p.high)]
        switch = spaces.switch_of(p.name)
        reads = {spaces.SCHEDULE: lambda v: True, **({switch[0]: switch[1]} if switch else {})}
        context = [named[n] for n in reads if n in named and named[n] is not p and named[n].kind == "categorical"]
        for where, value in values:
            label = f"choices[{where}]" if p.kind == "categorical" else where
            for drawn in itertools.product(*(c.choices for c in context)):
                params = {c.name: v for c, v in zip(context, drawn)}
                if not all(reads[n](v) for n, v in params.items()):
                    continue
                params[p.name] = value
                if spaces.unread(cfg, params) == p.name:
                    continue
                yield _alternatives(p, label, value, params, space, cfg)


def _alternatives(p, label: str, value, params: dict, space, cfg):
    """(what, --set overrides) of each combination `drawn_ends` gives to check `params` with, as needed."""
    for ends in drawn_ends(space, cfg, params):
        settings, inactive = spaces.trial_settings(cfg, {**ends, **params})
        said = ", ".join(f'"{name}" = {v!r}' for name, v in {**params, **ends}.items()
                         if name != p.name and name not in inactive)  # (not a rate setting its schedule leaves)
        yield (f'[tune.space]."{p.name}".{label} = {value!r}{f" (with {said})" if said else ""}',
               spaces.overrides(settings))


#: the most combinations of the other searched settings' values `drawn_ends` gives one checked value
MAX_ENDS = 64


def drawn_ends(space, cfg, params: dict):
    """The values the searched settings not in `params` take in the checks of `params` (`space_settings`), in the
    order tried, each where the ones before gave no valid job: first the job's value of each that the space draws
    and the low ends (a range's low, the first choice) of those it does not, then their high ends, then other
    combinations of the job's values and each setting's ends (choices), at most MAX_ENDS in all: a value is refused
    where none gives a valid job (a switch drawn off, a lower rate with a higher exponent)."""
    free = [q for q in space if q.name not in params]
    job = {q.name: setting_value(cfg, q.name) for q in free}
    drawable = {q.name for q in free if draws(q, job[q.name])}

    def ends(q) -> list:
        return list(q.choices) if q.kind == "categorical" else [q.low, q.high]

    low = {q.name: ends(q)[0] for q in free if q.name not in drawable}
    high = {q.name: ends(q)[-1] for q in free if q.name not in drawable}
    given = []
    for combo in itertools.chain([low, high], (
            {q.name: v for q, v in zip(free, values) if not (q.name in drawable and _same(v, job[q.name]))}
            for values in itertools.product(*([job[q.name]] * (q.name in drawable) + ends(q) for q in free)))):
        if any(_same_values(combo, seen) for seen in given):
            continue
        given.append(combo)
        yield combo
        if len(given) == MAX_ENDS:
            return


def _same(a, b) -> bool:
    """Equal values of one type (True is not 1)."""
    return type(a) is type(b) and a == b


def _same_values(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)


def setting_value(cfg: dict, name: str):
    """Validated job `cfg`'s value of setting 'SECTION.KEY' (None where unset)."""
    section, _, key = name.partition(".")
    return (cfg.get(section) or {}).get(key)


def draws(p: spaces.Param, v) -> bool:
    """Whether a trial can draw `v` for searched setting `p`: one of its choices (of the same type: True is not 1),
    or a number of its kind in its range."""
    if p.kind == "categorical":
        return any(_same(c, v) for c in p.choices)
    if isinstance(v, bool) or not isinstance(v, int if p.kind == "int" else (int, float)):
        return False
    return p.low <= v <= p.high


def check_sampler(name: str) -> None:
    if name == "gp":
        try:
            importlib.import_module("torch")
        except ImportError:
            raise MissingDependencyError("--sampler gp (Optuna's GPSampler) needs torch: pip install torch (or pip "
                                         "install -e '.[nn]' in the hpcflow checkout), or use --sampler tpe") from None


def make_sampler(name: str, seed: int):
    """The sampler of [tune].sampler; gp: Optuna's GPSampler shown the pruned and diverged trials (`tune.gp`).
    Its stepped float values are the decimal grid points as written (0.07, not 0.06999999999999999: `tune.grid`)."""
    import optuna

    from hpcflow.tune.grid import OnGrid

    if name == "gp":
        from hpcflow.tune.gp import GPSampler

        return OnGrid(GPSampler(seed=seed))
    return OnGrid({"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}[name](seed=seed))


def make_pruner(tune: dict):
    import optuna

    if tune["pruner"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=tune["pruner_startup_trials"],
                                       n_warmup_steps=tune["pruner_warmup_steps"])


class QueuedValueRefused(ConfigError):
    """A value queued for a trial (Optuna's enqueue_trial) that its parameter's distribution cannot hold: the trial
    fails, without a retry (its queued value would recur), and the study goes on."""


def suggest(trial, p: spaces.Param):
    """The value of one parameter for `trial` (Optuna's suggest API by kind); a queued value (enqueue_trial) that
    Optuna refuses for the parameter's distribution (a log range's value <= 0, a choice not among the choices,
    a number that is none) is QueuedValueRefused, one line naming the parameter and the value."""
    try:
        if p.kind == "categorical":
            return trial.suggest_categorical(p.name, list(p.choices))
        if p.kind == "int":
            return trial.suggest_int(p.name, p.low, p.high, step=p.step or 1, log=p.log)
        return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    except (ValueError, TypeError) as exc:
        queued = queued_params(trial)
        if p.name not in queued:
            raise
        why = " ".join(str(exc).split())[:200]
        raise QueuedValueRefused(f'parameter "{p.name}" was queued (enqueue_trial) with {queued[p.name]!r}, which '
                                 f"[tune.space].\"{p.name}\" = {shown(distribution(p))} cannot take (Optuna: {why}); "
                                 "queue one it can take") from None


def queued_params(trial) -> dict:
    """The parameters queued for `trial` (enqueue_trial: its system attribute fixed_params), read from the study's
    record of the trial (Optuna's Trial holds no system_attrs since Optuna 5); {} where none were queued."""
    try:
        frozen = next((t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number), None)
    except Exception:  # noqa: BLE001 - the storage unread: the value is not named, Optuna's own error is raised
        return {}
    queued = None if frozen is None else frozen.system_attrs.get("fixed_params")
    return queued if isinstance(queued, dict) else {}


def execute(job: TuneJob, spec: dict, trial=None, *, comm=None, pending=None, note=None) -> dict:
    """Run one broadcast trial on every rank; rank 0 (with `trial`) reports each step and decides pruning.
    pending: this rank's `signals_between_trials` requests, handed to the flow's checkpoint writer (`hand_over`)
    at the first step, so a request received while the trial was set up stops it there on every rank.
    A trial that continues a preempted one (spec "resume": its checkpoint copied into the run directory) first
    reports the objective at every step (epoch) the checkpoint holds, so that pruning sees the whole curve; note:
    rank 0's one-line notes (a checkpoint it cannot continue). Spec "rewrite" (a finished nn trial's nn.h5 written
    again in its own directory, `tune.nn_h5`): a checkpoint that cannot be continued is refused, not replaced."""
    from hpcflow.parallel.comm import resolve

    comm = resolve(comm)
    cfg = job.trial_cfg(spec["params"])
    name = job.tune["objective"]
    pruned = []
    nn = cfg["job"]["kind"] == "nn"
    last = cfg["training"]["epochs"] if nn else cfg["flow"]["steps"]  # (an nn training has no early stop)

    def decide(v, step, ends=False):
        stop = None
        if trial is not None:
            if math.isfinite(v):
                trial.report(v, step)
            # never at the step that ends the run (its last, or a flow's early stop): the run is complete, and its
            # value may be the best (a pruned trial cannot)
            stop = step < last and not ends and bool(trial.should_prune())
        stop = comm.bcast(stop, root=0)
        if stop:
            pruned.append(step)
        return stop

    if nn:  # reported after every epoch; none from an epoch whose validation metric is not positive definite
        def on_step(epoch, sigma_train, sigma_val, not_pd):
            hand_over(pending)
            return decide(objectives.value(name, sigma_train, objectives.positive_definite_only(sigma_val, not_pd)),
                          epoch)
    else:
        tracker = objectives.Tracker(name)

        def on_step(info, sigma0):
            hand_over(pending)
            return decide(tracker.step(info, sigma0), info["step"], bool(info.get("ends")))

    def on_resume(sigma_train, sigma_test, not_pd=None):  # the steps the preempted trial did: reported, not decided
        if not nn:  # on again (not_pd: an nn trial's validation counts, `trial.history`)
            tracker.train, tracker.test = list(sigma_train), list(sigma_test)
        else:
            sigma_test = objectives.positive_definite_only(sigma_test, not_pd)
        for step in range(1, len(sigma_train)):
            v = objectives.value(name, sigma_train[:step + 1], sigma_test[:step + 1])
            if trial is not None and math.isfinite(v):
                trial.report(v, step)

    summary = run_trial(cfg, spec["run_dir"], seeds=tuple(spec["seeds"]), on_step=on_step, comm=comm,
                        overrides=job.trial_overrides(spec["params"]), resume=bool(spec.get("resume")),
                        on_resume=on_resume, note=note, afresh=not spec.get("rewrite"))
    summary["pruned_at"] = pruned[0] if pruned and summary.get("status") == "stopped" else None
    return summary


def hand_over(pending) -> None:
    """Pass a stop request that `signals_between_trials` received (while the trial was set up, before the flow's
    checkpoint writer, or the training's, took the signals) on to the handler holding them now: its collective stop
    decision at this step ends the trial on every rank, as for a request received during the flow itself."""
    current = signal.getsignal(signal.SIGTERM)
    if pending is not None and pending.is_set() and callable(current) and current is not pending.handler:
        pending.clear()
        current(signal.SIGTERM, None)


def record_failure(trial, why: str) -> None:
    """User attribute `failure` of a trial stopped from outside its computation (`budget.finished`: it did not
    finish), unless its storage refuses the write too (a full disk: the trial then stays RUNNING)."""
    try:
        trial.set_user_attr("failure", why)
    except Exception:  # noqa: BLE001 - failed by another worker meanwhile, or the storage's write failed
        pass


def record_error(trial, exc: Exception) -> None:
    """User attribute `error` of a trial whose computation raised (`budget.finished`: it ran to an end), unless
    another worker has failed it meanwhile."""
    try:
        trial.set_user_attr("error", f"{type(exc).__name__}: {masked(' '.join(str(exc).split()))[:ERROR_CHARS]}")
    except Exception:  # noqa: BLE001 - already failed by another worker (its failure attribute says why)
        pass


class Worker:
    """Rank 0's side of a study: asks Optuna for trials, broadcasts them, tells the results."""

    def __init__(self, job: TuneJob, study, out: str, *, comm, log=print, max_trials: int | None = None):
        self.job, self.study, self.out, self.comm, self.log = job, study, out, comm, log
        self.max_trials = max_trials
        self.current = None
        self.bugs = 0  # trials that failed with an internal error (not bad input): exit status 1
        self.numbers: list[int] = []  # the trials this worker ran (not those drawn over --max-trials)
        self.capped_out = False  # stopped because the study holds --max-trials trials
        self.journal = is_journal(study._storage)
        self.pending = None  # stop requests received outside a trial's flow (`signals_between_trials`)
        self.record = job.record()  # what the study's record must match before each trial (`check_record`)

    def check_record(self) -> None:
        """Refuse (ConfigError: the worker stops before it draws a trial) a study whose record (`RECORD`) is no
        longer this worker's job's: two workers creating a study together each write their record, and each may
        read back its own before the other's write, which a journal keeps (the last write wins); the trials of
        this worker's job would then be recorded in a study of another job."""
        old = self.study.user_attrs.get(RECORD)
        if old is not None:
            refuse_mismatch(old, self.record, self.job, self.study.study_name)

    def objective(self, trial) -> float:
        """The objective value of `trial` (`_objective`); one that a second Ctrl-C interrupts (KeyboardInterrupt: the
        first one's stop was being honoured) is given user attribute `failure` = "interrupted" before Optuna fails it,
        so that `_one` queues it again (`interrupted`)."""
        try:
            return self._objective(trial)
        except KeyboardInterrupt as exc:
            record_failure(trial, str(exc) if isinstance(exc, Stopped) else INTERRUPTED)
            raise

    def _objective(self, trial) -> float:
        self.current = trial.number
        mark_worker(trial)
        if self.max_trials is not None:
            self.check_cap(trial)
        params = {}
        try:
            for p in spaces.draw_order(self.job.tune["space"]):
                if p.name != spaces.unread(self.job.cfg, params):  # a rate setting its schedule reads, or another
                    params[p.name] = suggest(trial, p)
        except QueuedValueRefused as exc:
            record_error(trial, exc)  # it ran to its end (`budget.finished`): a requeued job does not add it again
            raise
        inactive = self.job.inactive(params)
        if inactive:
            trial.set_user_attr("inactive", inactive)
        continues = continued(trial)
        if continues is None:
            self.say_retry(trial)
        seeds = trial_seeds(self.job.tune["seed"], trial.number) if continues is None else continues[1]
        rel = os.path.join("trials", f"{trial.number:04d}")
        run_dir = os.path.join(self.out, rel)
        try:
            check_trials_writable(run_dir)
        except WriteDenied as exc:
            record_failure(trial, f"write refused: {exc.filename} ({exc.strerror})")
            raise
        with trial_lock(run_dir, trial.number):
            try:
                check_trial_dir(run_dir)
            except TrialDirTaken as exc:
                trial.set_user_attr("failure", str(exc))
                raise
            resume = continues is not None and self.carry_over(trial.number, continues[0], run_dir,
                                                               trial.user_attrs.get(CONTINUED_FAILURE))
            return self._run(trial, params, seeds, rel, run_dir, resume=resume)

    def say_retry(self, trial) -> None:
        """One line where trial `trial` retries a failed trial (`budget.predecessor`) afresh: its number, why it
        failed (user attribute `error` or `failure`) and, where [tune] retries counted it, which retry it is; the
        parameters are the failed trial's, the points the retry's own (a continuation says `carry_over`'s line)."""
        frozen = self.study._storage.get_trial(trial._trial_id)
        number = budget.predecessor(frozen)
        if number is None:
            return
        old = next((t for t in self.study.get_trials(deepcopy=False) if t.number == number), None)
        why = None if old is None else old.user_attrs.get("error") or old.user_attrs.get("failure")
        attempt = retries_used(frozen)
        count = f"; retry {attempt} of {self.job.tune['retries']}" if 0 < attempt <= self.job.tune["retries"] else ""
        self.log(f"hpcflow tune: trial {trial.number} retries trial {number} ({why or 'failed'}{count}) with its "
                 "parameters on new points")

    def carry_over(self, number: int, preempted: int, run_dir: str, failure: str | None = None) -> bool:
        """Copy the checkpoint of preempted trial `preempted` into trial `number`'s run directory `run_dir`, which
        then continues it (`execute`); the preempted trial's directory is kept as it was (its summary.json, status
        "preempted", records it). False, with one line saying so, when the checkpoint is not found: the trial then
        starts afresh with the same parameters and seeds. (An nn trial stopped after its training otherwise, its worker
        gone or a write refused, is continued alike; the line names its failure: the trial's `failure`, else the one
        given, which its continuation carries.)"""
        import shutil

        from hpcflow.tune.trial import checkpoint_name

        name = checkpoint_name(self.job.cfg["job"]["kind"])
        old = next((t for t in self.study.get_trials(deepcopy=False) if t.number == preempted), None)
        where = None if old is None else run_dir_of(old, self.out)
        source = None if where is None else os.path.join(where, name)
        failure = (failure or "preempted") if old is None else old.user_attrs.get("failure", failure or "preempted")
        what = f"preempted trial {preempted}" if failure == "preempted" else f"trial {preempted} ({failure})"
        if source is None or not os.path.isfile(source):
            self.log(f"hpcflow tune: trial {number}: no checkpoint of {what} found ({source or 'no run directory'}); "
                     "it starts afresh with the same parameters and seeds")
            return False
        os.makedirs(run_dir, exist_ok=True)
        shutil.copyfile(source, os.path.join(run_dir, name))
        self.log(f"hpcflow tune: trial {number} continues {what} from {source}")
        return True

    def _run(self, trial, params: dict, seeds, rel: str, run_dir: str, *, resume: bool = False) -> float:
        """Run drawn trial `trial` in `run_dir` (locked by this worker) on every rank; its objective value."""
        import optuna

        trial.set_user_attr("run_dir", rel)  # relative to the study directory, which may be moved or copied
        trial.set_user_attr("study_dir", os.path.abspath(self.out))  # where it was written (a storage URL's readers)
        trial.set_user_attr("seeds", list(seeds))
        spec = {"number": trial.number, "params": params, "seeds": seeds, "run_dir": run_dir, "resume": resume}
        beat = heartbeat(self.study._storage, trial._trial_id, self.job.tune["heartbeat_seconds"]) if self.journal \
            else nullcontext()  # an RDB storage keeps Optuna's own heartbeat
        note = lambda s: self.log(f"hpcflow tune: trial {trial.number}: {s}")  # noqa: E731
        try:
            with beat:
                summary = execute(self.job, self.comm.bcast(spec, root=0), trial, comm=self.comm,
                                  pending=self.pending, note=note)
        except Preempted:
            trial.set_user_attr("failure", "preempted")  # before Optuna records the trial as failed
            raise
        except Exception as exc:
            refused = refused_write(exc)  # not the parameters' fault: the trial did not finish (`budget.finished`)
            if refused is not None:
                record_failure(trial, f"write refused: {refused.filename} ({refused.strerror})")
            else:
                record_error(trial, exc)
            raise
        for key in ("status", "gain_train", "gain_test", "sigma_test_final", "sigma_val_final",
                    "val_not_positive_definite_final", "wall_seconds"):
            if summary.get(key) is not None:
                trial.set_user_attr(key, summary[key])
        if summary["pruned_at"] is not None:
            raise optuna.TrialPruned(f"pruned at step {summary['pruned_at']}")
        if summary.get("status") == "diverged":
            # Neither COMPLETE (its value, taken at another step than the others', could become the best and
            # best.toml would stop with exit 3) nor FAIL: TPE ignores failed trials and would keep proposing the
            # same region, while it ranks pruned ones below every complete trial (by their last reported step and
            # value), so it learns to avoid them; the median pruner uses complete trials only, and --sampler gp is
            # shown pruned and diverged trials apart (hpcflow.tune.gp).
            raise optuna.TrialPruned(f"diverged after step {summary.get('checkpoint_step')}")
        if objectives.infeasible(summary):
            # an nn network whose metric is not positive definite at validation points after its last epoch: its
            # σ_val uses the signed det g and can look better than any healthy network's; handled as a diverged one
            raise optuna.TrialPruned(f"metric not positive definite at {summary['val_not_positive_definite_final']}"
                                     f" validation points after epoch {summary.get('checkpoint_step')}")
        value = objectives.from_summary(self.job.tune["objective"], summary)
        if math.isnan(value):  # failed, saying why (Optuna would fail it without a word)
            exc = objectives.NoValue(objectives.no_value(self.job.tune["objective"], summary))
            record_error(trial, exc)
            raise exc
        return value

    def check_cap(self, trial) -> None:
        """Raise OverCap for a trial drawn beyond --max-trials (`budget.within_cap`), failed before any work; a
        queued trial it took (a retry, an enqueued point) is queued again, so its parameters are not lost."""
        trials = self.study.get_trials(deepcopy=False)
        if budget.within_cap(trials, trial.number, self.max_trials):
            return
        frozen = next(t for t in trials if t.number == trial.number)
        queued = frozen.system_attrs.get("fixed_params") or frozen.params
        trial.set_user_attr("failure", f"{budget.OVER_CAP} {self.max_trials} (another worker took the last place)")
        if queued:
            carried = {k: frozen.user_attrs[k] for k in ("continues", "seeds", AFTER_TRAINING)
                       if continued(frozen) is not None and k in frozen.user_attrs}
            self.study.enqueue_trial(dict(queued), user_attrs={"attempt": frozen.user_attrs.get("attempt", 0),
                                                               "retry_of": budget.predecessor(frozen), **carried})
        raise OverCap(trial.number)

    def todo(self, n_trials: int) -> int:
        """The trials this command adds: `n_trials`, less those that earlier runs of its Slurm job finished (a
        requeued job runs the same command again)."""
        job, restart = slurm_worker()
        done = budget.finished_before(self.study.get_trials(deepcopy=False), job, restart)
        if job is not None and restart > 0:  # a requeued job: said also where its earlier runs finished none
            left = max(0, n_trials - done)
            kind = "local job" if os.environ.get("SUBMITIT_EXECUTOR") == "local" else "Slurm job"  # (`local_leg`)
            self.log(f"hpcflow tune: {kind} {job} (restart {restart}) finished {min(done, n_trials)} of its "
                     f"--trials {n_trials} before it was requeued; " + (f"adding {left}" if left else "nothing to add"))
        return max(0, n_trials - done)

    def recover(self) -> None:
        """Fail the trials left RUNNING by gone workers, queueing their parameters again as `retries` allow
        (`recover`; a database's too: Optuna fails stale ones only where a trial is drawn), before each trial of this
        worker, --max-trials or not: a sibling worker killed mid-study has its trial failed and retried while the
        study goes on, not only by the next command. One read of the storage per trial."""
        recover(self.study, self.job, self.out, log=self.log)

    def capped(self) -> bool:
        """Whether the study holds --max-trials counted trials (`budget.room`; the trials of gone workers failed
        first by `recover`, so that they do not hold places)."""
        if self.max_trials is None:
            return False
        trials = self.study.get_trials(deepcopy=False)
        if budget.room(trials, self.max_trials):
            return False
        n = len(budget.counted(trials))
        self.log(f"hpcflow tune: study holds {n} trial{'s' * (n != 1)} (complete, pruned, running, queued, or failed "
                 f"without a retry), --max-trials is {self.max_trials}; this worker stops")
        return True

    def run(self, n_trials: int) -> int:
        """Run this command's trials (`todo`) until the cap; return how many ran."""
        todo, ran = self.todo(n_trials), 0
        self.started = False  # whether this command has drawn a trial or mended one's nn.h5 (`stop_if_requested`)
        forget_stops()  # (an earlier command's in this process)
        with signals_between_trials() as signalled:
            self.pending = signalled
            try:
                self.rewrite_nn_h5()
                while ran < todo:
                    self.stop_if_requested()  # during a trial's flow its checkpoint writer takes it (`hand_over`)
                    self.recover()
                    if self.capped():
                        self.capped_out = True
                        break
                    self.check_record()
                    self.started = True
                    done = self._one()
                    ran += done
                    if done and self.current is not None:
                        self.numbers.append(self.current)
            except LockAbandoned as exc:  # asked to stop while a stopped process of this host holds the journal's
                # lock: nothing more is written (the trial stays RUNNING), one line and the stop's status
                raise exc.stopped(self.current) from None
        return ran

    def stop_if_requested(self) -> None:
        """Raise Preempted (the worker stops before its next trial, exit status 4) when any rank holds a stop request
        between trials (`stop_between_trials`: collective, the followers answer it in `_follow`); one received
        before this command drew its first trial is said as such."""
        if not stop_between_trials(self.pending, self.comm):
            return
        if not getattr(self, "started", True):
            raise Preempted("signal received before this worker's first trial, so it ran none: run the same hpcflow "
                            "tune command to run its trials")
        raise Preempted("signal received between trials; the trials so far are recorded: run the same hpcflow "
                        "tune command to continue the study")

    def rewrite_nn_h5(self) -> None:
        """Write again, from its checkpoint.pt, the missing or damaged nn.h5 of each finished trial of an nn study
        whose checkpoint holds its whole training (`tune.nn_h5`), on every rank, holding the trial's run lock (a
        trial another worker mends meanwhile is left to it, one it mended since is looked at again under the lock);
        its state and value stay as recorded. A trial whose checkpoint is refused is said in one line and left as it
        is; a write the file system refuses ends the worker (WriteFailed, exit status 5), the next one writes it."""
        from hpcflow.analysis.rundir import rerun_fix
        from hpcflow.jobs.outlock import OutdirBusy
        from hpcflow.tune import nn_h5
        from hpcflow.tune.trial import without_restart

        if self.job.cfg["job"]["kind"] != "nn":
            return
        for trial, run_dir in nn_h5.candidates(self.study, self.out):
            self.stop_if_requested()
            note = lambda s, n=trial.number: self.log(f"hpcflow tune: trial {n}: {s}")  # noqa: E731
            try:
                with trial_lock(run_dir, trial.number):
                    if not nn_h5.faulty(run_dir) or not nn_h5.rewritable(self.job, trial, run_dir):
                        continue  # (mended by another worker since the list was made)
                    self.started = True  # (a stop from here on comes between trials' work)
                    execute(self.job, self.comm.bcast(nn_h5.spec(trial, run_dir), root=0), None, comm=self.comm,
                            pending=self.pending, note=note)
            except OutdirBusy:
                continue  # another worker writes it
            except Preempted:
                raise Preempted(f"signal received while trial {trial.number}'s nn.h5 was written again from its "
                                "checkpoint.pt; run the same hpcflow tune command to continue the study (it writes it "
                                "again)") from None
            except UserError as exc:  # its checkpoint.pt refused: what the report advises for such a trial
                note(f"its nn.h5 is not written again: {without_restart(' '.join(str(exc).split()))[:300]}; "
                     f"{rerun_fix(run_dir)}")
                continue
            except Exception as exc:  # a write the file system refused ends the worker, as in a trial (exit 5)
                refused = refused_write(exc)
                if refused is None:
                    raise
                failed = as_write_failed(refused)
                failed.advice = (f"trial {trial.number}'s nn.h5 is not written again (its state and value stay as "
                                 f"recorded); {failed.fix}, then run the same hpcflow tune command (it writes it "
                                 "again)")
                raise failed from None
            note(f"wrote its nn.h5 again from checkpoint.pt ({run_dir}); its {trial.state.name.lower()} value stays "
                 "as recorded")

    def _write_failed(self, refused: OSError) -> WriteFailed:
        """The WriteFailed (exit status 5) that stops the worker after a write the file system refused in the current
        trial (a trial file's, or the storage's own): its parameters queued again, as a preempted trial's, so that
        the rerun runs them; its `advice` says what was recorded and how to go on. Where the storage refuses its
        writes too, the trial stays RUNNING until a later worker finds its worker gone (`recover`)."""
        exc = as_write_failed(refused)
        number, again = self.current, "run the same hpcflow tune command to continue the study"
        if number is None:  # the storage refused the write that draws a trial
            exc.advice = f"no trial was drawn; {exc.fix}, then {again}"
            return exc
        try:
            trial = next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)
            if trial.state.is_finished():  # an nn trial that ended its training is continued from its checkpoint
                whole = after_training(self.job, trial, self.out)
                queued = requeue(self.study, trial, self.job.tune["retries"], preempted=True, continues=whole)
                kept = "its parameters queued again" if queued else "nothing to queue again"
                exc.advice = f"trial {number} is failed, {kept}; {exc.fix}, then {again}"
                return exc
        except Exception:  # noqa: BLE001 - the storage's own write failed (the same full disk)
            pass
        exc.advice = (f"trial {number} could not be recorded as failed; {exc.fix}, then {again} (it fails the trial, "
                      "whose worker is gone)")
        return exc

    def interrupted(self) -> None:
        """Queue again the current trial, which a second Ctrl-C interrupted (its `failure`, set by `objective`), as a
        preempted one is: whatever `retries` says, to be continued from the last whole checkpoint in its run
        directory (the file the first Ctrl-C's stop was writing is whole or not there: atomic writes), else afresh
        with its seeds; said in one line, before the command ends with 'interrupted' (status 130)."""
        trial = None if self.current is None else next(
            (t for t in self.study.get_trials(deepcopy=False) if t.number == self.current), None)
        if trial is None or trial.user_attrs.get("failure") is None:
            return
        queued = requeue(self.study, trial, self.job.tune["retries"], preempted=True, continues=True)
        rd = run_dir_of(trial, self.out)
        where = "" if rd is None else f" (run directory {rd})"
        again = "its parameters are queued again, to continue from its last checkpoint; " if queued else ""
        self.log(f"hpcflow tune: trial {trial.number} {trial.user_attrs['failure']}{where}; {again}run the same "
                 "hpcflow tune command to continue the study")

    def _one(self) -> int:
        """Run one trial; record its failure (the study goes on) or raise what stops the worker. Returns 0 for a
        trial drawn over --max-trials (not run), else 1."""
        self.current = None
        try:
            self.study.optimize(self.objective, n_trials=1, catch=())
        except OverCap:
            return 0
        except Preempted:
            trial = next((t for t in self.study.get_trials(deepcopy=False) if t.number == self.current), None)
            queued = trial is not None and requeue(self.study, trial, self.job.tune["retries"], preempted=True,
                                                   continues=True)
            where = "" if trial is None else f" (checkpoint in {run_dir_of(trial, self.out)})"
            again = "its parameters are queued again, to continue from it; " if queued else ""
            raise Preempted(f"signal received during trial {self.current}{where}; {again}run the same hpcflow "
                            "tune command to continue the study") from None
        except KeyboardInterrupt:
            self.interrupted()
            raise
        except (RunStop, TrialDirTaken, LockLost):  # (LockLost: the journal damaged by a write under a lost lock)
            raise
        except Exception as exc:  # noqa: BLE001 - the trial is recorded as failed; the study goes on
            given_up = abandoned(exc)  # a stop's write given up (`run`), also where Optuna's tell raised another
            if given_up is not None:  # error on its way (its assertion on the trial left RUNNING)
                raise given_up from None
            refused = refused_write(exc)  # but a write the file system refused would fail every later trial too
            if refused is not None:
                raise self._write_failed(refused) from None
            trial = None if self.current is None else next(
                t for t in self.study.get_trials(deepcopy=False) if t.number == self.current)
            if trial is not None and "failure" in trial.user_attrs:  # another worker failed it (and requeued it)
                self.log(f"hpcflow tune: trial {self.current} was marked failed by another worker "
                         f"({trial.user_attrs['failure']}); its run directory {run_dir_of(trial, self.out)} "
                         "keeps what it computed")
                return 1
            self.log(f"hpcflow tune: trial {self.current} failed: {type(exc).__name__}: "
                     f"{masked(' '.join(str(exc).split()))[:ERROR_CHARS]}")  # (a storage's error may name its URL)
            if not isinstance(exc, UserError):  # a bug, not a bad parameter: keep its traceback
                self.log(masked(traceback.format_exc().rstrip()))
                self.bugs += 1
            # bad input found by the trial (a combination of parameters the job refuses) recurs: no retry
            if trial is not None and not isinstance(exc, UserError) and requeue(self.study, trial,
                                                                                self.job.tune["retries"]):
                self.log(f"hpcflow tune: trial {self.current}'s parameters queued again")
            if self.comm.Get_size() > 1 and not isinstance(exc, UserError):
                # the other ranks may still wait in the trial's collectives: end the worker (abort_on_error). The
                # failure is recorded above, before this rank arrives at abort_on_error's barrier: when every rank
                # failed, none aborts before that barrier (within RECORD_WAIT), so no Abort cuts the records off
                self.log(f"hpcflow tune: an internal error under {self.comm.Get_size()} ranks ends this worker; "
                         "the same hpcflow tune command continues the study")
                raise
            return 1
        self.log(_trial_line(self.study, self.current, self.out))
        return 1


def abandoned(exc: BaseException | None) -> LockAbandoned | None:
    """The LockAbandoned that `exc` is, or that it was raised on the way of (its causes and contexts), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, LockAbandoned):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def continued(trial) -> tuple[int, tuple[int, int]] | None:
    """(number, seeds) of the preempted trial that queued trial `trial` continues (user attributes `continues` and
    `seeds`, set by `requeue`), or None for a trial of its own."""
    number, seeds = trial.user_attrs.get("continues"), trial.user_attrs.get("seeds")
    if isinstance(number, int) and isinstance(seeds, list) and len(seeds) == 2 and all(
            isinstance(x, int) for x in seeds):
        return number, (seeds[0], seeds[1])
    return None


def signals_between_trials():
    """An Event set by SIGTERM/SIGUSR1 (Slurm's notice before a time limit or preemption) or a first Ctrl-C while the
    worker is between trials, so that it stops with exit status 4 and best.toml instead of dying; handlers restored
    after. Its `handler` attribute is the handler installed (`hand_over` passes a request on from it)."""
    return requests()


#: what rank 0 broadcasts in place of a trial where the worker decides whether to stop (`stop_between_trials`)
DECIDE = "stop between trials?"


def stop_between_trials(pending, comm) -> bool:
    """Whether any rank's `signals_between_trials` Event is set (one Allreduce, `any_true`; on one rank the Event
    alone), so that every rank stops before the next trial together, whichever rank the request reached (`kill` of
    one rank's process): a rank that left alone would leave the others in the next trial's collectives. Rank 0 calls
    it where it decides and broadcasts DECIDE first, which the other ranks (`_follow`) answer with the same call. A
    stop decided is set in every rank's Event, so that a repeat of the request is ignored as the worker leaves."""
    from hpcflow.parallel.reduce import any_true

    if comm.Get_size() > 1 and comm.Get_rank() == 0:
        comm.bcast(DECIDE, root=0)
    stop = any_true(pending is not None and pending.is_set(), comm=comm)
    if stop and pending is not None:
        pending.set()
    return stop


def run_dir_of(trial, out: str) -> str | None:
    """A trial's run directory as a path: its run_dir attribute relative to the study directory `out`, or, when
    `out` lacks it, to the directory the trial was written in (user attribute study_dir: another study directory on
    the same storage); an absolute path in studies of the older layout."""
    rd = trial.user_attrs.get("run_dir")
    if rd is None:
        return None
    here, written = os.path.join(out, rd), trial.user_attrs.get("study_dir")
    if written and not os.path.isdir(here) and os.path.isdir(os.path.join(written, rd)):
        return os.path.join(written, rd)
    return here


def shown_value(t, trials) -> str:
    """Trial `t`'s value as the per-trial lines, the closing line and best.toml show it: 4 significant digits, more
    where another of the study's `trials` has a different value that would read the same (`spaces.value_text`)."""
    return spaces.value_text(t.value, [o.value for o in trials if o.number != t.number and o.value is not None])


def _trial_line(study, number, out) -> str:
    t = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if t is None:
        return "hpcflow tune: no trial ran"
    value = "" if t.value is None else f" value={shown_value(t, study.get_trials(deepcopy=False))}"
    if objectives.infeasible(t.user_attrs):
        value = f" ({objectives.infeasible(t.user_attrs)})"
    params = " ".join(f"{k}={spaces.float_text(v) if isinstance(v, float) else v}" for k, v in t.params.items())
    return f"hpcflow tune: trial {t.number} {t.state.name}{value} {params} ({run_dir_of(t, out)})"


def follow(job: TuneJob, *, comm) -> None:
    """Ranks > 0: run every trial rank 0 broadcasts until it broadcasts None, and answer each DECIDE between trials
    (`stop_between_trials`): a stop decided there ends this rank with exit status 4 once rank 0 has written best.toml
    and said it (its None). An internal error ends the worker (`abort_on_error`, once rank 0 has recorded the trial's
    failure if it failed too)."""
    with signals_between_trials() as pending:  # a request to this rank alone stops the worker before the next trial
        _follow(job, comm=comm, pending=pending)


def _follow(job: TuneJob, *, comm, pending) -> None:
    stop = False
    while (spec := comm.bcast(None, root=0)) is not None:
        if spec == DECIDE:
            stop = stop_between_trials(pending, comm)
            continue
        try:
            execute(job, spec, None, comm=comm, pending=pending)
        except UserError:
            continue  # rank 0 records the same failure
        except Preempted:
            raise SystemExit(EXIT_PREEMPTED) from None  # rank 0 says it, once
        except RunStop:
            raise  # decided collectively: every rank stops
    if stop:
        raise SystemExit(EXIT_PREEMPTED)  # rank 0 says it, once


def read_record(out: str) -> dict | None:
    """DIR/study.json (what the study in DIR was created with), or None when DIR holds none."""
    marker = os.path.join(out, "study.json")
    if not os.path.isfile(marker):
        return None
    try:
        with open(marker, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("study"), str):
        raise OutputPathError(f"--out {out}: study.json is not readable JSON naming a study; restore it or "
                              "choose another --out")
    return record


def other_job(out: str, name: str, storage, job: TuneJob) -> str | None:
    """Where study `name` in DIR `out` (in `storage`: a journal path or an SQLite URL, None = DIR/study.journal) was
    made from another job than `job`, which its --study would refuse (`record_mismatch`): its job file and what
    differs, as said; None where it fits `job`, where its storage or record cannot be read (nothing is written:
    `existing_storage`), or where the storage is a database server (not asked on the way to a refusal)."""
    import optuna

    if storage is not None and "://" in storage and sqlite_path(storage) is None:
        return None  # a database server: a refusal does not wait on a connection (nor has a masked password)
    try:
        with storages_closed() as closing:
            store = closing(existing_storage(storage, out))
            old = None if store is None else optuna.load_study(study_name=name, storage=store).user_attrs.get(RECORD)
    except Exception:  # noqa: BLE001 - a storage that cannot be read is refused later, saying why
        return None
    what = None if not isinstance(old, dict) else record_mismatch(old, job.record())
    if what is None:
        return None
    from hpcflow.jobs.shell import shell_line

    sets = old.get("overrides") if isinstance(old.get("overrides"), list) else []
    given = f" {shell_line([x for s in sets for x in ('--set', str(s))])}" if sets else ""
    return f"{old.get('job')}{' with' + given if given else ''} (this job has {what})"


#: what a study writes at the top of its directory (`check_outdir` refuses them where no study wrote them)
STUDY_FILES = ("best.toml", "trials")


def check_outdir(out: str, study_name: str, storage=None, job: TuneJob | None = None) -> None:
    """DIR holds the trials of one study in one storage (DIR/study.json names both): refuse another study (of
    another job than `job`: choose another --out, `other_job`; else pass its --study), another storage (its trial
    numbers would reuse DIR/trials/NNNN; None = the default journal), a file where the study writes a directory or
    the reverse (`refuse_misplaced`), and, for a new study, a directory holding anything but the storage itself
    (`refuse_foreign_files`: a run's files, files of the names a study writes, other files), and a directory inside
    another study's (`refuse_inside_study`, as `hpcflow run` refuses it)."""
    from hpcflow.jobs.output import refuse_inside_study

    refuse_inside_study(out, fix="a study does not start among another study's trials and files: choose an --out "
                                 "outside it")
    record = read_record(out)
    if record is not None:
        name = record["study"]
        label = storage_label(storage, out)
        known = record.get("storage")
        if known is None and os.path.isfile(os.path.join(out, "study.journal")):
            known = "study.journal"  # written before study.json recorded the storage: the default journal
        known = None if known is None else masked(str(known))  # (a study.json written by hand may hold a password)
        known = None if known is None else recorded_storage(known, out)  # a moved or copied DIR's own SQLite file
        if name != study_name:
            from hpcflow.jobs.shell import shell_word

            same = known is None or known == label or same_storage(known, label, out)
            where = storage if same else storage_shown(known, out)  # (the given one: unmasked)
            other = None if job is None else other_job(out, name, where, job)
            if other is not None:
                raise OutputPathError(f"--out {out} holds the trials of study {name!r} of another job, {other}; "
                                      "choose another --out for this job's study")
            raise OutputPathError(f"--out {out} holds the trials of study {name!r}; pass --study {shell_word(name)} "
                                  "to add trials to it, or choose another --out")
        if known is not None and known != label and not same_storage(known, label, out):
            raise OutputPathError(f"--out {out} holds the trials of study {name!r} in storage "
                                  f"{storage_shown(known, out)}, not {storage_shown(label, out)}; pass "
                                  f"{storage_option(known, out)} to add trials to it, or choose another --out")
        refuse_misplaced(out)
    elif os.path.exists(out) and not os.path.isdir(out):
        raise OutputPathError(f"--out {out} is not a study directory (it is a file); choose another --out")
    elif (found := run_file(out)) is not None:
        raise OutputPathError(f"--out {out} is not a study directory: it holds {found} of an hpcflow run "
                              "(and no study.json); a study does not start among a run's files: choose another --out")
    elif os.path.isdir(out):
        refuse_misplaced(out)
        refuse_foreign_files(out, storage)
    refuse_other_study_storage(out, storage)


def refuse_other_study_storage(out: str, storage) -> None:
    """Refuse (OutputPathError) a storage file (a journal, an SQLite database) outside DIR that lies inside another
    study directory: that directory's storage (or, for a copied DIR, the original's), into which this study's
    trials, whose directories are in DIR, would be written."""
    from hpcflow.jobs.output import enclosing_study

    label = storage_label(storage, out)
    path = storage_file(label, out)
    if path is None or not os.path.isabs(path) or os.path.abspath(path).startswith(os.path.abspath(out) + os.sep):
        return  # a database server, or a file inside DIR
    other = enclosing_study(path)
    if other is None or os.path.isdir(out) and os.path.samefile(other, out):
        return
    raise OutputPathError(f"--storage {masked(str(storage))} lies inside study directory {other}, whose trials "
                          f"it holds, not those of --out {out}; pass a storage inside --out or outside every study "
                          "directory (for a copied study directory, the copy's own file inside it)")


def refuse_misplaced(out: str) -> None:
    """Refuse (OutputPathError) a study directory where trials/ is not a directory, or best.toml or study.json is
    one, or where trials/ cannot be written into (its permissions, chattr +i): every trial, or the study's last
    write, would fail on it."""
    for name, want_dir in (("trials", True), ("best.toml", False), ("study.json", False)):
        path = os.path.join(out, name)
        if os.path.lexists(path) and os.path.isdir(path) != want_dir:
            what = "a file where the study writes its trial directories" if want_dir else \
                "a directory where the study writes a file"
            raise OutputPathError(f"--out {out}: {name} is {what}; remove it or choose another --out")
    trials = os.path.join(out, "trials")
    refused = dir_refusal(trials) if os.path.isdir(trials) else None
    if refused is not None:
        raise OutputPathError(f"--out {out}: {trials} is not writable ({refused_reason(refused)}), so no trial could "
                              f"write its directory there; {make_writable(refused)}, then run the same command")
    refuse_fixed_files(out)


def refuse_fixed_files(out: str) -> None:
    """Refuse (OutputPathError) a study directory whose files that a worker writes again by a rename over them
    (best.toml, study.json) may not be replaced (chattr +i, +a: not even by root), before any trial runs: the
    worker's last write would fail (a DIR that takes no new file is refused earlier, as any --out). A plain
    read-only file in a writable directory is replaced all the same and is not refused."""
    from hpcflow.jobs.shell import shell_word

    for name in ("best.toml", "study.json"):
        path = os.path.join(out, name)
        fixed = replace_refusal(path)
        if fixed is not None:
            exc, letter = fixed
            what = "immutable" if letter == "i" else "append-only"
            raise OutputPathError(f"--out {out}: {path} cannot be replaced ({refused_reason(exc)}: the file is "
                                  f"{what}), so a worker could not write it after its trials; run chattr -{letter} "
                                  f"{shell_word(path)}, then run the same command")


def check_trials_writable(run_dir: str) -> None:
    """WriteDenied (the trial fails, its parameters queued again, the worker ends with exit status 5: a refused
    write, `Worker._write_failed`) where trial directory `run_dir` is to be created in a trials/ directory made
    unwritable while the study runs (`refuse_misplaced` refuses it before any trial)."""
    parent = os.path.dirname(run_dir)
    if os.path.isdir(run_dir) or not os.path.isdir(parent):
        return
    refused = dir_refusal(parent)  # the file system's own reason (EPERM: chattr +i; EACCES: permissions; EROFS)
    if refused is not None:  # a read-only mount: its fix is the administrators' (WriteFailed's of EROFS)
        raise (WriteFailed if refused.errno == errno.EROFS else WriteDenied)(refused.errno, refused_reason(refused),
                                                                              parent)


def refuse_foreign_files(out: str, storage) -> None:
    """Refuse (OutputPathError) a new study's directory (no study.json) that holds anything but its lock file,
    debris of interrupted writes, a journal lock's own files (`lock_file_entry`) and the study's own storage file
    (where --storage lies inside DIR): a study writes best.toml and trials/ there, so a file of those names would
    be written over; other files are refused as `hpcflow run` refuses them without --force, which tune does not
    have. A directory whose storage file exists is
    a study killed before it wrote study.json, or of the layout before it: its own files are kept."""
    from hpcflow.jobs.output import is_result

    mine = storage_entry(storage, out)
    if mine is not None and os.path.exists(os.path.join(out, mine)):
        return
    found = sorted(e for e in os.listdir(out) if is_result(e) and e != mine and not lock_file_entry(e))
    if not found:
        return
    ours = [e for e in found if e in STUDY_FILES]
    if ours:
        raise OutputPathError(f"--out {out} holds {ours[0]} but no study.json, so no study wrote it and this one "
                              "would write over it; move it away or choose another --out")
    more = len(found) - 1
    others = f" and {more} more entr{'y' if more == 1 else 'ies'}" if more else ""
    raise OutputPathError(f"--out {out} is not empty: it holds {found[0]!r}{others} and no study.json; a new study "
                          "starts in an empty directory (tune has no --force): choose another --out, or move them "
                          "away")


def storage_entry(storage, out: str) -> str | None:
    """The entry at the top of DIR `out` that holds the study's storage (a journal file, or an SQLite database
    file, inside DIR; study.journal by default), or None when the storage lies elsewhere."""
    label = storage_label(storage, out)
    path = storage_file(label, out)
    if path is None:
        return None
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out))
    if rel == os.curdir or rel.startswith(os.pardir):
        return None
    return rel.split(os.sep)[0]


def run_file(out: str) -> str | None:
    """The first file an `hpcflow run` or `nn` writes at the top of its --out (summary.json, a kind's outputs:
    checkpoint.h5, ..., job.toml) that directory `out` holds; None when none (a study keeps its trials' files in
    trials/NNNN/). A killed run leaves its checkpoint without summary.json; a finished one both."""
    from hpcflow.jobs.output import all_run_files

    return next((name for name in all_run_files() if os.path.lexists(os.path.join(out, name))), None)


def refuse_unwritable_study(out: str) -> None:
    """Refuse (OutputPathError) a study directory (it holds study.json or trials/) in which no file can be created
    (its permissions, chattr +i, a read-only mount): the fix is to make it writable, as another --out would start
    another study."""
    if not os.path.isdir(out) or not any(os.path.lexists(os.path.join(out, name)) for name in ("study.json", "trials")):
        return
    refused = dir_refusal(out)
    if refused is not None:
        raise OutputPathError(f"--out {out} is a study directory that is not writable ({refused_reason(refused)}), so "
                              f"no trial could be recorded there; {make_writable(refused)}, then run the same command")


def check_options(out, storage, study_name) -> None:
    """Refuse an --out that cannot be a directory to write into (`writable_dir`: empty, a pseudo file system, a
    file, not writable or not creatable), an empty --storage or --study, a --study with a control character and a
    bad SLURM_RESTART_COUNT (one line)."""
    from hpcflow.jobs.output import writable_dir

    refuse_unwritable_study(out)
    writable_dir(out)
    slurm_worker()  # a SLURM_RESTART_COUNT that is not a count
    for flag, value in (("--storage", storage), ("--study", study_name)):
        if value is not None and not str(value).strip():
            raise ConfigError(f"{flag} is empty; give one or leave the option out")
    if storage is not None and str(storage).strip():
        check_journal_place(storage, out)  # a journal in a missing directory (an SQLite file's: `existing_storage`)
    if study_name is not None and any(0xD800 <= ord(c) <= 0xDFFF for c in str(study_name)):
        from hpcflow.jobs.shell import shell_word

        raise ConfigError(f"the study name {shell_word(study_name)} is not UTF-8 (a study is named after its job "
                          "file unless --study names it), which the study's storage and reports cannot hold; pass "
                          "--study with a UTF-8 name")
    if study_name is not None and not str(study_name).isprintable():
        raise ConfigError(f"--study {study_name!r} holds a control character (a newline, a tab, ...), which best.toml's "
                          "header and the reports would print as is; pass a name without one")


@contextmanager
def trial_lock(run_dir: str, number: int):
    """Hold trial directory `run_dir`'s run lock (`hpcflow.jobs.outlock`, as `hpcflow run` takes it) while the trial
    runs, so that a run, --force or --resume on it is refused naming this worker; released when the trial ends."""
    from hpcflow.jobs import outlock

    lock = outlock.acquire(run_dir, command=f"hpcflow tune (trial {number})")
    try:
        yield
    finally:
        lock.release(remove_dir=True)  # only a directory it created and nothing was written into


def interrupted_trials(study, run_dir) -> tuple[list[int], list]:
    """(numbers of `study`'s RUNNING trials whose worker is gone, the study's trials). A worker holds its trial's
    run lock (`trial_lock`) while the trial runs and the kernel drops it when the worker dies (SIGKILL included), so
    a RUNNING trial whose run directory (`run_dir(trial)`: a path, None where none is known) exists while no live
    process holds its lock (`hpcflow.jobs.outlock.live_holder`, as the runs table tells a live run from a killed one)
    was left by a killed worker; one without a run directory yet is taken as running. The trials are read again
    after the locks: a worker lets go of its trial's lock before it tells the trial's end, so a trial that has ended
    meanwhile is counted by its new state. Where flock is local to each host (NFS local_lock=flock, Lustre
    -o localflock) a worker on another host is not seen."""
    from optuna.trial import TrialState

    from hpcflow.jobs.outlock import live_holder

    def gone(t) -> bool:
        where = run_dir(t)
        return bool(where) and os.path.isdir(where) and not live_holder(where)

    stale = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if gone(t)}
    trials = study.get_trials(deepcopy=False)
    return sorted(t.number for t in trials if t.number in stale and t.state == TrialState.RUNNING), trials


def check_trial_dir(run_dir: str) -> None:
    """Refuse a trial directory that already holds files (another storage's trial of the same number)."""
    from hpcflow.jobs.output import is_result

    if os.path.isdir(run_dir) and any(is_result(e) for e in os.listdir(run_dir)):
        raise TrialDirTaken(f"--out: {run_dir} already holds the results of another trial (written through another "
                            "storage); choose another --out")


def _foreign_trials(out: str, n_trials: int) -> list[str]:
    """DIR/trials/NNNN directories with files whose number the study (of n_trials trials) has not reached:
    another storage's trials, which this study's next trials would write over."""
    from hpcflow.jobs.output import is_result

    trials = os.path.join(out, "trials")
    names = sorted(os.listdir(trials)) if os.path.isdir(trials) else []
    return [n for n in names if n.isdigit() and int(n) >= n_trials and any(map(is_result, os.listdir(os.path.join(
        trials, n))))]


def check_study(job: TuneJob, out: str, *, storage=None, study_name: str):
    """Every refusal of `open_study`, made without creating or writing anything (also `hpcflow submit --command
    tune` and its --check): the options and DIR (`check_options`, `check_outdir`), a storage that cannot be opened,
    trial directories the study has not reached, and a job the study in the storage refuses (`refuse_unfit`).
    Returns the storage where it exists already (`existing_storage`), else None; its connections closed."""
    check_options(out, storage, study_name)
    check_outdir(out, study_name, storage, job)
    tune = job.tune
    store = existing_storage(storage, out, heartbeat=tune["heartbeat_seconds"], retries=tune["retries"])
    with storages_closed() as closing:  # a check holds no connection: `open_study`'s use of it connects again
        return _check_study(job, out, closing(store), storage=storage, study_name=study_name)


def _check_study(job: TuneJob, out: str, store, *, storage, study_name: str):
    import optuna

    study = None
    names = [] if store is None else optuna.study.get_all_study_names(store)
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=store)
    else:
        refuse_unrecorded(out, study_name, names, storage)
    foreign = _foreign_trials(out, 0 if study is None else len(study.get_trials(deepcopy=False)))
    if foreign and study is None and (gone := lost_storage(out, storage)) is not None:
        raise OutputPathError(f"--out {out} holds trials/{foreign[0]} of study {study_name!r}, but its storage "
                              f"{storage_shown(storage_label(storage, out), out)}, which study.json names, is {gone}; "
                              "restore it (from a backup) and run again, or choose another --out")
    if foreign:
        raise OutputPathError(f"--out {out} holds trials/{foreign[0]}, which study {study_name!r} in storage "
                              f"{storage_shown(storage_label(storage, out), out)} has not reached (another storage "
                              "wrote it); pass the --storage that holds it, or choose another --out")
    if study is not None:
        refuse_unfit(study, job, study_name)
    return store


def lost_storage(out: str, storage) -> str | None:
    """"missing" or "an empty file" where study.json of DIR `out` records a storage file (a journal, an SQLite
    database) that is gone or empty; None where DIR holds no study.json, or its storage is a database server or a
    file with content (or study.json of an older layout, which names no storage)."""
    record = read_record(out)
    if record is None or record.get("storage") is None:
        return None
    path = storage_file(storage_label(storage, out), out)
    if path is None:
        return None
    if not os.path.lexists(path):
        return "missing"
    try:
        return "an empty file" if os.path.isfile(path) and os.path.getsize(path) == 0 else None
    except OSError:
        return None


def refuse_unrecorded(out: str, study_name: str, names: list, storage) -> None:
    """Refuse (OutputPathError) a DIR without study.json that holds best.toml or trials/ where its storage (`names`:
    the studies it holds) holds no study `study_name`: `check_outdir` lets such a DIR pass where the storage file
    lies in it (a study killed before it wrote study.json, of an older layout, or whose study.json was removed: the
    storage is its record), but these files are then another study's, which this one would write over."""
    ours = [e for e in STUDY_FILES if os.path.lexists(os.path.join(out, e))]
    if not ours or read_record(out) is not None:
        return
    from hpcflow.jobs.shell import shell_word

    shown = ", ".join(map(repr, names[:3])) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    held = f"holds study {shown}" if names else "holds no study"
    fix = f"pass --study {shell_word(names[0])} to continue it" if len(names) == 1 else \
        "pass --study with the name of the study they are of" if names else "move them away"
    raise OutputPathError(f"--out {out} holds {ours[0]} but no study.json, and its storage "
                          f"{storage_shown(storage_label(storage, out), out)} {held}, not {study_name!r}: this study "
                          f"would write over them; {fix} (study.json is written again), or choose another --out")


def sampler_seed(seed: int, creator: bool) -> int:
    """The seed of a worker's sampler. The worker that creates the study seeds it from [tune].seed alone, so that a
    new study run by one worker samples the same parameters for the same seed; a worker that joins an existing study
    (a concurrent worker, a later run continuing it) mixes in its pid and host, so that concurrent workers draw
    different parameters. The points of every trial depend on [tune].seed and its number only (`trial_seeds`)."""
    key = [seed] if creator else [seed, os.getpid(), zlib.crc32(socket.gethostname().encode())]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def open_study(job: TuneJob, out: str, *, storage=None, study_name: str, existing_ok: bool = True, log=print):
    """(study, storage) created or loaded (same name: trials are added); stale RUNNING trials recovered.

    Every refusal comes before the first write (`check_study`): a new study is not created in a DIR that holds
    trials (they belong to a study in another storage), and an existing one is loaded without writing to its
    storage. DIR/study.json is written from the study's record in the storage, also again where it was lost
    (a line says so where a worker ran trials of the study: it wrote study.json before it drew one).
    """
    tune = job.tune
    store = check_study(job, out, storage=storage, study_name=study_name)
    if store is None:
        store = open_storage(storage, out, heartbeat=tune["heartbeat_seconds"], retries=tune["retries"])
    try:
        return _open_study(job, out, store, storage=storage, study_name=study_name, existing_ok=existing_ok, log=log)
    except BaseException:  # a refusal, Ctrl-C, a stop request: the caller gets no storage to close
        close_storage(store)
        raise


def _open_study(job: TuneJob, out: str, store, *, storage, study_name: str, existing_ok: bool, log):
    import optuna

    from hpcflow.jobs.output import write_json

    tune = job.tune
    pruner = make_pruner(tune)
    exists = study_name in optuna.study.get_all_study_names(store)
    if exists and not existing_ok:
        raise StorageError(f"study {study_name!r} exists in the storage; pass another --study")
    study = None
    if not exists:
        try:  # the worker that creates the study seeds its sampler from [tune].seed alone (`sampler_seed`)
            study = optuna.create_study(study_name=study_name, storage=store, direction=tune["direction"],
                                        sampler=make_sampler(tune["sampler"], sampler_seed(tune["seed"], True)),
                                        pruner=pruner)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
            pass
    if study is None:
        study = optuna.load_study(study_name=study_name, storage=store, pruner=pruner,
                                  sampler=make_sampler(tune["sampler"], sampler_seed(tune["seed"], False)))
    record = check_record(study, job, study_name)
    job.study_overrides = list(record.get("overrides", job.overrides))  # what every trial's summary.json records
    os.makedirs(out, exist_ok=True)
    said = read_record(out) is None and recorded_again(study, out, storage, study_name)
    label = storage_label(storage, out)
    write_json(os.path.join(out, "study.json"), {"study": study_name, "storage": label, "job": record["job"],
                                                 "overrides": record["overrides"]})
    if said:
        log(said)
    continue_after_training(study._storage, lambda t: after_training(job, t, out))
    recover(study, job, out)
    return study, store


def recorded_again(study, out: str, storage, study_name: str) -> str | None:
    """The line a worker says where it writes study.json into `out`, which held none, for a study whose trials ran
    (None where none did: a new study, or one of queued trials only): study.json was lost where `out` is the
    study's own directory (its storage file lies in it, or it holds a trial's run directory); otherwise `out` is a
    new directory that joins a study of a shared storage, whose other trials lie in the directories they name
    (user attribute study_dir; an older layout's absolute run_dir)."""
    ran = [t.user_attrs["run_dir"] for t in study.get_trials(deepcopy=False) if "run_dir" in t.user_attrs]
    if not ran:
        return None
    shown = storage_shown(storage_label(storage, out), out)
    if storage_entry(storage, out) is not None or any(
            not os.path.isabs(rd) and os.path.isdir(os.path.join(out, rd)) for rd in ran):
        return (f"hpcflow tune: --out {out} held no study.json; wrote it again from study {study_name!r} in storage "
                f"{shown}")
    here, dirs = os.path.abspath(out), []
    for t in study.get_trials(deepcopy=False):
        rd, where = t.user_attrs.get("run_dir"), t.user_attrs.get("study_dir")
        if where is None and isinstance(rd, str) and os.path.isabs(rd):
            where = os.path.dirname(os.path.dirname(rd))  # DIR/trials/NNNN
        if isinstance(where, str) and where != here and where not in dirs:
            dirs.append(where)
    named = ", ".join(dirs[:3]) + (f" and {len(dirs) - 3} more" if len(dirs) > 3 else "")
    lie = f"lie in {named}" if dirs else "lie in other study directories"
    return (f"hpcflow tune: --out {out} joins study {study_name!r} in storage {shown}, whose trials so far {lie}; "
            "wrote its study.json")


def recover(study, job: TuneJob, out: str, *, log=print) -> None:
    """Fail (and queue again, as `retries` allow) the RUNNING trials of a study whose worker is gone
    (`recover_stale`: a journal's and a database's alike); an nn trial whose worker died after its training (while
    nn.h5 was written: its checkpoint.pt in its run directory in `out` holds the whole training, `nn_h5.trained`)
    is queued to be continued from that checkpoint, as a preempted one."""
    gone = recover_stale(study, study._storage, grace_seconds=job.tune["stale_seconds"], retries=job.tune["retries"],
                         after_training=lambda t: after_training(job, t, out))
    if gone:
        log(f"hpcflow tune: marked stale RUNNING trials {gone} as failed")


def after_training(job: TuneJob, trial, out: str) -> bool:
    """Whether `trial` of an nn study in `out` ended after its training: its run directory's checkpoint.pt holds the
    whole training (`nn_h5.trained`), from which a continuation redoes only what follows it."""
    from hpcflow.tune import nn_h5

    rd = run_dir_of(trial, out)
    return job.cfg["job"]["kind"] == "nn" and rd is not None and nn_h5.trained(rd)


@contextmanager
def best_lock(path: str):
    """Hold DIR/best.toml.lock (Optuna's symlink lock, as the journal's: safe on NFS; a holder gone for 30 s loses
    it) while a worker reads the best trial from the storage and writes best.toml: workers ending together write
    one after the other, each from the storage as it is then, so the last written names the best trial. A lock
    that the file system refuses (a read-only mount, a full disk, chattr +i on DIR) is a refused write of best.toml
    (WriteFailed, exit status 5, one line), as the write of best.toml itself would be."""
    lock = file_lock(path)
    try:
        lock.acquire()
    except OSError as exc:
        refused = refused_write(exc)
        if refused is None:
            raise
        raise as_write_failed(refused) from None
    try:
        yield
    finally:
        lock.release()


def write_best(study, job: TuneJob, out: str, study_name: str, *, comm=None):
    """Write out/best.toml: the job file with the best trial's parameters (no [tune]); (its path, the best trial
    it names), or (None, None) when no trial is complete. Rank 0 reads the storage under `best_lock`, so no
    worker writes over best.toml from an older view of the study."""
    from hpcflow.parallel.comm import rank

    if rank(comm) != 0:
        return None, None
    path = os.path.join(out, "best.toml")
    with best_lock(path):
        return _write_best(study, job, out, study_name, path)


def best_if_writable(study, job: TuneJob, out: str, study_name: str, *, comm=None) -> None:
    """`write_best` for a worker that a refused write ends (exit status 5): a refusal in a trial's directory or the
    storage leaves best.toml to be written from the trials finished so far; where the file system refuses
    best.toml too, the first refusal (which names the fix) is what the worker says."""
    try:
        write_best(study, job, out, study_name, comm=comm)
    except Exception as exc:  # noqa: BLE001 - only a refused write is let pass
        if refused_write(exc) is None:
            raise


def _write_best(study, job: TuneJob, out: str, study_name: str, path: str):
    from optuna.trial import TrialState

    from hpcflow.jobs.output import write_text
    from hpcflow.jobs.schema import apply_overrides, read_toml
    from hpcflow.jobs.shell import shell_line
    from hpcflow.jobs.toml_out import dumps

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None, None
    best = study.best_trial
    record = study.user_attrs.get(RECORD)
    if record is None:  # a study of the older layout: the job it is run with now
        record = {"job": job.path, "job_data": apply_overrides(read_toml(job.path), job.overrides, source=job.path)}
    data = apply_overrides(record["job_data"], spaces.overrides(best.params), source=record["job"])
    data.pop("tune", None)
    drop_unread_rate(data)  # (of a record an older hpcflow wrote; the trial's schedule did not read it)
    for name in job.inactive(best.params):  # a setting its schedule does not read: dropped, as the trial left it
        section, _, key = name.partition(".")
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    seeds, where = best.user_attrs.get("seeds"), run_dir_of(best, out)
    if where is not None and os.path.isdir(where):
        rerun = f"trial run directory {where}; its job.toml, with the trial's point seeds {seeds}, reruns the trial"
    else:  # moved, removed, or written where this worker cannot see it
        rerun = (f"its run directory {best.user_attrs.get('run_dir')} of {best.user_attrs.get('study_dir')} is not "
                 f"found from here; the trial's point seeds were {seeds}")
    header = (f"Best parameters of the Optuna study {study_name!r} on {record['job']}: trial {best.number}, "
              f"{job.tune['objective']} = {shown_value(best, study.get_trials(deepcopy=False))}\n({rerun}).\n"
              f"Run: {command_of(data)} {shell_line([path, '--out', best_out(out)])}")
    write_text(path, dumps(data, header=header))
    return path, best


def command_of(data: dict) -> str:
    """The command that runs job data `data`: `hpcflow nn` for a network job (only it continues one with --resume),
    `hpcflow run` for a flow job."""
    return "hpcflow nn" if (data.get("job") or {}).get("kind") == "nn" else "hpcflow run"


def best_out(out: str) -> str:
    """The --out that best.toml suggests for its run: beside the study directory `out`, named after it (DIR_best)."""
    d = os.path.normpath(out)
    if os.path.basename(d) in ("", ".", ".."):  # "." or "..": named after the directory itself
        d = os.path.abspath(d)
    return f"{d}_best"


def optimize(path, *, trials: int, out: str, storage: str | None = None, study_name: str | None = None,
             sampler: str | None = None, overrides=(), max_trials: int | None = None, quiet: bool = False, comm=None,
             log=print) -> dict:
    """Add `trials` trials to the study of job `path` (validated first); return counts and the best trial.

    A requeued Slurm job adds only the trials its earlier runs did not finish; `max_trials`: stop drawing trials
    once the study holds that many (`budget`). `quiet`: no progress bars (HPCFLOW_QUIET=1, once the environment
    is checked)."""
    import optuna

    from hpcflow.jobs import outlock
    from hpcflow.parallel.comm import is_root, limit_threads, refuse_together, resolve

    comm = resolve(comm)
    # every rank: job-file errors before any work, refused together (one line from rank 0)
    job = refuse_together(lambda: load(path, overrides, sampler=sampler), comm)
    limit_threads(comm)  # the CPUs this rank owns, as for hpcflow run (an nn trial's training sets its own)
    if quiet:  # after load checked the environment: a bad HPCFLOW_QUIET is refused even with --quiet
        os.environ["HPCFLOW_QUIET"] = "1"
    study_name = Path(path).stem if study_name is None else study_name
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial gets one line of ours
    # a run's directory is refused before its lock file is taken over (a killed run's holder record stays)
    refuse_together(lambda: (check_options(out, storage, study_name), check_outdir(out, study_name, storage, job))
                    if is_root(comm) else None, comm)
    # held shared: the study's workers write into --out together, and no `hpcflow run` or `nn` meanwhile
    # the storage's connections are closed however the block ends (an SQLite file is left with no handle on it)
    with outlock.holding(out, command="hpcflow tune", shared=True, comm=comm), storages_closed() as closing:
        study = closing(refuse_together(  # rank 0 opens the storage; a refusal there ends every rank
            lambda: open_study(job, out, storage=storage, study_name=study_name, log=log)[0] if is_root(comm) else None,
            comm))
        note = spaces.unused_note(job.tune) if is_root(comm) else None
        if note:  # once the checks passed, as hpcflow nn says a switched-off section's keys; a warning of a likely
            # mistake, said under --quiet too, as `hpcflow run` and `nn` say theirs: --quiet silences progress only
            log(f"hpcflow tune: {note}")
        if not is_root(comm):
            try:
                follow(job, comm=comm)
            except SystemExit as exc:
                if exc.code == EXIT_PREEMPTED:
                    finished()  # stopped with the trial's checkpoint, status 4: as rank 0's below
                raise
            finished()  # rank 0 runs no more trials: a stop request to this rank has nothing left to stop
            return {}
        worker = Worker(job, study, out, comm=comm, log=log, max_trials=max_trials)
        try:
            ran = worker.run(trials)
        except Preempted as exc:
            path, best = write_best(study, job, out, study_name, comm=comm)  # the trials finished so far give it
            said = (f"wrote {path} (best trial {best.number} so far)" if path is not None else
                    "no trial is complete yet, so no best.toml")
            # the stop is complete (checkpoint, records, best.toml), its status 4 decided: a stop request from here
            # on is ignored, as a run's or network run's after its stop. Slurm's SIGTERM to the step as `hpcflow
            # submit`'s task requeues the job ended the worker by its default action ("srun: error: NODE: task 0:
            # Terminated" in the leg's log) before it had left
            finished()
            raise Preempted(f"{exc}; {said}") from None
        except WriteFailed:
            best_if_writable(study, job, out, study_name, comm=comm)  # and where a trial's write was refused
            raise
        finally:
            comm.bcast(None, root=0)
        result = report(study, job, out, study_name, comm=comm)  # a stop request while best.toml is written ends it
        finished()  # best.toml is written: a stop request from here on is ignored
        return {**result, "bugs": worker.bugs, "ran": ran, "mine": outcomes(study, worker.numbers),
                "capped": worker.capped_out}


def outcomes(study, numbers) -> dict:
    """How trials `numbers` (a worker's) ended: counts of 'complete', 'pruned', 'diverged' (pruned as diverged, or as
    an nn network whose metric is not positive definite: `pruned_infeasible`) and 'failed', in that order."""
    from optuna.trial import TrialState

    out = dict.fromkeys(("complete", "pruned", "diverged", "failed"), 0)
    for t in study.get_trials(deepcopy=False):
        if t.number in numbers:
            key = {TrialState.COMPLETE: "complete", TrialState.FAIL: "failed"}.get(t.state, "pruned")
            key = "diverged" if pruned_infeasible(t) else key
            out[key] += t.state.is_finished()
    return out


#: the summary.json status (user attribute `status`) of a trial pruned as it ran to no value of its parameters: its
#: flow or training diverged, or an nn network's metric is not positive definite after its last epoch
INFEASIBLE = ("diverged", NOT_POSITIVE_DEFINITE)


def pruned_infeasible(trial) -> bool:
    """Whether `trial` was pruned as it diverged (or its nn network's metric is not positive definite after its last
    epoch: status INFEASIBLE), not stopped by the pruner (status "stopped", which may have left a metric not positive
    definite at the epoch it stopped)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.PRUNED and trial.user_attrs.get("status") in INFEASIBLE


def continued_numbers(trials) -> set:
    """Numbers of the trials that a trial of `trials` continues (user attribute `continues`, set by `requeue` for a
    trial stopped to be continued: a stop signal, a second Ctrl-C, a worker gone or a write refused after an nn
    trial's training)."""
    return {t.user_attrs["continues"] for t in trials if isinstance(t.user_attrs.get("continues"), int)}


def counted_state(trial, continued: set) -> str:
    """The state a finished or running trial is counted in (Optuna's TrialState name): Optuna's, but "PREEMPTED" for
    a failed trial that a queued one continues (its number in `continued`, `continued_numbers` of the study's
    trials), whatever stopped it (user attribute `failure`: "preempted", "interrupted", "stopped by SIGTERM", ...):
    the trial that continues it is counted in its own state."""
    from optuna.trial import TrialState

    return "PREEMPTED" if trial.state == TrialState.FAIL and trial.number in continued else trial.state.name


def report(study, job: TuneJob, out: str, study_name: str, *, comm=None) -> dict:
    """Counts of the study's trials by state (`counted_state`: a failed trial continued by another as "PREEMPTED"; a
    RUNNING trial whose worker was killed as "INTERRUPTED", `interrupted_trials`; its numbers in "interrupted";
    "diverged": the PRUNED ones that diverged, or an nn network's whose metric is not positive definite,
    `pruned_infeasible`), the best trial and best.toml (written when a trial finished)."""
    counts: dict = {}
    over_cap = diverged = 0
    gone, trials = interrupted_trials(study, lambda t: run_dir_of(t, out))
    continued = continued_numbers(trials)
    for t in trials:
        # RUNNING, its worker killed: as the report says
        state = "INTERRUPTED" if t.number in gone else counted_state(t, continued)
        counts[state] = counts.get(state, 0) + 1
        over_cap += str(t.user_attrs.get("failure", "")).startswith(budget.OVER_CAP)
        diverged += pruned_infeasible(t)
    best_toml, best = write_best(study, job, out, study_name, comm=comm)
    return {"study": study_name, "counts": counts, "over_cap": over_cap, "diverged": diverged, "interrupted": gone,
            "best_toml": best_toml,
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                               "value_text": shown_value(best, study.get_trials(deepcopy=False))}}
