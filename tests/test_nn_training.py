"""Training lowers σ_val; checkpoints round-trip; lazy (wide, small lr) vs feature-learning NTK change."""

import copy
import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.hermitian import unpack  # noqa: E402
from hpcflow.nn.checkpoint import load_model, save_model  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.experiment import width_sweep  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.train import TrainConfig, evaluate_sigma, predict, train  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sets():
    X = Hypersurface.fermat(3)
    return X, MetricData.from_pointset(X.sample(2000, seed=0)), MetricData.from_pointset(X.sample(1000, seed=1))


def test_short_training_lowers_validation_sigma(sets):
    _, tr, va = sets
    model = MetricMLP(10, depth=2, width=32, activation="gelu", seed=0, output_scale=0.1)
    hist = train(model, tr, va, TrainConfig(epochs=4, batch_size=100, lr=3e-3, seed=0))
    s = hist.sigma_val
    assert len(s) == 5 and len(hist.loss) == 4
    assert s[-1] < 0.85 * s[0], s  # held-out sigma drops by > 15 % in 4 short epochs
    assert hist.sigma_train[-1] < 0.85 * hist.sigma_train[0]


def test_cosine_schedule_values_and_its_use_by_the_optimiser(sets):
    """lr(s) = lr_min + (lr - lr_min)(1 + cos(π s/(S-1)))/2; full-batch SGD with lr_min = 0 makes its last step a
    no-op, which a constant rate would not."""
    from hpcflow.nn.train import learning_rate

    cfg = TrainConfig(lr=0.1, lr_min=0.02, lr_schedule="cosine")
    assert learning_rate(cfg, 0, 0, 11) == pytest.approx(0.1, abs=1e-15)
    assert learning_rate(cfg, 5, 2, 11) == pytest.approx(0.06, abs=1e-15)
    assert learning_rate(cfg, 10, 4, 11) == pytest.approx(0.02, abs=1e-15)
    assert learning_rate(TrainConfig(lr=0.1, lr_decay=0.5), 7, 3, 11) == pytest.approx(0.0125, abs=1e-15)
    _, tr, va = sets
    for schedule, frozen in (("cosine", True), ("exponential", False)):
        snaps = []
        model = MetricMLP(10, depth=1, width=8, seed=4)
        train(model, tr[:200], va[:50], TrainConfig(epochs=2, batch_size=200, lr=0.05, lr_min=0.0, optimizer="sgd",
                                                    lr_schedule=schedule),
              on_epoch=lambda e, m: snaps.append(torch.cat([p.detach().clone().view(-1) for p in m.parameters()])))
        assert not torch.equal(snaps[0], snaps[1])  # the first step moved the weights
        assert torch.equal(snaps[1], snaps[2]) == frozen


def test_squared_moduli_features_fit_the_quintic_better(sets):
    """η_FS of the Fermat quintic is a function of the |z_k|^2: the same 2x32 ReLU net and budget reach a
    clearly lower σ_val with features = "reim_abs2" than with the paper's (Re z, Im z) (2 seeds each)."""
    _, tr, va = sets
    final = {}
    for features in ("reim", "reim_abs2"):
        final[features] = []
        for seed in (0, 1):
            model = MetricMLP(10, depth=2, width=32, activation="relu", seed=seed, output_scale=0.1, features=features)
            hist = train(model, tr, va, TrainConfig(epochs=6, batch_size=50, lr=3e-3, lr_schedule="cosine", seed=seed))
            final[features].append(hist.sigma_val[-1])
    assert max(final["reim_abs2"]) < 0.6 * min(final["reim"]), final


def test_training_is_seeded(sets):
    _, tr, va = sets
    runs = []
    for _ in range(2):
        model = MetricMLP(10, depth=1, width=8, seed=4)
        runs.append(train(model, tr[:300], va[:100], TrainConfig(epochs=2, batch_size=50, seed=9)).sigma_val)
    assert runs[0] == runs[1]


