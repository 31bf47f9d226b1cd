"""How `hpcflow tune` and the report write a trial's numbers: floats to 4 significant digits, as the report's other
numbers, and reading as floats (1.0 is '1.0', not '1'); a per-trial line's objective value with 4 digits too, with
more only where another trial's different value would read the same."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution


def test_params_text_writes_floats_as_floats_to_4_significant_digits():
    from hpcflow.tune.space import params_text

    text = params_text({"flow.theta": 1.0, "flow.dt": 22.8123, "flow.steps": 20, "kernel.form": "gauss",
                        "big": 1234.0, "small": 2.5e-7, "zero": 0.0, "neg": -3.0, "huge": 123456.0})
    assert text == ("flow.theta = 1.0, flow.dt = 22.81, flow.steps = 20, kernel.form = gauss, big = 1234.0, "
                    "small = 2.5e-07, zero = 0.0, neg = -3.0, huge = 1.235e+05")
    shown = dict(part.split(" = ") for part in text.split(", "))
    for name in ("flow.theta", "flow.dt", "big", "small", "zero", "neg", "huge"):  # a float reads as one
        assert not shown[name].lstrip("-").isdigit(), shown[name]
    assert shown["flow.steps"] == "20"


def _study():
    study = optuna.create_study(study_name="s", direction="minimize")
    dists = {"flow.dt": FloatDistribution(0.1, 100.0, log=True), "flow.steps": IntDistribution(1, 50),
             "kernel.form": CategoricalDistribution(["exp", "gauss"])}
    rows = (({"flow.dt": 1.0, "flow.steps": 20, "kernel.form": "exp"}, 0.0123461),  # σ a floor apart
            ({"flow.dt": 22.8123456, "flow.steps": 5, "kernel.form": "gauss"}, 0.0123452),
            ({"flow.dt": 3.3333333, "flow.steps": 7, "kernel.form": "exp"}, 0.5678912))
    for params, value in rows:
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value,
                                                  user_attrs={"run_dir": "trials/0000"}))
    return study


def test_per_trial_lines_use_the_reports_digits_and_tell_close_values_apart(tmp_path):
    from hpcflow.tune.study import _trial_line

    study = _study()
    lines = [_trial_line(study, n, str(tmp_path)) for n in range(3)]
    assert lines[0].startswith("hpcflow tune: trial 0 COMPLETE value=0.012346 flow.dt=1.0 flow.steps=20 "
                               "kernel.form=exp ("), lines[0]
    assert lines[1].startswith("hpcflow tune: trial 1 COMPLETE value=0.012345 flow.dt=22.81 flow.steps=5 "
                               "kernel.form=gauss ("), lines[1]
    assert lines[2].startswith("hpcflow tune: trial 2 COMPLETE value=0.5679 flow.dt=3.333 "), lines[2]
    values = [line.split("value=")[1].split()[0] for line in lines]
    assert values[0] != values[1] and float(values[0]) > float(values[1])  # which is better, still seen


def test_value_text_keeps_4_digits_unless_more_tell_two_values_apart():
    from hpcflow.tune.space import value_text

    assert value_text(0.5678912) == "0.5679"
    assert value_text(2.0, [3.0]) == "2.0"
    assert value_text(1.00001, [1.00002]) == "1.00001" and value_text(1.00002, [1.00001]) == "1.00002"
    assert value_text(0.25, [0.25]) == "0.25"  # an equal value needs no more
    a, b = 0.1 + 0.2, 0.3  # apart in the 17th digit
    assert value_text(a, [b]) != value_text(b, [a]) and float(value_text(a, [b])) == a
