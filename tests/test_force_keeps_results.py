"""--force keeps an earlier run's files until the new run has written its own: a run that its data refuses (exit 2,
at 2 ranks too) leaves them as they were; one killed meanwhile leaves them set aside, which the next run puts back
where the killed run wrote nothing; otherwise a plain run names them first, the next --force keeps them while it may
still be refused and removes them once it ends, and a --resume removes them once it has finished the killed run
(a summary.json of a run that has not finished removes nothing)."""

import json
import os
import subprocess
import sys

import h5py
import pytest

from hpcflow.cli import main
from hpcflow.jobs import replaced
from hpcflow.jobs.output import all_run_files, checkpoint_progress
from hpcflow.report.detect import detect
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, flow_points, pt_archive
from test_parallel import mpiexec

JOB = """
[job]
kind = "clustering"
[points]
n_points = 60
seed = 0
[clustering]
n_clusters = 4
batch_size = 30
[quality]
fig2 = true
"""
FLOW = flow_points(60, 20) + DELTA_FLOW
#: Birch's threshold above every distance of the features: one cluster, refused after the points are sampled
ONE_CLUSTER = "clustering.birch_threshold=50"
ENV = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
#: stand-ins of an earlier run's files, each with the mark its writer stamps (`output.run_files_in`: a file without
#: one is a user's, which --force refuses to replace): summary.json's hpcflow_version, the head of a cut-short HDF5
#: file holding the name of its hpcflow_version attribute, a checkpoint.pt's sound archive holding its format
SUMMARY = b'{"status": "finished", "hpcflow_version": "0.1.0"}'
CUT_H5 = b"earlier hpcflow_version"
CUT_PT = pt_archive(b"killed hpcflow.nn_checkpoint")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    for name in ("HPCFLOW_THREADS", "HPCFLOW_QUIET"):
        monkeypatch.setenv(name, ENV[name])


def _files(out) -> dict:
    """Every file under `out` (set-aside ones included) by relative path -> bytes; the lock file left out."""
    found = {}
    for root, _, names in os.walk(out):
        for name in names:
            path = os.path.join(root, name)
            if name != ".hpcflow.lock":
                found[os.path.relpath(path, out)] = open(path, "rb").read()
    return found


def _run(job, out, *more):
    return main(["run", str(job), "--out", str(out), "--quiet", *more])


def test_a_forced_run_refused_by_its_data_at_two_ranks_keeps_the_earlier_results(tmp_path):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    assert _run(job, out) == 0
    before = _files(out)
    assert {"summary.json", "job.toml", "fig2_distances.h5"} <= set(before)
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out),
                        "--force", "--set", ONE_CLUSTER], capture_output=True, text=True, timeout=120, env=ENV)
    assert p.returncode == 2 and "birch_threshold" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert _files(out) == before  # nothing set aside is left either
    assert _run(job, out, "--force", "--set", "clustering.n_clusters=3") == 0
    after = _files(out)
    assert set(after) == set(before) and after["summary.json"] != before["summary.json"]


