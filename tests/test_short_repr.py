"""Values named in API error messages are shown on one line: a NumPy array's multi-line repr has its rows joined, so
the message stays one line, and it is cut to 60 characters."""

from __future__ import annotations

import numpy as np
import pytest

from hpcflow.arguments import api_integer, api_number, short_repr
from hpcflow.cluster.inputs import check_seed
from hpcflow.errors import ConfigError


def test_a_multi_line_array_repr_becomes_one_line():
    a = np.eye(3)
    assert "\n" in repr(a)
    rows = [line.strip() for line in repr(a).splitlines()]
    assert short_repr(a) == " ".join(rows)  # 'array([[1., 0., 0.], [0., 1., 0.], [0., 0., 1.]])'
    assert len(short_repr(a)) <= 60


def test_a_long_multi_line_repr_is_one_line_of_at_most_60_characters():
    a = np.arange(400.0).reshape(20, 20)
    first = repr(a).splitlines()[0]
    assert len(first) > 57
    assert short_repr(a) == first[:57] + "..."  # the spaces within a row are kept


def test_spaces_inside_a_one_line_repr_are_kept():
    assert short_repr("a  b") == "'a  b'"
    assert short_repr("two\nlines") == repr("two\nlines")  # an escaped newline is no line break


@pytest.mark.parametrize("check", [lambda v: api_integer("n_points", v, "an integer"),
                                   lambda v: api_number("width", v, "a number"), check_seed])
def test_api_errors_about_arrays_are_one_line(check):
    with pytest.raises((TypeError, ConfigError)) as exc:
        check(np.ones((4, 4)))
    msg = str(exc.value)
    assert "\n" not in msg and "array([[1., 1., 1., 1.], [1., 1." in msg
