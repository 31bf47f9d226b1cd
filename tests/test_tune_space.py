"""[tune] validation (one-line errors naming the key, exit 2, nothing written), the TOML writer, trial seeds."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError, MissingDependencyError
from hpcflow.jobs import registry
from hpcflow.jobs.schema import SEED_MAX
from hpcflow.jobs import toml_out
from hpcflow.tune.objective import value
from hpcflow.tune.trial import trial_points, trial_seeds

BASE = """
[job]
kind = "flow"
[geometry]
n_train = 60
n_test = 60
[kernel]
name = "delta"
[flow]
dt = 1.0
steps = 2
loss = "ultralocal"
"""


def _job(tmp_path, tune: str, base: str = BASE):
    p = tmp_path / "job.toml"
    p.write_text(base + tune)
    return p


@pytest.mark.parametrize("tune, needle", [
    ('[tune.space]\n"flow.nope" = {low = 1, high = 2}\n', '[tune.space]."flow.nope" names no job setting'),
    ('[tune.space]\n"flow.dt" = {low = 2.0, high = 1.0}\n', '"flow.dt": low = 2.0 must be below high'),
    ('[tune.space]\n"flow.dt" = {low = 0.0, high = 1.0}\n', '"flow.dt".low = 0.0: must lie in (0'),
    ('[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0, log = true, step = 0.1}\n', "cannot be combined with step"),
    ('[tune.space]\n"flow.steps" = {low = 1.5, high = 4}\n', '"flow.steps".low = 1.5 must be an integer'),
    ('[tune.space]\n"flow.loss" = {choices = ["sigma", "l2"]}\n', '"flow.loss".choices[1] = \'l2\' is not one of'),
    ('[tune.space]\n"flow.loss" = {low = 1, high = 2}\n', "a range needs a numeric setting"),
    ('[tune.space]\n"geometry.seed" = {low = 1, high = 9}\n', "draws its own points from [tune].seed"),
    ('[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0, lg = true}\n', '"flow.dt".lg is an unknown key'),
    ('[tune.space]\n"geometry.chart" = {choices = [[0, 1], [1, 2]]}\n',
     '"geometry.chart".choices[0] = [0, 1] is a list; choices must be single values'),
    ('[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0, step = 0.4}\n',
     '"flow.dt".step = 0.4 does not divide high - low = 0.9 exactly (Optuna would lower high to 0.9)'),
    ('[tune.space]\n"flow.steps" = {low = 1, high = 10, step = 4}\n',
     '"flow.steps".step = 4 does not divide high - low = 9 exactly (Optuna would lower high to 9)'),
    ('[tune]\nobjective = "accuracy"\n[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0}\n', "[tune].objective"),
    ('[tune]\nspace = {}\n', "[tune].space is empty"),
    ('[tune]\nbogus = 1\n[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0}\n', "[tune].bogus is an unknown key"),
])
def test_bad_tune_table_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, tune, needle):
    job = _job(tmp_path, tune)
    for argv in (["tune", str(job), "--trials", "1", "--out", str(tmp_path / "study")],
                 ["run", str(job), "--out", str(tmp_path / "run")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]


def _nn_base() -> str:
    from test_tune_nn import JOB as NN_JOB

    return NN_JOB.split("[tune]")[0]


@pytest.mark.parametrize("kind, name, spec, why", [
    ("flow", "job.description", '{choices = ["a", "b"]}', "name the job"),
    ("flow", "job.kind", '{choices = ["flow"]}', "name the job"),
    ("flow", "checkpoint.every", "{low = 1, high = 3}", "when checkpoints are written"),
    ("nn", "checkpoint.seconds", "{low = 1.0, high = 60.0}", "when checkpoints are written"),
    ("nn", "ntk.enabled", "{choices = [true, false]}", "the NTK is tracked beside the training"),
    ("nn", "ntk.n_train_points", "{low = 2, high = 8}", "the NTK is tracked beside the training"),
    ("nn", "training.check_replicas", "{choices = [true, false]}", "compares the ranks' parameters"),
])
def test_a_setting_that_cannot_change_the_objective_is_refused_in_the_space(tmp_path, capsys, kind, name, spec, why):
    """A search over it only spends trials: refused in one line naming it and why, exit 2, nothing written (a
    [job] setting was said to name no job setting)."""
    base = BASE if kind == "flow" else _nn_base()
    job = _job(tmp_path, f'[tune.space]\n"{name}" = {spec}\n', base)
    assert main(["tune", str(job), "--trials", "1", "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert f'[tune.space]."{name}" is not searchable: ' in err and why in err and err.count("\n") == 1, err
    assert "remove it from [tune.space]" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]


@pytest.mark.parametrize("kind, name, spec, on", [
    ("nn", "training.threads", "{low = 1, high = 2}", ""),  # torch's sums round otherwise: the network differs
    # the network trained on them may diverge: no value (where their section is switched on)
    ("nn", "kernel_flow.n_train", "{low = 50, high = 100}",
     "[kernel_flow]\nenabled = true\nn_train = 100\nn_test = 100\n"),
    ("nn", "width_sweep.epochs", "{low = 1, high = 3}", "[width_sweep]\nwidths = [4]\nn_train = 100\n"),
    ("flow", "flow.tile", "{low = 16, high = 64}", ""),
])
def test_settings_that_may_change_a_trials_outcome_stay_searchable(tmp_path, kind, name, spec, on):
    from hpcflow.tune.study import load

    base = BASE if kind == "flow" else _nn_base()
    job = _job(tmp_path, f'{on}[tune.space]\n"{name}" = {spec}\n', base)
    assert [p.name for p in load(job).tune["space"]] == [name]


def test_tune_only_on_flow_and_nn_jobs_and_objective_needs_test_points(tmp_path):
    other = "[job]\nkind = \"distance_scaling\"\n[tune.space]\n\"scaling.seed\" = {low = 0, high = 3}\n"
    with pytest.raises(ConfigError, match=r"\[tune\] applies only to job kinds flow, nn; remove it"):
        registry.load(_job(tmp_path, "", other))
    from hpcflow.tune.study import load

    job = _job(tmp_path, '[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0}\n', BASE.replace("n_test = 60", "n_test = 0"))
    with pytest.raises(ConfigError, match="needs test points"):
        load(job)
    assert load(job, ["tune.objective=log_gain_train"]).tune["direction"] == "maximize"


def test_run_ignores_the_tune_table(tmp_path):
    """`hpcflow run` of a job with [tune] gives the same validated config as without it."""
    tune = '[tune]\nobjective = "sigma_test"\n[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0}\n"flow.steps" = {low = 1, high = 5}\n'
    _, cfg, extras = registry.load_with_extras(_job(tmp_path, tune))
    plain = tmp_path / "plain.toml"
    plain.write_text(BASE)
    assert cfg == registry.load(plain)[1]
    t = extras["tune"]
    assert t["direction"] == "minimize"  # the objective's own direction
    kinds = {p.name: (p.kind, p.low, p.high) for p in t["space"]}
    assert kinds == {"flow.dt": ("float", 0.1, 1.0), "flow.steps": ("int", 1, 5)}  # types from the job schema
    assert main(["run", str(_job(tmp_path, tune)), "--out", str(tmp_path / "r")]) == 0


def test_gp_sampler_without_torch_is_a_clear_exit_2(tmp_path, monkeypatch, capsys):
    from hpcflow.tune.study import check_sampler

    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MissingDependencyError, match="pip install torch"):
        check_sampler("gp")
    job = _job(tmp_path, '[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0}\n')
    assert main(["tune", str(job), "--trials", "1", "--out", str(tmp_path / "s"), "--sampler", "gp"]) == 2
    assert "needs torch" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_toml_writer_round_trips_job_like_data():
    data = {"job": {"kind": "flow", "description": 'quote " back\\slash\ttab\nnewline é'},
            "geometry": {"chart": [0, 1], "n_train": 2500, "psi": -0.0, "seed": 2 ** 62 + 7},
            "flow": {"dt": 1e-05, "clip": 1.5e300, "weighted": True, "x": float("inf"), "y": 3.0},
            "tune": {"space": {"flow.dt": {"low": 0.1, "high": 30.0, "log": True},
                               "kernel.form": {"choices": ["exp", "gauss"]}}},
            "a": {"b": {"c": {"d": 1}}}, "top": [[1, 2], ["x"]]}
    text = toml_out.dumps(data, header="two\nlines", nonfinite=True)
    assert text.startswith("# two\n# lines\n")
    back = tomllib.loads(text)
    assert back == data
    assert math.copysign(1.0, back["geometry"]["psi"]) == -1.0
    assert isinstance(back["flow"]["y"], float)


def test_trial_seeds_are_reproducible_distinct_and_give_disjoint_point_sets():
    seeds = [trial_seeds(7, n) for n in range(50)]
    flat = [s for pair in seeds for s in pair]
    assert len(set(flat)) == len(flat) and all(0 <= s <= SEED_MAX for s in flat)  # a job file can hold them
    assert seeds == [trial_seeds(7, n) for n in range(50)] and trial_seeds(8, 0) != seeds[0]
    geo = {"manifold": "fermat", "dim": 3, "psi": 0.0, "chart": [0, 1], "n_train": 30, "n_test": 20, "seed": 0}
    sets = []
    for n in range(3):
        train, test = trial_points(geo, trial_seeds(7, n))
        assert len(train) == 30 and len(test) == 20
        sets += [train.points, test.points]
    rows = np.concatenate(sets)
    # no point appears twice: the smallest distance between any two rows is far above rounding
    d = np.abs(rows[:, None, :] - rows[None, :, :]).max(axis=2)
    d[np.diag_indices_from(d)] = np.inf
    assert d.min() > 1e-6


def test_objectives_from_histories():
    tr, te = [0.4, 0.2, 0.1], [0.5, 0.25, 0.3]
    assert value("log_gain_train", tr, te) == pytest.approx(math.log(4.0), rel=1e-15)
    assert value("log_gain_test", tr, te) == pytest.approx(math.log(0.5 / 0.3), rel=1e-15)
    assert value("log_gain_test_best", tr, te) == pytest.approx(math.log(2.0), rel=1e-15)
    assert value("sigma_test", tr, te) == 0.3
    assert math.isnan(value("log_gain_test", tr, [0.5, float("nan")]))


JOBS = Path(__file__).resolve().parents[1] / "jobs"


@pytest.mark.parametrize("kernel, n_train, paper", [
    ("relu", 2500, {"flow.dt": 0.1, "kernel.w_std": 5.716, "kernel.b_std": 80.52}),
    ("gaussian", 2500, {"flow.dt": 0.1583, "kernel.width": 1 / 30}),
    ("delta", 1000, {"flow.dt": 0.3162}),
])
def test_table1_searches_hold_the_papers_values(kernel, n_train, paper):
    _, cfg, extras = registry.load_with_extras(JOBS / f"tune_{kernel}.toml")
    assert (cfg["geometry"]["n_train"], cfg["flow"]["loss"], cfg["flow"]["steps"]) == (n_train, "sigma", 50)
    space = {p.name: p for p in extras["tune"]["space"]}
    for name, v in paper.items():
        assert space[name].low <= v <= space[name].high
        registry.load(JOBS / f"tune_{kernel}.toml", [f"{name}={v}"])  # the paper's value is a valid job


def test_every_job_file_says_what_it_reproduces_and_how_long_it_runs():
    for path in sorted(JOBS.glob("*.toml")):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
        assert header and "on 2 cores" in " ".join(header), path  # what it reproduces, then its run time


def test_a_heartbeat_longer_than_a_thread_can_wait_is_refused_and_the_longest_allowed_beats(tmp_path, capsys):
    """[tune].heartbeat_seconds is a thread's wait: above threading.TIMEOUT_MAX the heartbeat thread would die
    (OverflowError) while the study went on unwatched."""
    import threading

    from hpcflow.tune.space import TUNE_SECTION
    from hpcflow.tune.storage import heartbeat

    longest = int(threading.TIMEOUT_MAX)
    job = _job(tmp_path, '[tune.space]\n"flow.dt" = {low = 0.1, high = 1.0}\n')
    for argv in (["tune", str(job), "--trials", "1", "--out", str(tmp_path / "study")],
                 ["run", str(job), "--out", str(tmp_path / "run")]):
        assert main([*argv, "--set", f"tune.heartbeat_seconds={longest + 1}", "--set", "tune.stale_seconds=3e10"]) == 2
        err = capsys.readouterr().err
        assert "[tune].heartbeat_seconds" in err and str(longest) in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]
    assert TUNE_SECTION["heartbeat_seconds"].hi == longest
    died = []
    old_hook, threading.excepthook = threading.excepthook, died.append
    try:
        with heartbeat(None, 0, longest):  # the longest accepted period: a wait the thread can make
            pass
    finally:
        threading.excepthook = old_hook
    assert died == []


@pytest.mark.parametrize("low, high, step, divides", [
    (0.0, 1.0, 0.1, True), (0.1, 0.3, 0.05, True), (-1.5, 1.5, 0.25, True), (0.001, 0.01, 0.001, True),
    (0.0, 1.0, 0.3, False), (0.1, 1.0, 0.4, False), (0, 10, 5, True), (1, 10, 4, False), (0, 9, 3, True),
])
def test_a_step_must_divide_the_range_as_written_in_decimals(low, high, step, divides):
    """0.1-steps over [0, 1] pass although 1.0 / 0.1 is not a whole number in binary floating point; a step that
    does not divide the range is refused, naming the high that Optuna's own distribution would cut it to."""
    import optuna

    from hpcflow.tune.space import validate_section
    from hpcflow.jobs.schema import Field

    kind = int if isinstance(step, int) else float
    schema = {"flow": {"x": Field(kind, lo=-10, hi=10)}}
    table = {"space": {"flow.x": {"low": low, "high": high, "step": step}}}
    dist = (optuna.distributions.IntDistribution if kind is int else optuna.distributions.FloatDistribution)(
        low, high, step=step)
    if divides:
        (p,) = validate_section(table, schema)["space"]
        assert (p.low, p.high, p.step) == (low, high, step)
        assert dist.high == high  # Optuna keeps the range too
        return
    with pytest.raises(ConfigError, match=r'\[tune.space\]."flow.x".step = .* does not divide') as err:
        validate_section(table, schema)
    assert f"Optuna would lower high to {dist.high!r})" in str(err.value)