def test_files_a_forced_run_killed_before_its_first_file_set_aside_are_put_back_by_the_next_run(tmp_path, capsys):
    """A --force run killed before it wrote a file of its own: the next run puts the earlier run's files back (one
    line naming the folder), then meets DIR as it was: a plain run is refused for its results; --force replaces them."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    assert _run(job, out) == 0
    before = _files(out)
    aside = replaced.set_aside(str(out))  # what a --force run killed before it ended leaves
    assert os.path.dirname(aside) == str(out) and not any(os.path.lexists(out / n) for n in all_run_files())
    capsys.readouterr()
    assert _run(job, out) == 2  # a plain run: puts them back, then refused for the earlier run's results
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and aside in lines[0] and "put the earlier run's files back" in lines[0], lines
    assert "already holds results" in lines[1], lines
    assert _files(out) == before and replaced.leftovers(str(out)) == []
    assert _run(job, out, "--force", "--set", ONE_CLUSTER) == 2  # refused by its data: all as it was
    assert _files(out) == before
    assert _run(job, out, "--force") == 0  # written: the set-aside files go, this run's stay
    assert set(_files(out)) == set(before) and replaced.leftovers(str(out)) == []


def test_a_forced_run_names_the_files_a_killed_forced_run_set_aside_before_it_replaces_them(tmp_path, capsys):
    """--force over an earlier run's files that a killed --force run set aside: one warning line naming the folder,
    before any work (ahead of a refusal by the data, which puts it back), then the folder is removed with the rest
    once the run has written its own; it was removed without a word."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    assert _run(job, out) == 0
    aside = replaced.set_aside(str(out))  # what a --force run killed after its first file leaves: its job.toml
    os.link(os.path.join(aside, "job.toml"), out / "job.toml")
    capsys.readouterr()
    assert _run(job, out, "--force", "--set", ONE_CLUSTER) == 2  # refused by its data, after the points
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and aside in lines[0] and "warning" in lines[0] and "birch_threshold" in lines[1], lines
    assert replaced.leftovers(str(out)) == [os.path.basename(aside)]
    assert _run(job, out, "--force") == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and aside in lines[0] and "removed" in lines[0], lines
    assert replaced.leftovers(str(out)) == []
    assert _run(job, out, "--force") == 0  # nothing set aside by a killed run: nothing said
    assert capsys.readouterr().err == ""


def _killed_force_run(tmp_path, job, out):
    """`out` as a --force run killed after its first checkpoint leaves it: the earlier run's files set aside, the
    killed run's checkpoint.h5 and job.toml (a run into another directory, its summary.json removed) beside them."""
    other = tmp_path / "killed"
    assert _run(job, other, "--set", "flow.steps=4") == 0
    aside = replaced.set_aside(str(out))
    os.unlink(other / "summary.json")
    for name in ("checkpoint.h5", "job.toml"):
        os.replace(other / name, out / name)
    return aside


def test_a_killed_forced_run_is_named_first_and_its_completed_resume_removes_the_earlier_run(tmp_path, capsys):
    """After a --force run killed past its first checkpoint, a plain run is refused naming the set-aside earlier run
    first (not only the interrupted one), with what to do; --resume continues the killed run, saying where the
    earlier run's files are (it removed them silently), and removes them once it has finished, saying so (it kept
    them for good, and every later plain run was refused naming them)."""
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert _run(job, out) == 0
    before = _files(out)
    aside = _killed_force_run(tmp_path, job, out)
    capsys.readouterr()
    assert _run(job, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and aside in err and "--resume" in err and "remove" in err, err
    assert err.index(aside) < err.index("--resume"), err
    assert {k: v for k, v in _files(out).items() if k.startswith(replaced.PREFIX)} == {
        os.path.relpath(os.path.join(aside, k), out): v for k, v in before.items()}
    assert _run(out / "job.toml", out, "--resume") == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and aside in lines[0] and "removes them once it has finished" in lines[0], lines
    assert lines[1].startswith(f"hpcflow: removed {aside}"), lines
    assert replaced.leftovers(str(out)) == [] and (out / "summary.json").is_file()


#: summary.json of the killed --force run (4 steps, checkpoint.h5 at step 4) as each later end leaves it: a --resume
#: of it preempted, stopped on request, diverged, cut short in its write; a finished summary behind its checkpoint
#: (an extension of it killed); and finished
NOT_FINISHED = {
    "preempted": '{"status": "preempted", "checkpoint_step": 4, "hpcflow_version": "0.1.0"}',
    "stopped": '{"status": "stopped", "checkpoint_step": 4, "stopped": "step 4: stopped on request"}',
    "diverged": '{"status": "diverged", "checkpoint_step": 4, "stopped": "step 5: no positive step"}',
    "garbled": '{"status": "finished", "checkpoint_st',
    "behind its checkpoint": '{"status": "finished", "checkpoint_step": 2, "hpcflow_version": "0.1.0"}'}
FINISHED = '{"status": "finished", "checkpoint_step": 4, "hpcflow_version": "0.1.0"}'


def _summary_after(out, aside, text):
    """DIR/summary.json holding `text`, written after the set-aside folder `aside` (its mtime a second later)."""
    (out / "summary.json").write_text(text)
    later = os.stat(aside).st_mtime + 1
    os.utime(out / "summary.json", (later, later))


@pytest.mark.parametrize("end", sorted(NOT_FINISHED))
def test_a_killed_forced_run_that_has_not_finished_keeps_the_earlier_run_whatever_its_summary_says(tmp_path, capsys,
                                                                                                  end):
    """A killed --force run's DIR/summary.json, written after the set-aside folder, of a run that has not finished
    (preempted, stopped, diverged, unreadable, behind its checkpoint): the next plain run, refused, leaves the
    earlier run's files set aside byte for byte (it removed them, taking the run for a completed one), and neither
    it, --check nor the report says that they go."""
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert _run(job, out) == 0
    before = _files(out)
    aside = _killed_force_run(tmp_path, job, out)
    assert checkpoint_progress(out / "checkpoint.h5") == 4
    _summary_after(out, aside, NOT_FINISHED[end])
    kept = {os.path.relpath(os.path.join(aside, k), out): v for k, v in before.items()}
    capsys.readouterr()
    assert _run(job, out, "--check") == 2
    assert _run(job, out) == 2
    err = capsys.readouterr().err
    assert "hpcflow: removed" not in err and "since finished" not in err and err.count(aside) == 4, err
    assert {k: v for k, v in _files(out).items() if k.startswith(replaced.PREFIX)} == kept
    note = detect(str(out)).unreported
    assert aside in note and "removes it" not in note, note
    assert {k: v for k, v in _files(out).items() if k.startswith(replaced.PREFIX)} == kept


def test_a_killed_forced_run_whose_summary_says_finished_has_the_earlier_run_removed(tmp_path, capsys):
    """Its DIR/summary.json of a finished run, written after the set-aside folder: --check and the report say the
    next run removes the folder, and the next run does, saying so, then is refused for the finished run's results."""
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert _run(job, out) == 0
    aside = _killed_force_run(tmp_path, job, out)
    _summary_after(out, aside, FINISHED)
    capsys.readouterr()
    assert _run(job, out, "--check") == 2
    assert "has since finished" in capsys.readouterr().err
    assert "removes it, as that run has finished" in detect(str(out)).unreported
    assert replaced.leftovers(str(out)) == [os.path.basename(aside)]
    assert _run(job, out) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"hpcflow: removed {aside}") and "already holds" in lines[1], lines
    assert replaced.leftovers(str(out)) == []


