"""The Python API refuses bad arguments at its entry points with one clear error naming the argument (instead of a
NumPy/SciPy error deep inside, a silently wrong result, or hours of sampling), and handles the edge cases it
documents: empty sets in kernel_flow, PointSet[int], Hypersurface equality and hashing."""

import re

import numpy as np
import pytest

from hpcflow.backend import array_module
from hpcflow.cluster import batched_clustering, full_clustering, silhouette_fs
from hpcflow.errors import ConfigError
from hpcflow.flow import FlowBlock, kernel_flow
from hpcflow.geometry import Hypersurface, PointSet, fs_distance, fs_distance_paired
from hpcflow.geometry.measures import kappa, sigma_measure
from hpcflow.geometry.pointset import FIELDS
from hpcflow.kernels import Kernel, gaussian, make_kernel
from hpcflow.metric import loss_and_grad
from hpcflow.parallel.replicated import fingerprint, gather_to_root, identical_on_all


@pytest.fixture(scope="module")
def X():
    return Hypersurface.fermat(3)


@pytest.fixture(scope="module")
def sets(X):
    return X.sample(60, seed=0, chart=(0, 1)), X.sample(30, seed=1, chart=(0, 1))


# ---- Hypersurface -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: Hypersurface.dwork(3, float("nan")),
    lambda: Hypersurface.dwork(3, complex(0, float("inf"))),
    lambda: Hypersurface.from_monomials(np.eye(5, dtype=int) * 5, [1, 1, 1, 1, float("inf")]),
])
def test_non_finite_coefficients_are_refused(make):
    with pytest.raises(ConfigError, match=r"coefficient \d+ is .*not finite"):
        make()


def test_zero_polynomial_is_refused():
    with pytest.raises(ConfigError, match="coefficients are all zero"):
        Hypersurface.from_monomials(np.eye(5, dtype=int) * 5, [0, 0, 0, 0, 0])


def test_hypersurfaces_compare_and_hash_by_definition():
    a, b = Hypersurface.fermat(3), Hypersurface.fermat(3)
    assert a == b and not a != b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Hypersurface.fermat(2) and a != Hypersurface.dwork(3, 0.1) and a != "fermat"
    assert Hypersurface.dwork(3, 0.1) == Hypersurface.dwork(3, 0.1)
    assert Hypersurface.from_definition(a.definition()) == a


def test_hypersurfaces_compare_and_hash_by_polynomial():
    """Equal exactly when the polynomials are, whatever the name: the quintic sum z_k^5 written four ways."""
    quintic = Hypersurface.fermat(3)
    five = np.eye(5, dtype=int) * 5
    same = [Hypersurface.from_monomials(five, np.ones(5)), Hypersurface.dwork(3, 0),
            Hypersurface.from_monomials(five[::-1], np.ones(5)),  # other order of the terms
            Hypersurface.from_monomials(np.vstack([five, np.ones((1, 5), dtype=int)]), np.r_[np.ones(5), 0])]
    for b in same:
        assert b == quintic and quintic == b and hash(b) == hash(quintic) and len({quintic, b}) == 1
    other = [Hypersurface.from_monomials(five, 2 * np.ones(5)),  # 2p: another |Omega|^2, another hypersurface
             Hypersurface.from_monomials(five, np.r_[np.ones(4), 1 + 1e-15j]),
             Hypersurface.dwork(3, 1e-300), Hypersurface.fermat(2), Hypersurface.fermat(4)]
    for b in other:
        assert b != quintic and not b == quintic
    assert Hypersurface.dwork(3, 0.1) == Hypersurface.from_monomials(
        np.vstack([five, np.ones((1, 5), dtype=int)]), np.r_[np.ones(5), -0.5])



def test_points_of_one_polynomial_flow_together_and_keep_it_through_a_file(tmp_path):
    """fermat(3) train points with test points of the same quintic given by monomials: one manifold, so the flow
    takes them (it refused them as "points on custom(), train: points on fermat(dim=3)"); the test set's flow is
    that of the same points on fermat(3). A saved set loads with its name and an equal hypersurface."""
    quintic = Hypersurface.fermat(3)
    custom = Hypersurface.from_monomials(np.eye(5, dtype=int) * 5, np.ones(5))
    train = quintic.sample(40, seed=3, chart=(0, 1))
    test, test_f = (X.sample(15, seed=4, chart=(0, 1)) for X in (custom, quintic))
    kern = make_kernel("gaussian", width=0.5)
    mixed, plain = (kernel_flow(kern, train, t, dt=0.05, steps=2) for t in (test, test_f))
    assert mixed.steps_taken == 2
    np.testing.assert_array_equal(mixed.g_test, plain.g_test)
    np.testing.assert_array_equal(mixed.sigma_test, plain.sigma_test)
    for X in (custom, Hypersurface.dwork(3, 0)):
        X.sample(5, seed=1).save(tmp_path / f"{X.name}.h5")
        back = PointSet.load(tmp_path / f"{X.name}.h5").manifold
        assert back == X == quintic and back.name == X.name and back.params == X.params


