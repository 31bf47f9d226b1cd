"""An Optuna study at a glance: optimisation history, parameter importances and slice plot, drawn by
optuna.visualization.matplotlib (which uses pyplot; the Agg backend is selected here)."""

from __future__ import annotations

import warnings

import numpy as np

from hpcflow.analysis.rundir import MissingData

VIEWS = ("history", "importances", "slice")


def _pyplot():
    from hpcflow.analysis.figure import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def objectives(study) -> list:
    """(file-name tag, objective index) of each view set to draw: ("", None) for a single-objective study; for a
    multi-objective one ("_objective{i}", i) per objective, each drawn on its own (Optuna's views draw one)."""
    n = len(study.directions)
    return [("", None)] if n == 1 else [(f"_objective{i}", i) for i in range(n)]


def objective_name(study, i) -> str:
    """Objective i's name: the study's metric name (`Study.set_metric_names`), else 'objective i'."""
    names = study.metric_names
    return names[i] if names and i < len(names) else f"objective {i}"


def plot(study, view: str, objective: int | None = None):
    """The figure of one view ('history', 'importances' or 'slice') of a study with completed trials; of a
    multi-objective study, of objective `objective` (its values, `Trial.values[i]`, as the target)."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    plt = _pyplot()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    need = 2 if view == "importances" else 1
    usable = [t for t in done if t.params] if view != "history" else done
    if len(usable) < need:
        which = "" if view == "history" else " with parameters"
        raise MissingData(f"study {study.study_name!r}: {len(usable)} completed trial(s){which}; the {view} view "
                          f"needs {need}")
    if len(study.directions) > 1 and objective is None:
        raise MissingData(f"study {study.study_name!r} has {len(study.directions)} objectives; draw one at a time "
                          "(objective=i)")
    fn = {"history": ovm.plot_optimization_history, "importances": ovm.plot_param_importances,
          "slice": ovm.plot_slice}[view]
    kw = {}
    if objective is not None:  # importances rank parameters by how they lower the target: a maximised one negated
        maximise = view == "importances" and study.directions[objective] == optuna.study.StudyDirection.MAXIMIZE
        sign = -1.0 if maximise else 1.0
        kw = {"target": lambda t: sign * t.values[objective], "target_name": objective_name(study, objective)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes the importances")  # its sign is set
        ax = fn(study, **kw)
    fig = np.ravel(ax)[0].figure
    fig.set_size_inches(max(6.4, fig.get_size_inches()[0]), 4.6)
    plt.close(fig)  # pyplot forgets it; the figure object stays usable
    return fig


def numbers(study) -> list:
    """The study's trial counts and its best trial (single objective) or Pareto front (several)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    out = [f"study {study.study_name}: {len(study.trials)} trials, {len(done)} complete"]
    if done and len(study.directions) == 1:
        best = study.best_trial
        out.append(f"best trial {best.number}: value {best.value:.6g} params {best.params}")
    elif done:
        names = ", ".join(f"{objective_name(study, i)} ({d.name.lower()})" for i, d in enumerate(study.directions))
        out.append(f"objectives: {names}")
        out += [f"Pareto-front trial {t.number}: values {[float(f'{v:.6g}') for v in t.values]} params {t.params}"
                for t in study.best_trials]
    return out
