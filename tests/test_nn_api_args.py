"""The `hpcflow.nn` Python API refuses bad input before any work with one TypeError / ValueError naming the argument,
the value and the fix: MetricMLP sizes that are fractional, empty or not a packed metric's."""

import math

import pytest

torch = pytest.importorskip("torch")

from hpcflow.nn.model import MetricMLP  # noqa: E402


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# ---- MetricMLP ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, error, words", [
    (dict(width=8.5), ValueError, ["MetricMLP: width=8.5 is invalid", "pass an integer >= 1"]),
    (dict(width="8"), TypeError, ["MetricMLP: width='8' is invalid"]),
    (dict(n_in=0), ValueError, ["MetricMLP: n_in=0 is invalid", "pass an integer >= 1", "10 for the quintic"]),
    (dict(n_in=-3), ValueError, ["MetricMLP: n_in=-3 is invalid"]),
    (dict(depth=0), ValueError, ["MetricMLP: depth=0 is invalid", "pass an integer >= 1"]),
    (dict(depth=True), TypeError, ["MetricMLP: depth=True is invalid"]),
    (dict(n_out=0), ValueError, ["MetricMLP: n_out=0 is invalid", "pass a square"]),
    (dict(n_out=5), ValueError, ["MetricMLP: n_out=5 is invalid", "9 for 3 x 3"]),
    (dict(output_scale=math.nan), ValueError, ["MetricMLP: output_scale=nan is invalid", "a finite number"]),
    (dict(output_scale="1"), TypeError, ["MetricMLP: output_scale='1' is invalid"]),
    (dict(seed=1.5), ValueError, ["MetricMLP: seed=1.5 is invalid", "None or an integer >= 0"]),
    (dict(seed=-1), ValueError, ["MetricMLP: seed=-1 is invalid"]),
])
def test_metric_mlp_refuses_sizes_that_are_not_counts(kw, error, words):
    with pytest.raises(error) as exc:
        MetricMLP(**{"n_in": 10, "depth": 1, "width": 4, **kw})
    text = _one_line(exc)
    assert all(w in text for w in words), text