@pytest.mark.parametrize("step, refused", [(1e-30, True), (1e-20, True), (9e-17, True), (2e-16, False),
                                           (1e-10, False)])
def test_a_float_step_finer_than_float64_can_tell_apart_is_refused_in_one_line(step, refused):
    """[0, 0.1] in steps of 1e-30 has 1e29 grid points, which no float64 tells apart (and which ended in a decimal
    traceback); up to 1e15 points (from step 1e-16 on here) the range is checked as any other."""
    from hpcflow.jobs.schema import Field
    from hpcflow.tune.space import validate_section

    table = {"space": {"flow.x": {"low": 0.0, "high": 0.1, "step": step}}}
    schema = {"flow": {"x": Field(float, lo=0.0, hi=1.0)}}
    if not refused:
        (p,) = validate_section(table, schema)["space"]
        assert p.step == step
        return
    with pytest.raises(ConfigError) as err:
        validate_section(table, schema)
    message = str(err.value)
    assert "\n" not in message and f'"flow.x".step = {step!r} makes' in message and "or none" in message
    assert float(message.split("a step of at least ")[1].split(",")[0]) == pytest.approx(1e-16, rel=1e-3)


def test_an_int_step_is_checked_exactly_at_19_digits():
    """Int ranges of 19 digits (TOML's largest ints) are divided exactly: 3 divides 0..3·(10^18 - 1) and does not
    divide 0..3·(10^18 - 1) + 2, whose refusal names the whole steps around it."""
    from hpcflow.jobs.schema import Field
    from hpcflow.tune.space import validate_section

    big = 3 * (10**18 - 1)
    schema = {"flow": {"x": Field(int, lo=0, hi=2**63 - 1)}}
    (p,) = validate_section({"space": {"flow.x": {"low": 0, "high": big, "step": 3}}}, schema)["space"]
    assert (p.low, p.high, p.step) == (0, big, 3)
    with pytest.raises(ConfigError, match=f"lower high to {big}\\); make high .* e.g. high = {big} or {big + 3}"):
        validate_section({"space": {"flow.x": {"low": 0, "high": big + 2, "step": 3}}}, schema)


