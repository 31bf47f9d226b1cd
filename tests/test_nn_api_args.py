"""The `hpcflow.nn` Python API refuses bad input before any work with one TypeError / ValueError naming the argument,
the value and the fix: data that are not MetricData or too few points to train on or measure (σ of one point is 0
for any metric), MetricMLP sizes that are fractional, empty or not a packed metric's, and TrainConfig values that
the job file's [training] section refuses (the two accept the same values). Under MPI every rank refuses alike."""

import json
import math
import os
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.errors import ConfigError  # noqa: E402
from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.jobs.schema import validate, validate_field  # noqa: E402
from hpcflow.nn import job  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.replicas import Shard  # noqa: E402
from hpcflow.nn.train import FIELDS, TrainConfig, api_value, train  # noqa: E402
from test_flow_legs import _mpi  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "nn_api_checks.py")


@pytest.fixture(scope="module")
def points():
    X = Hypersurface.fermat(3)
    return X.sample(40, seed=0), X.sample(20, seed=1)


@pytest.fixture(scope="module")
def sets(points):
    return MetricData.from_pointset(points[0]), MetricData.from_pointset(points[1])


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def _refused_before_any_work(train_data, val_data, cfg, error, words):
    """`train` raises `error` with all `words` in one line, before the first σ evaluation or step."""
    model = MetricMLP(10, depth=1, width=4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    with pytest.raises(error) as exc:
        train(model, train_data, val_data, cfg, on_epoch=lambda *a: calls.append(a), on_step=calls.append)
    text = _one_line(exc)
    assert all(w in text for w in words), text
    assert not calls and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# ---- train: the data ----------------------------------------------------------------------------------------
FIX = "pass MetricData.from_pointset(ps)"
DATA_CASES = {  # name -> (train_data, val_data from (train, val, train PointSet, val PointSet)), error, words
    "val None": (lambda t, v, pt, pv: (t, None), TypeError, ["val_data is None", FIX]),
    "train PointSet": (lambda t, v, pt, pv: (pt, v), TypeError, ["train_data is a PointSet", FIX]),
    "val Shard of a PointSet": (lambda t, v, pt, pv: (t, Shard(pv, 0, len(pv))), TypeError,
                                ["val_data is a PointSet", FIX]),
    "val empty": (lambda t, v, pt, pv: (t, v[:0]), ValueError, ["val_data has 0 points", "pass >= 2"]),
    "val 1 point": (lambda t, v, pt, pv: (t, v[:1]), ValueError,
                    ["val_data has 1 point", "pass >= 2", "sigma_val would be 0"]),
    "train empty": (lambda t, v, pt, pv: (t[:0], v), ValueError, ["train_data has 0 points", "pass >= 2"]),
    "train 1 point": (lambda t, v, pt, pv: (t[:1], v), ValueError,
                      ["train_data has 1 point", "pass >= 2", "would not move the network"]),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_train_refuses_data_it_cannot_train_on_or_measure(sets, points, case):
    make, error, words = DATA_CASES[case]
    _refused_before_any_work(*make(*sets, *points), TrainConfig(epochs=1, batch_size=20), error, words)


def test_train_refuses_a_config_that_is_not_a_valid_train_config(sets):
    _refused_before_any_work(*sets, {"epochs": 1}, TypeError, ["cfg is a dict", "pass TrainConfig("])
    cfg = TrainConfig(epochs=1, batch_size=20)
    cfg.batch_size = 1  # changed after the config was checked
    _refused_before_any_work(*sets, cfg, ValueError, ["TrainConfig: batch_size=1 is invalid", "pass an integer >= 2"])


@pytest.mark.parametrize("bad", [None, "MetricMLP", lambda x: x])
def test_train_refuses_a_model_that_is_not_a_network(sets, bad):
    """A model that is not a torch.nn.Module failed in the optimiser ("'NoneType' object has no attribute
    'parameters'"); it is refused first, in one line naming model and what to pass."""
    with pytest.raises(TypeError) as exc:
        train(bad, *sets, TrainConfig(epochs=1, batch_size=20))
    assert _one_line(exc).startswith("model=") and "is not a network; pass a torch.nn.Module" in exc.value.args[0]


@pytest.mark.parametrize("hook", ["on_epoch", "on_step", "log"])
@pytest.mark.parametrize("bad", [1, "print"])
def test_train_refuses_a_hook_that_is_not_callable_before_any_work(sets, hook, bad):
    """on_epoch=1 was taken and failed after the epoch-0 evaluation ("'int' object is not callable"); every hook
    is refused first, naming it, with the network untouched."""
    model = MetricMLP(10, depth=1, width=4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError) as exc:
        train(model, *sets, TrainConfig(epochs=1, batch_size=20), **{hook: bad})
    assert _one_line(exc).startswith(f"{hook}=") and f"is not callable; pass a function {hook}(" in str(exc.value)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_train_refuses_a_comm_that_is_not_a_communicator(sets):
    with pytest.raises(TypeError, match=r"^comm=1 is not an MPI communicator; pass an mpi4py communicator"):
        train(MetricMLP(10, depth=1, width=4, seed=0), *sets, TrainConfig(epochs=1, batch_size=20), comm=1)


def test_the_smallest_accepted_sets_and_batch_train(sets):
    """2 train points in batches of 2 and 2 validation points: the network moves and σ_val with it."""
    model = MetricMLP(10, depth=1, width=4, seed=0)
    hist = train(model, sets[0][:2], sets[1][:2], TrainConfig(epochs=1, batch_size=2, lr=1e-2, seed=0))
    assert hist.sigma_val[0] > 0 and hist.sigma_val[1] != hist.sigma_val[0]


def test_from_pointset_refuses_what_is_not_a_point_set(sets):
    with pytest.raises(TypeError, match="ps is already MetricData; pass it to train"):
        MetricData.from_pointset(sets[0])
    with pytest.raises(TypeError, match="ps is a NoneType, not a point set; pass a PointSet"):
        MetricData.from_pointset(None)


# ---- MetricMLP ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, error, words", [
    (dict(width=8.5), ValueError, ["MetricMLP: width=8.5 is invalid", "pass an integer >= 1"]),
    (dict(width="8"), TypeError, ["MetricMLP: width='8' is invalid"]),
    (dict(n_in=0), ValueError, ["MetricMLP: n_in=0 is invalid", "pass an integer >= 1", "10 for the quintic"]),
    (dict(n_in=-3), ValueError, ["MetricMLP: n_in=-3 is invalid"]),
    (dict(depth=0), ValueError, ["MetricMLP: depth=0 is invalid", "pass an integer >= 1"]),
    (dict(depth=True), TypeError, ["MetricMLP: depth=True is invalid"]),
    (dict(n_out=0), ValueError, ["MetricMLP: n_out=0 is invalid", "pass a square"]),
    (dict(n_out=5), ValueError, ["MetricMLP: n_out=5 is invalid", "9 for 3 x 3"]),
    (dict(output_scale=math.nan), ValueError, ["MetricMLP: output_scale=nan is invalid", "a finite number"]),
    (dict(output_scale="1"), TypeError, ["MetricMLP: output_scale='1' is invalid"]),
    (dict(seed=1.5), ValueError, ["MetricMLP: seed=1.5 is invalid", "None or an integer in [0, 2**62]"]),
    (dict(seed=-1), ValueError, ["MetricMLP: seed=-1 is invalid"]),
    # a seed beyond a job file's (SEED_MAX) is refused naming that upper limit; it said "an integer >= 0"
    (dict(seed=2**70), ValueError, [f"MetricMLP: seed={2**70} is invalid", "pass None or an integer in [0, 2**62]"]),
])
def test_metric_mlp_refuses_sizes_that_are_not_counts(kw, error, words):
    with pytest.raises(error) as exc:
        MetricMLP(**{"n_in": 10, "depth": 1, "width": 4, **kw})
    text = _one_line(exc)
    assert all(w in text for w in words), text


