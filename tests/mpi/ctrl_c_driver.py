"""`hpcflow run` of a flow job with Ctrl-C pressed twice, for tests/test_ctrl_c.py.

Usage: python ctrl_c_driver.py STEP WHEN run JOB --out DIR ...
The first SIGINT reaches this process in the checkpoint hook of step STEP (a stop request, honoured at that step's
boundary); the second comes WHEN: "step", right after the first, before the boundary; "fsync", while the stop's
checkpoint is being synced to disk (hpcflow.atomic), where an interrupted `hpcflow nn` used to end in a traceback;
"summary", while summary.json is being written (the stop complete, its status decided); "exit", from outside: once
the command has returned, this process says `returned` on stderr and waits for stdin to close before it exits with
the command's status, so that a SIGINT sent meanwhile reaches it while it is still there.
signal.raise_signal runs the Python handler before it returns, so each SIGINT raised here is seen where it is sent.
The command runs as the program does (`hpcflow.cli.main` reading sys.argv).
"""

import os
import signal
import sys

from hpcflow import checkpoint
from hpcflow.cli import main
from hpcflow.jobs import output

step, when = int(sys.argv[1]), sys.argv[2]
hook, fsync, write_json, armed = checkpoint.CheckpointWriter.__call__, os.fsync, output.write_json, []


def pressed_at_step(self, view):
    if view.step == step and not view.final and not armed:
        armed.append(True)
        signal.raise_signal(signal.SIGINT)
        if when == "step":
            signal.raise_signal(signal.SIGINT)
    return hook(self, view)


def pressed_in_fsync(fd):
    if armed and when == "fsync":
        signal.raise_signal(signal.SIGINT)
    return fsync(fd)


def pressed_in_summary(path, obj, **kwargs):
    if when == "summary" and os.path.basename(path) == "summary.json":
        signal.raise_signal(signal.SIGINT)
    return write_json(path, obj, **kwargs)


checkpoint.CheckpointWriter.__call__ = pressed_at_step
os.fsync = pressed_in_fsync
output.write_json = pressed_in_summary
sys.argv = ["hpcflow", *sys.argv[3:]]
status = main()
if when == "exit":
    print("returned", file=sys.stderr, flush=True)
    sys.stdin.read()
sys.exit(status)
