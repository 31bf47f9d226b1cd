"""Counts, widths, thresholds and thread numbers are refused, not coerced: a point count of 10.7 is not
truncated to 10, threads=0 is not taken as 1, a kernel width of inf is not accepted. Integral floats (1e5, as a
config or a script may write a count) keep working. Through the Python API (ValueError/TypeError, ConfigError
where `sample` refuses its other arguments so) and through the command line (exit status 2, one line naming the
key, nothing on disk touched)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, fs_distance, fs_distance_paired
from hpcflow.geometry.sampling import sample_points
from hpcflow.kernels import CosineNTKKernel, GaussianKernel, ReluNTKKernel, make_kernel
from hpcflow.parallel.comm import SerialComm
from hpcflow.resources import estimate

ROOT = Path(__file__).resolve().parents[1]
NONFINITE = [math.nan, math.inf, -math.inf]


@pytest.fixture(scope="module")
def X():
    return Hypersurface.fermat(3)


@pytest.fixture(scope="module")
def points(X):
    return X.sample(40, seed=0, chart=(0, 1), comm=SerialComm()).points


# ---- point counts, threads and batches of sampling ----------------------------------------------------------
@pytest.mark.parametrize("n", [10.7, 0.5, -3.0, math.nan, math.inf, "10", True, None, 0, -5, 1e30, 10**30])
def test_sample_refuses_a_count_that_is_not_a_whole_number_of_points(X, n):
    with pytest.raises(ConfigError, match="n_points=") as exc:
        X.sample(n, seed=0, comm=SerialComm())
    assert "\n" not in str(exc.value) and "pass" in str(exc.value)


def test_an_integral_float_count_is_that_count(X):
    """sample(1e2) is sample(100), bitwise (the count 1e5 of a script or a config keeps working)."""
    a, b = X.sample(1e2, seed=3, comm=SerialComm()), X.sample(100, seed=3, comm=SerialComm())
    assert len(a) == 100 and a.points.tobytes() == b.points.tobytes()
    assert len(X.sample(np.float64(7.0), seed=3, comm=SerialComm())) == 7


@pytest.mark.parametrize("threads", [0, -1, 1.5, math.inf, "2", True])
def test_sample_refuses_threads_that_are_not_a_positive_count(X, threads):
    with pytest.raises(ConfigError, match="threads="):
        X.sample(10, seed=0, threads=threads, comm=SerialComm())
    with pytest.raises((ValueError, TypeError), match="threads="):
        sample_points(X, 10, 0, threads=threads, comm=SerialComm())


@pytest.mark.parametrize("n, max_batches, word", [(10.7, 100, "n_points="), (0, 100, "n_points="),
                                                   (10, 0.5, "max_batches="), (10, 0, "max_batches=")])
def test_sample_points_refuses_fractional_and_empty_sizes(X, n, max_batches, word):
    with pytest.raises(ValueError, match=word):
        sample_points(X, n, 0, max_batches=max_batches, comm=SerialComm())


@pytest.mark.parametrize("dim", [3.5, math.nan, "3", 0])
def test_a_fractional_dimension_is_refused(dim):
    with pytest.raises(ConfigError, match="dim="):
        Hypersurface.fermat(dim)
    assert Hypersurface.fermat(3.0) == Hypersurface.fermat(3)


# ---- kernel widths and hyperparameters ----------------------------------------------------------------------
@pytest.mark.parametrize("width", [*NONFINITE, -1.0, 0.0, -0.0])
def test_gaussian_width_must_be_finite_and_positive(width):
    for make in (lambda: GaussianKernel(width), lambda: make_kernel("gaussian", width=width, normalize="row")):
        with pytest.raises(ValueError, match="width=") as exc:
            make()
        assert "finite" in str(exc.value)
    with pytest.raises(TypeError, match="width="):
        GaussianKernel("0.5")


@pytest.mark.parametrize("make, word", [
    *[(lambda v=v: ReluNTKKernel(v, 0.1), "w_std=") for v in [*NONFINITE, 0.0, -1.0]],
    *[(lambda v=v: ReluNTKKernel(1.0, v), "b_std=") for v in [*NONFINITE, -0.1]],
    *[(lambda v=v: ReluNTKKernel(1.0, 0.1, v), "depth=") for v in [2.5, math.nan, math.inf, 0]],
    *[(lambda v=v: CosineNTKKernel(v), "sigma_w=") for v in [*NONFINITE, 0.0, -2.0]],
    *[(lambda v=v: CosineNTKKernel(1.0, amplitude=v), "amplitude=") for v in [*NONFINITE, 0.0, -1.0]],
])
def test_kernel_hyperparameters_must_be_finite_and_in_range(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_integral_depth_and_zero_bias_are_accepted():
    assert ReluNTKKernel(1.0, 0.0, 2.0).params() == {"w_std": 1.0, "b_std": 0.0, "depth": 2}
    with pytest.raises(TypeError, match="depth="):
        ReluNTKKernel(1.0, 0.1, True)


@pytest.mark.parametrize("kw, word", [(dict(threads=0), "threads="), (dict(threads=-2), "threads="),
                                      (dict(threads=1.5), "threads="), (dict(tile=2.5), "tile="),
                                      (dict(tile=0), "tile="), (dict(cache_bytes=-1), "cache_bytes="),
                                      (dict(cache_bytes=1.5), "cache_bytes=")])
@pytest.mark.parametrize("name, params", [("gaussian", dict(width=0.3)), ("relu_ntk", dict(w_std=1.0, b_std=0.1)),
                                          ("cosine_ntk", dict(sigma_w=1.0)), ("delta", {})])
def test_kernel_operators_refuse_zero_threads_and_fractional_tiles(points, name, params, kw, word):
    """Every kernel's operator, the delta kernel's gather too (it takes no tile but took tile=0), and its apply."""
    kern = make_kernel(name, **params)
    with pytest.raises(ValueError, match=word):
        kern.operator(points, points, **kw)
    if "tile" in kw:
        with pytest.raises(ValueError, match=word):
            kern.apply(points, points, np.ones((len(points), 9)), **kw)


def test_operator_with_integral_float_sizes_equals_the_integer_one(points):
    kern = make_kernel("gaussian", width=0.3)
    grad = np.random.default_rng(0).normal(size=(len(points), 9))
    a = kern.operator(points, points, tile=16.0, threads=1.0)(grad)
    b = kern.operator(points, points, tile=16, threads=1)(grad)
    assert a.tobytes() == b.tobytes()


# ---- distance thresholds and tiles --------------------------------------------------------------------------
@pytest.mark.parametrize("floor", [*NONFINITE, -1e-12, 2.0])
def test_noise_floor_must_be_a_distance(points, floor):
    with pytest.raises(ValueError, match="noise_floor="):
        fs_distance(points, noise_floor=floor)
    with pytest.raises(ValueError, match="noise_floor="):
        fs_distance_paired(points, points, noise_floor=floor)


@pytest.mark.parametrize("tile", [0, 2.5, -1])
def test_distance_tile_must_be_a_positive_count(points, tile):
    with pytest.raises(ValueError, match="tile="):
        fs_distance(points, tile=tile)


# ---- resource estimates -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, word", [(dict(ranks=0), "ranks="), (dict(ranks=1.5), "ranks=")])
def test_estimate_refuses_zero_or_fractional_ranks(kw, word):
    cfg = {"sample": {"n": 1000, "dim": 3, "chart": None, "threads": 1}}
    with pytest.raises(ValueError, match=word):
        estimate(cfg, "sample", **kw)
    with pytest.raises(ValueError, match="threads="):
        estimate({"sample": {**cfg["sample"], "threads": 0}}, "sample")


# ---- the command line ---------------------------------------------------------------------------------------
def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


@pytest.mark.parametrize("argv, env, words", [
    (["run", ROOT / "jobs/quickstart.toml", "--out", "out", "--force", "--set", "geometry.n_train=10.7"], {},
     ["[geometry].n_train", "integer"]),
    (["run", ROOT / "jobs/quickstart.toml", "--out", "out", "--force", "--set", "kernel.width=inf"], {},
     ["[kernel].width", "finite"]),
    (["run", ROOT / "jobs/quickstart.toml", "--out", "out", "--force"], {"HPCFLOW_THREADS": "0"},
     ["HPCFLOW_THREADS", "[1,"]),
    (["sample", "--n", "10.7", "--out", "out/p.h5", "--force"], {}, ["--n", "10.7"]),
    (["sample", "--n", "10", "--threads", "0", "--out", "out/p.h5", "--force"], {}, ["--threads"]),
])
def test_command_line_refuses_in_one_line_and_keeps_the_output(tmp_path, argv, env, words):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text('{"earlier": "results"}')
    (tmp_path / "out" / "p.h5").write_bytes(b"earlier points")
    before = _snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", "hpcflow", *map(str, argv)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    assert _snapshot(tmp_path) == before


# ---- GaussianKernel.block honours normalize="row" -----------------------------------------------------------
@pytest.mark.parametrize("width, form", [(0.2, "exp"), (1 / 30, "exp"), (0.5, "gauss")])
def test_row_normalised_block_is_the_matrix_apply_uses(points, width, form):
    """block(x1, x2) is K / row sums, against the reference kernel of `fs_distance` divided directly (entry bounds
    of tests/roundoff.py carried through the division), its rows sum to 1, and block @ g is apply(x1, x2, g)."""
    from hpcflow.kernels.gaussian import POLY_RTOL, gaussian
    from roundoff import U, gamma, gaussian_entry_error

    kern = GaussianKernel(width, form=form, normalize="row")
    g = np.random.default_rng(5).normal(size=(len(points), 9))
    for x1 in (points[:15], points):  # the second: x1 is x2 (exact diagonal, symmetric operator)
        n = len(points)
        got = kern.block(x1, points)
        k = gaussian(x1, points, width=width, form=form)
        err = gaussian_entry_error(fs_distance(x1, points), width, form, POLY_RTOL)
        s = k.sum(axis=1, keepdims=True)
        ds = err.sum(axis=1, keepdims=True) + gamma(n) * s  # bound on the computed row sum's error
        bound = 2 * (err / s + (k / s) * ds / s) + 4 * U * k / s
        assert np.all(np.abs(got - k / s) <= bound)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=2 * gamma(n))
        u = kern.apply(x1, points, g, tile=16)
        # both sides: K's entries to err, sums of n terms, one division by a row sum known to ds
        ref = np.abs(k / s) @ np.abs(g)
        tol = 2 * ((err / s) @ np.abs(g) + gamma(n + 2) * ref + ref * ds / s) + 4 * U * ref
        assert np.all(np.abs(got @ g - u) <= tol)
    assert not np.allclose(GaussianKernel(width, form=form).block(points[:15], points), got[:15])  # it divides


def test_unnormalised_block_is_unchanged(points):
    """normalize=None: block is K itself (the reference kernel's entries), as before."""
    from hpcflow.kernels.gaussian import POLY_RTOL, gaussian
    from roundoff import gaussian_entry_error

    got = GaussianKernel(0.2).block(points[:15], points)
    err = gaussian_entry_error(fs_distance(points[:15], points), 0.2, "exp", POLY_RTOL)
    assert np.all(np.abs(got - gaussian(points[:15], points, width=0.2)) <= 2 * err)


# ---- charts and seeds of sampling ---------------------------------------------------------------------------
@pytest.mark.parametrize("chart", [(0.5, 1), (0, 1.2), np.array([0.7, 1.0]), ("0", 1), (True, 1)])
def test_a_fractional_chart_index_is_refused_not_truncated(X, chart):
    """chart=(0.5, 1) was int()-ed to (0, 1): points of another chart than the one asked for."""
    with pytest.raises(ConfigError, match=r"chart=.*index"):
        X.sample(5, seed=0, chart=chart, comm=SerialComm())


@pytest.mark.parametrize("chart", [(0, 1.0), (0.0, 1.0), np.array([0.0, 1.0]), (np.float64(0), 1), (0, np.True_),
                                   (False, 1)])
def test_a_float_or_bool_chart_index_is_refused_even_when_integral(X, chart):
    """chart=(0, 1.0) was taken for (0, 1) although a chart that is not a pair of integers is refused (README)."""
    with pytest.raises(ConfigError, match=r"chart=.*not an integer"):
        X.sample(5, seed=0, chart=chart, comm=SerialComm())


def test_integer_chart_indices_are_that_chart(X):
    a = X.sample(5, seed=0, chart=(0, 1), comm=SerialComm())
    assert set(map(tuple, a.chart)) == {(0, 1)}
    for chart in ([0, 1], np.array([0, 1]), np.array([0, 1], dtype=np.uint8), (np.int64(0), np.int32(1))):
        assert X.sample(5, seed=0, chart=chart, comm=SerialComm()).points.tobytes() == a.points.tobytes()


@pytest.mark.parametrize("only", [(0, 1.5), (0, 1.0), (0, True), (7, 9)])
def test_point_set_only_refuses_what_sample_chart_refuses(X, points, only):
    """point_set(points, only=(0, 1.5)) int()-ed the index and kept the points of chart (0, 1); only=(7, 9) on P^4
    kept none instead of saying that the chart does not exist."""
    with pytest.raises(ConfigError, match=r"only"):
        X.point_set(points, only=only)


def test_point_set_only_keeps_that_charts_points(X):
    ps = X.sample(60, seed=3, comm=SerialComm())
    kept = X.point_set(ps.points, only=(np.int64(0), 1))
    mine = ps[(ps.chart == (0, 1)).all(axis=1)]
    assert len(kept) == len(mine) > 0 and kept.points.tobytes() == mine.points.tobytes()


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, ValueError), ("0", TypeError), (True, TypeError)])
def test_sample_points_refuses_a_bad_seed_naming_it(X, seed, error):
    with pytest.raises(error, match="seed="):
        sample_points(X, 5, seed, comm=SerialComm())


@pytest.mark.parametrize("width", [0, 2.5, -3])
def test_empirical_cosine_ntk_needs_a_positive_number_of_hidden_units(points, width):
    """width=0 gave a matrix of nan (0/0) with a RuntimeWarning, 2.5 a NumPy shape error."""
    from hpcflow.kernels import cosine_ntk_empirical, real_features

    f = real_features(points[:3])
    with pytest.raises(ValueError, match="width="):
        cosine_ntk_empirical(f, f, width=width, sigma_w=1.0)
