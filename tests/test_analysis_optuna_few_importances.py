"""Parameter importances from fewer completed trials than MIN_IMPORTANCE_TRIALS (41) come with a short warning,
in the figure (inside it) and in the printed lines; from enough trials, none. Two trials were shown bare: from two
the bars only say which parameter differs most between them, whatever the objective."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution

DISTS = {"flow.dt": FloatDistribution(1e-2, 1e4, log=True), "kernel.width": FloatDistribution(0.01, 1.0)}


def _study(n):
    study = optuna.create_study(study_name="s", direction="maximize")
    for i in range(n):
        study.add_trial(optuna.trial.create_trial(
            params={"flow.dt": 10.0 ** (i % 5 - 1), "kernel.width": 0.02 + 0.02 * i}, distributions=DISTS,
            value=float((i * 7) % 5) + 0.1 * i))
    return study


def _warnings(fig) -> list:
    fig.canvas.draw()
    box = fig.bbox
    said = [t for ax in fig.axes for t in ax.texts if "too few" in t.get_text()]
    for t in said:  # drawn whole inside the figure
        e = t.get_window_extent()
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, (e, box)
    return [" ".join(t.get_text().split()) for t in said]


def test_importances_of_two_trials_say_they_are_too_few():
    from hpcflow.analysis.optuna_view import numbers, plot

    study = _study(2)
    said = _warnings(plot(study, "importances"))
    assert said == ["only 2 completed trials: too few for the importances to mean much (at least 41 wanted)"], said
    lines = numbers(study)
    assert [x for x in lines if "too few" in x] == [
        "Parameter importances: only 2 completed trials: too few for the importances to mean much "
        "(at least 41 wanted)"], lines
    assert _warnings(plot(study, "slice")) == []  # the importances' warning alone


def test_importances_of_enough_trials_say_nothing_of_it():
    from hpcflow.analysis.optuna_view import MIN_IMPORTANCE_TRIALS, numbers, plot

    assert MIN_IMPORTANCE_TRIALS == 41
    study = _study(MIN_IMPORTANCE_TRIALS)
    assert _warnings(plot(study, "importances")) == []
    assert not [x for x in numbers(study) if "too few" in x]
    nine = _study(MIN_IMPORTANCE_TRIALS - 1)
    assert len(_warnings(plot(nine, "importances"))) == 1
