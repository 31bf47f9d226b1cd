"""Birch baseline (scikit-learn) on Euclidean features, for comparison with the FS clusterings (§3.1).

Features: real and imaginary parts of the chart-normalised homogeneous coordinates (each point scaled so
its largest-modulus coordinate is 1, the geometry's chart convention), i.e. the raw input features of
the networks, with plain Euclidean distance instead of the FS distance. Birch's final step groups its
subclusters into k clusters; if it finds fewer than k subclusters (threshold too large for these points) the
result has fewer clusters (`Clustering.n_clusters` says how many): the caller says so in its own words, in place
of scikit-learn's ConvergenceWarning.
"""

from __future__ import annotations

import warnings

import numpy as np

from hpcflow.arguments import api_integer, api_number
from hpcflow.cluster.agglomerative import canonical_labels
from hpcflow.cluster.inputs import as_points, check_n_clusters
from hpcflow.cluster.result import Clustering
from hpcflow.errors import ConfigError


def euclidean_features(z) -> np.ndarray:
    """(N, 2(n+1)) real features [Re z, Im z] of points scaled so max_k |z_k| = z_i = 1."""
    scale = z[np.arange(z.shape[0]), np.argmax(np.abs(z), axis=1)]
    zc = z / scale[:, None]
    return np.concatenate([zc.real, zc.imag], axis=1)


#: Birch's radius of a subcluster where a job sets none (scikit-learn's default)
THRESHOLD = 0.5
#: the largest threshold taken (feature units: every chart-normalised feature lies in [-1, 1]), here and in job files
THRESHOLD_MAX = 100.0


def birch_clustering(points, *, n_clusters: int, threshold: float = THRESHOLD, branching_factor: int = 50
                     ) -> Clustering:
    """k Birch clusters of the Euclidean features (scikit-learn defaults for threshold and branching); fewer when
    Birch finds fewer subclusters, without its warning. threshold: a number in (0, THRESHOLD_MAX]; branching_factor:
    an integer >= 2 (scikit-learn's bounds); else ConfigError naming it, before any work."""
    z = as_points(points)
    k = check_n_clusters(n_clusters, z.shape[0])
    threshold = api_number("threshold", threshold, f"a number > 0 and <= {THRESHOLD_MAX:g} (the radius of a Birch "
                           "subcluster in feature units)", lo=0, lo_open=True, hi=THRESHOLD_MAX,
                           type_error=ConfigError, value_error=ConfigError)
    branching_factor = api_integer("branching_factor", branching_factor, "an integer >= 2 (subclusters per Birch "
                                   "node)", lo=2, type_error=ConfigError, value_error=ConfigError)
    from sklearn.cluster import Birch
    from sklearn.exceptions import ConvergenceWarning

    model = Birch(n_clusters=k, threshold=threshold, branching_factor=branching_factor)
    with warnings.catch_warnings():  # "fewer subclusters than n_clusters": the labels say it, the caller too
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = canonical_labels(model.fit_predict(euclidean_features(z)))
    return Clustering(labels, int(labels.max()) + 1, "birch")
