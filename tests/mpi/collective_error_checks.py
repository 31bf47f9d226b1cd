"""Run under mpiexec -n R by tests/test_collective_errors.py: errors every rank raises on the same data.

Usage: collective_error_checks.py MODE DIR. Through the CLI (exit status: main's): "placed", `hpcflow sample` of
Dwork(dim 1) at psi = -1e7, whose first wave the sampler refuses (`check_placed`; the CLI's test of --psi on one
batch before any work is switched off for this); "batches", `hpcflow sample` in one chart with --max-batches 1:
the first wave is too few points; "birch", `hpcflow run` of a clustering job whose
Birch threshold leaves one cluster. Through the
Python API (mode "api", the three calls in turn, one launch), each rank catching the ConfigError and then taking
part in one allreduce (it prints what it caught and the allreduce's value): "sample", `Hypersurface.sample` with max_batches = 1; "labels", `distributed_labels` by
"birch" (rank 0 alone clusters) with more clusters than points; "blocks", `distributed_blocks` with no train point
on any rank. DIR: a directory for the run's files.
"""

import os
import sys

import numpy as np

from hpcflow.cli import main
from hpcflow.cluster.distributed import distributed_blocks, distributed_labels
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.parallel import comm as pcomm

BIRCH_JOB = """
[job]
kind = "clustering"
[points]
n_points = 240
seed = 2
[clustering]
n_clusters = 4
batch_size = 60
seed = 1
birch_threshold = 3.0
"""

mode, where = sys.argv[1], sys.argv[2]
out = os.path.join(where, "out")
common = ["--threads", "1", "--quiet", "--out", out + ".h5"]
if mode == "placed":
    import hpcflow.jobs.schema

    hpcflow.jobs.schema.placeable = lambda dim, psi: None  # (the CLI's test of --psi before any work: the sampler's)
    sys.exit(main(["sample", "--manifold", "dwork", "--dim", "1", "--psi=-1e7", "--n", "1000", *common]))
if mode == "batches":
    sys.exit(main(["sample", "--n", "20000", "--chart", "0", "1", "--max-batches", "1", *common]))
if mode == "birch":
    job = os.path.join(where, "job.toml")
    c = pcomm.resolve()
    if c.Get_rank() == 0:
        with open(job, "w", encoding="utf-8") as fh:
            fh.write(BIRCH_JOB)
    c.Barrier()
    sys.exit(main(["run", job, "--out", out, "--quiet"]))

c = pcomm.resolve()
z = Hypersurface.fermat(3).sample(12, seed=0, threads=1).points
calls = {
    "sample": lambda: Hypersurface.fermat(3).sample(20000, seed=0, chart=(0, 1), threads=1, max_batches=1),
    "labels": lambda: distributed_labels(z, method="birch", n_clusters=len(z) + 1),
    "blocks": lambda: distributed_blocks(np.zeros((0, 5), dtype=complex), n_clusters=2),
}
for name, call in calls.items():
    try:
        call()
        caught = None
    except ConfigError as exc:
        caught = exc
    together = c.allreduce(1)  # every rank is still here, in step with the others
    print(f"{name}: rank {c.Get_rank()}: caught {type(caught).__name__} "
          f"collective={getattr(caught, 'collective', None)} allreduce={together}", flush=True)
