"""kernel_flow refuses, before any work and in one line, point sets whose rows its sums cannot use (negative, NaN or
misshapen weights, omega2 <= 0, a g_fs that is not a metric)."""

import warnings

import numpy as np
import pytest

from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from test_api_args import Unused  # a kernel that fails if the flow gets as far as using it


@pytest.fixture(scope="module")
def sets():
    X = Hypersurface.fermat(3)
    return X.sample(100, seed=0, chart=(0, 1)), X.sample(30, seed=1, chart=(0, 1))


def _changed(ps, field, change):
    out = ps[:]
    setattr(out, field, change(getattr(out, field).copy()))
    return out


def _set(a, rows, value):
    a[rows] = value
    return a


def _not_positive_definite(g):
    """Rows of g whose smallest eigenvalue is <= 0 (LAPACK, not the code's leading minors)."""
    return np.flatnonzero(np.linalg.eigvalsh(g).min(axis=1) <= 0)


#: field -> (change of the field, first bad row of a changed set found independently, message after "field[row]")
ROWS = {
    "mixed_sign_weights": ("weights", lambda w: w * np.where(np.arange(w.size) % 3 == 1, -1.0, 1.0),
                           lambda ps: np.flatnonzero(ps.weights < 0)[0], "is not a finite number >= 0"),
    "nan_weight": ("weights", lambda w: _set(w, 7, np.nan), lambda ps: 7, " = nan is not a finite number >= 0"),
    "zero_omega2": ("omega2", lambda o: _set(o, 4, 0.0), lambda ps: 4, " = 0.0 is not a finite number > 0"),
    "negated_g_fs": ("g_fs", lambda g: -g, lambda ps: _not_positive_definite(ps.g_fs)[0], " is not positive definite"),
    "one_g_fs_indefinite": ("g_fs", lambda g: _set(g, 9, np.diag([1.0, -1.0, 1.0])), lambda ps: 9,
                            " is not positive definite"),
}


@pytest.mark.parametrize("which", ["train", "test"])
@pytest.mark.parametrize("case", list(ROWS))
def test_a_set_with_a_bad_row_is_refused_naming_set_field_and_row(sets, which, case):
    """Each gave a sigma of nan or -0 with RuntimeWarnings, or stopped blaming dt; now one ValueError, no warning."""
    field, change, first, said = ROWS[case]
    train, test = sets
    bad = _changed(train if which == "train" else test, field, change)
    args = (bad, test) if which == "train" else (train, bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as err:
            kernel_flow(Unused(), *args, dt=1e-3, steps=2)
    message = str(err.value)
    assert message.startswith(f"{which}: {field}[{first(bad)}]") and said in message and "\n" not in message, message


@pytest.mark.parametrize("which", ["train", "test"])
@pytest.mark.parametrize("field", ["weights", "omega2", "g_fs"])
def test_a_field_of_fewer_rows_than_points_is_refused(sets, which, field):
    """weights[:10] next to 100 points gave a bare numpy broadcast error from inside the flow."""
    train, test = sets
    bad = _changed(train if which == "train" else test, field, lambda a: a[:10])
    n = len(bad.points)
    with pytest.raises(ValueError, match=rf"^{which}: {field} has shape \(10,?[^)]*\) next to {n} points; pass one "
                                         "row per point"):
        kernel_flow(Unused(), *((bad, test) if which == "train" else (train, bad)), dt=1e-3, steps=2)


@pytest.mark.parametrize("which", ["train", "test"])
def test_weights_that_are_all_zero_are_refused(sets, which):
    """kappa and sigma are weighted means: 0/0 gave sigma nan."""
    train, test = sets
    bad = _changed(train if which == "train" else test, "weights", np.zeros_like)
    with pytest.raises(ValueError, match=rf"^{which}: every weight is 0; .* pass at least one weight > 0"):
        kernel_flow(Unused(), *((bad, test) if which == "train" else (train, bad)), dt=1e-3, steps=2)
