"""Geometry of Calabi-Yau hypersurfaces X = {p = 0} in P^n: points, charts, g_FS, Omega, weights.

Conventions (their summary, `pointset.CONVENTIONS`, is written into every HDF5 file that holds points or
metrics: `conventions` of PointSet files, `geometry_conventions` of job outputs):
- Points are homogeneous coordinates scaled so that the chart's scale coordinate z_i equals 1.
- Chart (i, j): i = argmax |z_k|, j = argmax_{k != i} |dp/dz_k| (smallest |Omega|^2), sec. 3.1;
  the local coordinates are the remaining n-1 z_k in ascending order.
- g_FS_{a bbar} = d_a dbar_b log|z|^2 pulled back along the embedding (no 1/pi factor; any constant
  normalisation of g cancels in eta/kappa and in sigma).
- Omega = dx_1 ^ ... ^ dx_{n-1} / (dp/dz_j) (Poincare residue), |Omega|^2 = 1/|dp/dz_j|^2.
- Sampling (Shiffman-Zelditch) draws points with density proportional to the FS volume form det g_FS;
  Monte Carlo weights w = |Omega|^2 / det g_FS turn averages into integrals against the CY volume form
  |Omega|^2 (unnormalised: only ratios of weighted sums are used).
- eta = det g / |Omega|^2, kappa = sum w eta / sum w, sigma = sum w |1 - eta/kappa| / sum w (eq. B.11).
  For g = g_FS, eta = 1/w and kappa = N / sum w. kappa estimates Vol_K / Vol_Omega =
  int_X det g d^{2(n-1)}x / int_X |Omega|^2 d^{2(n-1)}x: both volumes use the same coordinate measure, so
  the factors (i/2)^{n-1}, (n-1)! and pi of the Kaehler form J^{n-1}/(n-1)! and of Omega ^ Omega-bar cancel.
  With our g_FS (no 1/pi), int_X det g_FS d^{2(n-1)}x = pi^{n-1} deg(X) / (n-1)! (5 pi^3/6 for the quintic).
- FS geodesic distance d(z, z') = arccos(|<z,z'>| / (|z||z'|)) in [0, pi/2] (eq. 3.2), noise floor 1e-12 (eq. 3.4).
"""

from hpcflow.geometry.distance import fs_distance, fs_distance_paired, projector_features
from hpcflow.geometry.hypersurface import Hypersurface
from hpcflow.geometry.measures import kappa, sigma_measure
from hpcflow.geometry.pointset import PointSet

__all__ = ["Hypersurface", "PointSet", "fs_distance", "fs_distance_paired", "projector_features", "kappa",
           "sigma_measure"]
