"""The eq. 3.3 merge rules on hand-built point sets whose mean FS distances are known by hand.

Points z = (cos t, sin t) on a real line of P^1 have FS distance arccos|cos(t - t')| = |t - t'| while
|t - t'| <= pi/2; groups of points {c, c + 0.02} that do not interleave have mean distance |c - c'| exactly.
The points are placed so that `split_batches` yields the intended mini-batches (batch 0 gives the seeds).
"""

import numpy as np
import pytest

from hpcflow.cluster import MERGES, batched_clustering, check_settings, cluster_points
from hpcflow.cluster.batched import merge_census, split_batches
from hpcflow.errors import ConfigError
from hpcflow.experiments import clustering_quality, flow_job

SPREAD = 0.02  # each group: {c, c + SPREAD}


def placed(batches, seed=5):
    """(points, group id of each point) with mini-batch I of `split_batches(N, B, seed)` holding the groups of
    batches[I] (lists of group start values t, in order); group ids count through all batches."""
    t_ordered = np.array([c + s for groups in batches for c in groups for s in (0.0, SPREAD)])
    group_ordered = np.repeat(np.arange(sum(len(g) for g in batches)), 2)
    size = 2 * len(batches[0])
    cut = split_batches(t_ordered.size, size, seed)
    assert [len(b) for b in cut] == [2 * len(g) for g in batches]
    t, group = np.empty_like(t_ordered), np.empty_like(group_ordered)
    t[np.concatenate(cut)], group[np.concatenate(cut)] = t_ordered, group_ordered
    return np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.complex128), group, size


def test_printed_rule_differs_from_nearest_where_a_seed_takes_a_cluster_nearer_another_seed():
    # seeds: S0 at 0.0, S1 at 0.7; batch 2: P at 0.1, Q at 0.3. Mean distances (rows S0, S1; columns P, Q):
    # [[0.1, 0.3], [0.6, 0.4]]. Printed rule: S0 takes P (0.1 < 0.3), S1 takes Q (0.4 < 0.6).
    # Nearest rule: Q is nearer S0 (0.3) than S1 (0.4), so both P and Q join S0.
    z, group, size = placed([[0.0, 0.7], [0.1, 0.3]])
    by_group, census = {}, {}
    for merge in ("paper", "nearest"):
        res = batched_clustering(z, n_clusters=2, batch_size=size, seed=5, merge=merge)
        assert res.merge == merge
        np.testing.assert_allclose(res.merge_distance[1], [[0.1, 0.3], [0.6, 0.4]], atol=1e-9)
        by_group[merge] = [set(res.labels[group == g].tolist()) for g in range(4)]
        census[merge] = merge_census(res)
    assert by_group["paper"] == [{0}, {1}, {0}, {1}]
    assert by_group["nearest"] == [{0}, {1}, {0}, {0}]
    assert census["paper"] == {"taken_once": 2, "taken_more": 0, "taken_none": 0, "not_nearest": 1}  # Q
    assert census["nearest"] == {"taken_once": 2, "taken_more": 0, "taken_none": 0, "not_nearest": 0}


def test_doubly_taken_cluster_joins_the_closer_seed_and_untaken_cluster_its_nearest_seed():
    # seeds S0 0.0, S1 0.4, S2 1.2; batch 2: P 0.25, Q 0.9, R 1.4. Mean distances (rows seeds, columns P Q R):
    # S0 [0.25, 0.9, 1.4], S1 [0.15, 0.5, 1.0], S2 [0.95, 0.3, 0.2]. S0 and S1 both take P: P joins S1
    # (0.15 < 0.25, though S0 is numbered first); S2 takes R; nobody takes Q: Q joins its nearest seed S2 (0.3).
    z, group, size = placed([[0.0, 0.4, 1.2], [0.25, 0.9, 1.4]])
    res = batched_clustering(z, n_clusters=3, batch_size=size, seed=5, merge="paper")
    np.testing.assert_allclose(res.merge_distance[1], [[0.25, 0.9, 1.4], [0.15, 0.5, 1.0], [0.95, 0.3, 0.2]],
                               atol=1e-9)
    assert [set(res.labels[group == g].tolist()) for g in range(6)] == [{0}, {1}, {2}, {1}, {2}, {2}]
    assert res.sizes().tolist() == [2, 4, 6]  # S0 lost its pick and keeps only its own points
    assert merge_census(res) == {"taken_once": 1, "taken_more": 1, "taken_none": 1, "not_nearest": 0}


def test_every_point_lies_in_one_cluster_and_each_batch_cluster_is_kept_whole():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1.4, 240)
    z = np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.complex128)
    res = batched_clustering(z, n_clusters=6, batch_size=60, seed=1, merge="paper")
    assert res.labels.shape == (240,) and res.labels.min() >= 0 and res.labels.max() < 6
    for i in range(1, 4):
        for beta in range(6):
            members = (res.batch_index == i) & (res.batch_labels == beta)
            assert np.unique(res.labels[members]).size == 1
            mean = res.merge_distance[i]
            takers = np.flatnonzero(np.argmin(mean, axis=1) == beta)
            alpha = res.labels[members][0]
            if takers.size:  # a taken cluster joins one of its takers, the closest
                assert alpha in takers and mean[alpha, beta] == mean[takers, beta].min()
            else:
                assert mean[alpha, beta] == mean[:, beta].min()


def test_merge_is_checked_everywhere():
    z = np.stack([np.cos(np.arange(8) * 0.1), np.sin(np.arange(8) * 0.1)], axis=1)
    with pytest.raises(ConfigError, match="merge = 'printed'"):
        cluster_points(z, n_clusters=2, batch_size=4, merge="printed")
    with pytest.raises(ConfigError, match="merge = 'printed'"):
        check_settings(8, method="batched", n_clusters=2, batch_size=4, merge="printed")
    for schema in (clustering_quality.SCHEMA["clustering"], flow_job.CLUSTERING_SECTION):
        assert schema["merge"].choices == MERGES and schema["merge"].default == "nearest"


def test_flow_job_passes_merge_to_the_blocks(tmp_path):
    from hpcflow.cluster import flow_blocks
    from hpcflow.experiments.common import sample_train_test
    from hpcflow.jobs import registry

    job = tmp_path / "job.toml"
    job.write_text('[job]\nkind = "flow"\n[geometry]\nchart = [0, 1]\nn_train = 300\nn_test = 60\nseed = 3\n'
                   '[kernel]\nname = "delta"\n[flow]\ndt = 0.5\n'
                   '[clustering]\nmethod = "batched"\nn_clusters = 5\nbatch_size = 60\nmerge = "paper"\n')
    module, cfg = registry.load(job)
    assert module is flow_job and cfg["clustering"]["merge"] == "paper"
    _, train, test = sample_train_test(cfg["geometry"])
    got = [b.train_idx.tolist() for b in flow_job.flow_blocks(cfg, train, test)]
    kw = dict(n_clusters=5, batch_size=60, seed=0)
    assert got == [b.train_idx.tolist() for b in flow_blocks(train.points, test.points, merge="paper", **kw)]
    assert got != [b.train_idx.tolist() for b in flow_blocks(train.points, test.points, **kw)]
    _, _, lay, _ = flow_job.distribute(cfg)  # the path `hpcflow run` takes (one rank: every block owned here)
    assert sorted(b.train_idx.tolist() for b in lay.blocks) == sorted(got)
    job.write_text(job.read_text().replace('"paper"', '"printed"'))
    with pytest.raises(ConfigError, match="merge"):
        registry.load(job)
