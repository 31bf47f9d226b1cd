"""What the reason of a pending Slurm job means for `hpcflow submit --wait` (Slurm's job reason codes).

Three kinds. Reasons that waiting never resolves (NEVER, PER_JOB_LIMIT): the request breaks a limit of its
partition, account or QOS, or can never be satisfied; the wait cancels the job and stops with one line naming the
fix. Reasons that last until a person acts (PERSON: an administrator returns nodes or a partition, a hold is
released): said once, and the wait goes on. The rest (Resources, Priority, Dependency, BeginTime, the Grp* and
per-user limits): the job starts when its turn comes.

PartitionNodeLimit is both: Slurm gives it to a request above the partition's node count or MaxNodes (never), and to
one the partition's nodes hold while some of them are down or drained (a person). `capacity.misfit` tells which.
ReqNodeNotAvail is waited through: Slurm shows it for nodes in use, reserved or drained, and for a while during
backfill cycles of large clusters.
"""

from __future__ import annotations

import re

from hpcflow.submit import capacity

_OTHER = "pick another --partition"
NEVER = {
    "PartitionConfig": "the request breaks a limit of its partition (scontrol show partition): change --nodes, "
                       f"--ntasks-per-node, --cpus-per-task or --gpus-per-node, or {_OTHER}",
    "PartitionTimeLimit": f"--time exceeds its partition's time limit (MaxTime): lower --time or {_OTHER}",
    "BadConstraints": f"Slurm can never satisfy the request: change it or {_OTHER}",
    "DependencyNeverSatisfied": "a job it depends on failed: submit it again",
    "InvalidAccount": "its account is not valid here: set another (SBATCH_ACCOUNT)",
    "AccountNotAllowed": f"its account may not use the partition: set another (SBATCH_ACCOUNT) or {_OTHER}",
    "InvalidQOS": "its QOS is not valid here: set another (SBATCH_QOS)",
    "QOSNotAllowed": f"its QOS may not be used there: set another (SBATCH_QOS) or {_OTHER}",
    "ReservationDeleted": "its reservation no longer exists: submit it without one (SBATCH_RESERVATION)",
}
#: a request above a per-job or per-node maximum (or below a minimum) of its account or QOS, or above the memory limit
PER_JOB_LIMIT = re.compile(r"(Assoc|QOS)Max\w*Per(Job|Node)\w*|QOSMin\w+|MaxMemPerLimit")
PER_JOB_FIX = "the request is outside a per-job limit of its account or QOS (sacctmgr show qos): make it fit"
#: the reasons whose fix `capacity.misfit` can name (the option and the limit)
PARTITION = {"PartitionConfig", "PartitionTimeLimit", "PartitionNodeLimit"}
PERSON = {
    "ReqNodeNotAvail": "nodes it needs are reserved, down or drained",
    "PartitionNodeLimit": "the nodes that would run it are down or drained",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "NodeDown": "a node it needs is down",
    "JobHeldAdmin": "it is held by an administrator",
    "JobHeldUser": "it is held (scontrol release releases it)",
}


def code(reason: str) -> str:
    """The reason's code: squeue's %r may add detail ("ReqNodeNotAvail, UnavailableNodes:n[1-4]")."""
    return re.match(r"\w*", reason).group()


class Verdicts:
    """The fix of a reason that waiting never resolves, for a job that asked for `res` (executor.Resources, or None:
    unknown). The partitions are asked (sinfo) once, when a reason first needs them."""

    def __init__(self, res) -> None:
        self.res = res
        self._misfit: str | None = None
        self._asked = False

    def misfit(self) -> str | None:
        if not self._asked and self.res is not None:
            self._asked = True
            parts = capacity.query()
            self._misfit = None if parts is None else capacity.misfit(self.res, parts)
        return self._misfit

    def never(self, reason: str) -> str | None:
        """The fix, when a job pending with `reason` can never start; None when waiting may start it."""
        c = code(reason)
        if c in PARTITION:
            fix = self.misfit()
            return fix or NEVER.get(c)  # (PartitionNodeLimit with nothing above the partition: nodes down)
        if c in NEVER:
            return NEVER[c]
        return PER_JOB_FIX if PER_JOB_LIMIT.fullmatch(c) else None