def test_saved_and_loaded_model_predicts_the_same_metric(sets, tmp_path):
    _, tr, va = sets
    model = MetricMLP(10, depth=2, width=16, activation="relu", kind="additive", seed=2)
    train(model, tr[:500], va[:100], TrainConfig(epochs=1, batch_size=100))
    path = tmp_path / "model.pt"
    save_model(path, model)
    loaded = load_model(path)
    assert loaded.config == model.config
    g0, g1 = unpack(predict(model, va).numpy()), unpack(predict(loaded, va).numpy())
    np.testing.assert_array_equal(g1, g0)
    with pytest.raises(Exception, match="exists"):
        save_model(path, model)  # no silent overwrite
    # a file holding a pickled non-tensor object is refused by weights_only loading
    torch.save({"w": torch.zeros(1), "evil": copy.copy}, tmp_path / "bad.pt")
    (tmp_path / "bad.pt.json").write_text((tmp_path / "model.pt.json").read_text())
    with pytest.raises(Exception, match="tensor-only"):
        load_model(tmp_path / "bad.pt")


def test_wide_network_with_small_lr_keeps_its_ntk_narrow_one_does_not(sets):
    """Same protocol (SGD, lr = 1.0 * 16 / width, 4 epochs), 3 seeds: lazy regime at width 2048.

    NTK theory: at lr ~ 1/width the relative NTK change falls like width^(-1/2), a factor ~11 here; we ask
    for a factor 5 between the largest wide-network change and the smallest narrow-network change.
    """
    _, tr, va = sets
    mc = dict(kind="multiplicative", depth=2, width=16, activation="gelu")
    change = {16: [], 2048: []}
    for seed in range(3):
        cfg = TrainConfig(epochs=4, batch_size=100, lr=1.0, optimizer="sgd", seed=seed)
        res = width_sweep([16, 2048], tr[:600], va[:200], mc, cfg, width_ref=16, lr_exponent=1.0,
                          ntk_train=tr[:10], ntk_test=va[:10], seed=seed)
        for w, c in zip(res["width"], res["rel_frobenius_final"]):
            change[int(w)].append(c)
    assert max(change[2048]) < 0.01, change
    assert min(change[16]) > 0.02, change
    assert max(change[2048]) < min(change[16]) / 5, change


def test_float32_option(sets):
    _, tr, va = sets
    tr32, va32 = (MetricData(*(t.to(torch.float32) for t in (d.x, d.gfs, d.omega2, d.weights))) for d in (tr, va))
    model = MetricMLP(10, depth=1, width=8, dtype="float32", seed=0, output_scale=0.1)
    assert model.dtype == torch.float32
    m64 = MetricMLP(10, depth=1, width=8, seed=0)
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})  # same weights, float64
    hist = train(model, tr32[:500], va32[:200], TrainConfig(epochs=1, batch_size=100))
    assert predict(model, va32).dtype == torch.float32
    assert np.all(np.isfinite(hist.sigma_val))
    # the float32 σ of the initial network agrees with the float64 one to float32 accuracy
    assert abs(hist.sigma_val[0] - evaluate_sigma(m64, va[:200])) < 1e-5


def test_batches_cover_every_point_once_per_epoch(sets):
    _, tr, _ = sets
    data = tr[:230]
    gen = torch.Generator().manual_seed(3)
    batches = list(data.batches(50, gen))
    assert [len(b) for b in batches] == [50, 50, 50, 50, 30]
    seen = torch.cat([b.x for b in batches])
    order = np.lexsort(seen.numpy().T[::-1])
    np.testing.assert_array_equal(seen.numpy()[order], data.x.numpy()[np.lexsort(data.x.numpy().T[::-1])])
    for b in batches:  # rows stay aligned across the fields
        np.testing.assert_array_equal(b.weights.numpy(), tr.weights.numpy()[_rows(tr.x[:230], b.x)])
    second = torch.cat([b.x for b in data.batches(50, gen)])
    assert not torch.equal(second, seen)  # a new order every epoch


def _rows(all_x, sub_x):
    """Row index in all_x of each row of sub_x (exact match)."""
    return [int(np.flatnonzero((all_x.numpy() == r).all(axis=1))[0]) for r in sub_x.numpy()]


