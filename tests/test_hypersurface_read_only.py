"""A Hypersurface is frozen and hashed by its polynomial: its monomials and coefficients are its own read-only
copies, so no write (into them, or into the arrays it was built from) changes p behind its checks and its hash;
pickled and copied ones are read-only again."""

import copy
import pickle

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface


@pytest.mark.parametrize("X", [Hypersurface.fermat(3), Hypersurface.dwork(3, 0.1 + 0.2j),
                               Hypersurface.from_monomials(np.eye(4, dtype=np.int32) * 4, [1, 2, 3, 4])])
def test_arrays_are_read_only(X):
    h, key = hash(X), X.polynomial_key()
    for name in ("monomials", "coefficients"):
        a = getattr(X, name)
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0
        with pytest.raises(ValueError, match="read-only"):
            a[:] = 0
    assert hash(X) == h and X.polynomial_key() == key


def test_the_arrays_passed_are_copied():
    mon, coef = np.eye(5, dtype=np.int64) * 5, np.ones(5, dtype=np.complex128)
    X = Hypersurface.from_monomials(mon, coef)
    h = hash(X)
    coef[:] = 0  # would be refused by the constructor ("all zero"), and sampling then never ends
    mon[0, 0] = 7
    assert hash(X) == h and X == Hypersurface.fermat(3)
    assert not np.shares_memory(X.coefficients, coef) and not np.shares_memory(X.monomials, mon)
    assert mon.flags.writeable and coef.flags.writeable  # the caller's arrays stay the caller's


@pytest.mark.parametrize("how", [lambda X: pickle.loads(pickle.dumps(X)), copy.copy, copy.deepcopy])
def test_copies_are_equal_and_read_only(how):
    X = Hypersurface.dwork(3, 0.25)
    Y = how(X)
    assert Y == X and hash(Y) == hash(X) and (Y.name, Y.params) == (X.name, X.params)
    assert not Y.monomials.flags.writeable and not Y.coefficients.flags.writeable
