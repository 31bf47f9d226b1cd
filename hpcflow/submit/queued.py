"""The queued or running jobs of `hpcflow submit` (run and nn) that write into an --out, so that a second submission
into it is refused at once (exit 2, --check too) instead of being queued and refused on the lock when it starts.

- a local job: its controller, `python -m hpcflow.submit.local FOLDER OUT` (`hpcflow.submit.local`), a live
  process of this user on this host (where every local job runs), found by its command line in /proc;
- a Slurm job: its comment (`sbatch --comment`, `slurm_comment`: a digest of OUT, which sbatch takes as one word
  whatever the path holds), found by `squeue -u USER -o %i|%k` among the user's jobs Slurm still holds (pending,
  running, suspended, completing), asked by a submission to Slurm only. Where squeue is missing or fails, nothing is
  refused for Slurm jobs (as a lock that cannot be read refuses nothing): their run's lock still refuses the second
  job when it starts, and so it does for a local submission into the --out of a queued Slurm job.
A tune is not marked: its workers share one --out by design.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

#: the commands whose jobs are marked and checked (a tune's workers share their --out)
MARKED = ("run", "nn")
#: the module that a local job's controller runs as (`hpcflow.submit.local`)
CONTROLLER = "hpcflow.submit.local"


def slurm_comment(out: str) -> str:
    """The comment of a Slurm job of `hpcflow submit` writing into `out`: one word whatever the path holds."""
    return "hpcflow-out-" + hashlib.sha256(os.path.abspath(out).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def local_jobs(out: str, proc: str = "/proc") -> list[str]:
    """The ids (controller pids) of this user's live local jobs writing into `out` (their controller's command line);
    [] where /proc cannot be read."""
    out = os.path.abspath(out)
    found = []
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            if os.stat(os.path.join(proc, pid)).st_uid != os.getuid():
                continue
            with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
                words = [w.decode("utf-8", "surrogateescape") for w in f.read().split(b"\0")]
        except OSError:  # (ended meanwhile, or not ours to read)
            continue
        for i in range(len(words) - 3):
            if words[i:i + 2] == ["-m", CONTROLLER] and words[i + 3] == out:
                found.append(pid)
                break
    return sorted(found, key=int)


def slurm_jobs(out: str) -> list[str]:
    """The ids of this user's Slurm jobs, still held by Slurm, whose comment marks them as writing into `out`; [] where
    squeue is missing or fails."""
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        r = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i|%k"], capture_output=True, text=True, timeout=60)
    except (OSError, KeyError, subprocess.TimeoutExpired):
        return []
    if r.returncode != 0:
        return []
    mark = slurm_comment(out)
    return [line.split("|", 1)[0].strip() for line in r.stdout.splitlines()
            if "|" in line and line.split("|", 1)[1].strip() == mark]


def busy_line(out: str, *, slurm: bool = True) -> str | None:
    """Why a run or network run submitted into `out` would be refused when it starts: another job of `hpcflow
    submit` queued or running there (its ids and how to stop it); else None. `slurm`: Slurm is asked too (a
    submission to Slurm; squeue takes ~10 s to fail where the controller does not answer, which a local submission
    does not wait for)."""
    local, slurm = local_jobs(out), slurm_jobs(out) if slurm else []
    if not local and not slurm:
        return None
    jobs = [*(f"local job {j}" for j in local), *(f"slurm job {j}" for j in slurm)]
    stop = [*([f"kill -TERM {' '.join(local)}"] if local else []), *([f"scancel {' '.join(slurm)}"] if slurm else [])]
    return (f"--out {out} is the --out of {' and '.join(jobs)}, queued or running (its run would refuse this job's "
            f"when it starts, the directory in use): wait for it to end, stop it ({' or '.join(stop)}; its run keeps "
            "its checkpoint), or choose another --out")
