"""The `[tune]` table of a flow or nn job: search space over job settings, objective, sampler, pruning, failures.

    [tune]
    objective = "log_gain_test"          # log(sigma_test(0) / sigma_test(last step)), maximised
    [tune.space]
    "flow.dt" = {low = 1.0, high = 30.0, log = true}     # type from the job schema: float field -> float range
    "flow.steps" = {low = 10, high = 50, step = 10}       # int field -> int range
    "kernel.form" = {choices = ["exp", "gauss"]}          # categorical (any field type)

Every bound and choice is validated like the job setting it names, so an impossible range is a one-line
ConfigError naming `[tune.space]."flow.dt".low`, before any work.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal, localcontext

from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import SEED_MAX, Field, at_least, positive, validate, validate_field
from hpcflow.nn.rates import RATE_FIELDS, SCHEDULES, UNUSED_BY, other_schedule

#: objective name -> (default direction, needs test points, job kind)
OBJECTIVES = {
    "log_gain_test": ("maximize", True, "flow"),       # log sigma_test gain at the last step (flow default)
    "log_gain_test_best": ("maximize", True, "flow"),  # log sigma_test gain at the best step so far
    "log_gain_train": ("maximize", False, "flow"),     # log sigma_train gain at the last step
    "sigma_test": ("minimize", True, "flow"),          # sigma_test at the last step
    "log_gain_val": ("maximize", False, "nn"),         # log sigma_val gain at the last epoch (nn default)
    "log_gain_val_best": ("maximize", False, "nn"),    # log sigma_val gain at the best epoch so far
    "sigma_val": ("minimize", False, "nn"),            # sigma_val at the last epoch
}
#: job kind -> its default objective
DEFAULT_OBJECTIVE = {"flow": "log_gain_test", "nn": "log_gain_val"}
#: the settings every trial sets from [tune].seed and its number (`trial.trial_seeds`): neither [tune.space] nor a
#: --set may give them
POINT_SEEDS = ("geometry.seed", "geometry.test_seed")
#: the setting a flow job's test points are counted by (0: none, which a test-point objective cannot take)
N_TEST = "geometry.n_test"

#: the job settings that cannot change a trial's objective (the sigma history of its flow or of its network's
#: training), refused in [tune.space], where they would only spend trials: section or 'SECTION.KEY' -> why. What they
#: change is not the flow's nor the training's numbers: the job's name, when checkpoints are written (a trial
#: continued from one goes on as if never stopped), the NTK tracked beside the training (its own points, computed
#: from the network without touching its parameters, gradients or random draws) and a check of the ranks' replicas.
UNSEARCHABLE = {
    "job": "the job's kind and description name the job; they cannot change the objective",
    "checkpoint": "it says when checkpoints are written, which cannot change the objective",
    "ntk": "the NTK is tracked beside the training, whose network and sigma it cannot change",
    "training.check_replicas": "it compares the ranks' parameters, which cannot change the training or its sigma",
}

#: settings that only some value of another setting, their switch, has a trial read: a section switched off is not
#: cross-checked and its keys are kept as given and unused (no clustering method, kernel_flow.enabled = false, no
#: width_sweep.widths), and batch_size, merge and seed belong to clustering method "batched" ("full" and "birch"
#: ignore them). Searched where no value the study's trials take of the switch reads them, they would only spend
#: trials (`refuse_switched_off`): section or 'SECTION.KEY' -> (the switch, whether a value of it reads them, where
#: it does, said)
SWITCHED = {
    "clustering": ("clustering.method", lambda v: v is not None, "[clustering].method is set"),
    **{f"clustering.{key}": ("clustering.method", lambda v: v == "batched", "[clustering].method = 'batched'")
       for key in ("batch_size", "merge", "seed")},
    "kernel_flow": ("kernel_flow.enabled", lambda v: v is True, "[kernel_flow].enabled = true"),
    "width_sweep": ("width_sweep.widths", lambda v: bool(v), "[width_sweep].widths is not []"),
}


def switch_of(name: str):
    """(switch, reads(value), said) of searched setting `name` (`SWITCHED`), or None where no other setting switches
    it off (the switch itself among them)."""
    entry = SWITCHED.get(name, SWITCHED.get(name.partition(".")[0]))
    return None if entry is None or entry[0] == name else entry


#: an nn job's learning-rate schedule, and the rate settings only one of its values reads (`hpcflow.nn.rates.UNUSED_BY`):
#: setting -> the schedule that reads it. A trial whose schedule does not read one leaves it at its default
#: (`trial_settings`), as Optuna's conditional parameters are left out of a trial that does not use them.
SCHEDULE = "training.lr_schedule"
READ_BY = {f"training.{UNUSED_BY[s][0]}": other_schedule(s) for s in SCHEDULES}

#: the longest wait a thread can make (threading.TIMEOUT_MAX, whole seconds): the heartbeat's period
MAX_WAIT = int(threading.TIMEOUT_MAX)

TUNE_SECTION = {
    "space": Field(dict, help="job setting 'SECTION.KEY' -> {low, high, log, step} or {choices = [...]}"),
    "objective": Field(str, None, choices=tuple(OBJECTIVES),
                       help="unset = log_gain_test (flow jobs) or log_gain_val (nn jobs)"),
    "direction": Field(str, None, choices=("maximize", "minimize"), help="unset = the objective's own"),
    "sampler": Field(str, "tpe", choices=("tpe", "gp", "random"), help="--sampler overrides it"),
    "seed": Field(int, 0, lo=0, hi=SEED_MAX,
                  help="study seed: every trial's points derive from it (the sampler's from it, pid and host)"),
    "pruner": Field(str, "median", choices=("median", "none")),
    "pruner_startup_trials": Field(int, 5, check=at_least(0), help="trials finished before pruning starts"),
    "pruner_warmup_steps": Field(int, 10, check=at_least(0), help="steps of a trial before it may be pruned"),
    "retries": Field(int, 0, check=at_least(0), help="re-run a failed trial's parameters this many times"),
    "stale_seconds": Field(float, 600.0, check=positive,
                           help="journal storage: a RUNNING trial of a worker on another host whose last heartbeat is "
                                "older than this is marked failed (at least 2 x heartbeat_seconds)"),
    "heartbeat_seconds": Field(int, 60, lo=1, hi=MAX_WAIT,
                               help="a running trial's heartbeat (journal: user attribute heartbeat; RDB: Optuna's); "
                                    "a wait of a thread, so at most threading.TIMEOUT_MAX"),
}

_RANGE_KEYS = {"low", "high", "log", "step"}
#: the values a choice may take: Optuna stores and compares a categorical's choices as single values
SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One searched job setting: `name` = 'SECTION.KEY'; kind 'float', 'int' or 'categorical'."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()


def validate_section(table, schema: dict, *, source: str = "job", kind: str = "flow") -> dict:
    """The validated [tune] table of a job of `kind` with `schema`; `space` becomes a list of Params."""
    tune = validate({"tune": table}, {"tune": TUNE_SECTION}, source=source)["tune"]
    if tune["objective"] is None:
        tune["objective"] = DEFAULT_OBJECTIVE[kind]
    if OBJECTIVES[tune["objective"]][2] != kind:
        fits = ", ".join(repr(k) for k, v in OBJECTIVES.items() if v[2] == kind)
        raise ConfigError(f"{source}: [tune].objective = {tune['objective']!r} is for "
                          f"{OBJECTIVES[tune['objective']][2]} jobs; a {kind} job takes one of {fits}")
    if not tune["space"]:
        raise ConfigError(f"{source}: [tune].space is empty; add e.g. [tune.space] \"flow.dt\" = {{low = 1, high = 30}}")
    tune["space"] = [_param(source, name, spec, schema) for name, spec in tune["space"].items()]
    tune["direction_given"] = tune["direction"] is not None  # (else the objective's: a study of either is taken)
    if tune["direction"] is None:
        tune["direction"] = OBJECTIVES[tune["objective"]][0]
    # a switched-off pruner leaves its settings accepted, so that --set tune.pruner=none switches it off beside them;
    # `unused_note` names those given a value other than the default
    tune["unused"] = [k for k in PRUNER_KEYS if tune["pruner"] == "none" and k in table
                      and tune[k] != TUNE_SECTION[k].default]
    if tune["stale_seconds"] < 2 * tune["heartbeat_seconds"]:  # a live worker's trial would look gone
        raise ConfigError(f"{source}: [tune].stale_seconds = {tune['stale_seconds']!r} must be at least twice "
                          f"heartbeat_seconds = {tune['heartbeat_seconds']}; raise it or lower heartbeat_seconds")
    return tune


#: [tune] keys that only the pruner reads (none with pruner = "none")
PRUNER_KEYS = ("pruner_startup_trials", "pruner_warmup_steps")


def unused_note(tune: dict) -> str | None:
    """One line (without the command's prefix) naming the [tune] keys that a validated `tune` (`validate_section`)
    gives a value nothing reads, as `hpcflow nn` names a switched-off section's, e.g. "note: [tune]
    pruner_warmup_steps = 3 is not used: [tune].pruner = \"none\""; None where there are none."""
    from hpcflow.jobs.schema import shown

    keys = tune.get("unused") or []
    if not keys:
        return None
    given = ", ".join(f"{k} = {shown(tune[k])}" for k in keys)
    return f"note: [tune] {given} {'is' if len(keys) == 1 else 'are'} not used: [tune].pruner = \"none\""


def _param(source: str, name: str, spec, schema: dict) -> Param:
    where = f'{source}: [tune.space]."{name}"'
    section, _, key = name.partition(".")
    if section == "tune" or section not in schema or key not in schema[section]:
        raise ConfigError(f"{where} names no job setting; use 'SECTION.KEY' of a setting of this job kind, "
                          "e.g. \"flow.dt\"")
    why = UNSEARCHABLE.get(name, UNSEARCHABLE.get(section))
    if why is not None:
        raise ConfigError(f"{where} is not searchable: {why}; remove it from [tune.space]")
    if name in POINT_SEEDS:
        raise ConfigError(f"{where}: every trial draws its own points from [tune].seed; remove it")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} = {spec!r} must be a table {{low, high, log, step}} or {{choices = [...]}}")
    field = schema[section][key]
    if "choices" in spec:
        return _categorical(where, name, spec, field)
    return _range(where, name, spec, field)


def _categorical(where, name, spec, field) -> Param:
    if set(spec) != {"choices"}:
        raise ConfigError(f"{where}: choices cannot be combined with {sorted(set(spec) - {'choices'})}; remove them")
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}.choices must be a non-empty list; fix it")
    values = tuple(validate_field(f"{where}.choices[{i}]", c, field) for i, c in enumerate(choices))
    for i, v in enumerate(values):
        if not isinstance(v, SCALARS):  # a list setting: Optuna stores and compares choices as single values only
            raise ConfigError(f"{where}.choices[{i}] = {v!r} is a {type(v).__name__}; choices must be single values "
                              f"(strings, numbers, booleans); remove \"{name}\" from [tune.space] and run a study "
                              f"for each value (--set {name}=...)")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{where}.choices = {choices!r} repeats a value; list each once")
    return Param(name, "categorical", choices=values)


def _range(where, name, spec, field) -> Param:
    unknown = sorted(set(spec) - _RANGE_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is an unknown key; known: low, high, log, step, choices")
    types = field.type if isinstance(field.type, tuple) else (field.type,)
    kind = "int" if int in types else "float" if float in types else None
    if kind is None:
        raise ConfigError(f"{where}: a range needs a numeric setting; give {{choices = [...]}} instead")
    for k in ("low", "high"):
        if k not in spec:
            raise ConfigError(f"{where}.{k} is required for a range; add it")
    low, high = (validate_field(f"{where}.{k}", spec[k], field) for k in ("low", "high"))
    log = validate_field(f"{where}.log", spec.get("log", False), Field(bool))
    step = spec.get("step")
    if step is not None:
        step = validate_field(f"{where}.step", step, Field(int if kind == "int" else float, check=positive))
    if not low < high:
        raise ConfigError(f"{where}: low = {low!r} must be below high = {high!r}; fix the range")
    if log and low <= 0:
        raise ConfigError(f"{where}.low = {low!r} must be > 0 with log = true; raise it")
    if log and step is not None and (kind == "float" or step != 1):
        raise ConfigError(f"{where}: log = true cannot be combined with step; remove one")
    if step is not None:
        _check_steps(where, kind, low, high, step, field)
    return Param(name, kind, low=low, high=high, log=log, step=step)


#: the most grid points a stepped float range may have: float64 values near a range's ends lie ~1e-16 apart
#: relative, so a finer step names values no float holds apart (step = 1e-30 ended in a decimal traceback)
MAX_GRID_POINTS = 1e15


def _check_steps(where: str, kind: str, low, high, step, field: Field | None = None) -> None:
    """Refuse a step that does not divide high - low exactly (as decimals written in the job file: 0.1 divides
    1.0 - 0.0), which Optuna would answer by lowering high to the last whole step. The refusal suggests the whole
    steps around high that make a range this check and the setting (`field`) accept: the one below only where it
    lies above low (a step longer than the range has none), the one above only where the setting takes it."""
    if kind == "float" and (high - low) / step > MAX_GRID_POINTS:
        raise ConfigError(f"{where}.step = {step!r} makes {(high - low) / step:.3g} grid points, more than float64 "
                          f"values tell apart ({MAX_GRID_POINTS:.0e}); use a step of at least "
                          f"{(high - low) / MAX_GRID_POINTS:.3g}, or none (a continuous range)")
    lo, hi, st = (Decimal(str(x)) for x in (low, high, step))
    with localcontext() as exact:
        exact.prec = 60  # TOML ints have at most 19 digits, floats 17 significant ones: every product below is exact
        whole = (hi - lo) // st
        if whole * st == hi - lo:
            return
        below, above = lo + whole * st, lo + (whole + 1) * st
    num = int if kind == "int" else float
    highs = [num(h) for h in (below, above) if h > lo and (h == below or _takes(field, num(h)))]
    said = " or ".join(map(repr, highs))
    fix = (f"make high a whole number of steps above low, e.g. high = {said}" if highs else
           f"give a step that divides {num(hi - lo)!r}, or none")
    raise ConfigError(f"{where}.step = {step!r} does not divide high - low = {num(hi - lo)!r} exactly (Optuna would "
                      f"lower high to {num(below)!r}); {fix}")


def _takes(field: Field | None, value) -> bool:
    """Whether setting `field` accepts `value` (a high that a refusal suggests); True where no field is given."""
    if field is None:
        return True
    try:
        validate_field("high", value, field)
    except ConfigError:
        return False
    return True


def unread(cfg: dict, params: dict) -> str | None:
    """The rate setting ('training.KEY', `READ_BY`) that the learning-rate schedule of a trial of validated job `cfg`
    with parameters `params` (its drawn lr_schedule, else the job's) does not read; None for a job without a schedule
    (a flow job)."""
    training = cfg.get("training") if (cfg.get("job") or {}).get("kind") == "nn" else None
    if not isinstance(training, dict):
        return None
    return f"training.{UNUSED_BY[params.get(SCHEDULE, training['lr_schedule'])][0]}"


def trial_settings(cfg: dict, params: dict) -> tuple[dict, list]:
    """(the settings a trial of validated job `cfg` with parameters `params` sets, the settings inactive in it): its
    parameters, but for the rate setting that its learning-rate schedule does not read (`unread`), which the trial
    leaves at its default, so that every schedule it draws makes a valid job: a value drawn for that setting is not
    set, and a trial that draws the schedule sets it to its default (over a value the job sets, as lr_min = 1e-5 of
    a cosine job whose trial draws lr_schedule = "exponential"; the job accepts the default of a key its schedule does
    not read), whatever the job, so that its settings make its job of any job file the study takes. Inactive: that
    setting where the trial draws the schedule or `params` hold it, else nothing."""
    name = unread(cfg, params)
    if name is None or (SCHEDULE not in params and name not in params):
        return dict(params), []
    out = {k: v for k, v in params.items() if k != name}
    if SCHEDULE in params:
        out[name] = RATE_FIELDS[name.partition(".")[2]].default
    return out, [name]


def draw_order(space: list) -> list:
    """The Params of `space` in the order a trial draws them: where the space searches the schedule, the rate settings
    only one schedule reads (`READ_BY`) after all others, so that the trial knows whether it reads them before it
    draws them; otherwise as listed."""
    if not any(p.name == SCHEDULE for p in space):
        return list(space)
    return sorted(space, key=lambda p: p.name in READ_BY)


def overrides(params: dict) -> list[str]:
    """`SECTION.KEY=VALUE` strings (TOML values) that set the chosen parameters on a job, like --set."""
    from hpcflow.jobs.toml_out import value

    return [f"{name}={value(v)}" for name, v in params.items()]


def float_text(v: float, digits: int = 4) -> str:
    """A float as the report shows numbers, to `digits` significant digits (4: 'flow.dt = 22.81'), and reading as a
    float: 1.0 is '1.0', not '1' (an integer's look), 1234.0 '1234.0'; 1e-05, inf and nan as Python writes them."""
    text = f"{v:.{digits}g}"
    return text if any(c in text for c in ".en") else f"{text}.0"  # 'e': 1e+05, 'n': inf, nan


def params_text(params: dict) -> str:
    """A trial's parameters as the report and the closing line show them: 'flow.dt = 22.81, kernel.width = 0.6603',
    floats to 4 significant digits as the report's numbers, written as floats ('flow.theta = 1.0': `float_text`;
    best.toml holds them exactly), other values as they read ('kernel.form = gauss', 'flow.steps = 20'); '(none)'
    for a trial without parameters."""
    def shown(v) -> str:
        return float_text(v) if isinstance(v, float) else str(v)

    return ", ".join(f"{name} = {shown(v)}" for name, v in params.items()) or "(none)"


def value_text(v: float, others=()) -> str:
    """An objective value as `hpcflow tune`'s per-trial lines show it: 4 significant digits as the report's numbers
    (`float_text`), more where another trial's different value (`others`) would read the same, as far as needed to
    tell them apart (up to 17, a float's every digit). A σ objective ('sigma_test', 'sigma_val') of flows that reach
    the same floor often differs only in the 5th or 6th digit between trials: '0.01235' and '0.01235' would hide
    which is better, '0.012346' and '0.012349' do not; values that differ in the first 4 digits keep 4."""
    v = float(v)
    near = [float(o) for o in others if o is not None and float(o) != v]
    digits = 4
    while digits < 17 and any(float_text(o, digits) == float_text(v, digits) for o in near):
        digits += 1
    return float_text(v, digits)