@pytest.mark.parametrize("kw, word", [(dict(seed=-1), "seed"), (dict(seed=1.5), "seed"), (dict(seed="0"), "seed"),
                                      (dict(chart=0), "chart"), (dict(chart=(0, 1, 2)), "chart")])
def test_sample_refuses_bad_seed_and_chart(X, kw, word):
    with pytest.raises(ConfigError, match=word):
        X.sample(10, **kw)


def test_sample_accepts_numpy_integer_seed(X):
    a, b = X.sample(20, seed=np.uint64(3)), X.sample(20, seed=3)
    assert a.points.tobytes() == b.points.tobytes()


# ---- PointSet -----------------------------------------------------------------------------------------------
def test_integer_index_gives_one_point(sets):
    ps = sets[0]
    for i, row in ((5, 5), (np.int64(7), 7), (-1, len(ps) - 1), (-len(ps), 0)):
        one = ps[i]
        assert isinstance(one, PointSet) and len(one) == 1 and one.points.shape == (1, 5)
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(one, f)[0], getattr(ps, f)[row])
        assert one.sigma() == 0.0  # one point: eta equals its own kappa
    for bad in (len(ps), -len(ps) - 1):
        with pytest.raises(IndexError, match="out of range"):
            ps[bad]


@pytest.mark.parametrize("bad, exc, words", [
    (True, TypeError, "boolean scalar"), (np.True_, TypeError, "boolean scalar"), (False, TypeError, "boolean"),
    (np.array(False), TypeError, "boolean scalar"), (None, TypeError, "not an int"), (..., TypeError, "not an int"),
    ((1, 2), TypeError, "tuple"), (np.array([1.0, 2.0]), TypeError, "not an int"), ("3", TypeError, "not an int"),
    (np.array([[1, 2]]), IndexError, "shape (1, 2)"), (np.ones(3, bool), IndexError, "mask of length 3"),
    (np.ones((60, 1), bool), IndexError, "mask of shape"), (np.array([0, 60]), IndexError, "row 60 is out of range"),
    (np.array(-61), IndexError, "row -61 is out of range"), (2**70, IndexError, "out of range"),
])
def test_bad_point_index_is_refused_naming_it_and_what_to_pass(sets, bad, exc, words):
    """ps[idx] and ps.subset(idx) select rows of one axis; anything else (bools, None, Ellipsis, tuples, float or
    multi-dimensional arrays, masks of another length) built sets of malformed shape that computed and saved."""
    ps = sets[0]
    for select, what in ((ps.__getitem__, "PointSet index"), (ps.subset, "PointSet.subset index")):
        with pytest.raises(exc) as info:
            select(bad)
        msg = str(info.value)
        assert msg.startswith(what) and words in msg and "\n" not in msg
        assert msg.endswith("pass an int, a slice, a 1-D integer index array or a 1-D boolean mask of length 60")


def test_zero_d_integer_arrays_and_subset_select_as_indexing_does(sets):
    """A 0-d integer array (as np.array(argmax) gives) is ps[int]; subset(idx) is ps[idx] for every index kind."""
    ps = sets[0]
    k = int(np.argmax(ps.weights))
    mask = ps.weights > np.median(ps.weights)
    for idx, rows in ((np.array(k), [k]), (np.array(-2, dtype=np.int32), [len(ps) - 2]), (np.uint8(4), [4]),
                      (k, [k]), (mask, np.flatnonzero(mask)), ([3, -1, 3], [3, len(ps) - 1, 3]),
                      (np.array([5, 0]), [5, 0]), (slice(2, 9, 3), [2, 5, 8]), ([], [])):
        for got in (ps[idx], ps.subset(idx)):
            assert len(got) == len(rows)
            for f in FIELDS:
                np.testing.assert_array_equal(getattr(got, f), getattr(ps, f)[np.asarray(rows, dtype=int)])


def test_dwork_refuses_a_psi_that_is_not_a_number_and_takes_every_number():
    """A string psi ("0.1") built a manifold, True was taken as 1, None raised complex()'s own TypeError."""
    for psi in ("0.1", None, True, np.bool_(False), [0.1], b"1", {}):
        with pytest.raises(TypeError, match=r"^psi=.* is invalid; pass a number \(complex, float or int\)"):
            Hypersurface.dwork(3, psi)
    for psi in (0.1, 1, 0.1 + 0.2j, np.float64(0.1), np.complex128(0.1 + 0.2j), np.int64(1)):
        assert Hypersurface.dwork(3, psi) == Hypersurface.dwork(3, complex(psi))


def test_concatenate_refuses_nothing_and_mixed_manifolds(X, sets):
    a, b = sets
    joined = PointSet.concatenate([a, b])
    assert len(joined) == len(a) + len(b) and np.array_equal(joined.points[len(a):], b.points)
    with pytest.raises(ValueError, match="parts is empty"):  # was IndexError: list index out of range
        PointSet.concatenate([])
    with pytest.raises(ValueError, match="different manifolds"):  # was a NumPy shape error (P^4 and P^3 points)
        PointSet.concatenate([a, Hypersurface.fermat(2).sample(10, seed=0)])


