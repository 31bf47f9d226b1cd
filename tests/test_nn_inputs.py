"""MetricMLP fed data of another input width or dtype: one-line ValueError naming what it expected, what it got and
the fix (not a bare torch error from inside a layer), from the network itself and from `train` before any step."""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.train import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def quintic():
    """Points of the quintic in P^4: (Re z, Im z) are 2 x 5 = 10 features, g_FS 3 x 3 = 9 packed components."""
    return Hypersurface.fermat(3).sample(40, seed=0)


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_network_of_another_input_width_names_both_widths(quintic):
    data = MetricData.from_pointset(quintic)
    model = MetricMLP(8, depth=1, width=4, seed=0)
    with pytest.raises(ValueError) as exc:
        model(data.x, data.gfs)
    text = _one_line(exc)
    assert "(40, 10)" in text and "(N, 8)" in text and "n_in=10" in text, text
    right = MetricMLP(10, depth=1, width=4, seed=0)  # the fix the message names
    assert torch.isfinite(right(data.x, data.gfs)).all()
    with pytest.raises(ValueError, match=re.escape("gfs has shape (40, 4), expected (N, 9)")):
        right(data.x, data.gfs[:, :4])


@pytest.mark.parametrize("weights,data", [("float32", torch.float64), ("float64", torch.float32)])
def test_weights_and_data_of_different_dtypes_name_both_and_the_fix(quintic, weights, data):
    got = str(data).removeprefix("torch.")
    d = MetricData.from_pointset(quintic, dtype=data)
    model = MetricMLP(10, depth=1, width=4, seed=0, dtype=weights)
    for call in (lambda: model(d.x, d.gfs), lambda: model.raw(d.x), lambda: model.ntk_factors(d.x, d.gfs)):
        with pytest.raises(ValueError) as exc:
            call()
        text = _one_line(exc)
        assert f"is {got} but the weights are {weights}" in text and f"dtype='{got}'" in text, text
        # the data's fix names what MetricData has (it has no .to)
        assert f"MetricData.from_pointset(ps, dtype='{weights}')" in text and ".to(" not in text, text
    fixed = MetricData.from_pointset(quintic, dtype=weights)  # the other fix it names, as it names it
    assert model(fixed.x, fixed.gfs).dtype == getattr(torch, weights)


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_from_pointset_takes_the_dtype_names_metric_mlp_takes(quintic, name):
    """from_pointset(dtype="float32") raised torch's "argument 'dtype' must be torch.dtype, not str" while
    MetricMLP(dtype="float32") takes the name: both take it, and a torch dtype still works."""
    by_name = MetricData.from_pointset(quintic, dtype=name)
    by_torch = MetricData.from_pointset(quintic, dtype=getattr(torch, name))
    for f in ("x", "gfs", "omega2", "weights"):
        assert getattr(by_name, f).dtype == getattr(torch, name)
        assert torch.equal(getattr(by_name, f), getattr(by_torch, f))
    np.testing.assert_array_equal(by_name.omega2.numpy(), np.asarray(quintic.omega2, dtype=name))
    model = MetricMLP(10, depth=1, width=4, seed=0, dtype=name)
    assert model(by_name.x, by_name.gfs).dtype == getattr(torch, name)


@pytest.mark.parametrize("bad", ["float16", "double", torch.float16, 32])
def test_from_pointset_refuses_a_dtype_metric_mlp_refuses(quintic, bad):
    from hpcflow.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^dtype = .* is not one of \('float64', 'float32'\)") as exc:
        MetricData.from_pointset(quintic, dtype=bad)
    if isinstance(bad, str):
        with pytest.raises(ConfigError) as net:
            MetricMLP(10, depth=1, width=4, seed=0, dtype=bad)
        assert str(net.value) == _one_line(exc)


def test_numpy_data_and_a_half_given_second_point_set_are_named(quintic):
    """NumPy arrays where tensors go (the dtype message read 'float64 but the weights are float64') and empirical_ntk's
    x2 without g2 (an AttributeError inside the model) are refused in one line naming the argument and the fix."""
    from hpcflow.nn.ntk import empirical_ntk

    d = MetricData.from_pointset(quintic)
    model = MetricMLP(10, depth=1, width=4, seed=0)
    for call, name in ((lambda: model(d.x.numpy(), d.gfs), "x"), (lambda: model(d.x, d.gfs.numpy()), "gfs"),
                       (lambda: empirical_ntk(model, d.x.numpy()[:3], d.gfs.numpy()[:3]), "x")):
        with pytest.raises(TypeError) as exc:
            call()
        assert f"{name} is a numpy.ndarray, not a torch.Tensor" in _one_line(exc)
    for x2, g2, missing in ((d.x[:2], None, "g2"), (None, d.gfs[:2], "x2")):
        with pytest.raises(ValueError) as exc:
            empirical_ntk(model, d.x[:3], d.gfs[:3], x2, g2)
        assert f"{missing} is missing" in _one_line(exc)
    theta = empirical_ntk(model, d.x[:3], d.gfs[:3], d.x[:2], d.gfs[:2])  # both given: Θ(x1, x2) of the same model
    assert theta.shape == (9, 9, 3, 2)
    whole = empirical_ntk(model, d.x[:3], d.gfs[:3])[:, :, :, :2]
    assert np.abs(theta - whole).max() <= 1e-13 * np.abs(whole).max()  # summation order of a few products


def test_train_refuses_mismatched_data_before_any_step(quintic):
    """The trainer's hand-written step (hpcflow.nn.fast_step) never calls the network's forward: the check runs when
    the trainer is built, so nothing is trained (the weights stay as initialised)."""
    tr = MetricData.from_pointset(quintic)
    model = MetricMLP(10, depth=1, width=4, seed=0, dtype="float32")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="x is float64 but the weights are float32"):
        train(model, tr, tr, TrainConfig(epochs=1, batch_size=20, seed=0))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("dim", [2, 4])
def test_a_job_whose_points_would_not_fit_the_network_is_refused_before_any_work(tmp_path, capsys, dim):
    """Through `hpcflow nn`, the input width follows [geometry] (2(dim + 2) features) and only dim = 3 has the 9
    outputs the network gives: any other dim is exit 2 naming the key, nothing written."""
    from hpcflow.cli import main
    from test_nn_cli import JOB, _write

    out = tmp_path / "run"
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out), "--set", f"geometry.dim={dim}", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "[geometry].dim" in err and "use dim = 3" in err and "\n" not in err, err
    assert not out.exists()


def test_a_float32_job_gives_its_data_the_weights_dtype(tmp_path):
    """[model].dtype = "float32" converts the points too (training, NTK, width sweep, kernel flow): it runs."""
    from hpcflow.cli import main
    from hpcflow.nn.checkpoint import load_model
    from test_nn_cli import JOB, _write

    out = tmp_path / "run"
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out), "--set", "model.dtype=float32", "--quiet"]) == 0
    assert load_model(out / "model.pt").dtype == torch.float32
