r"""Best parameters of Table 1 studies vs the hand-set jobs: train and test gains on fresh points over seeds.

    hpcflow tune jobs/tune_relu.toml --trials 40 --out runs/tune_relu      # and tune_gaussian, tune_delta
    python benchmarks/tune_table1.py runs/tune_relu runs/tune_gaussian runs/tune_delta \
        --hand jobs/table1_relu.toml jobs/table1_gaussian.toml jobs/table1_delta.toml --seeds 101 202 303

Each study directory's best.toml (and each hand-set job) runs as `hpcflow run --set geometry.seed=S` does, for
every seed S (train points from S, test points from S + 1: none of them seen by any trial). Prints the seeds on
a line of their own, then a Markdown table: mean ± standard deviation over the seeds of the train and test gains
sigma(step 0) / sigma(last step). A flow that finds no positive-definite step stops there: its gains are those up
to the stop (its steps taken say where).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile

import numpy as np

import _args
from hpcflow.errors import UserError
from hpcflow.jobs import registry

#: the files of a study directory (hpcflow tune --out) this script reads
STUDY_FILES = ("study.json", "study.journal", "best.toml")


def gains(job: str, seeds) -> dict:
    """Train/test gains, steps taken and rejected steps of `job` at each geometry seed (the flow's progress lines
    go to stderr: stdout is the table)."""
    from hpcflow.errors import NumericalStop

    out = {"gain_train": [], "gain_test": [], "steps_taken": [], "rejected_steps": []}
    for seed in seeds:
        module, cfg = registry.load(job, [f"geometry.seed={seed}"])
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
            try:
                summary = module.run(cfg, tmp)
            except NumericalStop as exc:  # no positive-definite step: the gains up to the stop, its steps taken
                summary = exc.summary  # (its outputs were in the temporary folder: the row has what it says)
                print(f"{job}, seed {seed}: {summary['stopped']}", file=sys.stderr, flush=True)
        for key in out:
            out[key].append(summary[key])
    return out


def fmt(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}"


def study_line(study_dir: str) -> str:
    import optuna  # here, not at the top: a bad argument is refused without optuna's import

    with open(os.path.join(study_dir, "study.json"), encoding="utf-8") as fh:
        name = json.load(fh)["study"]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(os.path.join(study_dir, "study.journal")))
    study = optuna.load_study(study_name=name, storage=storage)
    states: dict = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    best = study.best_trial
    params = ", ".join(f"{k.split('.')[-1]} {v:.4g}" if isinstance(v, float) else f"{k.split('.')[-1]} {v}"
                       for k, v in best.params.items())
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"{name}: {len(study.trials)} trials ({counts}); best trial {best.number}: value {best.value:.4g}; {params}"


def main(argv=None) -> None:
    from hpcflow.jobs.schema import SEED_MAX
    from hpcflow.tune.storage import journal_problem

    ap = _args.parser(__doc__)
    ap.add_argument("studies", nargs="+", type=_args.directory, help="study directories (hpcflow tune --out)")
    ap.add_argument("--hand", nargs="*", type=_args.file, default=[],
                    help="hand-set job files to compare, in any number")
    ap.add_argument("--seeds", nargs="+", type=_args.whole(0, SEED_MAX), default=[101, 202, 303])
    args = ap.parse_args(argv)
    for d in args.studies:
        missing = [name for name in STUDY_FILES if not os.path.isfile(os.path.join(d, name))]
        if missing:
            ap.error(f"{d} has no {missing[0]}; pass a directory `hpcflow tune --out` wrote")
        problem = journal_problem(os.path.join(d, "study.journal"))
        if problem:
            ap.error(f"{os.path.join(d, 'study.journal')}: {problem}")
    for job in [os.path.join(d, "best.toml") for d in args.studies] + list(args.hand):
        for seed in args.seeds:  # every job and seed checked before the first flow runs
            try:
                _, cfg = registry.load(job, [f"geometry.seed={seed}"])
            except UserError as exc:
                ap.error(" ".join(str(exc).split()))
            kind = cfg.get("job", {}).get("kind")
            if kind != "flow":  # only a flow's summary has the train and test gains of the table
                ap.error(f"{job}: [job].kind is {kind!r}, not 'flow'; pass a flow job file")
    for d in args.studies:
        print(study_line(d))
    print()
    print(f"Geometry seeds: {', '.join(map(str, args.seeds))}")  # not in the header row: a cell of its own there
    print()
    print("| job | train gain | test gain | steps taken | rejected steps |")
    print("|---|---|---|---|---|")
    for job in [os.path.join(d, "best.toml") for d in args.studies] + list(args.hand):
        g = gains(job, args.seeds)
        print(f"| {job} | {fmt(g['gain_train'])} | {fmt(g['gain_test'])} | {g['steps_taken']} | "
              f"{g['rejected_steps']} |", flush=True)


if __name__ == "__main__":
    _args.run(main)
