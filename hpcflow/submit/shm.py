"""MPICH's shared-memory segments that an earlier start of this Slurm job step left in /dev/shm (`remove_stale`).

MPICH (its POSIX shared memory, the mpich wheel's) names the segment that a node's ranks share after the job's PMI
name, which Slurm makes of the job and step ids (PMI_JOBID=JOB.STEP under srun --mpi=pmi2): /dev/shm/mpich_shm_H_N
and /dev/shm/mpich_vci_H_N, H the 32-bit FNV-1a hash of that name in hex (MPICH's HASH_FNV), N the node's index in
the step. The first rank of the node to open the name creates the segment, the others wait until it is ready, and
the last to leave MPI (MPI_Finalize) removes it. A rank killed inside MPI leaves it: a job that Slurm requeues while
its ranks run (scontrol requeue, preemption, a node failure: the ranks are killed after KillWait), or one whose
ranks are killed otherwise. The requeued job keeps its id and numbers its steps from 0 again, so its step opens the
dead step's segment, taking it for a live one, and its MPI_Init fails ("Message from rank 1 and tag 7 truncated",
exit 143 or 142) or hangs: on every later start, until the file is removed.

Each task of such a step removes, before its MPI_Init (`remove_stale`: `hpcflow.submit.task` for `hpcflow submit`'s
jobs, `hpcflow.submit.step --task` for the sbatch templates' steps), the segments that

- bear this step's own name (the hash of its PMI_JOBID, or PMIX_NAMESPACE), on any node index: no other job's
  ranks open them, whatever runs beside it on the node;
- are this user's files;
- were made before this process started: a segment of this step's own ranks is made after they start (a sibling
  task's, made as it starts, is spared); and
- no live process maps or holds open (/proc/PID/maps and /proc/PID/fd): where a process of this user cannot be read,
  nothing is removed (for root, whose jobs' processes it can read, one it cannot read is of another kind, such as a
  container's first process, and is passed over: only this job step's own ranks open its segments).

Each removal is said in one line. Nothing is done outside a PMI launch (no PMI_JOBID, no PMIX_NAMESPACE) or where
/dev/shm cannot be read.

A job whose rank was killed otherwise (kill -9, out of memory) is not started again under its id (`hpcflow submit
... --resume` queues a new job): `remove_ended` removes its step's unused segments once the step has ended with a
status other than 0 (each task of the templates' step; the batch shell of `hpcflow submit`'s job, on its first node).
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time

#: where POSIX shared memory lives (shm_open's names)
SHM = "/dev/shm"
#: MPICH's segment names: "mpich_shm_%x_%d" and "mpich_vci_%x_%d" (world id hex, node index)
SEGMENT = re.compile(r"mpich_(?:shm|vci)_([0-9a-f]{1,8})_([0-9]+)")
#: the variables that hold the PMI job name MPICH hashes into its segment names (pmi2: PMI_JOBID; PMIx: namespace)
NAME_VARIABLES = ("PMI_JOBID", "PMIX_NAMESPACE")


def fnv1a(text: str) -> int:
    """The 32-bit FNV-1a hash of `text`'s UTF-8 bytes, as MPICH's HASH_FNV computes its world id."""
    h = 2166136261
    for byte in text.encode("utf-8", "surrogateescape"):
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def step_hashes(environ=None) -> set[str]:
    """The hex world ids that this process's MPI step names its segments with (`NAME_VARIABLES`); empty outside a PMI
    launch."""
    env = os.environ if environ is None else environ
    return {f"{fnv1a(env[name].strip()):x}" for name in NAME_VARIABLES if env.get(name, "").strip()}


def process_start(pid: str = "self", proc: str = "/proc") -> float | None:
    """When process `pid` started, as time.time() reads the clock (its start in clock ticks after boot, /proc/PID/stat,
    against the time since boot, /proc/uptime: to 1/100 s); None where /proc cannot say."""
    try:
        with open(os.path.join(proc, pid, "stat"), "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open(os.path.join(proc, "uptime"), "rb") as f:
            uptime = float(f.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # (field 22 of stat; fields[0] is field 3)
    except (OSError, IndexError, ValueError):
        return None
    return time.time() - (uptime - started)


def in_use(paths: set[str], *, uid: int, proc: str = "/proc") -> set[str] | None:
    """Those of `paths` that a live process maps (/proc/PID/maps) or holds open (/proc/PID/fd); None where a process
    of user `uid` cannot be read, which may use any of them (for root, one it cannot read is passed over)."""
    used = set()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        where = os.path.join(proc, pid)
        try:
            owner = os.stat(where).st_uid
        except OSError:  # (ended meanwhile)
            continue
        try:
            with open(os.path.join(where, "maps"), encoding="utf-8", errors="surrogateescape") as f:
                for line in f:
                    mapped = line.rstrip("\n").split(None, 5)
                    if len(mapped) == 6 and mapped[5].removesuffix(" (deleted)") in paths:
                        used.add(mapped[5].removesuffix(" (deleted)"))
            fds = os.path.join(where, "fd")
            for fd in os.listdir(fds):
                try:
                    target = os.readlink(os.path.join(fds, fd))
                except OSError:  # (closed meanwhile)
                    continue
                if target in paths:
                    used.add(target)
        except FileNotFoundError:  # (ended meanwhile)
            continue
        except OSError:
            if uid != 0 and owner == uid:  # one that could map this user's segments, unread
                return None
    return used


def stale(hashes: set[str], *, before: float, uid: int, shm: str | None = None, proc: str = "/proc") -> list[str]:
    """The paths in `shm` of the segments of world ids `hashes` that are files of user `uid`, made (their last status
    change) before time `before`, and that no live process uses (`in_use`); [] where that cannot be told. `shm`:
    SHM where None."""
    if not hashes:
        return []
    shm = SHM if shm is None else shm
    try:
        names = os.listdir(shm)
    except OSError:
        return []
    old = []
    for name in names:
        m = SEGMENT.fullmatch(name)
        if m is None or m.group(1) not in hashes:
            continue
        path = os.path.join(shm, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid == uid and stat.S_ISREG(st.st_mode) and st.st_ctime < before:
            old.append(path)
    if not old:
        return []
    used = in_use(set(old), uid=uid, proc=proc)
    return [] if used is None else sorted(p for p in old if p not in used)


def remove_stale(prefix: str, environ=None, *, shm: str | None = None, proc: str = "/proc") -> list[str]:
    """Remove the segments that an earlier start of this process's MPI step left (see the module's docstring),
    saying each in one line on stderr that begins with `prefix`; the paths removed."""
    env = os.environ if environ is None else environ
    hashes = step_hashes(env)
    before = process_start(proc=proc) if hashes else None
    if before is None:
        return []
    removed = []
    for path in stale(hashes, before=before, uid=os.geteuid(), shm=shm, proc=proc):
        try:
            os.unlink(path)
        except FileNotFoundError:  # (another task of the step removed it first)
            continue
        except OSError as exc:
            print(f"{prefix} {path}, MPICH's shared memory left by an earlier start of this job step, could not be "
                  f"removed ({exc.strerror}): MPI_Init may fail on it; remove it by hand (rm {path}) and requeue the "
                  "job", file=sys.stderr, flush=True)
            continue
        removed.append(path)
        step = next((env[n].strip() for n in NAME_VARIABLES if env.get(n, "").strip()), "?")
        print(f"{prefix} removed {path}, MPICH's shared memory that an earlier start of this job step ({step}) left "
              "as its ranks were killed: MPI_Init would have failed on it", file=sys.stderr, flush=True)
    return removed


#: the step ids whose segments `remove_ended` removes: the job's srun steps (submitit's job runs one, step 0)
ENDED_STEPS = range(8)


def job_hashes(job: str, steps=ENDED_STEPS) -> set[str]:
    """The hex world ids of Slurm job `job`'s steps `steps` under pmi2 (PMI_JOBID JOB.STEP) and PMIx (namespace
    slurm.pmix.JOB.STEP)."""
    return {f"{fnv1a(name):x}" for step in steps for name in (f"{job}.{step}", f"slurm.pmix.{job}.{step}")}


def remove_ended(prefix: str, environ=None, *, shm: str | None = None, proc: str = "/proc") -> list[str]:
    """After this Slurm job's step has ended with a status other than 0 (the batch shell once its srun returned, as
    `hpcflow.submit.executor.batch_shell_teardown` runs it; a task of the templates' step once its command ended,
    `hpcflow.submit.step.task`): remove the segments of this process's step (`step_hashes`), else of this job's steps
    (SLURM_JOB_ID, `job_hashes`), on this node that no live process uses, each said in one line beginning with
    `prefix`. A rank killed by a signal (kill -9, out of memory) left its segment, which only a requeue of the same
    job id removed (`remove_stale`): `hpcflow submit ... --resume` runs as a new job, and the segment stayed on the
    node for good. The paths removed; nothing outside a Slurm job."""
    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID", "").strip()
    hashes = step_hashes(env) or (job_hashes(job) if job else set())
    if not hashes:
        return []
    removed = []
    for path in stale(hashes, before=time.time(), uid=os.geteuid(), shm=shm, proc=proc):
        try:
            os.unlink(path)
        except OSError:  # (removed meanwhile, or not ours to remove)
            continue
        removed.append(path)
        print(f"{prefix} removed {path}, MPICH's shared memory that a rank of this job ({job or '?'}) killed inside "
              "MPI left", file=sys.stderr, flush=True)
    return removed


if __name__ == "__main__":  # `python -m hpcflow.submit.shm`: `remove_ended`, for the batch shell after its srun
    remove_ended("hpcflow submit:")