def test_concatenate_refuses_parts_that_are_not_point_sets(sets):
    """A bare array among the parts was an AttributeError ('numpy.ndarray' object has no attribute 'manifold'), a
    number Python's "not iterable": one TypeError naming the part."""
    a, b = sets
    for parts, match in (([a, b.points], r"^PointSet.concatenate: parts\[1\] is of type ndarray, not a PointSet; pass "
                                         r"PointSets \(X.point_set\(points\) makes one"),
                         ([None, a], r"^PointSet.concatenate: parts\[0\] is of type NoneType"),
                         (5, r"^PointSet.concatenate: parts is not a list of PointSets"),
                         ("ab", r"^PointSet.concatenate: parts is not a list of PointSets")):
        with pytest.raises(TypeError, match=match):
            PointSet.concatenate(parts)


def test_sigma_of_metrics_of_another_length_is_refused(sets):
    ps = sets[0]
    with pytest.raises(ValueError, match="one metric per point"):
        ps.sigma(np.ones((5, 3, 3)))
    with pytest.raises(ValueError, match="one eta per weight"):
        sigma_measure(ps.eta(), ps.weights[:5])


def test_sigma_refuses_arrays_that_are_not_metrics(sets):
    """-g_FS has negative eigenvalues and det(-g) = -det g (m = 3), so eta/kappa and sigma would be those of g_FS; a
    non-Hermitian g or one with a NaN gives another number. Each is refused, naming g and the point."""
    ps = sets[0]
    g = ps.g_fs
    assert np.all(np.linalg.eigvalsh(-g) < 0)  # the premise, by LAPACK
    skew = g.copy()
    skew[7, 0, 1] *= 1.3  # g[7]_01 != conj(g[7]_10)
    assert np.abs(skew[7] - skew[7].conj().T).max() > 0.01 * np.abs(g[7]).max()
    nan = g.copy()
    nan[4, 2, 2] = np.nan
    for bad, words in ((-g, r"g\[0\] is not positive definite"), (skew, r"g\[7\] is not Hermitian"),
                       (nan, r"g\[4\] holds values that are not finite")):
        for call in (ps.sigma, ps.eta):
            with pytest.raises(ValueError, match=words):
                call(bad)


def test_sigma_takes_metrics_hermitian_to_rounding(sets):
    """A metric formed by matrix products (A g_FS A^H, A invertible: positive definite, Hermitian up to the
    products' rounding) is taken, and sigma is eq. B.11 evaluated with LAPACK determinants."""
    ps = sets[0]
    rng = np.random.default_rng(3)
    a = np.eye(3) + 0.3 * (rng.normal(size=(len(ps), 3, 3)) + 1j * rng.normal(size=(len(ps), 3, 3)))
    g = a @ ps.g_fs @ a.conj().transpose(0, 2, 1)
    eta = np.linalg.det(g).real / ps.omega2
    w = ps.weights
    expect = np.sum(w * np.abs(1 - eta / (np.sum(w * eta) / np.sum(w)))) / np.sum(w)
    assert abs(ps.sigma(g) - expect) <= 1e-12 * expect and abs(expect - ps.sigma()) > 0.01


@pytest.mark.parametrize("change, words", [
    (lambda e, w: (e, w[:2]), r"eta \(60,\) and weights \(2,\)"),  # was NumPy's broadcast error, from kappa
    (lambda e, w: (e, np.where(np.arange(60) == 5, -w, w)), r"weights\[5\] = -[\d.e+-]+ is not a finite number >= 0"),
    (lambda e, w: (e, np.where(np.arange(60) == 9, np.inf, w)), r"weights\[9\] = inf is not"),
    (lambda e, w: (e, 0 * w), "weights sum to 0"),
    (lambda e, w: (e + 0j, w), r"eta is complex"),
    (lambda e, w: (np.where(np.arange(60) == 3, np.nan, e), w), r"eta\[3\] = nan is not a finite number > 0"),
    (lambda e, w: (-e, w), r"eta\[0\] = -[\d.e+-]+ is not a finite number > 0"),
])
def test_kappa_and_sigma_measure_refuse_what_is_not_eta_and_weights(sets, change, words):
    eta, w = change(sets[0].eta(), sets[0].weights)
    for call in (kappa, sigma_measure):
        with pytest.raises(ValueError, match=words):
            call(eta, w)


@pytest.mark.parametrize("k", [0.0, -1.0, np.nan, np.inf])
def test_sigma_measure_refuses_a_kappa_that_is_not_positive(sets, k):
    with pytest.raises(ValueError, match="kappa_value"):
        sigma_measure(sets[0].eta(), sets[0].weights, kappa_value=k)


