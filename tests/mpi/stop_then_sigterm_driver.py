"""`hpcflow ...` run as `hpcflow submit`'s task runs it, stopped at a flow step with its checkpoint, then sent SIGTERM
as the process leaves, for tests/test_tune_requeue_sigterm.py: once the command has returned 4 the task requeues the
job (`scontrol requeue`), and Slurm's SIGTERM reaches the step's tasks while they leave.

Usage: python stop_then_sigterm_driver.py STEP RANK:SIG COMMAND ...
SIGTERM's handler is submitit's (`SignalHandler.bypass`, which a submitit job's process starts with) and the command
runs through `hpcflow.submit.task.HpcflowTask.run`. When the checkpoint writer sees step STEP on rank RANK (not its
final call), that rank signals itself with SIG: the run (a tune's trial) writes its checkpoint and the command stops
with status 4 on every rank. The process exits with the command's status, and each rank sends itself SIGTERM during
the interpreter's finalization, after Python has put back SIG_DFL in place of its handlers (an object of this module
is deleted then): a SIGTERM left to its default action ends the process there (status -15).
"""

import os
import signal
import sys

from submitit.core.job_environment import SignalHandler

from hpcflow import checkpoint as _ckpt
from hpcflow.submit.task import HpcflowTask

step = int(sys.argv[1])
rank, _, name = sys.argv[2].partition(":")
rank, sig = int(rank), getattr(signal, name)
_call = _ckpt.CheckpointWriter.__call__


def _call_with_signal(self, view):
    if view.step == step and self.rank == rank and not view.final:
        os.kill(os.getpid(), sig)
    return _call(self, view)


class _TermAtExit:
    """Sends SIGTERM to this process when deleted (this module's globals are deleted in the interpreter's finalization,
    after its signal handlers are reset)."""

    def __init__(self):
        # (what it calls held here: the module's globals may be cleared first)
        self.kill, self.pid, self.sig, self.write = os.kill, os.getpid(), signal.SIGTERM, os.write

    def __del__(self):
        self.kill(self.pid, self.sig)
        self.write(2, b"outlived a SIGTERM as it left\n")


signal.signal(signal.SIGTERM, SignalHandler(None, None, None).bypass)  # (submitit's job process: `_handle_signals`)
_ckpt.CheckpointWriter.__call__ = _call_with_signal
status, _ = HpcflowTask().run(sys.argv[3:])
term_at_exit = _TermAtExit()
sys.exit(status)
