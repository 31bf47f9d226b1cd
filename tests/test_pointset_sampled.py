"""PointSet.save trusts the data of a set the sampler formed only while its rows are unchanged: such a set is saved
without forming its point data again; a set changed after sampling, a selection of it, or one built from arrays is
checked in full. The cheaper check forms the same bits as before."""

from __future__ import annotations

import numpy as np
import pytest

from hpcflow.backend import get_xp
from hpcflow.geometry import Hypersurface, PointSet, charts
from hpcflow.geometry.sampling import sample_points

X = Hypersurface.fermat(3)
FIELDS = ("points", "weights", "omega2", "g_fs", "chart")


@pytest.fixture
def formed(monkeypatch):
    """Calls of charts.point_data (each forms the data of some points) made while the test runs."""
    calls = []
    real = charts.point_data

    def counted(surface, z, **kw):
        calls.append(len(z))
        return real(surface, z, **kw)

    monkeypatch.setattr(charts, "point_data", counted)
    return calls


def test_saving_a_sampled_set_forms_no_point_data_again(tmp_path, formed):
    ps = X.sample(3000, seed=4)
    formed.clear()
    ps.save(tmp_path / "s.h5")
    assert formed == []
    back = PointSet.load(tmp_path / "s.h5")  # the file passes every rule of load
    for name in FIELDS:
        assert np.array_equal(getattr(back, name), getattr(ps, name))


def _swap_rows(ps):
    ps.weights[[0, 1]] = ps.weights[[1, 0]]


def _other_chart(ps):
    i, j = ps.chart[6]
    ps.chart[6, 1] = min(k for k in range(5) if k not in (i, j))


CHANGES = {  # in place or by assignment, after sampling; each breaks a rule
    "omega2 x 3": lambda ps: ps.omega2.__imul__(3),
    "one omega2": lambda ps: ps.omega2.__setitem__(4, 3 * ps.omega2[4]),
    "two weights swapped": _swap_rows,
    "non-Hermitian g_fs": lambda ps: ps.g_fs.__setitem__((2, 0, 1), 1.0),
    "point off X": lambda ps: ps.points.__setitem__((5, 3), 0.7 + 0.1j),
    "other chart": _other_chart,
    "weights replaced": lambda ps: setattr(ps, "weights", 2 * ps.weights),
    "other manifold": lambda ps: setattr(ps, "manifold", Hypersurface.dwork(3, 0.5)),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_sampled_set_changed_after_sampling_is_checked_in_full(tmp_path, formed, change):
    ps = X.sample(200, seed=1)
    CHANGES[change](ps)
    formed.clear()
    with pytest.raises(ValueError, match="which PointSet.load refuses; nothing written"):
        ps.save(tmp_path / "c.h5")
    assert formed, "the changed set was not checked against the data its points give"
    assert list(tmp_path.iterdir()) == []


def test_selections_and_sets_of_arrays_are_checked_in_full(tmp_path, formed):
    ps = X.sample(300, seed=2)
    arrays = PointSet(X, *(getattr(ps, f).copy() for f in FIELDS), n_dropped=ps.n_dropped, seed=ps.seed)
    for i, other in enumerate((ps[::2], PointSet.concatenate([ps, ps]), arrays)):
        formed.clear()
        other.save(tmp_path / f"{i}.h5")
        # every row formed on the host once; rows that differ from it (the CuPy sampler's differ in roundoff) are
        # formed again with their Jacobians for the agreement bound, none where the sampler ran on NumPy
        assert formed[0] == len(other) and (len(formed) == 1 or get_xp(auto_on_host=True) is not np), formed


def test_sampled_sets_are_marked_at_every_layout_and_without_jacobians():
    for layout in ("all", "share", "root"):
        for jacobian in (True, False):
            ps = sample_points(X, 100, seed=3, layout=layout, jacobian=jacobian)[0]
            assert ps._sampled is not None and ps._sampled == ps._digest()


def test_point_data_without_jacobians_is_the_same_bits():
    ps = Hypersurface.dwork(3, 0.3 + 0.2j).sample(500, seed=5)
    full = ps.manifold.point_set(ps.points, chart=ps.chart)
    lean = ps.manifold.point_set(ps.points, chart=ps.chart, jacobian=False)
    assert lean.jacobian is None
    for name in FIELDS:
        assert getattr(lean, name).tobytes() == getattr(full, name).tobytes()


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_local_indices_are_the_coordinates_other_than_i_and_j(n):
    pairs = np.array([(i, j) for i in range(n + 1) for j in range(n + 1) if i != j])
    loc = charts.local_indices(n, pairs[:, 0], pairs[:, 1])
    want = [[k for k in range(n + 1) if k not in (i, j)] for i, j in pairs]
    assert loc.tolist() == want
    with pytest.raises(ValueError, match="i == j"):
        charts.local_indices(n, np.array([1]), np.array([1]))
