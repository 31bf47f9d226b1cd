"""Run under mpiexec -n 2 by tests/test_flow_resume_fit.py: the checkpoint OUT, which the API's CheckpointWriter
wrote at one rank (no point data: fingerprints), resumed with the same sets passed whole on every rank (each keeps its
share) and with a train set of other points; rank 0 prints each rank's "rank R: same sets: S steps" and "rank R:
other sets: TYPE: MESSAGE"."""

import sys

from hpcflow.checkpoint import load_resume
from hpcflow.flow import kernel_flow
from hpcflow.kernels import GaussianKernel
from hpcflow.parallel import comm as pcomm

from test_flow_resume_fit import DT, TEST, TRAIN, WIDTH, _sample

c = pcomm.resolve()
r = c.Get_rank()
state = load_resume(sys.argv[1], comm=c)
res = kernel_flow(GaussianKernel(WIDTH), TRAIN, TEST, dt=DT, steps=4, resume=state, comm=c)
said = [f"rank {r}: same sets: {res.steps_taken} steps"]
try:
    kernel_flow(GaussianKernel(WIDTH), _sample(len(TRAIN), 9), TEST, dt=DT, steps=4, resume=state, comm=c)
    said.append(f"rank {r}: other sets: resumed")
except ValueError as exc:
    said.append(f"rank {r}: other sets: ValueError: {exc}")
every = c.gather(said, root=0)
if r == 0:
    print("\n".join(line for lines in every for line in lines), flush=True)
