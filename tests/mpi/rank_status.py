"""One rank's command run as a child, its exit status recorded: mpiexec reports one status for the whole job, so a
test that claims a status of every rank reads these files.

Usage: mpiexec -n R python rank_status.py DIR COMMAND...
Writes DIR/rank<RANK> (RANK from the launcher's PMI_RANK) holding the child's exit status (negative: the signal
that ended it) and exits with it. The child keeps the launcher's connection (inherited descriptors, environment),
so it is the MPI rank; once it runs, this wrapper ignores SIGTERM, SIGUSR1 and SIGINT (a test signals the rank).
"""

import os
import signal
import subprocess
import sys

out, cmd = sys.argv[1], sys.argv[2:]
proc = subprocess.Popen(cmd, close_fds=False)
for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
    signal.signal(sig, signal.SIG_IGN)
rc = proc.wait()
path = os.path.join(out, f"rank{os.environ['PMI_RANK']}")
with open(path + ".part", "w", encoding="utf-8") as fh:
    fh.write(f"{rc}\n")
os.replace(path + ".part", path)
sys.exit(rc if rc >= 0 else 128 - rc)
