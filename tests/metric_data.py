"""Network data sets as the tests spoil them: a copy of a MetricData with one field changed at some rows (shared
with the MPI driver tests/mpi/nn_data_checks.py, which puts tests/ on sys.path)."""

import copy


def changed(d, field, row, value):
    """A copy of MetricData `d` whose `field` has `value` at `row` (an index, a slice or a tuple); `d` is untouched."""
    d = copy.copy(d)
    t = getattr(d, field).clone()
    t[row] = value
    setattr(d, field, t)
    return d