def test_integral_floats_and_numpy_integers_are_the_counts_they_hold(sets):
    """1e1-style floats and NumPy scalars build and train bitwise as the Python ints (the config stays JSON)."""
    plain = MetricMLP(10, depth=2, width=8, seed=3)
    other = MetricMLP(np.int64(10), depth=2.0, width=np.int32(8), seed=np.int64(3))
    assert json.dumps(other.config) == json.dumps(plain.config)
    a = train(plain, *sets, TrainConfig(epochs=2, batch_size=16, lr=3e-3, seed=1))
    b = train(other, *sets, TrainConfig(epochs=np.int64(2), batch_size=16.0, lr=np.float64(3e-3), seed=1.0))
    assert a.sigma_val == b.sigma_val
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in plain.state_dict().items())


# ---- TrainConfig ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, error, words", [
    (dict(batch_size=1), ValueError, ["batch_size=1 is invalid", "pass an integer >= 2", "no gradient"]),
    (dict(lr=0.0), ValueError, ["lr=0.0 is invalid", "in [1e-300, 1e+06]"]),
    (dict(lr=-1e-3), ValueError, ["lr=-0.001 is invalid"]),
    (dict(lr=math.nan), ValueError, ["lr=nan is invalid", "a finite number"]),
    (dict(lr=math.inf), ValueError, ["lr=inf is invalid"]),
    (dict(lr="1e-3"), TypeError, ["lr='1e-3' is invalid"]),
    (dict(epochs=10**6 + 1), ValueError, ["epochs=1000001 is invalid", "in [0, 1000000]"]),
    (dict(optimizer="adamw"), ValueError, ["optimizer='adamw' is invalid", "one of 'adam', 'sgd'"]),
    (dict(loss="mse"), ValueError, ["loss='mse' is invalid", "one of 'sigma', 'ultralocal'"]),
    (dict(lr_schedule="step"), ValueError, ["lr_schedule='step' is invalid", "'exponential', 'cosine'"]),
    (dict(lr_decay=0.0), ValueError, ["lr_decay=0.0 is invalid", "in (0, 1e+06]"]),
    (dict(lr_min=-1.0), ValueError, ["lr_min=-1.0 is invalid"]),
    (dict(lr_warmup=-1.0), ValueError, ["lr_warmup=-1.0 is invalid"]),
    (dict(seed=-1), ValueError, ["seed=-1 is invalid", "an integer in [0, 2**62]"]),
    (dict(seed=2**70), ValueError, [f"seed={2**70} is invalid", "pass an integer in [0, 2**62]"]),
    (dict(seed=1.5), ValueError, ["seed=1.5 is invalid"]),
    (dict(detach_kappa="no"), TypeError, ["detach_kappa='no' is invalid", "True or False"]),
    (dict(check_replicas=1), TypeError, ["check_replicas=1 is invalid"]),
    (dict(manual_step=None), TypeError, ["manual_step=None is invalid"]),
    (dict(lr=1e-3, lr_min=1e-2, lr_schedule="cosine"), ValueError, ["lr_min = 0.01 exceeds lr = 0.001",
                                                                     "set lr_min <= lr"]),
    (dict(lr=1e-3, lr_min=1e-4), ValueError, ["lr_min=0.0001 does not apply to lr_schedule='exponential'",
                                              "pass lr_schedule='cosine'"]),
    (dict(lr_decay=0.5, lr_schedule="cosine"), ValueError, ["lr_decay=0.5 does not apply to lr_schedule='cosine'",
                                                            "its default 1.0"]),
    (dict(epochs=4, lr_warmup=5.0), ValueError, ["lr_warmup = 5.0 epochs exceeds epochs = 4"]),
    (dict(epochs=2000, lr_decay=0.5), ValueError, ["lr_decay = 0.5 over 2000 epochs", "closer to 1"]),
    (dict(epochs=20, lr_decay=10.0), ValueError, ["lr_decay = 10.0 over 20 epochs"]),
])
def test_train_config_refuses_what_the_job_file_refuses(kw, error, words):
    with pytest.raises(error) as exc:
        TrainConfig(**kw)
    text = _one_line(exc)
    assert text.startswith("TrainConfig: ") and all(w in text for w in words), text


