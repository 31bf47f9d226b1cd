"""Run under mpiexec -n R by tests/test_checkpoint.py: every rank calls `load_resume` (argv: OUT MODE [OUT MODE]...,
one read after the other in this one start-up of the ranks); MODE "missing_on_last": the last rank is given a path
that does not exist (a node-local directory), "as_is": all read OUT. Rank 0 prints each rank's outcome of each read
on a line, "read K: rank R: read step S" or "read K: rank R: refused: MESSAGE" (gathered: long lines printed by
several ranks at once interleave)."""

import sys

from hpcflow.checkpoint import load_resume
from hpcflow.errors import InputFileError
from hpcflow.parallel import comm as pcomm

pairs = sys.argv[1:]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
for k, (out, mode) in enumerate(zip(pairs[::2], pairs[1::2])):
    path = out + ".missing" if mode == "missing_on_last" and r == R - 1 else out
    try:
        line = f"read {k}: rank {r}: read step {load_resume(path, comm=c).step}"
    except InputFileError as exc:
        line = f"read {k}: rank {r}: refused: {exc}"
    lines = c.gather(line)
    if r == 0:
        print("\n".join(lines), flush=True)