# ---- distances ----------------------------------------------------------------------------------------------
def test_distances_refuse_mismatched_shapes(sets):
    z = sets[0].points
    with pytest.raises(ValueError, match="same n\\+1"):
        fs_distance(z[:3], np.ones((3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        fs_distance(z[0])
    with pytest.raises(ValueError, match="same shape"):
        fs_distance_paired(z[:3], z[:4])


# ---- kernels ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kw", [("delta", {}), ("gaussian", dict(width=1.0)),
                                      ("relu_ntk", dict(w_std=1.0, b_std=0.1))])
def test_apply_refuses_a_gradient_per_other_rows(sets, name, kw):
    z = sets[0].points
    with pytest.raises(ValueError, match="one gradient row per source point"):
        make_kernel(name, **kw).apply(z[:3], z[:5], np.ones((4, 9)))


# ---- kernel_flow --------------------------------------------------------------------------------------------
class Unused:
    """A kernel that fails if the flow gets as far as using it."""

    def operator(self, *a, **k):
        raise AssertionError("the kernel was used before the arguments were checked")


@pytest.mark.parametrize("kw, word", [
    (dict(clip=-1.0), "clip"), (dict(clip=0), "clip"), (dict(early_stop=0), "early_stop"),
    (dict(loss="bogus"), "loss"), (dict(kappa_gradient="x"), "kappa_gradient"), (dict(steps=2.5), "steps"),
    (dict(steps=-1), "steps"), (dict(dt="1"), "dt"), (dict(dt=float("nan")), "dt"), (dict(max_halvings=-1), "max_"),
    (dict(dt=float("inf")), "dt="), (dict(clip=float("inf")), "clip="), (dict(cache_bytes=-7), "cache_bytes=-7"),
    (dict(cache_bytes=1.5), "cache_bytes=1.5"), (dict(tile=0), "tile=0"), (dict(tile=2.5), "tile=2.5"),
])
def test_kernel_flow_refuses_bad_numbers_before_any_work(sets, kw, word):
    args = dict(dt=1.0, steps=0, **{k: v for k, v in kw.items() if k not in ("dt", "steps")})
    args.update({k: v for k, v in kw.items() if k in ("dt", "steps")})
    with pytest.raises(ValueError, match=word):
        kernel_flow(Unused(), *sets, **args)


@pytest.mark.parametrize("bad", ["no", None, 1, 0, np.array([True])])
def test_kernel_flow_and_its_loss_refuse_a_weighted_that_is_not_a_bool(sets, bad):
    """A truthy or falsy stand-in for weighted ("no", None, 0, 1) would run the weighted or unweighted flow silently."""
    with pytest.raises(TypeError, match=r"^weighted=.* is invalid; pass True or False$"):
        kernel_flow(Unused(), *sets, dt=1.0, steps=2, weighted=bad)
    v = np.tile(np.eye(3).ravel(), (2, 1))
    with pytest.raises(TypeError, match=r"^weighted="):
        loss_and_grad(v, np.ones(2), np.ones(2), 1.0, weighted=bad)


def test_a_numpy_bool_weighted_flows_as_that_bool(sets):
    K = make_kernel("gaussian", width=0.1)
    for flag in (True, False):
        want = kernel_flow(K, *sets, dt=1.0, steps=2, weighted=flag)
        got = kernel_flow(K, *sets, dt=1.0, steps=2, weighted=np.bool_(flag))
        np.testing.assert_array_equal(got.sigma_test, want.sigma_test)
    assert not np.array_equal(want.sigma_test, kernel_flow(K, *sets, dt=1.0, steps=2, weighted=True).sigma_test)


@pytest.mark.parametrize("where, word", [("kernel", "kernel"), ("train", "train"), ("test", "test"), ("xp", "xp")])
def test_kernel_flow_refuses_objects_of_the_wrong_kind(sets, where, word):
    train, test = sets
    args = dict(kernel=make_kernel("delta"), train=train, test=test, xp=None)
    args[where] = {"kernel": "gaussian", "train": train.points, "test": test.points, "xp": "numpy"}[where]
    with pytest.raises(TypeError, match=word):
        kernel_flow(args.pop("kernel"), args.pop("train"), args.pop("test"), dt=1.0, steps=1, **args)


def test_kernel_flow_refuses_no_train_set_as_it_refuses_other_objects(sets):
    """train=None (a required set) is refused in the one line a list or an array gets, before any work (it failed
    deep inside with "object of type 'NoneType' has no len()"); test=None stays "no test set"."""
    with pytest.raises(TypeError, match=r"^train is a NoneType, not a point set; pass a PointSet"):
        kernel_flow(Unused(), None, sets[1], dt=1.0, steps=1)
    with pytest.raises(TypeError, match=r"^train is a list, not a point set; pass a PointSet"):
        kernel_flow(Unused(), [1, 2], None, dt=1.0, steps=1)


@pytest.mark.parametrize("hook", ["callback", "on_step"])
@pytest.mark.parametrize("bad", ["stop", 3, [print]])
def test_kernel_flow_refuses_a_hook_that_is_not_callable_before_any_work(sets, hook, bad):
    """A callback or on_step that cannot be called was taken and failed after step 1's kernel sums ("'str' object
    is not callable"); it is refused first, naming it (the kernel is never used)."""
    with pytest.raises(TypeError, match=rf"^{hook}=.* is not callable; pass a function {hook}\("):
        kernel_flow(Unused(), *sets, dt=1.0, steps=2, **{hook: bad})


@pytest.mark.parametrize("bad", [1, {}, "checkpoint.h5", [0]])
def test_kernel_flow_refuses_a_resume_that_is_not_a_flow_state_before_any_work(sets, bad):
    """A resume that is not a FlowResume (an int, a dict, a path) was taken and failed at its first use ("'int'
    object has no attribute 'rows'"); it is refused first, naming it and load_resume (the kernel is never used)."""
    with pytest.raises(TypeError, match=r"^resume=.* is not a flow state to resume; pass a FlowResume "
                                        r"\(hpcflow\.checkpoint\.load_resume\(path\)\), or None"):
        kernel_flow(Unused(), *sets, dt=1.0, steps=1, resume=bad)


class Fields:
    """An object with the four fields kernel_flow reads, and nothing else (no len(), no rows of its own)."""

    def __init__(self, ps, **given):
        self.points, self.g_fs, self.omega2, self.weights = (given.get(f, getattr(ps, f)) for f in
                                                             ("points", "g_fs", "omega2", "weights"))


@pytest.mark.parametrize("kernel", [dict(name="gaussian", width=0.3), dict(name="delta")])
def test_objects_with_the_four_fields_flow_as_the_point_sets_they_hold(sets, kernel):
    """train and test given as plain objects holding points, g_fs, omega2 and weights (as documented) flow as the
    PointSets of those fields: each set's rows are its points' rows (len() of such an object failed)."""
    K = make_kernel(**kernel)
    want = kernel_flow(K, *sets, dt=0.5, steps=3)
    got = kernel_flow(K, Fields(sets[0]), Fields(sets[1]), dt=0.5, steps=3)
    assert got.steps_taken == 3 and not np.allclose(got.sigma_test[-1], got.sigma_test[0])
    for key in ("sigma_train", "sigma_test", "g_train", "g_test", "train_idx", "test_idx"):
        np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)
    lists = Fields(sets[0], omega2=sets[0].omega2.tolist(), weights=sets[0].weights.tolist())  # any array-likes
    np.testing.assert_array_equal(kernel_flow(K, lists, dt=0.5, steps=3).sigma_train,
                                  kernel_flow(K, sets[0], dt=0.5, steps=3).sigma_train)


