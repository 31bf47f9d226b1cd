"""A requeued Slurm job's MPI step opens the MPICH shared-memory segment that its killed earlier start left under the
same name (/dev/shm/mpich_shm_HASH_NODE, HASH from the step's PMI job name JOB.STEP), and its MPI_Init failed on it
at every later start. Each task of a step removes, before its MPI_Init, the segments of its own step's name that were
made before it started and that no live process maps or holds open (`hpcflow.submit.shm`)."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from hpcflow.submit import shm

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, value", [
    ("", 0x811C9DC5),  # FNV-1a's offset basis (the published test vectors of the 32-bit FNV-1a)
    ("a", 0xE40C292C),
    ("foobar", 0xBF9CF968),
    ("2215.0", 0x50C1077D),  # the segment mpich_shm_50c1077d_0 that the ranks of Slurm step 2215.0 (pmi2) mapped
])
def test_the_hash_is_mpichs_fnv1a(text, value):
    assert shm.fnv1a(text) == value


def test_the_step_names_its_segments_after_its_pmi_job_name():
    assert shm.step_hashes({"PMI_JOBID": "2215.0"}) == {"50c1077d"}
    assert shm.step_hashes({"PMIX_NAMESPACE": "a"}) == {"e40c292c"}
    assert shm.step_hashes({"SLURM_JOB_ID": "2215", "SLURM_STEP_ID": "0"}) == set()  # no PMI launch: nothing


def _later_than(path: Path) -> None:
    """Wait until a file made now gets a later status-change time than `path` (the kernel's clock for it is coarse)."""
    probe = path.with_name(path.name + ".probe")
    while True:
        probe.touch()
        later = probe.stat().st_ctime > path.stat().st_ctime
        probe.unlink()
        if later:
            return
        time.sleep(0.001)


def test_only_this_steps_unused_segments_made_before_it_started_are_stale(tmp_path):
    ours, other = f"{shm.fnv1a('77.1'):x}", f"{shm.fnv1a('77.0'):x}"
    names = {
        "dead": f"mpich_shm_{ours}_0",  # this step's name, nobody's: stale
        "dead_vci": f"mpich_vci_{ours}_0",  # likewise
        "dead_node": f"mpich_shm_{ours}_3",  # another node index of the step (the node's own, on that node)
        "mapped": f"mpich_shm_{ours}_1",  # mapped by a live process (this one)
        "open": f"mpich_vci_{ours}_1",  # held open by a live process, not mapped yet
        "other_step": f"mpich_shm_{other}_0",  # another step's (another job's) name
        "not_mpich": f"mpich_tmp_{ours}_0",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"\0" * 4096)
    last = tmp_path / names["not_mpich"]
    _later_than(last)
    fresh = tmp_path / f"mpich_shm_{ours}_2"  # made as the step started (by a sibling task): spared
    fresh.write_bytes(b"\0" * 4096)
    before = fresh.stat().st_ctime
    assert before > last.stat().st_ctime
    with open(tmp_path / names["mapped"], "r+b") as f, open(tmp_path / names["open"], "rb"):
        held = mmap.mmap(f.fileno(), 4096)
        try:
            found = shm.stale({ours}, before=before, uid=os.geteuid(), shm=str(tmp_path))
        finally:
            held.close()
    assert found == sorted(str(tmp_path / names[k]) for k in ("dead", "dead_vci", "dead_node"))
    # another user's file is not this user's to remove
    assert shm.stale({ours}, before=before, uid=os.geteuid() + 1, shm=str(tmp_path)) == []


def test_a_process_of_this_user_that_cannot_be_read_spares_every_segment(tmp_path):
    """/proc/PID of this user whose maps cannot be read may map any of them: nothing is stale then. (root passes over
    a process it cannot read: one of another kind, such as a container's first process.)"""
    uid = os.geteuid() or 4242  # (as root: a made-up user owning the segment and the process)
    ours = f"{shm.fnv1a('9.0'):x}"
    (tmp_path / "shm").mkdir()
    segment = tmp_path / "shm" / f"mpich_shm_{ours}_0"
    segment.write_bytes(b"\0")
    proc = tmp_path / "proc"
    (proc / "123").mkdir(parents=True)
    (proc / "123" / "maps").mkdir()  # reading it fails (a directory), not as a process that ended
    (proc / "123" / "fd").mkdir()
    if uid != os.geteuid():
        os.chown(segment, uid, -1)
        os.chown(proc / "123", uid, -1)
    later = time.time() + 3600
    assert shm.stale({ours}, before=later, uid=uid, shm=str(tmp_path / "shm"), proc=str(proc)) == []
    (proc / "123" / "maps").rmdir()
    (proc / "123" / "maps").write_text("")
    assert shm.stale({ours}, before=later, uid=uid, shm=str(tmp_path / "shm"), proc=str(proc)) == [str(segment)]


def test_the_start_of_a_process_is_read_from_proc():
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    after = time.time()
    try:
        started = shm.process_start(str(child.pid))
    finally:
        child.communicate(b"")
    assert started is not None and before - 0.05 <= started <= after + 0.05  # (/proc's ticks: 1/100 s)


@pytest.fixture
def step_segment():
    """A segment in /dev/shm under the name of a made-up step (PMI_JOBID), as a killed earlier start leaves it."""
    assert os.path.isdir(shm.SHM), f"no {shm.SHM} on this Linux machine: MPICH's shared memory needs it"
    step = f"hpcflow-test-{uuid.uuid4().hex}"
    path = Path(shm.SHM) / f"mpich_shm_{shm.fnv1a(step):x}_0"
    path.write_bytes(b"\0" * 4096)
    # made well before the task that finds it starts, as a killed earlier start's is (/proc gives a start to 1/100 s)
    time.sleep(max(0.0, path.stat().st_ctime + 0.1 - time.time()))
    yield step, path
    path.unlink(missing_ok=True)


def _env(step: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_", "PMI", "OMPI_"))}
    return dict(env, PYTHONPATH=str(ROOT), PMI_JOBID=step)


def test_a_template_task_removes_its_steps_dead_segment_before_its_command_starts(step_segment):
    """`python -m hpcflow.submit.step --task COMMAND` (each task of a template's MPI steps): COMMAND finds no segment
    under its step's name, and the removal is said."""
    step, path = step_segment
    check = f"import os, sys; sys.exit(3 if os.path.exists({str(path)!r}) else 0)"
    r = subprocess.run([sys.executable, "-m", "hpcflow.submit.step", "--task", sys.executable, "-c", check],
                       env=_env(step), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"hpcflow.submit.step: removed {path}, MPICH's shared memory that an earlier start of this job step " \
           f"({step}) left" in r.stderr, r.stderr


def test_a_template_task_spares_a_segment_a_live_process_maps(step_segment):
    step, path = step_segment
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(path)!r}) else 3)"
    with open(path, "r+b") as f:
        held = mmap.mmap(f.fileno(), 4096)
        try:
            r = subprocess.run([sys.executable, "-m", "hpcflow.submit.step", "--task", sys.executable, "-c", check],
                               env=_env(step), capture_output=True, text=True, timeout=60)
        finally:
            held.close()
    assert r.returncode == 0 and "removed" not in r.stderr, r.stderr


#: HpcflowTask.run (a task of `hpcflow submit`'s job) with the command replaced by one that says whether the segment
#: is still there as it starts
SUBMIT_DRIVER = textwrap.dedent("""
    import os, sys
    import hpcflow.cli
    from hpcflow.submit.task import HpcflowTask

    hpcflow.cli.main = lambda argv: 3 if os.path.exists(sys.argv[1]) else 0
    status, _ = HpcflowTask().run(["info"])
    print("status", status)
""")


def test_a_submit_task_removes_its_steps_dead_segment_before_its_command_starts(step_segment):
    step, path = step_segment
    r = subprocess.run([sys.executable, "-c", SUBMIT_DRIVER, str(path)], env=_env(step), capture_output=True,
                       text=True, timeout=60)
    assert "status 0" in r.stdout.splitlines(), (r.stdout, r.stderr)
    assert f"hpcflow submit: removed {path}," in r.stderr, r.stderr
