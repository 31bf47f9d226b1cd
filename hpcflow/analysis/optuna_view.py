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


def plot(study, view: str, objective: int | None = None, *, path=None):
    """The figure of one view ('history', 'importances' or 'slice') of a study with completed trials; of a
    multi-objective study, of objective `objective` (its values, `Trial.values[i]`, as the target). `path`: the
    study's input (its tune directory, journal or URL), named with the fix where its completed trials are too few."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    plt = _pyplot()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    need = 2 if view == "importances" else 1
    usable = [t for t in done if t.params] if view != "history" else done
    if len(usable) < need:
        which = "" if view == "history" else " with parameters"
        few, why = f"{len(usable)} completed trial(s){which}", f"; the {view} view needs {need}"
        if path is not None:
            from hpcflow.analysis.study import too_few_trials

            raise too_few_trials(path, study, few, why)
        raise MissingData(f"study {study.study_name!r}: {few}{why}")
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
        warnings.filterwarnings("ignore", "Attempting to set identical low and high xlims")  # one value: ranged below
        ax = fn(study, **kw)
    if view == "slice":
        for one in np.ravel(ax):
            _range_single_value(one, done)
    fig = np.ravel(ax)[0].figure
    fig.set_size_inches(max(6.4, fig.get_size_inches()[0]), 4.6)
    _legible(fig)
    plt.close(fig)  # pyplot forgets it; the figure object stays usable
    return fig


def _legible(fig) -> None:
    """Optuna's figure with every label whole and apart: a categorical axis's choices slanted, a log axis labelled at
    its decades alone (its 2x10^0, 3x10^0 ... ran into each other), and the layout fitted to the labels (the
    importances' parameter names were cut at the figure's left edge)."""
    from matplotlib.ticker import NullFormatter

    from hpcflow.analysis.figure import literal

    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if type(ax.xaxis.get_major_formatter()).__name__ == "StrCategoryFormatter":
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())
    literal(fig)  # parameter names and choices as written, before the layout measures them
    fig.set_layout_engine("constrained")
    try:  # a layout it cannot solve (a slice plot of one point: a grid of zero size) is left as Optuna made it
        fig.draw_without_rendering()
    except (ZeroDivisionError, ValueError):
        fig.set_layout_engine("none")


#: the margin on either side of a slice plot's x range, as a share of its width (Optuna's own padding)
PADDING = 0.05


def _range_single_value(ax, trials) -> None:
    """Give a slice-plot axis whose points all lie at one x (one completed trial, a parameter newly searched) a range
    around that value, which Optuna leaves empty (low = high: matplotlib warns and widens it arbitrarily): the range
    the completed `trials` searched the parameter (its xlabel) in, with Optuna's padding (logarithmic on a log axis);
    where that is one value too (a fixed range), a decade either side on a log axis, 5 % (or 0.05 at 0) either side
    on a linear one; a categorical axis: half a category either side."""
    offsets = [c.get_offsets() for c in ax.collections]
    xs = np.concatenate([np.asarray(o)[:, 0] for o in offsets if len(o)]) if any(len(o) for o in offsets) else []
    if len(xs) == 0 or np.ptp(np.asarray(xs, dtype=float)) > 0:
        return
    x, log = float(xs[0]), ax.get_xscale() == "log"
    dists = [t.distributions[ax.get_xlabel()] for t in trials if ax.get_xlabel() in t.distributions]
    if dists and not hasattr(dists[0], "low"):  # categorical: one category shown at position 0
        ax.set_xlim(x - 0.5, x + 0.5)
        return
    low, high = min([x, *(d.low for d in dists)]), max([x, *(d.high for d in dists)])
    if log:
        low, high = np.log10(low), np.log10(high)
    pad = (high - low) * PADDING if high > low else (1.0 if log else max(abs(low) * PADDING, PADDING))
    ends = (low - pad, high + pad)
    ax.set_xlim(*(10.0 ** np.array(ends) if log else ends))


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