def test_an_object_with_the_four_fields_has_its_rows_checked(sets):
    """Such an object's rows are checked as a PointSet's: a negative weight is refused naming the set and row, an
    object without points refused as having no train points."""
    w = sets[0].weights.copy()
    w[4] = -1.0
    with pytest.raises(ValueError, match=r"^train: weights\[4\] = -1.0 is not a finite number >= 0"):
        kernel_flow(Unused(), Fields(sets[0], weights=w), dt=1.0, steps=1)
    empty = Fields(sets[0], **{f: getattr(sets[0], f)[:0] for f in ("points", "g_fs", "omega2", "weights")})
    with pytest.raises(ValueError, match="train: the train set has no points"):
        kernel_flow(Unused(), empty, Fields(sets[1]), dt=1.0, steps=1)


def test_kernel_flow_refuses_test_points_of_another_manifold(sets):
    other = Hypersurface.fermat(2).sample(20, seed=0)
    with pytest.raises(ValueError, match="same manifold"):
        kernel_flow(make_kernel("delta"), sets[0], other, dt=1.0, steps=1)


class ScalarAsMixing(Kernel):
    """A component-mixing kernel (blocks (N1, 9, N2, 9)), equal to the Gaussian times delta_IJ, formed on the
    points' array module (CuPy refuses a NumPy operand)."""

    mixes_components = True

    def tile_block(self, x1, x2):
        return gaussian(x1, x2, width=0.3)[:, None, :, None] * array_module(x1).eye(9)[None, :, None, :]


@pytest.fixture(scope="module")
def charts(X):
    """Sets of the audit: test in chart (0, 1), test in chart (1, 2), train in every chart, test on another X."""
    return {"tr": X.sample(100, seed=0, chart=(0, 1)), "te": X.sample(50, seed=2, chart=(0, 1)),
            "te12": X.sample(50, seed=2, chart=(1, 2)), "many": X.sample(100, seed=5),
            "dwork": Hypersurface.dwork(3, 0.3).sample(50, seed=2, chart=(0, 1))}


FIX = "; kernel_flow needs every train and test point in one chart"


