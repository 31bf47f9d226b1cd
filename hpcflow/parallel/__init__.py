"""The MPI layer: communicator resolution, decomposition of shares, and buffer collectives.

In the base layer with `hpcflow.backend` (README's "Layout"), below the geometry and the clustering that use it.
Imports at module level from outside this package: `hpcflow.arguments`, `hpcflow.backend`, `hpcflow.errors`,
`hpcflow.launcher_output`, `hpcflow.resources` (`comm`; `decompose` and `partition` import `hpcflow.arguments` only),
all of the base layer; `comm`'s functions import `hpcflow.stop_signals` (base layer too) and `hpcflow.__version__`.
mpi4py is imported inside the functions that use MPI, not at import. Every function takes `comm=None` keyword-only
(resolved by `comm.resolve`) and does nothing extra on one rank.
"""

from hpcflow.parallel.comm import abort_on_error, check_launch, is_root, rank, resolve, size
from hpcflow.parallel.decompose import counts, displs, share

__all__ = ["abort_on_error", "check_launch", "counts", "displs", "is_root", "rank", "resolve", "share", "size"]
