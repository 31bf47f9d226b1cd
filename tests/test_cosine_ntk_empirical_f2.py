"""cosine_ntk_empirical takes f2 = None for f1 with itself, as cosine_ntk and relu_ntk do."""

import inspect

import numpy as np

from hpcflow.kernels import cosine_ntk, cosine_ntk_empirical, relu_ntk


def test_f2_is_optional_in_every_feature_function():
    for fn in (cosine_ntk, cosine_ntk_empirical, relu_ntk):
        assert inspect.signature(fn).parameters["f2"].default is None, fn.__name__


def test_f2_none_is_f1_with_itself():
    f = np.random.default_rng(0).standard_normal((7, 6))
    kw = dict(width=50, sigma_w=1.5, seed=3)
    one = cosine_ntk_empirical(f, **kw)
    assert np.array_equal(one, cosine_ntk_empirical(f, None, **kw))
    # the same draw as with f1 given twice; the sum of products is symmetric up to its rounding order
    np.testing.assert_allclose(one, cosine_ntk_empirical(f, f, **kw), rtol=0, atol=1e-12 * np.abs(one).max())
    np.testing.assert_allclose(one, one.T, rtol=0, atol=1e-12 * np.abs(one).max())