@pytest.mark.parametrize("kernel", ["unused", "gaussian_row", "delta"])
@pytest.mark.parametrize("train, test, want", [
    ("tr", "dwork", r"^test: points on dwork\(dim=3, psi=\(0.3\+0j\)\), train: points on fermat\(dim=3\); pass "
                    "train and test points of one manifold"),
    ("tr", "te12", r"^test: points in chart \(1, 2\), train points in chart \(0, 1\)" + FIX),
    ("many", "te", r"^train: points in 19 charts \(0, 1\), \(0, 2\), \(0, 4\), \(1, 0\) and 15 more" + FIX),
    ("tr", "many", r"^test: points in 19 charts .* and 15 more" + FIX),
])
def test_kernel_flow_refuses_sets_of_two_manifolds_or_charts(charts, kernel, train, test, want):
    """The metric components are one chart's local coordinates and Theta = delta_IJ K adds them across points:
    mixed charts or manifolds gave finite, meaningless sigmas. Refused in one line with the fix, before any work."""
    k = {"unused": Unused(), "gaussian_row": make_kernel("gaussian", width=1 / 30, normalize="row"),
         "delta": make_kernel("delta")}[kernel]
    with pytest.raises(ValueError, match=want) as err:
        kernel_flow(k, charts[train], charts[test], dt=1.0, steps=2)
    assert "\n" not in str(err.value)
    if "chart" in want:  # the fix the message gives works: sample with chart=(0, 1), or keep chart (0, 1)
        assert "sample with chart=(0, 1), or keep one chart: ps[(ps.chart == (0, 1)).all(axis=1)]" in str(err.value)
        keep = [ps[(ps.chart == (0, 1)).all(axis=1)] for ps in (charts[train], charts[test])]
        res = kernel_flow(make_kernel("delta"), *keep, dt=1.0, steps=2)
        assert res.steps_taken == 2 and np.isfinite(res.sigma_train).all()


def test_a_component_mixing_kernel_takes_points_of_several_charts(charts):
    """A kernel that mixes components (a network's NTK) holds each point's own chart: several charts are fine."""
    res = kernel_flow(ScalarAsMixing(), charts["many"], charts["te12"], dt=0.01, steps=2)
    assert res.steps_taken == 2 and np.isfinite(res.sigma_train).all() and np.isfinite(res.sigma_test).all()


class Bare:
    """The four arrays a flow needs, without manifold or chart (which `kernel_flow` does not check then)."""

    def __init__(self, ps):
        self.points, self.g_fs, self.omega2, self.weights = ps.points, ps.g_fs, ps.omega2, ps.weights

    def __len__(self):
        return len(self.points)