def test_a_trainer_resumed_part_way_into_an_epoch_refuses_fewer_epochs(sets):
    """A state saved 2 batches into epoch 2 loaded by a Trainer of 1 epoch: run() would return that part-trained
    network as if epoch 1 had ended; it raises ValueError naming epochs >= 2, the network untouched."""
    from hpcflow.nn.train import Trainer

    _, tr, va = sets
    tr, va = tr[:400], va[:200]

    class Stop(Exception):
        pass

    def stop(t):
        if (t.epoch, t.pos) == (1, 2):
            raise Stop

    model = MetricMLP(10, depth=2, width=8, seed=0)
    first = Trainer(model, tr, va, TrainConfig(epochs=2, batch_size=100, lr=3e-3, seed=0), on_step=stop)
    with pytest.raises(Stop):
        first.run()
    state = first.state_dict()
    assert (state["epoch"], state["position"]) == (1, 2)
    again = Trainer(MetricMLP(10, depth=2, width=8, seed=0), tr, va, TrainConfig(epochs=1, batch_size=100, lr=3e-3))
    again.load_state_dict(state)
    weights = {k: v.clone() for k, v in again.model.state_dict().items()}
    with pytest.raises(ValueError, match="epochs >= 2"):
        again.run()
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in weights.items())


def test_train_and_the_sweep_say_when_a_network_diverged(sets, monkeypatch):
    """A network whose metric is not finite (a NaN weight): train returns History.diverged naming epoch 0 (sigma_val
    of one value; non-finite data are refused before it, tests/test_nn_data_checks.py); a NaN learning rate
    from optimiser step 5 on (4 steps per epoch) makes the loss of step 7 NaN: train_with_ntk says so, its NTK as
    long as the history; width_sweep's `stopped` names the width whose rate was NaN, whose final σ and NTK change
    are NaN, the other width's finite; a finite training has diverged None."""
    import math

    from hpcflow.nn import train as T
    from hpcflow.nn.experiment import train_with_ntk

    _, tr, va = sets
    tr, va = tr[:400], va[:200]
    cfg = TrainConfig(epochs=2, batch_size=100, lr=3e-3, seed=0)
    bad = copy.deepcopy(tr)
    bad.omega2[7] = float("nan")
    with pytest.raises(ValueError, match=re.escape("train_data: omega2[7] = nan is not a finite number > 0")):
        train(MetricMLP(10, depth=2, width=8, seed=0), bad, va, cfg)
    nan_net = MetricMLP(10, depth=2, width=8, seed=0)
    with torch.no_grad():
        nan_net.layers[-1].bias[0] = float("nan")
    hist = train(nan_net, tr, va, cfg)
    assert hist.diverged.startswith("epoch 0: ") and "sigma_train = nan" in hist.diverged and len(hist.sigma_val) == 1
    assert train(MetricMLP(10, depth=2, width=8, seed=0), tr, va, TrainConfig(epochs=1, batch_size=100)).diverged \
        is None
    rate = T.learning_rate  # NaN from step 5 on for a rate below 1e-3
    monkeypatch.setattr(T, "learning_rate", lambda c, step, epoch, total: math.nan if step >= 5 and c.lr < 1e-3
                        else rate(c, step, epoch, total))
    slow = TrainConfig(epochs=2, batch_size=100, lr=1e-4, seed=0)
    res = train_with_ntk(MetricMLP(10, depth=2, width=8, seed=0), tr, va, slow, ntk_train=tr[:3], ntk_test=va[:3])
    assert res["diverged"] == "epoch 2, step 7: batch loss = nan"
    assert len(res["history"]["sigma_val"]) == 2 and res["ntk"]["wasserstein"].shape == (2,)
    sweep = width_sweep([4, 16], tr, va, {"depth": 2, "activation": "gelu", "kind": "multiplicative"}, cfg,
                        width_ref=4, lr_exponent=1.0, ntk_train=tr[:3], ntk_test=va[:3], seed=0)
    assert list(sweep["lr"]) == [3e-3, 3e-3 / 4]  # width 16's rate is below 1e-3
    assert list(sweep["stopped"]) == ["", "epoch 2, step 7: batch loss = nan"]
    for k in ("sigma_val_final", "rel_frobenius_final", "wasserstein_final"):
        assert np.isfinite(sweep[k][0]) and np.isnan(sweep[k][1]), k