@pytest.mark.parametrize("low, high, step, hi, highs", [
    (2, 4, 10, 100, [12]),            # the step is longer than the range: the whole step below is low itself
    (0.0, 0.3, 0.5, 1.0, [0.5]),
    (1, 10, 4, 100, [9, 13]),
    (0, 9, 4, 10, [8]),               # 12 lies beyond the setting's own bound (hi = 10)
    (2, 4, 10, 10, []),               # neither: a step that divides the range is suggested instead
])
def test_every_high_a_step_refusal_suggests_is_accepted(low, high, step, hi, highs):
    """A refused step names the highs that fix the range: each of them makes a range the space accepts (whole steps
    above low, within the setting), and none that low = high or the setting's bound would refuse in turn."""
    import re

    from hpcflow.jobs.schema import Field
    from hpcflow.tune.space import validate_section

    kind = int if isinstance(step, int) else float
    schema = {"flow": {"x": Field(kind, lo=-10, hi=hi)}}
    with pytest.raises(ConfigError) as err:
        validate_section({"space": {"flow.x": {"low": low, "high": high, "step": step}}}, schema)
    message = str(err.value)
    assert "\n" not in message and "does not divide" in message
    said = re.search(r"e\.g\. high = (.*)$", message)
    suggested = [] if said is None else [kind(v) for v in said.group(1).split(" or ")]
    assert suggested == highs, message
    for h in suggested:
        assert h > low and math.isclose((h - low) / step, round((h - low) / step))
        (p,) = validate_section({"space": {"flow.x": {"low": low, "high": h, "step": step}}}, schema)["space"]
        assert p.high == h
    if not highs:
        assert "give a step that divides" in message