@pytest.mark.parametrize("name, kw", [("delta", {}), ("gaussian", dict(width=1 / 30, normalize="row"))])
def test_the_set_checks_leave_a_one_chart_flow_as_it_was(charts, name, kw):
    """A valid one-chart flow is bitwise the flow of the same arrays with nothing to check (no manifold, no chart)."""
    k = make_kernel(name, **kw)
    a = kernel_flow(k, charts["tr"], charts["te"], dt=1.0, steps=3)
    b = kernel_flow(k, Bare(charts["tr"]), Bare(charts["te"]), dt=1.0, steps=3)
    for key in ("sigma_train", "sigma_test", "g_train", "g_test", "dt_history"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes(), key
    assert a.sigma_train[-1] != a.sigma_train[0]


def test_kernel_flow_refuses_an_empty_train_set(sets):
    for name, kw in (("delta", {}), ("gaussian", dict(width=0.1))):
        with pytest.raises(ValueError, match="train: the train set has no points"):
            kernel_flow(make_kernel(name, **kw), sets[0][:0], sets[1], dt=1.0, steps=1)


def test_kernel_flow_on_one_rank_takes_its_rows_global_indices(sets):
    """On one rank the rows' global indices are arange(N): given so, the flow is the one without them."""
    K = make_kernel("gaussian", width=0.1)
    given = kernel_flow(K, *sets, dt=1.0, steps=2, train_idx=np.arange(60), test_idx=np.arange(30))
    plain = kernel_flow(K, *sets, dt=1.0, steps=2)
    for key in ("sigma_train", "sigma_test", "g_train", "g_test", "train_idx", "test_idx"):
        np.testing.assert_array_equal(getattr(given, key), getattr(plain, key), err_msg=key)


@pytest.mark.parametrize("kw, word", [
    (dict(train_idx=np.arange(60) + 0.5), r"^train_idx: index 0.5 is not a whole number; pass integer global indices"),
    (dict(train_idx=[0.5, 1.7]), r"^train_idx: index 0.5 is not a whole number"),  # was taken as [0, 1]
    (dict(test_idx=np.r_[np.arange(29), 29.000001]), r"^test_idx: index 29.000001 is not a whole number"),
    (dict(test_idx=np.r_[np.arange(29), np.nan]), r"^test_idx: index nan is not a whole number"),
    (dict(test_idx=np.ones(30, dtype=bool)), r"^test_idx: a boolean array is a mask, not indices; pass np.flatnonzero"),
    (dict(test_idx=[str(i) for i in range(30)]), r"^test_idx: indices of dtype <U2 are not integers"),
])
def test_kernel_flow_refuses_indices_that_are_not_integers(sets, kw, word):
    """Fractions were truncated (train_idx=[0.5, 1.7] flowed as [0, 1]), masks and strings cast; now refused."""
    train, test = sets
    if len(kw.get("train_idx", ())) == 2:
        train = train[:2]
    blocks = [FlowBlock(np.arange(len(train)), np.arange(30), np.arange(len(train)))]
    for blk in (None, blocks):  # exact mode, clustered
        with pytest.raises(ValueError, match=word) as err:
            kernel_flow(Unused(), train, test, dt=1.0, steps=1, blocks=blk, **kw)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("kw, word", [
    (dict(test_idx=np.arange(1, 31)), r"test_idx: index 30 is outside range\(30\)"),
    (dict(test_idx=np.arange(-1, 29)), r"test_idx: index -1 is outside range\(30\)"),
    (dict(train_idx=np.arange(1, 61), test_idx=np.arange(30)), r"train_idx: index 60 is outside range\(60\)"),
])
def test_kernel_flow_on_one_rank_refuses_indices_outside_its_rows(sets, kw, word):
    """Indices name rows of the global set (on one rank: this rank's N rows), e.g. where a checkpoint keeps them."""
    train_idx = kw.get("train_idx", np.arange(60))
    for blocks in (None, [FlowBlock(train_idx, kw["test_idx"], train_idx)]):  # exact mode, clustered
        with pytest.raises(ValueError, match=word) as err:
            kernel_flow(Unused(), *sets, dt=1.0, steps=1, blocks=blocks, **kw)
        assert "\n" not in str(err.value)


def test_float_indices_of_integral_value_are_those_integers(sets):
    """train_idx=[0.0, 1.0, ...] is arange (as a count of 1e5 is 100000, `arguments.api_integer`): the same flow."""
    K = make_kernel("gaussian", width=0.1)
    floats = kernel_flow(K, *sets, dt=1.0, steps=2, train_idx=np.arange(60.0), test_idx=list(np.arange(30.0)))
    plain = kernel_flow(K, *sets, dt=1.0, steps=2)
    for key in ("sigma_train", "sigma_test", "g_train", "g_test"):
        assert getattr(floats, key).tobytes() == getattr(plain, key).tobytes(), key
    assert floats.train_idx.dtype == np.int64 and np.array_equal(floats.train_idx, np.arange(60))


def test_an_empty_test_set_flows_as_no_test_set(sets):
    K = make_kernel("gaussian", width=0.1)
    empty = kernel_flow(K, sets[0], sets[1][:0], dt=1.0, steps=2)
    none = kernel_flow(K, sets[0], None, dt=1.0, steps=2)
    assert empty.steps_taken == 2 and np.all(np.isnan(empty.sigma_test)) and empty.g_test is None
    np.testing.assert_array_equal(empty.sigma_train, none.sigma_train)
    assert empty.sigma_train[-1] < empty.sigma_train[0]


def test_clip_bounds_every_update(sets):
    """A positive clip keeps each point's packed-metric update at most `clip` (the descent still lowers sigma)."""
    from hpcflow.geometry.hermitian import pack

    K, clip = make_kernel("gaussian", width=0.1), 1e-3
    res = kernel_flow(K, sets[0], sets[1], dt=1.0, steps=1, clip=clip)
    moved = np.linalg.norm(pack(res.g_train) - pack(sets[0].g_fs), axis=1)
    assert moved.max() <= clip * (1 + 1e-12) and res.sigma_train[1] < res.sigma_train[0]


# ---- parallel.replicated on one process ---------------------------------------------------------------------
def test_fingerprint_tells_dtype_shape_and_bytes_apart():
    a = np.arange(6, dtype=np.float64)
    fp = fingerprint([a])
    assert fp == fingerprint([a.copy()]) and fp[0] == 6
    assert fp != fingerprint([a.astype(np.int64)]) and fp != fingerprint([a.reshape(3, 2)])
    b = a.copy()
    b[5] = np.nextafter(b[5], 7.0)
    assert fp != fingerprint([b])
    assert identical_on_all([a]) and [x.tobytes() for x in gather_to_root([a])] == [a.tobytes()]


# ---- networks -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, word", [(dict(batch_size=0), "batch_size"), (dict(batch_size=2.5), "batch_size"),
                                      (dict(epochs=-1), "epochs")])
def test_train_config_refuses_bad_sizes(kw, word):
    pytest.importorskip("torch")
    from hpcflow.nn.train import TrainConfig

    with pytest.raises(ValueError, match=word):
        TrainConfig(**kw)


