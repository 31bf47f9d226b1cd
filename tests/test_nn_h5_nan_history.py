"""nn.h5's histories are compared with checkpoint.pt's (`hpcflow.nn.h5schema._checkpoint_fault`) bit for bit, NaN
equal to NaN: a diverged run's last epoch may be NaN in both, and such a file was called other than the checkpoint's
(NumPy's array_equal takes NaN as unequal to itself), so `hpcflow nn --resume` and the report judged it damaged."""

import h5py
import numpy as np

from hpcflow.nn.h5schema import _checkpoint_fault

NAN = float("nan")
#: a run diverged in its third epoch: its sigma and loss of that epoch are NaN, as its checkpoint.pt records them
HISTORY = {"sigma_train": [2.0, 1.5, 1.25, NAN], "sigma_val": [2.5, 1.75, 1.5, NAN], "loss": [0.5, 0.25, NAN],
           "val_not_positive_definite": [0, 0, 1, 3]}


def _fault(tmp_path, history: dict, written: dict):
    """`_checkpoint_fault` of an nn.h5 holding the histories `written` against a diverged run's checkpoint
    entries of histories `history` (no job recorded: its histories alone are compared)."""
    with h5py.File(tmp_path / "nn.h5", "w") as f:
        for name, values in written.items():
            f[f"history/{name}"] = np.asarray(values, dtype=np.int64 if name == "val_not_positive_definite" else
                                              np.float64)
        return _checkpoint_fault(f, {}, "diverged", {"status": "diverged", "train": {"history": history}})


def test_nan_where_the_checkpoint_holds_nan_is_the_same_history(tmp_path):
    assert _fault(tmp_path, HISTORY, HISTORY) is None


def test_a_finite_value_where_the_checkpoint_holds_nan_or_another_value_still_differs(tmp_path):
    for name, epoch, value in (("loss", 2, 0.125), ("sigma_val", 1, 1.0), ("val_not_positive_definite", 3, 2)):
        written = {k: list(v) for k, v in HISTORY.items()}
        written[name][epoch] = value
        assert _fault(tmp_path, HISTORY, written) == (f"dataset history/{name} differs from checkpoint.pt's "
                                                      f"train.history.{name} at epoch {epoch}")
    written = dict(HISTORY, loss=[0.5, 0.25, NAN, NAN])  # (one epoch more)
    assert _fault(tmp_path, HISTORY, written) == "dataset history/loss differs from checkpoint.pt's train.history.loss"
