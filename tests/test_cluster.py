"""FS clustering (§3.1): merge bookkeeping, recovery of separated groups, silhouette vs scikit-learn, blocks."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_samples, silhouette_score

from hpcflow.cluster import (batched_clustering, birch_clustering, check_settings, cluster_points, flow_blocks,
                             full_clustering, nearest_point, silhouette_fs, silhouette_precomputed)
from hpcflow.cluster.batched import split_batches
from hpcflow.jobs.schema import SEED_MAX
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, fs_distance
from roundoff import fs_distance_error


@pytest.fixture(scope="module")
def quintic_points():
    return Hypersurface.fermat(3).sample(600, seed=3).points


@pytest.fixture(scope="module")
def separated_groups():
    """Points of the quintic within FS distance 0.45 of 4 mutually distant centres (>= 1.3 apart)."""
    z = Hypersurface.fermat(3).sample(20000, seed=1).points
    centres = [0]
    dmin = fs_distance(z[:1], z)[0]
    for _ in range(3):  # farthest-point choice of the next centre
        centres.append(int(np.argmax(dmin)))
        dmin = np.minimum(dmin, fs_distance(z[centres[-1]][None], z)[0])
    dc = fs_distance(z[centres])
    assert dc[np.triu_indices(4, 1)].min() > 1.3
    d = fs_distance(z[centres], z)
    keep = d.min(axis=0) < 0.45
    return z[keep], np.argmin(d[:, keep], axis=0)


def test_batched_merge_keeps_every_point_once_and_follows_eq_3_3(quintic_points):
    z = quintic_points
    k = 6
    res = batched_clustering(z, n_clusters=k, batch_size=150, seed=7)
    assert res.labels.shape == (600,) and set(np.unique(res.labels)) == set(range(k))
    assert np.bincount(res.batch_index).tolist() == [150] * 4
    d = fs_distance(z)  # independent brute-force check of the merge rule
    seed_mask = res.batch_index == 0
    np.testing.assert_array_equal(res.labels[seed_mask], res.batch_labels[seed_mask])
    for i in range(1, 4):
        for beta in range(k):
            members = (res.batch_index == i) & (res.batch_labels == beta)
            assert members.any()
            means = [d[np.ix_(seed_mask & (res.labels == a), members)].mean() for a in range(k)]
            np.testing.assert_allclose(res.merge_distance[i][:, beta], means, rtol=1e-12)
            assert np.all(res.labels[members] == int(np.argmin(means)))
    # each final cluster is the union of its seed and whole batch clusters: no batch cluster is split
    pairs = {(b, l) for b, l in zip(res.batch_index, res.batch_labels)}
    assert len(pairs) == 4 * k
    assert len({(b, l, f) for b, l, f in zip(res.batch_index, res.batch_labels, res.labels)}) == 4 * k


def test_batched_is_reproducible_from_seed(quintic_points):
    a = batched_clustering(quintic_points, n_clusters=5, batch_size=200, seed=11)
    b = batched_clustering(quintic_points, n_clusters=5, batch_size=200, seed=11)
    c = batched_clustering(quintic_points, n_clusters=5, batch_size=200, seed=12)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.batch_index, c.batch_index)


def test_one_batch_equals_full_clustering(quintic_points):
    z = quintic_points[:300]
    batched = batched_clustering(z, n_clusters=7, batch_size=300, seed=2)
    full = full_clustering(z, n_clusters=7)
    assert adjusted_rand_score(batched.labels, full.labels) == 1.0


@pytest.mark.parametrize("method", ["batched", "full"])
def test_separated_groups_are_recovered(separated_groups, method):
    z, truth = separated_groups
    assert np.bincount(truth).min() >= 10
    if method == "batched":
        res = batched_clustering(z, n_clusters=4, batch_size=len(z) // 3 + 1, seed=0)
        assert res.batch_index.max() == 2
    else:
        res = full_clustering(z, n_clusters=4)
    assert adjusted_rand_score(truth, res.labels) == 1.0
    assert silhouette_fs(z, res.labels).score > 0.5


def test_silhouette_agrees_with_sklearn(quintic_points):
    z = quintic_points[:200]
    d = fs_distance(z)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=200)
    labels[17] = 5  # a singleton cluster: s = 0 by convention
    clustered = full_clustering(z, n_clusters=6).labels
    for lab in (labels, clustered):
        ref = silhouette_score(d, lab, metric="precomputed")
        assert silhouette_precomputed(d, lab) == pytest.approx(ref, abs=1e-12)
        assert silhouette_fs(z, lab, tile_entries=3000).score == pytest.approx(ref, abs=1e-12)
    # row subsample: exact per-point silhouettes of the sampled rows against all points
    sub = silhouette_fs(z, clustered, sample_size=50, seed=4)
    rows = np.sort(np.random.default_rng(4).choice(200, size=50, replace=False))
    samples = silhouette_samples(d, clustered, metric="precomputed")
    assert sub.score == pytest.approx(samples[rows].mean(), abs=1e-12)
    assert sub.stderr == pytest.approx(samples[rows].std(ddof=1) / np.sqrt(50), rel=1e-9)
    # two rows are the fewest with a standard error; one row is refused (its stderr was NaN)
    two = silhouette_fs(z, clustered, sample_size=2, seed=4)
    rows = np.sort(np.random.default_rng(4).choice(200, size=2, replace=False))
    assert two.stderr == pytest.approx(abs(samples[rows[0]] - samples[rows[1]]) / 2, rel=1e-9)
    for bad in (1, 2.5, "50", True):  # (2.5 ended in NumPy's TypeError from choice, naming no argument)
        with pytest.raises(ConfigError, match=f"sample_size={bad!r} is invalid; pass a whole number of rows >= 2"):
            silhouette_fs(z, clustered, sample_size=bad)
    with pytest.raises(ValueError, match="tile_entries=0 is invalid"):
        silhouette_fs(z, clustered, tile_entries=0)


def test_silhouette_sample_size_above_n_points_is_refused(quintic_points):
    """sample_size = 201 of 200 points averaged the 200 silently (stderr 0), while the job's [quality].sample_size
    above n_points is refused; N itself and None stay the exact score over every point."""
    z = quintic_points[:200]
    d = fs_distance(z)
    labels = full_clustering(z, n_clusters=4).labels
    ref = silhouette_score(d, labels, metric="precomputed")
    for every in (None, 200, 200.0):
        sil = silhouette_fs(z, labels, sample_size=every, seed=3)
        assert (sil.score, sil.stderr, sil.n_rows) == (pytest.approx(ref, abs=1e-12), 0.0, 200)
    for bad in (201, 10**6):
        with pytest.raises(ConfigError, match=rf"^sample_size={bad} is invalid; pass a whole number of rows >= 2 "
                                              r"and <= 200 .*or None for every point$"):
            silhouette_fs(z, labels, sample_size=bad)


def test_birch_baseline_runs_on_euclidean_features(separated_groups):
    z, truth = separated_groups
    res = birch_clustering(z * (1.0 + 2.0j), n_clusters=4)  # invariant under rescaling the homogeneous coords
    ref = birch_clustering(z, n_clusters=4)
    np.testing.assert_array_equal(res.labels, ref.labels)
    assert res.labels.shape == (len(z),) and res.n_clusters <= 4


@pytest.mark.parametrize("kw, word", [
    (dict(threshold=0), r"^threshold=0 is invalid; pass a number > 0 and <= 100 "),
    (dict(threshold=-1), r"^threshold=-1 is invalid; pass a number > 0"),
    (dict(threshold=float("nan")), r"^threshold=nan is invalid; pass a number > 0"),
    (dict(threshold=100.5), r"^threshold=100\.5 is invalid; pass a number > 0 and <= 100 "),
    (dict(threshold="0.5"), r"^threshold='0\.5' is invalid; pass a number > 0"),
    (dict(branching_factor=1), r"^branching_factor=1 is invalid; pass an integer >= 2 "),
    (dict(branching_factor=0), r"^branching_factor=0 is invalid; pass an integer >= 2 "),
    (dict(branching_factor=2.5), r"^branching_factor=2\.5 is invalid; pass an integer >= 2 "),
])
def test_birch_refuses_a_threshold_or_branching_factor_it_cannot_use(separated_groups, kw, word):
    """threshold <= 0 and branching_factor < 2 were passed to scikit-learn, whose InvalidParameterError came from
    inside fit; they are refused first in one line naming the argument (the job file's bounds for threshold)."""
    with pytest.raises(ConfigError, match=word) as exc:
        birch_clustering(separated_groups[0], n_clusters=2, **kw)
    assert "\n" not in str(exc.value)


def test_birch_takes_the_bounds_the_job_file_takes(separated_groups):
    from hpcflow.experiments.clustering_quality import SCHEMA

    field = SCHEMA["clustering"]["birch_threshold"]
    assert (field.lo, field.lo_open, field.hi) == (0, True, 100.0)
    z = separated_groups[0]
    assert birch_clustering(z, n_clusters=2, threshold=100, branching_factor=2).n_clusters == 1  # one subcluster
    assert birch_clustering(z, n_clusters=2, threshold=1e-9, branching_factor=2.0).n_clusters == 2


def test_flow_blocks_partition_train_and_test(quintic_points):
    train, test = quintic_points[:400], quintic_points[400:]
    blocks = flow_blocks(train, test, method="batched", n_clusters=4, batch_size=100, seed=1)
    all_train = np.concatenate([b.train_idx for b in blocks])
    all_test = np.concatenate([b.test_idx for b in blocks])
    np.testing.assert_array_equal(np.sort(all_train), np.arange(400))
    np.testing.assert_array_equal(np.sort(all_test), np.arange(200))
    nearest = np.argmin(fs_distance(test, train), axis=1)  # brute-force nearest train point
    owner = np.empty(400, dtype=int)
    for c, b in enumerate(blocks):
        owner[b.train_idx] = c
        np.testing.assert_array_equal(b.source_idx, b.train_idx)
    for c, b in enumerate(blocks):
        assert np.all(owner[nearest[b.test_idx]] == c)
    idx, dist = nearest_point(train, test)
    np.testing.assert_array_equal(idx, nearest)
    ref = fs_distance(test, train)[np.arange(200), nearest]
    assert np.all(np.abs(dist - ref) <= 2 * fs_distance_error(ref))  # either evaluation path, any BLAS


def _assert_brute_force_halos(b, d, dt, cutoff):
    """A block's train-row sources: the train points within `cutoff` of its train points; its test-row sources:
    within `cutoff` of its train or test points (d, dt: brute-force FS distances train x train, test x train)."""
    near_train = d[b.train_idx].min(axis=0)
    near_all = np.minimum(near_train, dt[b.test_idx].min(axis=0, initial=np.inf))
    np.testing.assert_array_equal(b.source_idx, np.flatnonzero(near_train <= cutoff))
    np.testing.assert_array_equal(b.test_source_idx, np.flatnonzero(near_all <= cutoff))


def test_halo_sources_are_the_train_points_within_cutoff(quintic_points):
    train, test = quintic_points[:300], quintic_points[300:400]
    d = fs_distance(train)
    dt = fs_distance(test, train)
    for cutoff in (0.35, 0.8):
        blocks = flow_blocks(train, test, method="full", n_clusters=3, halo_cutoff=cutoff)
        for b in blocks:
            _assert_brute_force_halos(b, d, dt, cutoff)
            assert np.all(np.isin(b.train_idx, b.source_idx))
    for b in flow_blocks(train, test, method="birch", n_clusters=3, halo_cutoff=np.pi / 2):
        np.testing.assert_array_equal(b.source_idx, np.arange(300))
        np.testing.assert_array_equal(b.test_source_idx, np.arange(300))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_clusters=11, batch_size=10), "n_clusters = 11"),
    (dict(n_clusters=3, batch_size=1), "batch_size = 1"),
    (dict(n_clusters=0, batch_size=10), "n_clusters = 0"),
    (dict(n_clusters=40, batch_size=50), "smallest mini-batch"),  # 60 points -> 2 batches of 30
])
def test_bad_sizes_are_config_errors(quintic_points, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        batched_clustering(quintic_points[:60], seed=0, **kwargs)


def test_bad_points_are_config_errors(quintic_points):
    with pytest.raises(ConfigError, match="empty"):
        batched_clustering(np.zeros((0, 5), complex), n_clusters=2, batch_size=10)
    bad = quintic_points[:50].copy()
    bad[7, 2] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        full_clustering(bad, n_clusters=2)
    with pytest.raises(ConfigError, match="NaN"):
        flow_blocks(quintic_points[:50], bad, n_clusters=2, batch_size=25)
    with pytest.raises(ConfigError, match="halo_cutoff"):
        flow_blocks(quintic_points[:50], None, n_clusters=2, batch_size=25, halo_cutoff=-1.0)
    with pytest.raises(ConfigError, match="method"):
        flow_blocks(quintic_points[:50], None, method="kmeans", n_clusters=2)
    with pytest.raises(ConfigError, match="clusters"):
        silhouette_fs(quintic_points[:50], np.zeros(50, dtype=int))


@pytest.mark.parametrize("scale", [1e-170, 1e160])
def test_points_at_extreme_scales_cluster_as_at_scale_1(quintic_points, scale):
    """z and lambda z are one point of P^n: every third row left at scale 1, the others at 1e-170 (|z| underflows
    to 0, which was refused as a zero point) or 1e160 (|z|^2 overflows)."""
    z = quintic_points[:300]
    w = z * scale
    w[::3] = z[::3]
    assert np.array_equal(full_clustering(w, n_clusters=5).labels, full_clustering(z, n_clusters=5).labels)
    ref = cluster_points(z, n_clusters=5, batch_size=100, seed=1).labels
    assert np.array_equal(cluster_points(w, n_clusters=5, batch_size=100, seed=1).labels, ref)
    d = fs_distance(z)
    assert silhouette_fs(w, ref).score == pytest.approx(silhouette_precomputed(d, ref), abs=1e-12)


def test_a_zero_row_is_refused_naming_it(quintic_points):
    bad = quintic_points[:50] * 1e-170
    bad[9] = 0.0
    with pytest.raises(ConfigError, match=r"points: row 9 has all coordinates 0, which is no point of P\^n"):
        full_clustering(bad, n_clusters=2)


def test_check_settings_predicts_clustering_errors(quintic_points):
    """The point-free check used by job files raises exactly when the clustering itself would."""
    for n, k, b in [(60, 30, 60), (60, 31, 60), (61, 20, 30), (61, 21, 30), (7, 3, 2), (7, 4, 2), (5, 2, 1)]:
        try:
            batched_clustering(quintic_points[:n], n_clusters=k, batch_size=b, seed=0)
            expected = None
        except ConfigError as exc:
            expected = str(exc)
        if expected is None:
            check_settings(n, method="batched", n_clusters=k, batch_size=b)
        else:
            with pytest.raises(ConfigError) as info:
                check_settings(n, method="batched", n_clusters=k, batch_size=b)
            assert str(info.value) == expected


@pytest.mark.parametrize("method", ["full", "birch", "batched", "distributed"])
def test_the_functions_take_one_to_n_clusters_the_silhouette_two_to_n_minus_one(quintic_points, method):
    """As the README says: the Python functions cluster N points into any k in 1..N (k = N: one point per cluster,
    k = 1: one cluster), k = N + 1 is refused naming n_clusters; the silhouette refuses k = 1 and k = N."""
    from hpcflow.cluster.distributed import distributed_labels
    from hpcflow.parallel.comm import SerialComm

    z = quintic_points[:6]
    run = {"full": lambda k: full_clustering(z, n_clusters=k).labels,
           "birch": lambda k: birch_clustering(z, n_clusters=k).labels,
           "batched": lambda k: batched_clustering(z, n_clusters=k, batch_size=6, seed=0).labels,
           "distributed": lambda k: distributed_labels(z, method="batched", n_clusters=k, batch_size=6,
                                                       comm=SerialComm())[0]}[method]
    singles, one = run(6), run(1)
    assert len(set(singles.tolist())) == (len(set(singles.tolist())) if method == "birch" else 6) <= 6
    assert one.tolist() == [0] * 6
    with pytest.raises(ConfigError, match="n_clusters = 7 is larger than the 6 points"):
        run(7)
    for labels in (np.arange(6), np.zeros(6, dtype=int)):
        with pytest.raises(ConfigError, match="silhouette needs 2 <= number of clusters <= N-1"):
            silhouette_fs(z, labels)


@pytest.mark.parametrize("method", ["full", "birch", "batched"])
def test_more_clusters_than_points_advises_more_points_not_a_batch_size(quintic_points, method):
    """With k > N no batch size helps (and "full" and "birch" have none): the advice is fewer clusters or more
    points, the same from the point-free job check."""
    with pytest.raises(ConfigError) as exc:
        cluster_points(quintic_points[:3], method=method, n_clusters=5, batch_size=2)
    msg = str(exc.value)
    assert "larger than the 3 points; lower n_clusters or cluster more points" in msg and "batch" not in msg
    with pytest.raises(ConfigError) as job:
        check_settings(3, method=method, n_clusters=5, batch_size=2)
    assert str(job.value) == msg


def test_a_mini_batch_too_small_for_k_names_the_batch_size_that_fits(quintic_points):
    """k <= N but above the smallest mini-batch: the batch size advised is the least one that clusters (checked
    against split_batches itself, the size one below it does not)."""
    for n, k, b in [(60, 40, 50), (61, 21, 30), (7, 4, 2), (100, 20, 16), (599, 25, 20), (600, 201, 299)]:
        with pytest.raises(ConfigError, match=r"raise batch_size to >= (\d+)$") as exc:
            batched_clustering(quintic_points[:n], n_clusters=k, batch_size=b, seed=0)
        need = int(str(exc.value).rsplit(" ", 1)[1])
        smallest = lambda size: min(part.size for part in split_batches(n, size, 0))  # noqa: E731
        assert smallest(need) >= k > smallest(need - 1), (n, k, b, need)
        check_settings(n, method="batched", n_clusters=k, batch_size=need)


@pytest.mark.parametrize("seed", [-1, None, 1.5, True, "0"])
def test_a_shuffle_seed_that_is_not_a_whole_number_at_least_0_is_refused_naming_seed(quintic_points, seed):
    """seed: a whole number >= 0, as `Hypersurface.sample` takes seeds (ConfigError, as the clustering's other
    settings); -1 raised NumPy's bare 'expected non-negative integer', None shuffled each call (and each MPI rank)
    differently."""
    z = quintic_points[:40]
    for run in (lambda: batched_clustering(z, n_clusters=2, batch_size=20, seed=seed),
                lambda: cluster_points(z, method="batched", n_clusters=2, batch_size=20, seed=seed),
                lambda: flow_blocks(z, None, n_clusters=2, batch_size=20, seed=seed)):
        with pytest.raises(ConfigError, match=rf"^seed={seed!r} is invalid; pass an integer >= 0 \(of any size"):
            run()


@pytest.mark.parametrize("method", ["full", "birch"])
@pytest.mark.parametrize("kw, said", [
    (dict(seed=-5), r"^seed=-5 is invalid; pass an integer >= 0 \(of any size"),
    (dict(seed="a"), r"^seed='a' is invalid; pass an integer >= 0 \(of any size"),
    (dict(seed=1.5), r"^seed=1\.5 is invalid"),
    (dict(batch_size=-1), r"^batch_size = -1 must be >= 2"),
    (dict(batch_size="10"), r"^batch_size='10' is invalid; pass an integer >= 2"),
    (dict(merge="closest"), r"^merge = 'closest' is not one of nearest, paper"),
])
def test_every_method_refuses_a_bad_seed_batch_size_or_merge_as_batched_does(quintic_points, method, kw, said):
    """seed, batch_size and merge matter for "batched" alone but are checked for every method, by every entry point
    (the full and birch methods took seed=-5 or 'a' and batch_size=-1 without a word)."""
    from hpcflow.cluster.distributed import distributed_labels

    z = quintic_points[:40]
    for run in (lambda: cluster_points(z, method=method, n_clusters=3, **kw),
                lambda: distributed_labels(z, method=method, n_clusters=3, **kw),
                lambda: flow_blocks(z, None, method=method, n_clusters=3, **kw),
                lambda: cluster_points(z, method="batched", n_clusters=3, **kw)):
        with pytest.raises(ConfigError, match=said):
            run()


@pytest.mark.parametrize("tile, exc", [(0, ValueError), (-3, ValueError), (2.5, ValueError), ("8", TypeError)])
def test_a_bad_tile_is_refused_in_the_clustering_words(quintic_points, tile, exc):
    """tile counts rows of the points clustered: fs_distance's refusal spoke of "rows of z1 per block", an argument
    of none of these functions."""
    from hpcflow.cluster.distributed import distributed_labels

    z = quintic_points[:40]
    for run in (lambda: full_clustering(z, n_clusters=3, tile=tile),
                lambda: batched_clustering(z, n_clusters=3, batch_size=20, tile=tile),
                lambda: distributed_labels(z, method="full", n_clusters=3, tile=tile)):
        with pytest.raises(exc, match=rf"^tile={tile!r} is invalid; pass an integer >= 1 \(rows of the points per "
                                      r"distance block\)$"):
            run()


def test_every_method_takes_whole_seeds_and_batch_sizes_as_batched_does(quintic_points):
    """What "batched" takes (a NumPy integer, an integral float, a seed beyond int64) every method takes, with the
    same labels as the defaults: the deterministic methods ignore them."""
    from hpcflow.cluster.distributed import distributed_labels

    z = quintic_points[:40]
    for method in ("full", "birch"):
        ref = cluster_points(z, method=method, n_clusters=3).labels
        for kw in (dict(seed=2.0, batch_size=np.int64(20)), dict(seed=2**70, batch_size=2, merge="paper")):
            np.testing.assert_array_equal(cluster_points(z, method=method, n_clusters=3, **kw).labels, ref)
            np.testing.assert_array_equal(distributed_labels(z, method=method, n_clusters=3, **kw)[0], ref)


def test_shuffle_seeds_of_any_size_numpy_integers_and_integral_floats_are_taken(quintic_points):
    """Seeds beyond job files' SEED_MAX shuffle as numpy.random.default_rng takes them; 12.0 is 12."""
    z = quintic_points[:40]
    for seed in (0, SEED_MAX, SEED_MAX + 1, 2**70, np.int64(12), np.uint64(12), 12.0):
        res = batched_clustering(z, n_clusters=2, batch_size=20, seed=seed)
        assert res.seed == int(seed) and type(res.seed) is int
        np.testing.assert_array_equal(res.labels, batched_clustering(z, n_clusters=2, batch_size=20,
                                                                     seed=int(seed)).labels)
        first = np.random.default_rng(int(seed)).permutation(len(z))[:20]  # batch 0: the shuffle's first half
        assert sorted(np.flatnonzero(res.batch_index == 0).tolist()) == sorted(first.tolist())


def test_silhouette_precomputed_refuses_distances_that_are_not_a_finite_square_matrix(quintic_points):
    """A non-square matrix failed inside a matmul, one of other N than the labels likewise, and a nan matrix gave a
    nan score without a word: each is one ConfigError naming d (or labels) and the fix."""
    z = quintic_points[:60]
    labels = np.arange(60) % 3
    d = fs_distance(z)
    for bad, match in [(np.ones((60, 50)), r"d: shape \(60, 50\) is not square; pass the distances between all N"),
                       (np.ones(60), r"d: shape \(60,\) is not square"),
                       (np.full((60, 60), np.nan), r"d: 3600 entries are nan, inf or negative \(first d\[0, 0\] = nan\)"),
                       (np.where(np.eye(60, k=1) > 0, np.inf, d), r"d: 59 entries .*first d\[0, 1\] = inf"),
                       (d - 2 * np.eye(60), r"d: 60 entries .*first d\[0, 0\] = -2\.0"),
                       (d.astype(complex), r"d: dtype complex128 is not a matrix of distances"),
                       (d[:50, :50], r"labels: need 50 non-negative integer cluster labels, got shape \(60,\)")]:
        with pytest.raises(ConfigError, match=match):
            silhouette_precomputed(bad, labels)
    ref = silhouette_score(d, labels, metric="precomputed")
    assert silhouette_precomputed(d.tolist(), labels) == pytest.approx(ref, abs=1e-12)


def test_silhouette_refuses_labels_saying_what_is_wrong_with_them(quintic_points):
    """Float labels (whole numbers, 0.0 .. 2.0) and a negative label were both "need 300 non-negative integer cluster
    labels, got shape (300,)", a shape that is right: the message now names the dtype or the negative label."""
    z = quintic_points[:300]
    d = fs_distance(z)
    labels = np.arange(300) % 3
    negative = labels.copy()
    negative[[41, 77]] = -1
    for bad, match in ((labels.astype(float), r"^labels: dtype float64 is not an integer one; pass integer cluster "
                                              r"labels >= 0"),
                       (labels > 0, r"^labels: dtype bool is not an integer one"),
                       (negative, r"^labels: label -1 at row 41 is negative; pass cluster labels >= 0$"),
                       (labels[:299], r"^labels: need 300 non-negative integer cluster labels, got shape \(299,\)")):
        for call in (lambda: silhouette_fs(z, bad), lambda: silhouette_precomputed(d, bad)):
            with pytest.raises(ConfigError, match=match):
                call()


def test_nearest_point_refuses_a_single_point_and_takes_point_sets(quintic_points):
    """nearest_point answers for rows of query points: one point (a 1-D row) failed with an IndexError and points
    of another P^n with SciPy's dimension error; each is now a ConfigError naming z_query and the fix. A PointSet is
    taken by its points, as the other cluster functions take it; against brute-force nearest points."""
    z = quintic_points[:200]
    with pytest.raises(ConfigError, match=r"z_query has shape \(5,\); pass query points as a 2-D array \(M, n\+1\).*"
                                          r"one point: z\[None\]"):
        nearest_point(z, z[0])
    with pytest.raises(ConfigError, match=r"z_query has 4 homogeneous coordinates per point, the reference points 5"):
        nearest_point(z, z[:3, :4])
    ps = Hypersurface.fermat(3).sample(30, seed=8)
    idx, dist = nearest_point(z, ps)
    d = fs_distance(ps.points, z)
    np.testing.assert_array_equal(idx, np.argmin(d, axis=1))
    ref = d[np.arange(30), idx]
    assert np.all(np.abs(dist - ref) <= 2 * fs_distance_error(ref))
    one, _ = nearest_point(z, z[7][None])
    assert one.tolist() == [7]


def test_halo_cutoff_takes_numpy_real_scalars(quintic_points):
    """np.float32(0.35) was refused ("must be a finite FS distance >= 0") while np.float64 was taken: any real
    number but a bool is a cutoff, with the blocks of its float value (against brute-force halos)."""
    train, test = quintic_points[:300], quintic_points[300:400]
    d, dt = fs_distance(train), fs_distance(test, train)
    for cutoff in (np.float32(0.35), np.int64(1), np.float16(0.5)):
        blocks = flow_blocks(train, test, method="full", n_clusters=3, halo_cutoff=cutoff)
        for b in blocks:
            _assert_brute_force_halos(b, d, dt, float(cutoff))
    for bad in (True, np.float32(np.nan), "0.3"):
        with pytest.raises(ConfigError, match="must be a finite FS distance >= 0"):
            flow_blocks(train, test, method="full", n_clusters=3, halo_cutoff=bad)


@pytest.mark.parametrize("ties", [False, True])
def test_average_linkage_gives_scikit_learns_partition(quintic_points, ties):
    """The k average-linkage clusters of a precomputed FS distance matrix are the partition scikit-learn's
    AgglomerativeClustering gives (an independent cut of the same tree), for every k, also where distances
    tie (rounded to 2 digits: many equal merge heights)."""
    from sklearn.cluster import AgglomerativeClustering

    from hpcflow.cluster.agglomerative import average_linkage

    d = fs_distance(quintic_points[:150])
    if ties:
        d = np.round(d, 2)
    for k in (2, 3, 7, 40, 149):
        ours = average_linkage(d, k)
        ref = AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average").fit_predict(d)
        assert np.unique(ours).size == k
        # the same partition: each of our clusters is exactly one of scikit-learn's
        pairs = np.unique(np.stack([ours, ref]), axis=1)
        assert pairs.shape[1] == k, (k, pairs.shape)


def test_silhouette_cost_follows_the_number_of_labels_not_their_largest_value(quintic_points):
    """Labels {0, 10**12} asked for a 10**12-column indicator matrix (a MemoryError of about 7 TiB): the labels are
    renumbered, so any two distinct values give the two-cluster score scikit-learn computes."""
    z = quintic_points[:100]
    d = fs_distance(z)
    small = (np.arange(100) * 7 % 5 == 0).astype(np.int64)
    ref = silhouette_score(d, small, metric="precomputed")
    for labels in (small * 10**12, np.where(small == 1, 2**63 - 1, 3), small.astype(np.uint64) * np.uint64(2**64 - 1)):
        assert silhouette_score(d, labels, metric="precomputed") == pytest.approx(ref, abs=1e-15)
        assert silhouette_precomputed(d, labels) == pytest.approx(ref, abs=1e-12)
        assert silhouette_fs(z, labels).score == pytest.approx(ref, abs=1e-12)
        assert silhouette_fs(z, labels, tile_entries=700).score == pytest.approx(ref, abs=1e-12)
    three = np.arange(100) % 3
    spread = np.array([5, 10**9, 10**15])[three]
    ref3 = silhouette_score(d, three, metric="precomputed")
    assert silhouette_precomputed(d, spread) == pytest.approx(ref3, abs=1e-12)
    assert silhouette_fs(z, spread, sample_size=40, seed=2).score == pytest.approx(
        silhouette_fs(z, three, sample_size=40, seed=2).score, abs=1e-15)


def test_a_misspelt_method_is_named_before_the_settings_it_would_ignore(quintic_points):
    """cluster_points(method="bogus", batch_size=-1) named batch_size, a setting of "batched" alone: the unknown
    method is the error to fix first, as distributed_labels and flow_blocks say it."""
    from hpcflow.cluster.distributed import distributed_labels

    z = quintic_points[:40]
    for run in (lambda: cluster_points(z, method="bogus", n_clusters=3, batch_size=-1, seed=-5),
                lambda: distributed_labels(z, method="bogus", n_clusters=3, batch_size=-1, seed=-5),
                lambda: flow_blocks(z, None, method="bogus", n_clusters=3, batch_size=-1, seed=-5)):
        with pytest.raises(ConfigError, match=r"^clustering method 'bogus' is not one of batched, full, birch"):
            run()
