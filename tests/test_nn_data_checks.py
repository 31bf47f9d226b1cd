"""Network data checked as kernel_flow checks its point sets, before any step: `train` (and `evaluate_sigma`) refuse
a set whose x, gfs, omega2 or weights hold a bad row in one line naming the set, the field, the first bad row and the
fix (it trained on negative weights or a negative-definite g_FS, and ended NaN x in a 'diverged' history); under MPI
every rank checks its share and all refuse together. Also the network's and the loss's own shape checks, and the
dtypes the network and the data take."""

import copy
import json
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.errors import ConfigError  # noqa: E402
from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.measures import sigma_measure  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.loss import metric_loss  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.train import TrainConfig, evaluate_sigma, predict, train  # noqa: E402
from metric_data import changed  # noqa: E402 - tests/ is on sys.path (pytest's default import mode)
from test_flow_legs import _mpi  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "nn_data_checks.py")
WEIGHTS_FIX = "pass the Monte Carlo weights |Omega|^2 / det g_FS (PointSet.weights)"


@pytest.fixture(scope="module")
def points():
    X = Hypersurface.fermat(3)
    return X.sample(100, seed=2), X.sample(40, seed=3)


@pytest.fixture(scope="module")
def sets(points):
    return MetricData.from_pointset(points[0]), MetricData.from_pointset(points[1])


def _net():
    return MetricMLP(10, depth=1, width=4, seed=0)


