"""The slice plot of a parameter with one value among the completed trials (one trial, or a parameter newly added to
the search): its axis spans the range the parameter was searched in, without matplotlib's warning about identical
limits, which Optuna's padding of a zero width used to raise in `hpcflow report` and optuna_view.py."""

from __future__ import annotations

import math
import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from analysis_runs import script

DT = FloatDistribution(1e-2, 1e4, log=True)
SPACE = {"flow.dt": DT, "flow.theta": FloatDistribution(0.0, 1.0),
         "kernel.form": CategoricalDistribution(["exp", "gauss"]), "flow.steps": IntDistribution(10, 50)}


def _study(storage=None):
    return optuna.create_study(study_name="s", storage=storage, direction="maximize")


def _slice(study) -> dict:
    """{parameter: x limits} of the study's slice plot, drawn with every warning an error."""
    from hpcflow.analysis.optuna_view import plot

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot(study, "slice")
    return {ax.get_xlabel(): ax.get_xlim() for ax in fig.axes if ax.get_xlabel() not in ("", "Trial")}


def test_one_completed_trial_draws_each_parameter_over_its_searched_range_without_a_warning():
    """One complete trial: the slice plot warned "Attempting to set identical low and high xlims" for every
    parameter. Now no warning, and each numeric axis spans its searched range (with a margin, within a tenth of
    the range beyond it: on the log axis in decades), the categorical one its single category."""
    study = _study()
    params = {"flow.dt": 300.0, "flow.theta": 0.25, "kernel.form": "gauss", "flow.steps": 20}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, value=1.0))
    lims = _slice(study)
    assert set(lims) == set(SPACE), lims
    lo, hi = (math.log10(v) for v in lims["flow.dt"])
    assert -2.6 < lo < -2 and 4 < hi < 4.6, lims["flow.dt"]  # 1e-2 .. 1e4: six decades
    lo, hi = lims["flow.theta"]
    assert -0.1 < lo < 0 and 1 < hi < 1.1, lims["flow.theta"]
    lo, hi = lims["flow.steps"]
    assert 6 < lo < 10 and 50 < hi < 54, lims["flow.steps"]
    lo, hi = lims["kernel.form"]
    assert lo < 0 < hi and hi - lo <= 2, lims["kernel.form"]  # the one category shown, at position 0


def test_a_parameter_added_to_the_search_spans_its_range_and_the_others_are_left_as_optuna_draws_them():
    """kernel.width searched from trial 2 on: its axis had one value (the warning); flow.dt, with three, is drawn as
    Optuna draws it."""
    from optuna.visualization import matplotlib as ovm

    study = _study()
    width = FloatDistribution(1e-3, 1.0, log=True)
    for i, dt in enumerate((0.1, 10.0, 1000.0)):
        params, dists = {"flow.dt": dt}, {"flow.dt": DT}
        if i == 2:
            params["kernel.width"], dists["kernel.width"] = 0.03, width
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(i)))
    lims = _slice(study)
    lo, hi = (math.log10(v) for v in lims["kernel.width"])
    assert -3.4 < lo < -3 and 0 < hi < 0.4, lims["kernel.width"]  # 1e-3 .. 1: three decades
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = {ax.get_xlabel(): ax.get_xlim() for ax in ovm.plot_slice(study).ravel()}
    assert lims["flow.dt"] == theirs["flow.dt"], (lims, theirs)


def test_optuna_view_script_on_a_one_trial_study_prints_no_warning(tmp_path):
    """analysis/optuna_view.py printed matplotlib's UserWarning on stderr."""
    journal = tmp_path / "one.journal"
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = _study(JournalStorage(JournalFileBackend(str(journal))))
    study.add_trial(optuna.trial.create_trial(params={"flow.dt": 3.0}, distributions={"flow.dt": DT}, value=1.0))
    proc = script("optuna_view", journal, "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "xlims" not in proc.stderr, proc.stderr
    assert (tmp_path / "figs" / "optuna_slice.png").is_file()


def _labelled_in_view(ax) -> list:
    """The x positions of the tick labels with text that lie within the axis' view, after a draw."""
    ax.figure.draw_without_rendering()
    low, high = sorted(ax.get_xlim())
    labels = ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
    return sorted(t.get_position()[0] for t in labels if t.get_text() and low <= t.get_position()[0] <= high)


def test_a_log_axis_whose_trials_lie_within_one_decade_has_labelled_ticks():
    """flow.dt of 1.19 ... 3.46 on a log axis (view about 1.13 ... 3.65: no power of ten in it) had no tick label at
    all (the decades alone were labelled); now two or more labels in view, at distinct positions. A range of several
    decades keeps its labels at the decades (10^-1, 10^0, 10^1 of 0.5 ... 30)."""
    from hpcflow.analysis.optuna_view import plot

    for values, decades in (((1.19, 2.0, 3.46), False), ((1.19, 1.2, 1.23), False), ((0.5, 2.0, 30.0), True)):
        study = _study()
        for i, dt in enumerate(values):
            study.add_trial(optuna.trial.create_trial(params={"flow.dt": dt}, distributions={"flow.dt": DT},
                                                      value=float(i)))
        ax = next(a for a in plot(study, "slice").axes if a.get_xlabel() == "flow.dt")
        assert ax.get_xscale() == "log"
        shown = _labelled_in_view(ax)
        assert len(shown) >= 2 and len(set(shown)) == len(shown), (values, ax.get_xlim(), shown)
        if decades:
            assert all(math.isclose(math.log10(x), round(math.log10(x))) for x in shown), shown