def test_a_resume_that_writes_a_summary_of_a_run_that_did_not_finish_says_it_keeps_the_earlier_run(tmp_path,
                                                                                                  capsys):
    """--resume with no step left writes summary.json from the checkpoint: where it says "diverged" or "stopped"
    the warning says the earlier run's files are kept (the next run keeps them), not that they go; "finished", that
    they go."""
    out = tmp_path / "out"
    out.mkdir()
    aside = out / f"{replaced.PREFIX}-abcd1234"
    aside.mkdir()
    (aside / "summary.json").write_text(FINISHED)
    for status, kept in (("diverged", True), ("stopped", True), ("finished", False)):
        (out / "summary.json").write_text(json.dumps({"status": status}))
        capsys.readouterr()
        replaced.kept_on_resume(str(out), wrote=str(out / "summary.json"))
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(aside) in err, err
        assert ("keeps them" in err and "removes them" not in err) if kept else "removes them once it has finished" \
            in err, (status, err)


@pytest.mark.parametrize("command, job_text, checkpoint", [
    (["run"], FLOW, "checkpoint.h5"), (["run"], NN_POINTS + SMALL_NET, "checkpoint.pt"),
    (["nn"], NN_POINTS + SMALL_NET, "checkpoint.pt"), (["run"], FLOW, "checkpoint.pt"),
    (["submit", "--executor", "local", "--check"], FLOW, "checkpoint.h5")])
