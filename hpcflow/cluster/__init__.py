"""Fubini-Study clustering of point sets (paper §3.1): batched / full average linkage, Birch baseline,
silhouette quality, and the per-cluster blocks of the kernel flow.

Layering: uses only hpcflow.geometry (and scikit-learn/scipy); kernels and flow sit above it.
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