def test_a_step_longer_than_the_range_suggests_only_the_high_above(tmp_path, capsys):
    """flow.steps in 2..4 by 10: the refusal suggests high = 12 alone (high = 2 would be refused as low = high),
    and a study with high = 12 passes the check."""
    job = _job(tmp_path, '[tune.space]\n"flow.steps" = {low = 2, high = 4, step = 10}\n')
    assert main(["tune", str(job), "--trials", "1", "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith("e.g. high = 12"), err
    from hpcflow.tune.study import load

    job.write_text(BASE + '[tune.space]\n"flow.steps" = {low = 2, high = 12, step = 10}\n')
    assert [p.high for p in load(str(job)).tune["space"]] == [12]


@pytest.mark.parametrize("kind, setting, space, refused", [
    ("flow", "flow.steps=0", '"flow.dt" = {low = 0.1, high = 1.0}', "[flow].steps = 0: no trial would run a flow step"),
    ("flow", None, '"flow.steps" = {choices = [0]}',
     '[tune.space]."flow.steps".choices = [0]: no trial would run a flow step'),
    ("flow", "flow.steps=0", '"flow.steps" = {low = 0, high = 2}', None),  # trials that draw 1 or 2 run steps
    ("flow", "flow.steps=0", '"flow.steps" = {choices = [0, 3]}', None),
    ("nn", "training.epochs=0", '"training.lr" = {low = 1e-3, high = 3e-2, log = true}',
     "[training].epochs = 0: no trial would run a training epoch"),
    ("nn", "training.epochs=0", '"training.epochs" = {low = 0, high = 2}', None),
])
def test_a_study_whose_trials_do_no_work_is_refused_before_any(tmp_path, capsys, kind, setting, space, refused):
    """flow.steps = 0 (an nn job's training.epochs = 0) made every trial complete at its start value (a gain of 0
    each) and best.toml name trial 0 arbitrarily; such a study is refused in one line naming the setting and the
    fix, exit 2, nothing written, unless [tune.space] draws a value above 0 of it."""
    from hpcflow.tune.study import load

    base = BASE.replace("steps = 2", "steps = 0") if kind == "flow" else _nn_base().replace("epochs = 3", "epochs = 0")
    job = _job(tmp_path, f"[tune]\npruner = \"none\"\n[tune.space]\n{space}\n", base)
    out = tmp_path / "study"
    if refused is None:
        load(str(job))  # every check of the job and its space passes
        return
    given = [] if setting is None else ["--set", setting]  # (the job file's 0 again: the refusal names the --set)
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), *given]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and refused in err and (setting is None or f"(from --set {setting})" in err), err
    assert ("search \"" in err or "add a choice above 0" in err) and not out.exists()
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "1",
                 *given, "--check"]) == 2  # submit's checks refuse it alike
    assert refused in capsys.readouterr().err and not out.exists()
