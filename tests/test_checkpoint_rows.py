"""FlowResume.rows refuses what is no list of global row indices of its set, naming global_idx or kind, before it
reads the file; it used to truncate fractions, wrap negative indices, read masks as indices and fail with NumPy's or
h5py's own errors."""

import numpy as np
import pytest

from hpcflow.checkpoint import CheckpointWriter, load_resume
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import GaussianKernel

N_TRAIN, N_TEST = 40, 10


@pytest.fixture(scope="module")
def resume(tmp_path_factory):
    X = Hypersurface.fermat(3)
    train, test = X.sample(N_TRAIN, seed=1, chart=(0, 1)), X.sample(N_TEST, seed=2, chart=(0, 1))
    path = tmp_path_factory.mktemp("rows") / "checkpoint.h5"
    writer = CheckpointWriter(path, {"flow": {}}, every=1)
    kernel_flow(GaussianKernel(0.3), train, test, dt=1.0, steps=1, on_step=writer)
    writer.close("finished")
    return load_resume(path)


@pytest.mark.parametrize("kind, global_idx, said", [
    ("train", [0.9], "index 0.9 is not a whole number"),  # was row 0
    ("train", [-5], "index -5 is outside range(40) (no wrap-around from the end); pass global indices of its rows "
                    "0..39"),  # was row 35
    ("train", [-1], "index -1 is outside range(40)"),  # was "index 0 is out of bounds for axis 0 with size 0"
    ("train", [True, False], "a boolean array is a mask, not indices; pass np.flatnonzero(mask)"),  # was rows 1, 0
    ("train", [N_TRAIN], "index 40 is outside range(40); pass global indices of its rows 0..39"),  # IndexError
    ("test", [0, N_TEST], "index 10 is outside range(10); pass global indices of its rows 0..9"),
    ("test", [[1, 2]], "shape (1, 2) is not 1-D"),  # was flattened
    ("train", "ab", "are not integers"),
])
def test_rows_refuses_what_is_no_index_of_the_set(resume, kind, global_idx, said):
    with pytest.raises(ValueError) as info:
        resume.rows(kind, global_idx)
    msg = str(info.value)
    assert msg.startswith(f"global_idx={global_idx!r} of the {kind} set: ") and said in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("kind", ["trian", "Train", None, ["train"]])
def test_rows_refuses_a_kind_that_is_no_set(resume, kind):
    with pytest.raises(ValueError, match=r"^kind=.* is invalid; pass 'train' or 'test'$"):  # was h5py's KeyError
        resume.rows(kind, [0])


def test_rows_takes_whole_numbers_as_kernel_flow_takes_train_idx(resume):
    every = resume.rows("train", np.arange(N_TRAIN))
    assert every.shape == (N_TRAIN, 9)
    np.testing.assert_array_equal(resume.rows("train", [3, 1.0, np.int32(7)]), every[[3, 1, 7]])
    np.testing.assert_array_equal(resume.rows("train", np.flatnonzero(np.arange(N_TRAIN) % 13 == 0)),
                                  every[[0, 13, 26, 39]])
    assert resume.rows("test", []).shape == (0, 9)