def test_every_command_names_the_set_aside_files_before_the_interrupted_run(tmp_path, capsys, command, job_text,
                                                                            checkpoint):
    """A killed --force run's checkpoint beside the earlier run's set-aside files: every command that refuses the
    interrupted run names the set-aside folder first (a flow's and a network's checkpoint, a flow job over a
    network's checkpoint, submit)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(job_text)
    aside = out / f"{replaced.PREFIX}-abcd1234"
    aside.mkdir(parents=True)
    (aside / "summary.json").write_text('{"status": "finished"}')
    if checkpoint == "checkpoint.h5":  # its head as a run writes it (a damaged one is said so: test_checkpoint_damaged)
        with h5py.File(out / checkpoint, "w") as f:
            f.attrs["step"] = 1
            f.attrs["hpcflow_version"] = "0.1.0"
    else:
        (out / checkpoint).write_bytes(CUT_PT)
    assert main([command[0], str(job), "--out", str(out), *command[1:], "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(aside) in err and "--resume" in err, err
    assert sorted(os.listdir(out)) == sorted([aside.name, checkpoint])


@pytest.mark.parametrize("wrote", [False, True])
def test_a_failed_run_puts_the_earlier_files_back_unless_it_wrote_its_own(tmp_path, wrote):
    """Any exception (here an internal error) before the run wrote a run file puts them back; after, they go."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_bytes(SUMMARY)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError), replaced.replacing(str(out), force=True) as path:
        assert not (out / "summary.json").exists() and replaced.leftovers(path)
        if wrote:
            (out / "checkpoint.h5").write_text("this run's")
        raise RuntimeError("failed")
    left = sorted(os.listdir(out))
    assert left == (["checkpoint.h5", "notes.txt"] if wrote else ["notes.txt", "summary.json"])
    assert (out / "notes.txt").read_text() == "mine"


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: a --force run's setup (before the run writes a file or installs its own stop handler) receiving a stop request
STOPPED = """
import os, signal, sys, time
from hpcflow.jobs.replaced import replacing
out, sig, write = sys.argv[1], getattr(signal, sys.argv[2]), sys.argv[3] == "1"
with replacing(out, force=True):
    if write:
        open(os.path.join(out, "summary.json"), "w").write("{}")  # the new run's own file
    os.kill(os.getpid(), sig)
    time.sleep(30)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_a_stop_request_during_setup_puts_the_earlier_run_back(tmp_path, sig):
    """scancel (SIGTERM) or Slurm's USR1 notice while a --force run samples its points, before its own file or stop
    handler: the earlier run's files are put back (they stayed set aside, as after SIGKILL) and the process still
    ends by the signal; once the new run wrote a file of its own, they stay set aside as documented."""
    import signal

    for write in (False, True):
        out = tmp_path / f"run{int(write)}"
        out.mkdir()
        earlier = {"summary.json": SUMMARY, "checkpoint.h5": CUT_H5, "mine.txt": b"user"}
        for name, data in earlier.items():
            (out / name).write_bytes(data)
        r = subprocess.run([sys.executable, "-c", STOPPED, str(out), sig, str(int(write))], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
        assert r.returncode == -getattr(signal, sig), r.stderr
        left = replaced.leftovers(out)
        if write:  # the new run had begun writing: the earlier files wait in one set-aside folder
            assert len(left) == 1 and (out / left[0] / "checkpoint.h5").read_bytes() == CUT_H5
            assert (out / "mine.txt").read_bytes() == b"user"
        else:
            assert left == [] and {p.name: p.read_bytes() for p in out.iterdir()} == earlier


#: the same setup inside a command (`interrupts_end_the_job`, as `hpcflow run` and `sample` run): the request ends it
STOPPED_IN_COMMAND = """
import os, signal, sys
from hpcflow.jobs.replaced import replacing
from hpcflow.stop_signals import interrupted, interrupts_end_the_job
out, sig = sys.argv[1], getattr(signal, sys.argv[2])
try:
    with interrupts_end_the_job("hpcflow run"), replacing(out, force=True):
        os.kill(os.getpid(), sig)
        raise AssertionError("the stop request did not end the command")
