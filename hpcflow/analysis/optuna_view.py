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


def plot(study, view: str):
    """The figure of one view ('history', 'importances' or 'slice') of a study with completed trials."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    plt = _pyplot()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    need = 2 if view == "importances" else 1
    if len(done) < need or (view != "history" and not any(t.params for t in done)):
        raise MissingData(f"study {study.study_name!r}: {len(done)} completed trial(s) with parameters; "
                          f"the {view} view needs {need}")
    fn = {"history": ovm.plot_optimization_history, "importances": ovm.plot_param_importances,
          "slice": ovm.plot_slice}[view]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = fn(study)
    fig = np.ravel(ax)[0].figure
    fig.set_size_inches(max(6.4, fig.get_size_inches()[0]), 4.6)
    plt.close(fig)  # pyplot forgets it; the figure object stays usable
    return fig


def numbers(study) -> list:
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    out = [f"study {study.study_name}: {len(study.trials)} trials, {len(done)} complete"]
    if done and len(study.directions) == 1:
        best = study.best_trial
        out.append(f"best trial {best.number}: value {best.value:.6g} params {best.params}")
    return out
