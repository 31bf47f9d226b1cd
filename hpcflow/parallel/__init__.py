"""The MPI layer: communicator resolution, decomposition of shares, and buffer collectives.

A foundation like `hpcflow.backend`: it imports only `hpcflow.errors`. Every function takes `comm=None`
keyword-only (resolved by `comm.resolve`) and does nothing extra on one rank.
"""

from hpcflow.parallel.comm import abort_on_error, check_launch, is_root, rank, resolve, size
from hpcflow.parallel.decompose import counts, displs, share

__all__ = ["abort_on_error", "check_launch", "counts", "displs", "is_root", "rank", "resolve", "share", "size"]