def _probes(field):
    """Values of the field's own type on and around its bounds and choices."""
    if field.type is bool:
        return [True, False]
    if field.type is str:
        return [*field.choices, "", "x", field.choices[0].upper()]
    found = [-1, 0, 1, 2, 3, 10**6, 10**6 + 1, 2**62, 2**62 + 1]
    if field.type is float:
        found += [-1.0, 0.0, 5e-324, 1e-300, np.nextafter(1e-300, 0.0), 1e-3, 1e6, np.nextafter(1e6, 2e6), 1e9,
                  math.nan, math.inf, -math.inf]
    return found


def _accepts(check, *args) -> bool:
    try:
        check(*args)
    except (TypeError, ValueError, ConfigError):
        return False
    return True


@pytest.mark.parametrize("name", list(FIELDS))
def test_train_config_fields_accept_what_the_job_file_accepts(name):
    """Each TrainConfig field that is a [training] key of the nn job accepts and refuses the same values there
    (the rule is kept in both layers; this keeps them one rule)."""
    assert {f.name for f in fields(TrainConfig)} == set(FIELDS)
    job_field = job.SCHEMA["training"].get(name)
    if job_field is None:
        assert name == "manual_step"  # the Python API's only key of its own
        return
    for v in _probes(job_field):
        assert _accepts(api_value, name, v, FIELDS[name]) == _accepts(validate_field, name, v, job_field), (name, v)