def test_a_model_whose_tensor_has_a_flipped_bit_is_refused_naming_the_file_and_entry(tmp_path):
    """load_model of a model.pt with one flipped low mantissa bit in a tensor (its values finite, its zip CRC-32
    failing) loaded the altered weights without a word; one InputFileError line naming the file and the entry."""
    from test_tune_nn_h5 import _flip_low_bit

    from hpcflow.errors import InputFileError

    path = tmp_path / "model.pt"
    save_model(path, MetricMLP(10, depth=2, width=16, activation="gelu", seed=0))
    before = torch.load(path, weights_only=True)
    entry = _flip_low_bit(path)
    after = torch.load(path, weights_only=True)  # torch reads it: one tensor changed, every value finite
    assert [k for k in before if not torch.equal(before[k], after[k])] != []
    assert all(bool(torch.isfinite(t).all()) for t in after.values())
    with pytest.raises(InputFileError) as exc:
        load_model(path)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: its entry {entry} fails its CRC-32 check"), text


#: how model.pt.json or model.pt is replaced -> (its new config (dict: JSON of it) or model.pt, the file named)
LOAD_FAULTS = {"config not JSON": ("{not json", "json"), "config a list": ("[1, 2]", "json"),
               "config with another key": ({"foo": 1}, "json"), "config of a wider network": ({"width": 8}, "pt"),
               "a training checkpoint as model.pt": ("checkpoint", "pt"), "model.pt a list": ([1, 2], "pt")}


@pytest.mark.parametrize("how", list(LOAD_FAULTS))
def test_a_model_that_does_not_load_is_one_input_file_error(tmp_path, how):
    """load_model of a malformed or mismatched model.pt.json, or a model.pt that is not that network's (a training
    checkpoint, another width): one InputFileError line naming the file and what to pass (JSONDecodeError,
    TypeError and torch's many-line RuntimeError before)."""
    from hpcflow.errors import InputFileError
    from hpcflow.nn.checkpoint import FORMAT

    path, cfg_path = tmp_path / "model.pt", tmp_path / "model.pt.json"
    save_model(path, MetricMLP(10, depth=1, width=4, seed=0))
    new, named = LOAD_FAULTS[how]
    if isinstance(new, dict):
        cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), **new}))
    elif how.startswith("config"):
        cfg_path.write_text(new)
    else:
        torch.save({"format": FORMAT, "train": {}} if new == "checkpoint" else new, path)
    with pytest.raises(InputFileError) as exc:
        load_model(path)
    text = str(exc.value)
    bad = cfg_path if named == "json" else path
    assert "\n" not in text and text.startswith(f"{bad} ") and "pass the model.pt of an 'hpcflow nn' run" in text, text


def test_the_epoch_loss_is_the_point_weighted_mean_of_its_batch_losses(sets):
    """history/loss of an epoch is Σ_b n_b L_b / Σ_b n_b, L_b the σ loss (eq. B.11, κ of the batch) of batch b at
    the parameters its step started from, n_b its points: 230 points in batches of 100 take 100, 100 and 30 (the
    plain mean of the L_b weighs the last 30 points as much as each 100). L_b here from NumPy's det of the network's
    metric, on the documented data order: one permutation per epoch from the seeded generator, batch b its positions
    [100 b, 100 b + n_b)."""
    _, tr, va = sets
    data, sizes = tr[:230], (100, 100, 30)
    model = MetricMLP(10, depth=1, width=8, seed=4, output_scale=0.1)
    states = [copy.deepcopy(model.state_dict())]  # the parameters before each step
    hist = train(model, data, va[:50], TrainConfig(epochs=2, batch_size=100, lr=1e-2, seed=9),
                 on_step=lambda t: states.append(copy.deepcopy(t.model.state_dict())))
    probe = MetricMLP(10, depth=1, width=8, seed=4, output_scale=0.1)
    gen, step = torch.Generator().manual_seed(9), 0
    for epoch in range(2):
        perm, lo, losses = torch.randperm(230, generator=gen), 0, []
        for n_b in sizes:
            batch = data[perm[lo:lo + n_b]]
            probe.load_state_dict(states[step])
            with torch.no_grad():
                g = unpack(predict(probe, batch).numpy())
            eta = np.linalg.det(g).real / batch.omega2.numpy()
            w = batch.weights.numpy()
            kappa = np.sum(w * eta) / np.sum(w)
            losses.append(np.sum(w * np.abs(eta / kappa - 1.0)) / np.sum(w))
            lo, step = lo + n_b, step + 1
        expected = np.dot(sizes, losses) / 230
        assert hist.loss[epoch] == pytest.approx(expected, rel=1e-10, abs=0), (epoch, losses)
        assert abs(np.mean(losses) - expected) > 1e-3 * expected, losses  # the two means differ here
