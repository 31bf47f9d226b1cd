"""Several hpcflow commands in one MPI world, one after the other, for tests that need runs at the same rank count
of different jobs (one start-up of Python, MPI and torch instead of one each).

Usage: mpiexec -n R python cli_sequence.py ARGS... [--next ARGS...]...
Runs `hpcflow ARGS` (hpcflow.cli.main) for each group in turn; after each, every rank waits for the others and rank
0 prints a line `cli_sequence: command K status S` (K from 0), so a test can split the output per command. Stops
at the first non-zero status, with that status.
"""

import sys

from hpcflow.cli import main
from hpcflow.parallel.comm import resolve

groups, group = [], []
for arg in sys.argv[1:]:
    if arg == "--next":
        groups.append(group)
        group = []
    else:
        group.append(arg)
groups.append(group)
comm = resolve(None)
for k, args in enumerate(groups):
    status = main(args)
    sys.stdout.flush()
    comm.Barrier()
    if comm.Get_rank() == 0:
        print(f"cli_sequence: command {k} status {status}", flush=True)
    if status:
        sys.exit(status)