@pytest.mark.parametrize("training", [
    dict(lr=1e-3, lr_min=1e-2, lr_schedule="cosine"), dict(lr=1e-3, lr_min=1e-3, lr_schedule="cosine"),
    dict(epochs=4, lr_warmup=5.0), dict(epochs=4, lr_warmup=4.0), dict(epochs=0, lr_warmup=1.0),
    dict(epochs=0, lr_warmup=1.5), dict(epochs=2000, lr_decay=0.5), dict(epochs=900, lr_decay=0.5),
    dict(epochs=20, lr_decay=10.0), dict(epochs=2000, lr_schedule="cosine"),
])
def test_train_config_schedules_are_refused_as_the_job_file_refuses_them(training):
    """TrainConfig and the job file's [training] refuse the same schedules with the same words after their own
    prefix ("TrainConfig: " and "FILE: [training]."), the job file naming the other keys in full ([training].KEY: the
    --set of any of them is cited)."""
    cfg = validate({"job": {"kind": "nn"}, "training": training}, job.SCHEMA, source="job.toml")
    said = []
    for call, prefix in ((lambda: TrainConfig(**training), "TrainConfig: "),
                         (lambda: job.check(cfg, "job.toml"), "job.toml: [training].")):
        try:
            call()
            said.append(None)
        except (ValueError, ConfigError) as exc:
            assert str(exc).startswith(prefix), str(exc)
            said.append(str(exc).removeprefix(prefix).replace("[training].", ""))
    assert said[0] == said[1], training


@pytest.mark.parametrize("training, key", [
    (dict(lr_schedule="cosine", lr_decay=0.5), "lr_decay"),  # the cosine runs lr -> lr_min: no decay per epoch
    (dict(lr=1e-3, lr_min=1e-4), "lr_min"),  # the exponential schedule (the default) has no final rate
    (dict(lr=1e-3, lr_min=1e-2), "lr_min"),  # (was refused as above lr, where it does nothing)
])
def test_a_rate_key_its_schedule_does_not_read_is_refused_by_both_layers(training, key):
    """A value given for a learning-rate key the schedule ignores is refused by the job file's [training] (naming the
    key, its schedule and the --set that removes it) and by TrainConfig; the key at its default is accepted."""
    cfg = validate({"job": {"kind": "nn"}, "training": training}, job.SCHEMA, source="job.toml")
    with pytest.raises(ConfigError) as exc:
        job.check(cfg, "job.toml")
    text = _one_line(exc)
    schedule = training.get("lr_schedule", "exponential")
    default = job.SCHEMA["training"][key].default
    assert text.startswith(f"job.toml: [training].{key} = ")
    assert f"does not apply to [training].lr_schedule = '{schedule}'" in text, text
    assert f"--set training.{key}={default}" in text, text
    with pytest.raises(ValueError) as exc:
        TrainConfig(**training)
    assert f"TrainConfig: {key}=" in _one_line(exc) and "does not apply" in _one_line(exc)
    at_default = {**training, key: default}
    job.check(validate({"job": {"kind": "nn"}, "training": at_default}, job.SCHEMA, source="job.toml"), "job.toml")
    TrainConfig(**at_default)


