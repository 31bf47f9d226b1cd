"""kernel_flow refuses, before any work and in one line, point sets whose rows its sums cannot use (negative, NaN or
misshapen weights, omega2 <= 0, a g_fs that is not a metric), FlowBlocks that are not sorted integer index arrays in
range or do not hold every train and test row exactly once, and an xp that is neither numpy nor cupy."""

import collections
import types
import warnings

import numpy as np
import pytest

from hpcflow.flow import FlowBlock, kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from test_api_args import Unused  # a kernel that fails if the flow gets as far as using it

A, T = np.arange(100), np.arange(30)


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


#: case -> (blocks, exception, how the message starts)
BLOCKS = {
    "none": ([], ValueError, r"blocks: train points in no block \(100 of 100, the first 0\) would not flow"),
    "half_of_train": ([FlowBlock(A[:50], T, A[:50])], ValueError,
                      r"blocks: train points in no block \(50 of 100, the first 50\)"),
    "test_rows_left_out": ([FlowBlock(A, T[:20], A)], ValueError,
                           r"blocks: test points in no block \(10 of 30, the first 20\)"),
    "test_row_twice": ([FlowBlock(A[:50], T, A), FlowBlock(A[50:], T[3:4], A)], ValueError,
                       r"blocks: test point 3 belongs to more than one FlowBlock \(blocks\[0\] and blocks\[1\]\)"),
    "source_twice_sorted": ([FlowBlock(A, T, np.repeat(A, 2))], ValueError,
                            r"blocks\[0\]\.source_idx holds index 0 twice; pass each index once, sorted"),
    "source_twice": ([FlowBlock(A, T, np.concatenate([A, A]))], ValueError,
                     r"blocks\[0\]\.source_idx is not sorted \(99 before 0\)"),
    "unsorted_second_block": ([FlowBlock(A[:50], T, A), FlowBlock(A[50:], T[:0], A[::-1])], ValueError,
                              r"blocks\[1\]\.source_idx is not sorted \(99 before 98\)"),
    "float_train_idx": ([FlowBlock(A.astype(float), T, A)], TypeError,
                        r"blocks\[0\]\.train_idx has dtype float64, not an integer one; pass integer"),
    "mask": ([FlowBlock(A, np.ones(30, dtype=bool), A)], TypeError, r"blocks\[0\]\.test_idx is a boolean mask"),
    "source_out_of_range": ([FlowBlock(A, T, np.arange(150))], ValueError,
                            r"blocks\[0\]\.source_idx: index 149 is outside range\(100\)"),
    "test_out_of_range": ([FlowBlock(A, np.arange(31), A)], ValueError,
                          r"blocks\[0\]\.test_idx: index 30 is outside range\(30\)"),
    "test_source_out_of_range": ([FlowBlock(A, T, A, np.arange(101))], ValueError,
                                 r"blocks\[0\]\.test_source_idx: index 100 is outside range\(100\)"),
    "test_source_unsorted": ([FlowBlock(A, T, A, A[::-1])], ValueError,
                             r"blocks\[0\]\.test_source_idx is not sorted \(99 before 98\)"),
    "test_source_mask": ([FlowBlock(A, T, A, np.ones(100, dtype=bool))], TypeError,
                         r"blocks\[0\]\.test_source_idx is a boolean mask"),
    "not_blocks": ([1, 2], TypeError, r"blocks\[0\] is of type int, not a FlowBlock; pass FlowBlock\("),
    "not_a_list": (5, TypeError, r"blocks=5 is not a list of FlowBlocks"),
}


@pytest.mark.parametrize("case", list(BLOCKS))
def test_blocks_that_do_not_flow_every_row_once_are_refused(sets, case):
    """Each ran: nothing moved, half the train points stayed at g_FS, a source counted twice, floats and unsorted
    arrays went through, or an error named neither the block nor the field."""
    blocks, kind, want = BLOCKS[case]
    with pytest.raises(kind, match="^" + want) as err:
        kernel_flow(Unused(), *sets, dt=1e-3, steps=2, blocks=blocks)
    assert "\n" not in str(err.value)


def test_blocks_that_hold_every_row_once_flow_as_the_whole_set(sets):
    """Two blocks with every train point as sources: the unclustered flow (within summation order)."""
    K = make_kernel("gaussian", width=0.1)
    blocks = [FlowBlock(A[::2], T[:10], A), FlowBlock(A[1::2], T[10:], A)]
    got = kernel_flow(K, *sets, dt=1e-3, steps=2, blocks=blocks)
    want = kernel_flow(K, *sets, dt=1e-3, steps=2)
    assert want.sigma_train[-1] != want.sigma_train[0]
    for key in ("sigma_train", "sigma_test"):
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), rtol=1e-12)


def test_blocks_of_three_fields_flow_their_test_rows_with_source_idx(sets):
    """A block of (train_idx, test_idx, source_idx) alone, FlowBlock's or another named tuple's, is the block whose
    test_source_idx is its source_idx; a given test_source_idx is what the test rows flow with."""
    K = make_kernel("gaussian", width=0.1)
    Three = collections.namedtuple("Three", "train_idx test_idx source_idx")
    src = A[:70]
    want = kernel_flow(K, *sets, dt=1e-3, steps=2, blocks=[FlowBlock(A, T, src, src)])
    other = kernel_flow(K, *sets, dt=1e-3, steps=2, blocks=[FlowBlock(A, T, src, A)])
    assert np.abs(other.g_test - want.g_test).max() > 0  # the control: the test rows' sources matter
    np.testing.assert_array_equal(other.g_train, want.g_train)  # and only theirs
    for blocks in ([FlowBlock(A, T, src)], [Three(A, T, src)]):
        got = kernel_flow(K, *sets, dt=1e-3, steps=2, blocks=blocks)
        for key in ("sigma_train", "sigma_test", "g_train", "g_test"):
            np.testing.assert_array_equal(getattr(got, key), getattr(want, key))


def test_an_array_module_other_than_numpy_or_cupy_is_refused(sets):
    """Anything with `asarray` was taken and failed deep inside (torch: 'Tensor' object has no attribute 'astype')."""
    other = types.ModuleType("torch")
    other.asarray = np.asarray
    with pytest.raises(TypeError, match=r"^xp=<module 'torch'> is not numpy or cupy; pass numpy or cupy itself"):
        kernel_flow(Unused(), *sets, dt=1e-3, steps=2, xp=other)
