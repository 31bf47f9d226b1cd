"""Three `hpcflow run` of a flow job in one launch, for tests/test_flow_setup_signal.py:
1. `run JOB --out CUT --quiet` whose rank RANK alone receives SIGTERM (or SIGNAL: INT) while the flow draws its points (in
   flow_job.distribute: before the flow and its checkpoint writer);
2. `run JOB --out CUT --quiet --resume`, the command line the stop of 1. names;
3. `run JOB --out WHOLE --quiet`, the uninterrupted run.
Usage: python flow_setup_signal_driver.py RANK JOB CUT WHOLE [SIGNAL]
Each rank prints "statuses S1 S2 S3" (the three exit statuses) on stdout.
"""

import signal
import sys

from hpcflow.cli import main
from tune_signal_driver import sigterm_in_distribute  # (this script's folder is on sys.path)

rank, job, cut, whole = int(sys.argv[1]), *sys.argv[2:5]
sigterm_in_distribute(rank, signal.Signals[f"SIG{sys.argv[5]}"] if len(sys.argv) > 5 else signal.SIGTERM)
statuses = [main(["run", job, "--out", out, "--quiet", *more])
            for out, more in ((cut, []), (cut, ["--resume"]), (whole, []))]
print("statuses", *statuses, flush=True)
