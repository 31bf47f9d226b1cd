"""A `comm` that is not a communicator is refused in one line naming comm, by every API function that takes one
(they all resolve it through `hpcflow.parallel.comm.resolve`), before any work."""

import numpy as np
import pytest

from hpcflow.checkpoint import load_resume
from hpcflow.cluster.distributed import distributed_blocks, distributed_labels
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from hpcflow.parallel import comm as pcomm

WANT = r"^comm=.* is not an MPI communicator; pass an mpi4py communicator \(e\.g\. MPI\.COMM_WORLD\), or None"
BAD = [1, "world", {}, [0]]


@pytest.fixture(scope="module")
def sets():
    X = Hypersurface.fermat(3)
    return X.sample(20, seed=0, chart=(0, 1)), X.sample(10, seed=1, chart=(0, 1))


@pytest.mark.parametrize("bad", BAD)
def test_resolve_refuses_what_is_not_a_communicator(bad):
    with pytest.raises(TypeError, match=WANT):
        pcomm.resolve(bad)
    with pytest.raises(TypeError, match=WANT):
        pcomm.size(bad)


def test_resolve_takes_an_object_with_get_rank_and_get_size():
    class Two:
        def Get_rank(self):
            return 1

        def Get_size(self):
            return 2

    c = Two()
    assert pcomm.resolve(c) is c and pcomm.size(c) == 2
    assert pcomm.resolve(None).Get_size() >= 1


@pytest.mark.parametrize("bad", [1, "world"])
def test_api_functions_refuse_a_comm_that_is_not_a_communicator(sets, bad, tmp_path):
    """These failed with "AttributeError: 'int' object has no attribute 'Get_size'" (or reached other work)."""
    train, test = sets
    z = np.asarray(train.points)
    calls = [lambda: kernel_flow(make_kernel("delta"), train, test, dt=1.0, steps=1, comm=bad),
             lambda: Hypersurface.fermat(3).sample(10, seed=0, comm=bad),
             lambda: distributed_labels(z, n_clusters=2, comm=bad),
             lambda: distributed_blocks(z, comm=bad, n_clusters=2),
             lambda: load_resume(tmp_path / "none.h5", comm=bad)]
    for call in calls:
        with pytest.raises(TypeError, match=WANT):
            call()
