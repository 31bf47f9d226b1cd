"""A study trial's run directory as analysis finds it (user attribute `run_dir`), accepted only when it holds that
trial's run: for a trial hpcflow tune ran, the point seeds and parameters its job.toml (else summary.json) records
are the trial's. A copied study without its trials/ would otherwise be read from another study's directory of the
same trial number."""

from __future__ import annotations

import os

from hpcflow.analysis.rundir import MissingData, read_summary

#: the fix named where a trial's run directory holds another trial's run
RESTORE = "restore the study directory's trials/ from the copy it came from, or pass the run directory itself"


def trial_run_dir(trial, base, *, shared: bool) -> str | None:
    """The trial's run directory: user attribute run_dir relative to the study directory `base` (for a `shared`
    storage, one several study directories write into, also relative to the one the trial was written in, user
    attribute study_dir), or an absolute path (older studies; when it is gone, as trials/NNNN of `base`: the study
    directory was moved or copied). None when the trial names none; the first place looked in when none exists;
    MissingData when the one found holds another trial's run (`foreign`)."""
    rd = trial.user_attrs.get("run_dir")
    if not rd:
        return None
    if os.path.isabs(rd):
        parent, name = os.path.split(os.path.normpath(rd))
        candidates = [rd] + ([os.path.join(base, "trials", name)] if os.path.basename(parent) == "trials" else [])
    else:
        study_dir = trial.user_attrs.get("study_dir")
        candidates = [os.path.join(base, rd)] + ([os.path.join(study_dir, rd)] if study_dir and shared else [])
    found = [c for c in candidates if os.path.isdir(c)]
    why = [foreign(trial, c) for c in found]
    for c, reason in zip(found, why):
        if not reason:
            return c
    if found:
        raise MissingData(f"trial {trial.number}: its run directory {found[0]} holds another trial's run "
                          f"({why[0]}); {RESTORE}")
    return candidates[0]


def foreign(trial, run_dir) -> str:
    """Why `run_dir` holds another run than `trial`'s (its recorded point seeds or a parameter differ from the
    trial's user attribute `seeds` and its parameters), '' when they agree or it records neither (job.toml is
    written first, summary.json last). A trial without recorded seeds is not one hpcflow tune ran (a study made by
    hand, whose parameters need not be job settings): its run_dir is taken as it names it."""
    want = trial.user_attrs.get("seeds")
    if not isinstance(want, list):
        return ""
    cfg, seeds = _recorded(run_dir)
    if seeds is not None and [*seeds] != [*want][:len(seeds)]:
        return f"point seeds {list(seeds)}, where trial {trial.number} drew {want}"
    if cfg is None:
        return ""
    for name, value in trial.params.items():
        held = _setting(cfg, name)
        if held is not value and held != value:
            shown = "no such setting" if held is _MISSING else f"{name} = {held!r}"
            return f"{shown}, where trial {trial.number} drew {name} = {value!r}"
    return ""


_MISSING = object()


def _setting(cfg: dict, name: str):
    """cfg's value of dotted setting `name` ("flow.dt"), _MISSING where it has none."""
    node = cfg
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _recorded(run_dir) -> tuple:
    """(job configuration, point seeds) that a trial's run directory records: job.toml (the trial's validated job:
    [geometry] seed, and test_seed for flows), else summary.json (config, seeds); None for what neither holds."""
    from hpcflow.errors import UserError
    from hpcflow.jobs.schema import read_toml

    path = os.path.join(os.fspath(run_dir), "job.toml")
    summary = read_summary(run_dir) or {}
    try:
        cfg = read_toml(path) if os.path.isfile(path) else None
    except UserError:
        cfg = None
    if not isinstance(cfg, dict):
        cfg = summary.get("config") if isinstance(summary.get("config"), dict) else None
    seeds = summary.get("seeds") if isinstance(summary.get("seeds"), list) else None
    geo = cfg.get("geometry") if isinstance(cfg, dict) else None
    if seeds is None and isinstance(geo, dict) and "seed" in geo:
        seeds = [geo["seed"]] + ([geo["test_seed"]] if "test_seed" in geo else [])
    return cfg, seeds


def known_run_dir(trial, base, *, shared: bool) -> str | None:
    """`trial_run_dir`, or None where it cannot be told: no run directory named yet, or one of another trial (what
    `hpcflow.tune.study.interrupted_trials` takes for a trial's run directory when it tells whether its worker is
    gone)."""
    try:
        return trial_run_dir(trial, base, shared=shared)
    except MissingData:
        return None