def test_the_learning_rate_rules_load_without_torch():
    """The job file's schema and the learning-rate rules TrainConfig shares with it import no torch: validating
    a job does not need it."""
    code = ("import sys, hpcflow.jobs.schema, hpcflow.nn.rates, hpcflow.nn.job\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr


#: width_sweep arguments -> (error, words of its one line): no NTK points; a width's lr below 1e-300 (8 x width_ref
#: with lr_exponent 1000), above 1e6 (4^1000 overflowed a float); a cosine schedule's lr_min above a width's lr
SWEEP_REFUSALS = {
    "no NTK points": (dict(ntk_train=None, ntk_test=None), TypeError, ["ntk_train is None", "train_data[:10]"]),
    "lr(width) below 1e-300": (dict(widths=[4, 32], lr_exponent=1000.0), ValueError,
                               ["width_sweep: lr(width=32)", "lower the magnitude of lr_exponent"]),
    "lr(width) overflows": (dict(widths=[4, 1], lr_exponent=1000.0), ValueError, ["width_sweep: lr(width=1)"]),
    "lr_min above lr(width)": (dict(widths=[4, 400], cfg=TrainConfig(epochs=1, batch_size=20, lr=1e-3,
                                                                     lr_schedule="cosine", lr_min=1e-4)),
                               ValueError, ["at width 400", "lr_min = 0.0001 exceeds lr = 1e-05"]),
}


@pytest.mark.parametrize("case", list(SWEEP_REFUSALS))
def test_width_sweep_refuses_before_its_first_network(sets, case):
    """NTK points missing, or a width whose learning rate or schedule cannot train: one line before any network
    trains (the first width trained, then a KeyError, a refusal at that width's turn or an OverflowError)."""
    from hpcflow.nn.experiment import width_sweep

    tr, va = sets
    kw, error, words = SWEEP_REFUSALS[case]
    args = {"widths": [4, 8], "cfg": TrainConfig(epochs=1, batch_size=20), "lr_exponent": 1.0,
            "ntk_train": tr[:3], "ntk_test": va[:3], **kw}
    steps = []
    with pytest.raises(error) as exc:
        width_sweep(args.pop("widths"), tr, va, {"depth": 1, "activation": "relu", "kind": "multiplicative"},
                    args.pop("cfg"), width_ref=4, seed=0, on_step=steps.append, **args)
    text = _one_line(exc)
    assert all(w in text for w in words) and not steps, text


def test_a_sweep_schedule_that_cannot_train_is_refused_with_the_job_file(tmp_path):
    """[training] lr_warmup longer than [width_sweep].epochs (the sweep trains with the training's schedule):
    refused when the job loads, naming [width_sweep] (TrainConfig refused it after the main training)."""
    from hpcflow.errors import ConfigError
    from hpcflow.jobs import registry

    path = tmp_path / "job.toml"
    path.write_text(open(os.path.join(os.path.dirname(__file__), "..", "jobs", "nn_smoke.toml")).read())
    with pytest.raises(ConfigError) as exc:
        registry.load(str(path), ["training.lr_warmup=4", "width_sweep.epochs=3"])
    text = _one_line(exc)
    assert ("[width_sweep] (trained with the [training] schedule) with lr = 1.0 over 3 epochs: "
            "[training].lr_warmup = 4.0 epochs exceeds [width_sweep].epochs = 3") in text, text


# ---- under MPI ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory):
    """OUT of nn_api_checks.py's "refused" and "same" modes, and at 2 ranks "differ", run one after the other in one
    launch per rank count (refused_R.json, same_R.json, differ_2.json; each mode's valid epoch trained after its own
    cases)."""
    out = tmp_path_factory.mktemp("nn_api")
    for ranks, modes in ((2, "refused,same,differ"), (3, "refused,same")):
        r = _mpi(ranks, [SCRIPT, str(out), modes])
        assert r.returncode == 0, r.stderr[-3000:]
    return out


MPI_REFUSALS = {  # case of tests/mpi/nn_api_checks.py -> how every rank's message starts
    "train_one_point_shards": "ValueError: train_data has 1 point (all ranks together); pass >= 2",
    "val_one_point_shards": "ValueError: val_data has 1 point (all ranks together); pass >= 2",
    "val_one_point_on_rank_0": "ValueError: val_data has 1 point (all ranks together); pass >= 2",
    "batch_size_1": "ValueError: TrainConfig: batch_size=1 is invalid; pass an integer >= 2",
}


def _trained_as_one_process(every):
    """Each rank's epoch on whole sets after the refusals has one process's σ_val (up to summation order)."""
    X = Hypersurface.fermat(3)
    tr, va = MetricData.from_pointset(X.sample(60, seed=0)), MetricData.from_pointset(X.sample(30, seed=1))
    one = train(MetricMLP(10, depth=1, width=4, seed=0), tr, va, TrainConfig(epochs=1, batch_size=20))
    for m in every:
        np.testing.assert_allclose(m["valid_sigma_val"], one.sigma_val, rtol=1e-10, atol=0)


@pytest.mark.parametrize("ranks", [2, 3])
def test_every_rank_refuses_alike_and_then_trains(mpi_runs, ranks):
    """A set of 1 point over all ranks (a rank's share may hold it or nothing) is refused by every rank with the
    same line, also when one rank alone was given too few; the ranks then train one epoch on the same
    communicator, as one process does (whole sets: the runs differ in summation order only)."""
    every = json.loads((mpi_runs / f"refused_{ranks}.json").read_text())
    assert len(every) == ranks
    for case, start in MPI_REFUSALS.items():
        got = [m[case] for m in every]
        assert got == [got[0]] * ranks and got[0] is not None and got[0][0].startswith(start), (case, got)
    _trained_as_one_process(every)


@pytest.mark.parametrize("ranks", [2, 3])
def test_sample_shards_refuses_a_size_one_rank_alone_gives_on_every_rank(mpi_runs, ranks):
    """n_val = 0 on the last rank alone: every rank raises its ConfigError naming n_val and that rank, marked
    collective (the last rank used to raise alone while the others sampled the train set, waiting in its first
    wave's Allgather for ever)."""
    every = json.loads((mpi_runs / f"refused_{ranks}.json").read_text())
    got = [m["sample_shards_n_val_on_last_rank"] for m in every]
    assert got == [[f"ConfigError: n_val=0 is invalid; pass a whole number of points >= 1, e.g. 1000 (on rank "
                     f"{ranks - 1}; 1 of {ranks} ranks refused their arguments)", True]] * ranks, got


DIFFER = {  # "differ" case of tests/mpi/nn_api_checks.py -> how every rank's message starts (the last rank's refusal)
    "cfg_dict": "TypeError: cfg is a dict, not a TrainConfig; pass TrainConfig(",
    "train_pointset": "TypeError: train_data is a PointSet",
    "cfg_changed": "ValueError: TrainConfig: batch_size=1 is invalid; pass an integer >= 2",
    "model_dtype": "ValueError: MetricMLP: x is float64 but the weights are float32",
    "ntk_method": "ConfigError: ntk method = 'bad' is not one of ('auto', 'jacobian', 'layerwise')",
    "sweep_width": "ValueError: widths[0]=0 is invalid; pass an integer >= 1 (units per hidden layer)",
}


def test_arguments_of_one_rank_alone_are_refused_by_every_rank(mpi_runs):
    """At R = 2 the last rank alone passes a bad argument: every rank raises its one-line refusal, marked collective
    and naming the rank (the others used to go on into a collective and wait for ever); then all train together."""
    every = json.loads((mpi_runs / "differ_2.json").read_text())
    for case, start in DIFFER.items():
        got = [m[case] for m in every]
        assert got[0] is not None and got == [got[0]] * 2, (case, got)
        line, collective = got[0]
        assert "\n" not in line and line.startswith(start) and collective, (case, line)
        assert line.endswith(" (on rank 1; 1 of 2 ranks refused their arguments)"), line
    _trained_as_one_process(every)


UNLIKE = {  # "same" case of tests/mpi/nn_api_checks.py -> (what differs, rank 0's repr, the other rank's repr)
    "network_width": ("MetricMLP.width", "4", "8"),
    "network_depth": ("MetricMLP.depth", "1", "2"),
    "network_activation": ("MetricMLP.activation", "'relu'", "'gelu'"),
    "network_kind": ("MetricMLP.kind", "'multiplicative'", "'additive'"),
    "network_features": ("MetricMLP.features", "'reim'", "'reim_abs2'"),
    "network_dtype": ("MetricMLP.dtype", "'float64'", "'float32'"),
    "config_lr": ("TrainConfig.lr", "0.001", "0.002"),
    "config_batch_size": ("TrainConfig.batch_size", "20", "30"),
    "config_epochs": ("TrainConfig.epochs", "1", "2"),
    "config_loss": ("TrainConfig.loss", "'sigma'", "'ultralocal'"),
    "config_lr_schedule": ("TrainConfig.lr_schedule", "'exponential'", "'cosine'"),
    "config_optimizer": ("TrainConfig.optimizer", "'adam'", "'sgd'"),
    "config_detach_kappa": ("TrainConfig.detach_kappa", "False", "True"),
    "config_seed_on_rank_0": ("TrainConfig.seed", "1", "0"),
    "ntk_method": ("ntk_method", "'layerwise'", "'jacobian'"),
    "sweep_widths": ("widths", "[4]", "[4, 8]"),
    "sample_shards_seed": ("seed", "1", "2"),
}


@pytest.fixture(scope="module")
def same_runs(mpi_runs):
    return mpi_runs  # (same_R.json, written by the launches of mpi_runs)


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_network_or_config_that_differs_between_ranks_is_refused_by_every_rank(same_runs, ranks):
    """Valid arguments that differ between ranks (the last rank's network width, depth, activation, kind, features or
    dtype, a TrainConfig value; rank 0's seed) are refused by every rank with one line naming the value and the rank
    that differs, in the arguments' allgather (their gradients of other layouts used to meet in one Allreduce, which
    failed or waited for ever, or the replicas stepped apart); then all train together."""
    every = json.loads((same_runs / f"same_{ranks}.json").read_text())
    assert len(every) == ranks
    for case, (name, first, other) in UNLIKE.items():
        got = [m[case] for m in every]
        assert got[0] is not None and got == [got[0]] * ranks, (case, got)
        at = 1 if case.endswith("_on_rank_0") else ranks - 1
        assert got[0] == [f"ValueError: {name} differs between ranks ({name}={first} on rank 0, {other} on rank {at}); "
                          f"pass the same {name} on every rank", True], (case, got[0])
    _trained_as_one_process(every)


@pytest.mark.parametrize("ranks", [2, 3])
def test_whole_sets_that_differ_between_ranks_are_refused_by_every_rank(same_runs, ranks):
    """Each rank passes its own 20 rows as a plain MetricData (train used rows of a share of each rank's own set,
    dropping the rest), or the last rank alone a Shard of the validation set: every rank raises one line naming the
    set, what differs and how to pass shards, marked collective; then all train together."""
    every = json.loads((same_runs / f"same_{ranks}.json").read_text())
    fix = ("a set that is not a Shard must be one whole set, the same on every rank, of which each rank keeps its "
           "share; pass that, or each rank's own rows as hpcflow.nn.replicas.Shard(rows, lo, n)")
    for case, start in (("train_rows_of_each_rank", "train_data differs between ranks (rank 0: 20 rows, rank 1: 20 "
                                                    "rows of other values): "),
                        ("val_shard_on_last_rank", f"val_data differs between ranks (rank 0: 30 rows, rank {ranks - 1}"
                                                   ": a Shard): ")):
        got = [m[case] for m in every]
        assert got[0] is not None and got == [got[0]] * ranks, (case, got)
        line, collective = got[0]
        assert line.startswith(f"ValueError: {start}{fix}") and "\n" not in line and collective, (case, line)
    _trained_as_one_process(every)