except KeyboardInterrupt as exc:
    sys.exit(interrupted("hpcflow run", exc))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_a_stop_request_during_a_commands_setup_puts_the_earlier_run_back_and_ends_it_in_one_line(tmp_path, sig):
    """Inside a command, the same request puts the earlier run's files back on its way out and ends the command
    with one line and 128 + the signal (the process no longer dies by the signal: under mpiexec that was the
    launcher's banner and the bare signal number)."""
    import signal

    out = tmp_path / "run"
    out.mkdir()
    earlier = {"summary.json": SUMMARY, "checkpoint.h5": CUT_H5, "mine.txt": b"user"}
    for name, data in earlier.items():
        (out / name).write_bytes(data)
    r = subprocess.run([sys.executable, "-c", STOPPED_IN_COMMAND, str(out), sig], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 128 + getattr(signal, sig), r.stderr
    assert r.stderr == f"hpcflow run: stopped by {sig}\n"
    assert replaced.leftovers(out) == [] and {p.name: p.read_bytes() for p in out.iterdir()} == earlier


def test_resume_of_a_directory_whose_checkpoint_is_set_aside_puts_it_back(tmp_path, capsys):
    """A --force run killed before its first file leaves the earlier run's checkpoint set aside: --resume puts it back
    first, saying so, and then continues it (here refused as damaged: these bytes are no checkpoint). It said only
    'checkpoint.h5 does not exist; run without --resume', which a plain run then refused."""
    out = tmp_path / "run"
    aside = out / f"{replaced.PREFIX}-abcd1234"
    aside.mkdir(parents=True)
    (aside / "checkpoint.h5").write_bytes(b"earlier")
    job = tmp_path / "job.toml"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--resume", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and str(aside) in lines[0] and "put the earlier run's files back" in lines[0], lines
    assert str(out / "checkpoint.h5") in lines[1], lines
    assert (out / "checkpoint.h5").read_bytes() == b"earlier" and replaced.leftovers(str(out)) == []


@pytest.mark.parametrize("command", [["nn"], ["submit", "--executor", "local", "--check"]])
def test_nn_resume_of_a_directory_whose_checkpoint_is_set_aside_names_the_folder(tmp_path, capsys, command):
    """`hpcflow nn --resume` where a killed --force run set the earlier checkpoint.pt aside (and nothing else) puts it
    back first, as `hpcflow run` does; submit --resume --check, which takes no lock and so moves nothing, names that
    folder and what the run does with it. They said 'checkpoint.pt not found ... run without --resume'."""
    out = tmp_path / "run"
    aside = out / f"{replaced.PREFIX}-abcd1234"
    aside.mkdir(parents=True)
    (aside / "checkpoint.pt").write_bytes(b"earlier")
    job = tmp_path / "job.toml"
    job.write_text(NN_POINTS + SMALL_NET)
    assert main([command[0], str(job), "--out", str(out), *command[1:], "--resume", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    if command[0] == "nn":
        assert len(lines) == 2 and str(aside) in lines[0] and "put the earlier run's files back" in lines[0], lines
        assert lines[1].startswith("hpcflow nn: error: ") and str(out / "checkpoint.pt") in lines[1], lines
        assert (out / "checkpoint.pt").read_bytes() == b"earlier" and replaced.leftovers(str(out)) == []
    else:
        assert len(lines) == 1 and lines[0].startswith("hpcflow submit: error: ") and str(aside) in lines[0], lines
        assert "puts them back first" in lines[0], lines
        assert (aside / "checkpoint.pt").read_bytes() == b"earlier" and sorted(os.listdir(out)) == [aside.name]


@pytest.mark.parametrize("command, job_text", [("run", FLOW), ("nn", NN_POINTS + SMALL_NET)])
def test_a_resume_with_nothing_to_do_names_the_set_aside_files_too(tmp_path, capsys, command, job_text):
    """A finished run beside an earlier run's files that a killed --force run set aside: a --resume that has nothing
    to add still names the folder and what to do with it (docs/outputs.md: the next command names it), and keeps
    it; it said only "nothing to do"."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(job_text)
    assert main([command, str(job), "--out", str(out)]) == 0
    aside = replaced.set_aside(str(out))  # as a killed --force run leaves it, before a resume finished that run
    for name in os.listdir(aside):
        os.link(os.path.join(aside, name), out / name)
    capsys.readouterr()
    assert main([command, str(job), "--out", str(out), "--resume"]) == 0
    captured = capsys.readouterr()
    assert "nothing to do" in captured.out, captured.out
    assert captured.err.count("\n") == 1 and aside in captured.err and "nothing to add" in captured.err, captured.err
    assert replaced.leftovers(str(out)) == [os.path.basename(aside)]