def test_whole_number_arguments_are_taken_alike_across_the_api(X, sets):
    """Every whole-number argument takes an int, a NumPy integer or an integral float (as `sample(1e3)` always did):
    `sample(seed=2.0)` and `kernel_flow(steps=2.0)` were refused, `n_clusters=3.0` too; the results equal the
    int's. Seeds are any integer >= 0 for sampling and clustering alike (2**70 was refused by the clustering)."""
    a, b = X.sample(10.0, seed=2.0), X.sample(10, seed=2)
    assert a.points.tobytes() == b.points.tobytes() and a.seed == 2 and type(a.seed) is int
    train, _ = sets
    kern = make_kernel("gaussian", width=0.5)
    f = kernel_flow(kern, train, None, dt=0.05, steps=2.0, max_halvings=3.0, early_stop=5.0, tile=16.0,
                    cache_bytes=0.0)
    g = kernel_flow(kern, train, None, dt=0.05, steps=2, max_halvings=3, early_stop=5, tile=16, cache_bytes=0)
    assert f.steps_taken == 2 and np.array_equal(f.sigma_train, g.sigma_train)
    z = train.points[:40]
    assert np.array_equal(full_clustering(z, n_clusters=3.0).labels, full_clustering(z, n_clusters=3).labels)
    c = batched_clustering(z, n_clusters=np.float64(2), batch_size=20.0, seed=1.0)
    assert np.array_equal(c.labels, batched_clustering(z, n_clusters=2, batch_size=20, seed=1).labels)
    big = batched_clustering(z, n_clusters=2, batch_size=20, seed=2**70)
    assert big.seed == 2**70 and len(X.sample(3, seed=2**70)) == 3
    labels = np.arange(40) % 2
    assert silhouette_fs(z, labels, sample_size=5, seed=1.0) == silhouette_fs(z, labels, sample_size=5, seed=1)


@pytest.mark.parametrize("call, exc, said", [
    (lambda X, z, tr: X.sample(10, seed=-1), ConfigError, "seed=-1 is invalid"),
    (lambda X, z, tr: X.sample(10, seed=2.5), ConfigError, "seed=2.5 is invalid"),
    (lambda X, z, tr: X.sample(10.5), ConfigError, "n_points=10.5 is invalid"),
    (lambda X, z, tr: X.sample(10, threads=2.5), ConfigError, "threads=2.5 is invalid"),
    (lambda X, z, tr: batched_clustering(z, n_clusters=2, batch_size=20, seed=-1), ConfigError, "seed=-1 is invalid"),
    (lambda X, z, tr: full_clustering(z, n_clusters=2.5), ConfigError, "n_clusters=2.5 is invalid"),
    (lambda X, z, tr: kernel_flow(make_kernel("delta"), tr, None, dt=0.1, steps=2.5), ValueError,
     "steps=2.5 is invalid"),
])
def test_fractions_and_negative_seeds_are_refused_alike(X, sets, call, exc, said):
    """Seeds: the same error class (ConfigError) and words from sampling and clustering; a fraction is refused by
    every whole-number argument, naming it."""
    with pytest.raises(exc, match=rf"^{re.escape(said)}; pass "):
        call(X, sets[0].points[:40], sets[0])


def test_slices_are_views_and_masks_and_index_arrays_copy(sets):
    """As the README says: ps[i] and ps[i:j] share memory with ps (NumPy basic slicing), masks and index arrays copy."""
    ps = sets[0]
    rows = np.arange(2, 5)
    mask = np.isin(np.arange(len(ps)), rows)
    for view in (ps[2:5], ps[2]):
        for f in FIELDS:
            assert np.shares_memory(getattr(view, f), getattr(ps, f)), f
    for copy in (ps[rows], ps[mask], ps.subset(rows), ps[[2, 3, 4]]):
        for f in FIELDS:
            assert not np.shares_memory(getattr(copy, f), getattr(ps, f)), f
        np.testing.assert_array_equal(copy.points, ps.points[2:5])


def test_eta_is_det_g_over_omega2_without_kappa_and_sigma_divides_by_kappa(sets):
    """PointSet.eta() = det g / |Omega|^2 (no kappa); the paper's eta (eq. B.11) divides it by kappa, the weighted
    mean of eta, and sigma is the weighted mean of |1 - that|. Checked with numpy.linalg.det."""
    ps = sets[0]
    eta = np.linalg.det(ps.g_fs).real / ps.omega2
    np.testing.assert_allclose(ps.eta(), eta, rtol=1e-12)
    k = np.sum(ps.weights * eta) / np.sum(ps.weights)
    assert abs(k - 1) > 1e-3  # kappa is not 1 here, so a kappa inside eta() would show
    assert ps.sigma() == pytest.approx(np.sum(ps.weights * np.abs(1 - eta / k)) / np.sum(ps.weights), rel=1e-12)


def test_kernel_flow_takes_a_limit_of_any_size_as_no_limit():
    """cache_bytes=sys.maxsize, early_stop and max_halvings beyond 2**62: 'no limit' idioms a caller writes; a
    flow with them runs as with the defaults (nothing to cache beyond the blocks, no early stop within 2 steps)."""
    import sys

    tr = Hypersurface.fermat(3).sample(30, seed=2, chart=(0, 1))
    k = make_kernel("gaussian", width=0.5)
    plain = kernel_flow(k, tr, None, dt=1e-2, steps=2)
    for kw in ({"cache_bytes": sys.maxsize}, {"early_stop": 10**19}, {"max_halvings": 2**63}):
        got = kernel_flow(k, tr, None, dt=1e-2, steps=2, **kw)
        np.testing.assert_array_equal(got.sigma_train, plain.sigma_train)
    with pytest.raises(ValueError, match=r"tile=10{20} is invalid; pass an integer in \[1, 2\*\*62\]"):
        kernel_flow(k, tr, None, dt=1e-2, steps=2, tile=10**20)
