"""What the study figures of analysis/optuna_view.py and `hpcflow report` say: the objective by its name and
direction, trial numbers as integers, importances over trials that searched the parameters compared, one trial-number
colour scale across the slice panels, a stepped parameter's ticks at its grid points, labels inside the figure."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

DT = FloatDistribution(1e-2, 1e4, log=True)
STEPS = IntDistribution(4, 12, step=4)


def _study(direction="maximize", objective="log_gain_test"):
    study = optuna.create_study(study_name="s", direction=direction)
    if objective is not None:  # what `hpcflow tune` records with the study
        study.set_user_attr("hpcflow_job", {"objective": objective, "space": ["flow.dt"]})
    return study


def _add(study, params: dict, dists: dict, value: float):
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))


def _plot(study, view):
    from hpcflow.analysis.optuna_view import plot

    return plot(study, view)


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _colour_bar(fig):
    return next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")


def _shown(ticks, lims):
    low, high = sorted(lims)
    return [float(t) for t in ticks if low - 1e-9 <= t <= high + 1e-9]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_objective_is_named_with_its_direction(direction):
    study = _study(direction)
    for i, dt in enumerate((0.1, 10.0, 1000.0)):
        _add(study, {"flow.dt": dt}, {"flow.dt": DT}, float(i))
    label = f"log_gain_test ({direction})"
    history = _plot(study, "history")
    assert _panels(history)[0].get_ylabel() == label
    assert label in [t.get_text() for t in _panels(history)[0].get_legend().get_texts()]
    assert _panels(_plot(study, "slice"))[0].get_ylabel() == label
    importances = _panels(_plot(study, "importances"))[0]
    assert [t.get_text() for t in importances.get_legend().get_texts()] == [label]


def test_a_study_without_a_record_says_objective_value_and_its_direction():
    study = _study("minimize", objective=None)
    _add(study, {"flow.dt": 1.0}, {"flow.dt": DT}, 1.0)
    assert _panels(_plot(study, "history"))[0].get_ylabel() == "objective value (minimize)"


def test_one_trial_is_drawn_with_integer_trial_ticks_and_a_whole_y_label():
    study = _study()
    _add(study, {"flow.dt": 3.0}, {"flow.dt": DT}, 1.0)
    history = _panels(_plot(study, "history"))[0]
    xs = _shown(history.get_xticks(), history.get_xlim())
    assert xs == [0.0], xs  # was -0.04 ... 0.04
    fig = _plot(study, "slice")
    bar = _colour_bar(fig)
    ticks = _shown(bar.get_yticks(), bar.get_ylim())
    assert ticks == [0.0], ticks  # was -0.1 ... 0.1
    fig.canvas.draw()
    box = _panels(fig)[0].yaxis.label.get_window_extent()
    assert box.x0 >= 0, box  # was cut at the figure's left edge


def test_two_trials_colour_bar_ticks_are_the_trial_numbers():
    study = _study()
    for i, dt in enumerate((0.1, 100.0)):
        _add(study, {"flow.dt": dt}, {"flow.dt": DT}, float(i))
    bar = _colour_bar(_plot(study, "slice"))
    assert _shown(bar.get_yticks(), bar.get_ylim()) == [0.0, 1.0]  # were 0, 0.25, 0.5, ...


def _changed_space():
    """Trials 0-2 searched flow.dt (and a kernel.form of one choice), trials 3-5 flow.steps only."""
    study = _study()
    one = CategoricalDistribution(["exp"])
    for i, dt in enumerate((0.1, 10.0, 1000.0)):
        _add(study, {"flow.dt": dt, "kernel.form": "exp"}, {"flow.dt": DT, "kernel.form": one}, float(i))
    for i, steps in enumerate((4, 8, 12)):
        _add(study, {"flow.steps": steps}, {"flow.steps": STEPS}, 0.3 * i)
    return study


def test_importances_compare_only_parameters_searched_together_and_say_which_trials():
    fig = _plot(_changed_space(), "importances")
    keys = {t.get_text() for t in _panels(fig)[0].get_yticklabels()}
    assert keys in ({"flow.dt"}, {"flow.steps"}), keys  # no trial has both: never rated against each other
    note = " ".join(fig.get_supxlabel().split())
    assert "3 of 6 completed trials" in note, note
    assert "kernel.form" in note and "kernel.form" not in keys, note  # one choice: 1.00 before, now left out


def test_importances_of_a_fixed_search_space_leave_nothing_out_and_say_nothing():
    study = _study()
    dists = {"flow.dt": DT, "flow.steps": STEPS}
    for i, (dt, steps) in enumerate(((0.1, 4), (10.0, 8), (1000.0, 12), (1.0, 8))):
        _add(study, {"flow.dt": dt, "flow.steps": steps}, dists, float(i % 3))
    fig = _plot(study, "importances")
    assert {t.get_text() for t in _panels(fig)[0].get_yticklabels()} == {"flow.dt", "flow.steps"}
    assert fig.get_supxlabel() == ""


def test_slice_panels_share_one_trial_number_colour_scale():
    fig = _plot(_changed_space(), "slice")
    clims = {tuple(map(float, c.get_clim())) for ax in _panels(fig) for c in ax.collections
             if c.get_array() is not None and len(c.get_array())}
    assert clims == {(0.0, 5.0)}, clims  # flow.dt's points (trials 0-2) were on their own 0..2 scale
    bar = _colour_bar(fig)
    assert tuple(map(float, bar.get_ylim())) == (0.0, 5.0)
    assert _shown(bar.get_yticks(), bar.get_ylim()) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_stepped_int_parameter_is_ticked_at_its_grid_points():
    study = _study()
    for i, steps in enumerate((4, 8, 12)):
        _add(study, {"flow.steps": steps}, {"flow.steps": STEPS}, float(i))
    ax = _panels(_plot(study, "slice"))[0]
    assert _shown(ax.get_xticks(), ax.get_xlim()) == [4.0, 8.0, 12.0]  # were 5, 6, 7 ... (or 4 ... 8)


def test_a_stepped_float_parameter_is_ticked_at_decimal_grid_points():
    study = _study()
    theta = FloatDistribution(0.0, 0.3, step=0.1)
    for i, v in enumerate((0.0, 0.1, 0.3)):
        _add(study, {"flow.theta": v}, {"flow.theta": theta}, float(i))
    ax = _panels(_plot(study, "slice"))[0]
    assert _shown(ax.get_xticks(), ax.get_xlim()) == [0.0, 0.1, 0.2, 0.3]


def test_a_finely_stepped_float_parameter_is_ticked_at_round_grid_points_in_view():
    """A step of 1e-6 on [0, 1] holds 10^6 grid points (a range may hold 10^15): the ticks are round multiples of
    the step among those in view, not every k-th point of the whole range built first."""
    study = _study()
    x = FloatDistribution(0.0, 1.0, step=1e-6)
    for i, v in enumerate((0.25, 0.5, 0.75)):
        _add(study, {"flow.x": v}, {"flow.x": x}, float(i))
    ax = _panels(_plot(study, "slice"))[0]
    shown = _shown(ax.get_xticks(), ax.get_xlim())
    assert 3 <= len(shown) <= 8 and shown == pytest.approx([round(t, 1) for t in shown], abs=1e-12), shown


def test_the_printed_lines_say_which_trials_the_importances_compare():
    from hpcflow.analysis.optuna_view import numbers

    lines = numbers(_changed_space())
    said = [line for line in lines if "importances over" in line.lower()]
    assert len(said) == 1, lines
    assert "3 of 6 completed trials" in said[0] and "kernel.form" in said[0], said


def test_a_parameter_whose_grid_changed_is_ticked_at_the_values_its_trials_took():
    study = _study()
    for i, (steps, dist) in enumerate(((4, STEPS), (8, STEPS), (10, IntDistribution(5, 50, step=5)),
                                       (20, IntDistribution(5, 50, step=5)))):
        _add(study, {"flow.steps": steps}, {"flow.steps": dist}, float(i))
    ax = _panels(_plot(study, "slice"))[0]
    assert _shown(ax.get_xticks(), ax.get_xlim()) == [4.0, 8.0, 10.0, 20.0]


def test_importances_of_a_range_changed_between_trials_compare_every_parameter():
    """flow.dt's range and flow.steps' grid changed after trial 1 (tune allows new bounds and steps): still one
    parameter set, all four trials compared."""
    study = _study()
    for i in range(4):
        dists = {"flow.dt": FloatDistribution(1e-2, 1e4 if i < 2 else 1e3, log=True),
                 "flow.steps": STEPS if i < 2 else IntDistribution(5, 50, step=5)}
        _add(study, {"flow.dt": 10.0 ** i, "flow.steps": (4, 8, 10, 20)[i]}, dists, float(i % 3))
    fig = _plot(study, "importances")
    assert {t.get_text() for t in _panels(fig)[0].get_yticklabels()} == {"flow.dt", "flow.steps"}
    assert fig.get_supxlabel() == ""