#: packed 3 x 3 metric [[1, 2, 0], [2, 1, 0], [0, 0, 1]]: Hermitian, positive diagonal, leading minors 1, -3, -3
INDEFINITE = [1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def _refused(model, tr, va, words, error=ValueError):
    """`train` raises `error` with `words` (one line) before any step: the weights stay as initialised."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error) as exc:
        train(model, tr, va, TrainConfig(epochs=1, batch_size=50))
    text = str(exc.value)
    assert "\n" not in text and words in text, text
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    return text


@pytest.mark.parametrize("field, row, value, words", [
    ("weights", 3, -1.0, f"train_data: weights[3] = -1.0 is not a finite number >= 0; {WEIGHTS_FIX}"),
    ("weights", 7, float("nan"), "train_data: weights[7] = nan is not a finite number >= 0"),
    ("omega2", 5, 0.0, "train_data: omega2[5] = 0.0 is not a finite number > 0; pass |Omega|^2 of the points"),
    ("omega2", 6, float("inf"), "train_data: omega2[6] = inf is not a finite number > 0"),
    ("x", (3, 0), float("nan"), "train_data: x[3] holds values that are not finite; pass the features (Re z, Im z)"),
    ("gfs", (8, 4), float("inf"), "train_data: gfs[8] holds values that are not finite; pass packed g_FS"),
    ("gfs", 9, torch.tensor(INDEFINITE, dtype=torch.float64),
     "train_data: gfs[9] is not positive definite (leading principal minors 1, -3, -3); pass packed Hermitian "
     "positive definite metrics"),
])
def test_a_bad_row_of_the_train_set_is_refused_naming_field_row_and_fix(sets, field, row, value, words):
    tr, va = sets
    text = _refused(_net(), changed(tr, field, row, value), va, words)
    assert "MetricData.from_pointset" in text or "PointSet." in text, text


def test_a_negative_definite_g_fs_and_a_bad_validation_row_are_refused(sets):
    tr, va = sets
    neg = copy.copy(tr)
    neg.gfs = -tr.gfs
    _refused(_net(), neg, va, "train_data: gfs[0] is not positive definite (leading principal minors -")
    _refused(_net(), tr, changed(va, "weights", 39, -2.0), "val_data: weights[39] = -2.0 is not a finite number >= 0")
    # the first bad row is named, the first field first (kernel_flow's order: points, g_fs, omega2, weights)
    both = changed(changed(tr, "weights", 2, -1.0), "x", (50, 1), float("inf"))
    _refused(_net(), changed(both, "weights", 1, -1.0), va, "train_data: x[50] holds")


def test_weights_that_are_all_zero_are_refused_and_some_zero_weights_train(sets):
    tr, va = sets
    zero = copy.copy(va)
    zero.weights = torch.zeros_like(va.weights)
    _refused(_net(), tr, zero, "val_data: every weight is 0; sigma and kappa are weighted means: pass at least one "
             "weight > 0 (the Monte Carlo weights")
    some = changed(tr, "weights", slice(0, 10), 0.0)  # kernel_flow takes weights >= 0 with a positive sum
    hist = train(_net(), some, va, TrainConfig(epochs=1, batch_size=50))
    assert hist.diverged is None and all(np.isfinite(hist.sigma_val))


def test_fields_of_other_shapes_types_or_dtypes_are_refused(sets):
    tr, va = sets
    short = copy.copy(tr)
    short.omega2 = tr.omega2[:5]
    _refused(_net(), short, va, "train_data.omega2 has shape (5,) next to 100 points (x of shape (100, 10)); pass one "
             "row per point")
    arr = copy.copy(tr)
    arr.weights = tr.weights.numpy()
    _refused(_net(), arr, va, "train_data.weights is a numpy.ndarray, not a torch.Tensor; pass "
             "MetricData.from_pointset(ps)", TypeError)
    mixed = copy.copy(tr)
    mixed.omega2 = tr.omega2.float()
    _refused(_net(), mixed, va, "train_data.omega2 is float32 but train_data.x is float64; make every field one "
             "dtype: MetricData.from_pointset(ps, dtype='float64')")
    cplx = copy.copy(tr)
    cplx.x = tr.x.to(torch.complex128)
    text = _refused(_net(), cplx, va, "train_data.x is complex128, not real float64 (or float32) numbers")
    assert "dtype='complex128'" not in text


def test_the_check_of_good_sets_changes_nothing(sets):
    """Valid sets train as before: the history of a run equals that of the same run on copies of the sets."""
    tr, va = sets
    a = train(_net(), tr, va, TrainConfig(epochs=2, batch_size=50))
    b = train(_net(), copy.deepcopy(tr), copy.deepcopy(va), TrainConfig(epochs=2, batch_size=50))
    assert a.diverged is None and a.sigma_val == b.sigma_val and a.sigma_train == b.sigma_train


def _random_hermitian(rng, n, m):
    a = rng.normal(size=(n, m, m)) + 1j * rng.normal(size=(n, m, m))
    return (a + np.conj(np.swapaxes(a, 1, 2))) / 2 + rng.uniform(-1, 3, size=(n, 1, 1)) * np.eye(m) * m


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_positive_definite_packed_agrees_with_the_eigenvalues(m):
    """Against NumPy's eigenvalues of the Hermitian matrices (positive definite: all > 0), on matrices of both kinds,
    away from the boundary; a row that is not finite is not positive definite."""
    from hpcflow.geometry.hermitian import pack
    from hpcflow.nn.features import positive_definite_packed

    rng = np.random.default_rng(m)
    g = _random_hermitian(rng, 400, m)
    low = np.linalg.eigvalsh(g)[:, 0]
    keep = np.abs(low) > 1e-6 * np.abs(g).max(axis=(1, 2))
    g, low = g[keep], low[keep]
    assert 50 < int((low > 0).sum()) < len(low) - 50  # both kinds present
    v = torch.as_tensor(pack(g))
    np.testing.assert_array_equal(positive_definite_packed(v).numpy(), low > 0)
    v[0, 0] = float("nan")
    assert not bool(positive_definite_packed(v)[0])


def test_the_network_refuses_rows_that_do_not_match_and_complex_features(sets):
    tr, _ = sets
    model = _net()
    with pytest.raises(ValueError, match=re.escape("MetricMLP: x has 100 rows but gfs 10; pass one row of packed g_FS "
                                                   "per point of x")):
        model(tr.x, tr.gfs[:10])
    with pytest.raises(ValueError) as exc:
        model(tr.x.to(torch.complex128), tr.gfs)
    text = str(exc.value)
    assert "x is complex128, not real numbers" in text and "dtype='complex128'" not in text, text
    assert "MetricData.from_pointset(ps, dtype='float64')" in text, text


def test_metric_loss_refuses_rows_that_do_not_match(sets):
    tr, _ = sets
    v = _net()(tr.x, tr.gfs)
    with pytest.raises(ValueError, match=re.escape("metric_loss: omega2 has shape (5,) next to 100 metrics")):
        metric_loss(v, tr.omega2[:5], tr.weights)
    with pytest.raises(ValueError, match=re.escape("metric_loss: weights has shape (99,) next to 100 metrics")):
        metric_loss(v, tr.omega2, tr.weights[1:])
    with pytest.raises(TypeError, match="metric_loss: weights is a numpy.ndarray, not a torch.Tensor"):
        metric_loss(v, tr.omega2, tr.weights.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_network_takes_the_torch_dtypes_the_data_take(points, dtype):
    """MetricMLP(dtype=torch.float32) was refused while MetricData.from_pointset(dtype=torch.float32) was taken: both
    take 'float64' / 'float32' and torch.float64 / torch.float32 (the job file's [model].dtype names), nothing else."""
    name = str(dtype).removeprefix("torch.")
    by_dtype, by_name = (MetricMLP(10, depth=1, width=4, seed=0, dtype=d) for d in (dtype, name))
    assert by_dtype.dtype == dtype and by_dtype.config["dtype"] == name  # the config (saved as JSON) names it
    assert all(torch.equal(a, b) for a, b in zip(by_dtype.state_dict().values(), by_name.state_dict().values()))
    d = MetricData.from_pointset(points[0], dtype=dtype)
    assert by_dtype(d.x, d.gfs).dtype == dtype
    for bad in (torch.float16, torch.complex128, "double"):
        with pytest.raises(ConfigError, match=r"^dtype = .* is not one of \('float64', 'float32'\)"):
            MetricMLP(10, dtype=bad)


def test_evaluate_sigma_refuses_a_point_set_and_an_empty_set_and_measures_a_set(points, sets):
    tr, _ = sets
    model = _net()
    with pytest.raises(TypeError, match=re.escape("data is a PointSet, not network data; pass "
                                                  "MetricData.from_pointset(ps)")):
        evaluate_sigma(model, points[0])
    for n in (0, 1):
        with pytest.raises(ValueError, match=re.escape(f"data has {n} point{'s' * (n != 1)} (all ranks together); "
                                                       "pass >= 2")):
            evaluate_sigma(model, tr[:n])
    with pytest.raises(ValueError, match=re.escape("data: omega2[4] = -1.0 is not a finite number > 0")):
        evaluate_sigma(model, changed(tr, "omega2", 4, -1.0))
    # the value: sigma_measure (geometry.measures, NumPy) of eta = det g / |Omega|^2 of the network's metrics
    from hpcflow.geometry.hermitian import unpack

    g = unpack(predict(model, tr).numpy())
    eta = np.linalg.det(g).real / tr.omega2.numpy()
    want = sigma_measure(eta, tr.weights.numpy())
    assert abs(evaluate_sigma(model, tr) - want) <= 1e-12 * want


# ---- under MPI ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("nn_data")
    for ranks in (2, 3):
        r = _mpi(ranks, [SCRIPT, str(out)])
        assert r.returncode == 0, r.stderr[-3000:]
    return out


def _on_rank(rank, ranks):
    return f" (on rank {rank}; 1 of {ranks} ranks refused their arguments)"


@pytest.mark.parametrize("ranks", [2, 3])
def test_every_rank_refuses_a_bad_row_that_one_rank_found(mpi_runs, ranks):
    """Each rank checks its share of a whole set (or its Shard): the rank that holds the bad row finds it, and every
    rank raises its line, naming the row's index in the whole set and that rank, marked collective; a set whose
    weights are all 0 over the ranks is refused alike; then all train together as one process does."""
    every = json.loads((mpi_runs / f"data_{ranks}.json").read_text())
    assert len(every) == ranks
    last = ranks - 1
    want = {
        "whole_set_weight_in_last_share": f"ValueError: train_data: weights[45] = -1.0 is not a finite number >= 0; "
                                          f"{WEIGHTS_FIX}{_on_rank(last, ranks)}",
        "val_weights_all_zero": "ValueError: val_data: every weight is 0; ",
        "val_shards_weights_all_zero": "ValueError: val_data: every weight is 0; ",
        "evaluate_omega2_in_last_share": "ValueError: data: omega2[29] = 0.0 is not a finite number > 0; pass "
                                         f"|Omega|^2 of the points (PointSet.omega2){_on_rank(last, ranks)}",
        "evaluate_empty": "ValueError: data has 0 points (all ranks together); pass >= 2",
        "shard_x_of_rank_0": "ValueError: train_data: x[3] holds values that are not finite; ",
    }
    for case, start in want.items():
        got = [m[case] for m in every]
        assert got[0] is not None and got == [got[0]] * ranks, (case, got)
        line, collective = got[0]
        assert line.startswith(start) and "\n" not in line and collective, (case, line)
    assert every[0]["shard_x_of_rank_0"][0].endswith(_on_rank(0, ranks))
    X = Hypersurface.fermat(3)
    tr, va = MetricData.from_pointset(X.sample(60, seed=0)), MetricData.from_pointset(X.sample(30, seed=1))
    cfg = TrainConfig(epochs=1, batch_size=20)
    one = train(_net(), tr, va, cfg).sigma_val
    from hpcflow.parallel.decompose import share

    zero = changed(tr, "weights", slice(*share(60, ranks, 0)), 0.0)
    one_zero = train(_net(), zero, va, cfg).sigma_val
    assert all(np.isfinite(one_zero))
    for m in every:
        np.testing.assert_allclose(m["valid_sigma_val"], one, rtol=1e-10, atol=0)
        np.testing.assert_allclose(m["zero_on_rank_0_sigma_val"], one_zero, rtol=1e-10, atol=0)
