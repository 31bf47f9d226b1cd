"""An sbatch that failed: whether the job may be queued all the same, the line that says so, the files it left.

sbatch exits non-zero when slurmctld refused the job or could not be reached (before giving up it retries the
connection for about Slurm's MessageTimeout, 10 s by default, as sinfo does before it, so that a controller being
restarted is still reached): nothing is queued, and the pickles and sbatch script submitit wrote for the submission
are removed, with the logs folder and the folders above it where the submission made them. A lost reply (a
timeout: slurmctld may have queued the job), an sbatch that was killed, or an answer naming no job id leave the
job's fate unknown: its files are kept, as a queued job reads its pickle when it starts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid

#: Slurm's errors for a reply that never came: the request may have reached slurmctld and the job be queued
UNANSWERED = ("Socket timed out", "Zero Bytes were transmitted or received")
CONTROLLER = "Unable to contact slurm controller"


def maybe_queued(exc) -> bool:
    """Whether the job may be queued after submitit raised `exc` (FailedJobError: sbatch failed; FailedSubmissionError:
    it succeeded but named no job id)."""
    from submitit.core.utils import FailedSubmissionError

    cause = exc.__cause__
    refused = isinstance(cause, subprocess.CalledProcessError) and cause.returncode > 0  # (< 0: killed by a signal)
    return isinstance(exc, FailedSubmissionError) or not refused or any(u in str(exc) for u in UNANSWERED)


def reason(exc) -> str:
    """sbatch's error lines as one phrase ("sbatch: error: Batch job submission failed: " dropped); the first line of
    submitit's own message where sbatch's answer named no job id."""
    from submitit.core.utils import FailedSubmissionError

    lines = str(exc).splitlines()
    phrases = []
    for line in lines[:1] if isinstance(exc, FailedSubmissionError) else lines:
        for prefix in ("sbatch: error:", "sbatch:", "Batch job submission failed:"):
            line = line.strip().removeprefix(prefix)
        if line.strip():
            phrases.append(line.strip())
    return "; ".join(phrases)[:300] or f"{type(exc).__name__} without a message"


def refused(exc) -> str:
    """The one line of a submission sbatch refused (nothing queued): its reason and the fix."""
    why = reason(exc)
    fix = ("check that the Slurm controller answers (scontrol ping, sinfo), then submit again, or use --executor local"
           if CONTROLLER in why else "fix what it names, then submit again")
    return f"sbatch failed: {why}; nothing was queued; {fix}"


def unknown(exc, name: str, folder) -> str:
    """The one line of a submission whose job may be queued: where to look before submitting again."""
    return (f"sbatch failed: {reason(exc)}, which leaves unknown whether the job was queued: look for it with "
            f"squeue -u $USER --name {name} before submitting again (its files in {os.fspath(folder)} are kept)")


class OwnFiles:
    """The files submitit writes into `folder` for one submission (pickles and sbatch script, each named by a uuid4
    it draws while `recording`), and the folders it creates for them: `remove` takes exactly those away."""

    def __init__(self, folder) -> None:
        from hpcflow.jobs.output import nearest_existing

        self.folder = os.path.abspath(folder)
        self.existed = nearest_existing(self.folder)  # (the folder itself, or the nearest folder above it)
        self.uids: list[str] = []

    @contextlib.contextmanager
    def recording(self):
        """submitit's modules draw their uuid4 names through this object while in the block."""
        import submitit.core.core as core
        import submitit.slurm.slurm as slurm

        old = {m: m.uuid for m in (core, slurm)}
        for m in old:
            m.uuid = _Drawn(self.uids)
        try:
            yield self
        finally:
            for m, module in old.items():
                m.uuid = module

    def remove(self) -> None:
        for uid in self.uids:
            for name in (f"{uid}.pkl", f".submission_file_{uid}.sh"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.folder, name))
        d = self.folder
        while d != self.existed and d.startswith(self.existed):  # created here: removed once empty again
            try:
                os.rmdir(d)
            except OSError:  # (not empty: something else writes there too)
                break
            d = os.path.dirname(d)


class _Drawn:
    """The uuid module, whose uuid4 also records each value's hex."""

    def __init__(self, record: list) -> None:
        self._record = record

    def uuid4(self):
        u = uuid.uuid4()
        self._record.append(u.hex)
        return u

    def __getattr__(self, name):
        return getattr(uuid, name)
