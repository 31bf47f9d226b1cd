"""kernel_flow's on_step hooks that change its collectives must be alike on every rank: a `before_steps` (run only
where on_step has one; CheckpointWriter's writes the checkpoint, a collective) and `answers_alike` (an on_step
without it makes the collective that ORs the ranks' answers). Ranks whose hooks differed waited in different
collectives for ever; they are refused together before any work, with one ValueError naming the hook."""

import os
import subprocess
import sys

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "on_step_hook_checks.py")


def test_on_step_hooks_on_one_rank_alone_are_refused_on_every_rank():
    tests = os.path.dirname(os.path.dirname(DRIVER))
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=tests + os.pathsep + os.path.dirname(tests))
    r = subprocess.run(["timeout", "120", mpiexec(), "-n", "2", sys.executable, DRIVER],
                       capture_output=True, text=True, timeout=150, env=env)
    lines = [line for line in r.stdout.splitlines() if line.startswith("rank")]  # (rank 0's, then rank 1's)
    assert r.returncode == 0 and len(lines) == 4, (r.stdout, r.stderr)
    assert lines[0] == ("rank 0: before_steps: ValueError: callable(on_step.before_steps) differs between ranks "
                        "(callable(on_step.before_steps)=False on rank 0, True on rank 1); pass the same "
                        "callable(on_step.before_steps) on every rank"), lines
    assert lines[1] == ("rank 0: answers_alike: ValueError: on_step.answers_alike differs between ranks "
                        "(on_step.answers_alike=False on rank 0, True on rank 1); pass the same "
                        "on_step.answers_alike on every rank"), lines
    assert lines[2:] == [line.replace("rank 0", "rank 1", 1) for line in lines[:2]], lines
