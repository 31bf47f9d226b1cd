"""Three `hpcflow run` of a flow job in one launch, for tests/test_flow_setup_signal.py:
1. `run JOB --out CUT --quiet` whose rank RANK alone receives SIGTERM (or SIGNAL: INT, USR1) while the flow draws its
   points (in flow_job.distribute: before the flow and its checkpoint writer); its checkpoint is copied to
   CUT.first.h5 (rank 0) before 2 writes over it;
2. `run JOB --out CUT --quiet --resume`, the command line the stop of 1. names;
3. `run JOB --out WHOLE --quiet`, the uninterrupted run.
Usage: python flow_setup_signal_driver.py RANK JOB CUT WHOLE [SIGNAL]
Each rank writes "statuses S1 S2 S3" (the three exit statuses) and "kernel_sums K" (the calls of the flow's kernel
sums, `hpcflow.flow_step`, in run 1) to the file CUT.said.RANK.
"""

import os
import shutil
import signal
import sys

from hpcflow import flow_step
from hpcflow.cli import main
from hpcflow.parallel.comm import resolve
from tune_signal_driver import sigterm_in_distribute  # (this script's folder is on sys.path)

calls = []
for kind in (flow_step.Clustered, flow_step.Exact, flow_step.Nearest):
    def counted(self, grad, _sums=kind.__call__):
        calls.append(1)
        return _sums(self, grad)

    kind.__call__ = counted

rank, job, cut, whole = int(sys.argv[1]), *sys.argv[2:5]
sigterm_in_distribute(rank, signal.Signals[f"SIG{sys.argv[5]}"] if len(sys.argv) > 5 else signal.SIGTERM)
statuses = [main(["run", job, "--out", cut, "--quiet"])]
kernel_sums = len(calls)
if resolve(None).Get_rank() == 0 and os.path.exists(os.path.join(cut, "checkpoint.h5")):
    shutil.copyfile(os.path.join(cut, "checkpoint.h5"), f"{cut}.first.h5")
statuses += [main(["run", job, "--out", out, "--quiet", *more]) for out, more in ((cut, ["--resume"]), (whole, []))]
with open(f"{cut}.said.{resolve(None).Get_rank()}", "w") as f:  # a file per rank: on the launcher's shared stdout
    # a line of one rank was once cut by another's ("statuses" alone, then rank 0's "hpcflow run: wrote ...")
    f.write(f"statuses {' '.join(map(str, statuses))}\nkernel_sums {kernel_sums}\n")
