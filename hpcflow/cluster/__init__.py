"""Fubini-Study clustering of point sets (paper §3.1): batched / full average linkage, Birch baseline,
silhouette quality, and the per-cluster blocks of the kernel flow.

Layering (README's "Layout"): in one layer with `hpcflow.kernels` and `hpcflow.metric` (none imports another), above
`hpcflow.geometry` and the base layer, below `hpcflow.flow`. Imports at module level from outside this package:
`hpcflow.arguments` (`birch`, `inputs`, `quality`), `hpcflow.errors`, `hpcflow.geometry` (`geometry.distance`),
`hpcflow.parallel` (`distributed`: `parallel.comm`, `parallel.redistribute`, `parallel.reduce`,
`parallel.replicated`) and `hpcflow.progress` (`batched`, `distributed`); SciPy and scikit-learn are imported inside
the functions that use them.
"""

from hpcflow.cluster.batched import batched_clustering
from hpcflow.cluster.birch import birch_clustering
from hpcflow.cluster.blocks import FlowBlock, flow_blocks
from hpcflow.cluster.full import full_clustering
from hpcflow.cluster.inputs import MERGES
from hpcflow.cluster.methods import METHODS, check_settings, cluster_points
from hpcflow.cluster.nearest import nearest_point
from hpcflow.cluster.quality import Silhouette, silhouette_fs, silhouette_precomputed
from hpcflow.cluster.result import Clustering

__all__ = ["Clustering", "FlowBlock", "MERGES", "METHODS", "Silhouette", "batched_clustering", "birch_clustering",
           "check_settings", "cluster_points", "flow_blocks", "full_clustering", "nearest_point", "silhouette_fs",
           "silhouette_precomputed"]
