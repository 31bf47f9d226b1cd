"""`hpcflow submit` where Slurm fails it: sbatch refused or unanswered (one line, nothing left behind), sinfo silent
(--check says the request went unchecked), and an interrupted run resubmitted with --resume."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcflow.cli import main
from jobtexts import pt_archive
from test_checkpoint import RESUME_JOB
from test_submit import JOB, ROOT, _script, _stand_in_slurm

DOWN = "Unable to contact slurm controller (connect failure)"
SINFO_OK = "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED"
TUNE = JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n'


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(JOB)
    return p


def _tree(root: Path) -> list:
    """Every path under `root` but the stand-in Slurm's bin/."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.relative_to(root).parts[0] != "bin")


def _sbatch(bin_dir: Path, *, err: str = "", out: str = "", rc: int = 1) -> None:
    """bin/sbatch: records its call, prints `out` and `err` (shell builtins only: PATH may hold nothing else)."""
    (bin_dir / "sbatch.err").write_text(err)
    (bin_dir / "sbatch.out").write_text(out)
    _script(bin_dir / "sbatch", f'echo "sbatch $*" >> {bin_dir}/called; echo -n "$(<{bin_dir}/sbatch.out)"; '
                                f'echo -n "$(<{bin_dir}/sbatch.err)" >&2; exit {rc}')


@pytest.mark.parametrize("refusal, sinfo, line", [
    (f"sbatch: error: Batch job submission failed: {DOWN}\n", None,
     f"sbatch failed: {DOWN}; nothing was queued; check that the Slurm controller answers (scontrol ping, sinfo), "
     "then submit again, or use --executor local"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n",
     SINFO_OK, "sbatch failed: Invalid account or account/partition combination specified; nothing was queued; fix "
     "what it names, then submit again"),
], ids=["controller-down", "account"])
@pytest.mark.parametrize("where", ["default-logs", "missing-parents", "existing-logs", "tune-array"])
def test_a_refused_sbatch_is_one_line_exit_2_and_leaves_nothing_it_wrote(tmp_path, monkeypatch, capsys, refusal,
                                                                         sinfo, line, where):
    """sbatch exits non-zero (the controller down, an account it refuses): submitit's traceback and the sbatch error
    it printed first (exit 1) left DIR_logs/ with a pickle and sbatch script of a job that was never queued. Now one
    line, exit 2, and the disk as it was: what the submission wrote is removed, the logs folder and its parents where
    it made them; a folder that was there stays, with what it held."""
    bin_dir = tmp_path / "bin"
    called = _stand_in_slurm(bin_dir, monkeypatch, sinfo or "")
    if sinfo is None:
        _script(bin_dir / "sinfo", f'echo "slurm_load_partitions: {DOWN}" >&2; exit 1')
    _sbatch(bin_dir, err=refusal)
    (tmp_path / "job.toml").write_text(TUNE)
    out = tmp_path / ("a/b/out" if where == "missing-parents" else "out")
    argv = ["submit", str(tmp_path / "job.toml"), "--out", str(out), "--executor", "slurm"]
    if where == "existing-logs":
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "12_0_log.out").write_text("an earlier job's log\n")
        argv += ["--logs", str(tmp_path / "logs")]
    if where == "tune-array":
        argv += ["--command", "tune", "--trials", "2", "--array", "2"]
    before = _tree(tmp_path)
    assert main(argv) == 2
    said = capsys.readouterr()
    assert said.err == f"hpcflow submit: error: {line}\n" and said.out == "", said
    assert called.read_text().startswith("sbatch ")  # it was sbatch that refused
    assert _tree(tmp_path) == before
    if where == "existing-logs":
        assert (tmp_path / "logs" / "12_0_log.out").read_text() == "an earlier job's log\n"


@pytest.mark.parametrize("answer", [
    dict(err="sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n", rc=1),
    dict(out="Submitted batch jub 17\n", rc=0),
], ids=["reply-timed-out", "no-job-id"])
def test_an_sbatch_that_may_have_queued_the_job_keeps_its_files_and_says_where_to_look(tmp_path, job, monkeypatch,
                                                                                      capsys, answer):
    """A lost reply (slurmctld may have queued the job) or an answer naming no job id: nothing is removed (a queued
    job reads its pickle when it starts), and the one line says how to find the job before submitting again."""
    _stand_in_slurm(tmp_path / "bin", monkeypatch, SINFO_OK)
    _sbatch(tmp_path / "bin", **answer)
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm"]) == 1
    said = capsys.readouterr()
    why = ("Socket timed out on send/recv operation" if answer["rc"] else
           'Could not make sense of sbatch output "Submitted batch jub 17"')
    assert said.err == (f"hpcflow submit: stopped: sbatch failed: {why}, which leaves unknown whether the job was "
                        "queued: look for it with squeue -u $USER --name hpcflow-run-job before submitting again (its "
                        f"files in {tmp_path}/out_logs are kept)\n"), said
    kept = sorted(p.suffix for p in (tmp_path / "out_logs").iterdir() if p.is_file())
    assert kept == [".pkl", ".sh"], kept  # the job's pickle and its sbatch script
    copies = [p / "job.toml" for p in (tmp_path / "out_logs").iterdir() if p.is_dir()]
    assert [p.read_text() for p in copies] == [JOB], copies  # and the copy of the job file that it runs


@pytest.mark.parametrize("sinfo, reason", [
    (f'echo "slurm_load_partitions: {DOWN}" >&2; exit 1', f"slurm_load_partitions: {DOWN}"),
    ("exec sleep 30", "no answer in 1 s"),
    (None, "not on PATH"),
    ("exit 0", "no partition listed"),
], ids=["controller-down", "no-answer", "missing", "empty"])
def test_check_says_that_the_request_went_unchecked_where_sinfo_does_not_answer(tmp_path, job, monkeypatch, capsys,
                                                                              sinfo, reason):
    """--check said "is valid ... would queue 1 slurm job(s)" with no word that the partition and size were not
    checked: --ntasks-per-node 4 on 2-CPU nodes, 8 GPUs, a partition that does not exist all passed silently. The
    line now says so and why (still exit 0: a login node may lack sinfo), and so does a submission."""
    from hpcflow.submit import capacity

    bin_dir = tmp_path / "bin"
    _stand_in_slurm(bin_dir, monkeypatch, "")
    _sbatch(bin_dir, out="Submitted batch job 42\n", rc=0)
    monkeypatch.setattr(capacity, "TIMEOUT_S", 1, raising=False)  # (before: 20 s, fixed)
    if sinfo is None:
        (bin_dir / "sinfo").unlink()
        monkeypatch.setenv("PATH", str(bin_dir))  # (not the sinfo of this machine's Slurm either)
    else:
        _script(bin_dir / "sinfo", sinfo)
    note = f"not checked against the cluster's partitions because sinfo did not answer ({reason})"
    out = str(tmp_path / "out")
    for options, tasks in ((["--ntasks-per-node", "4"], 4), (["--gpus-per-node", "8"], 8), (["--partition", "nope"], 1)):
        assert main(["submit", str(job), "--out", out, "--executor", "slurm", "--check", *options]) == 0
        said = capsys.readouterr().out
        assert f"of 1 node(s) x {tasks} task(s), {note}: hpcflow run {job} --out {out}" in said, said
    assert main(["submit", str(job), "--out", out, "--executor", "slurm", "--partition", "nope"]) == 0
    said = capsys.readouterr().out
    assert "slurm job 42: hpcflow run" in said and f"hpcflow submit: the request was {note}\n" in said, said


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HPCFLOW_THREADS="1")


def _interrupted_run(job: Path, out: Path) -> int:
    """`hpcflow run` of `job` stopped by SIGTERM once it has checkpointed (exit 4); the step its checkpoint holds."""
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--quiet", "--set",
                             "flow.steps=1000000"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.h5").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 4, proc.stderr.read()
    finally:
        proc.kill()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "preempted"
    return summary["checkpoint_step"]


def _error(capsys, verb: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"hpcflow {verb}: error: ") and err.count("\n") == 1, err
    return err[len(f"hpcflow {verb}: error: "):]


def test_an_interrupted_run_is_resubmitted_with_resume_checked_as_run_checks_it(tmp_path, capsys, monkeypatch):
    """A run stopped by SIGTERM (exit 4): `submit --check` said "continue it with --resume", which submit refused
    (unrecognized arguments). Now its line names `hpcflow submit ... --resume` (`hpcflow run` keeps its own), and
    submit --resume is checked by run's own code: every refusal is run's, word for word, before anything is queued;
    the queued job continues the checkpoint; a finished run is not queued again for nothing."""
    monkeypatch.setenv("HPCFLOW_THREADS", "1")  # the run below sets it (limit_threads): unset again after the test
    monkeypatch.delenv("HPCFLOW_THREADS")
    from hpcflow.checkpoint import load_resume

    job, out, fresh = tmp_path / "job.toml", tmp_path / "pre", tmp_path / "fresh"
    job.write_text(RESUME_JOB)
    step = _interrupted_run(job, out)
    target = f"flow.steps={step + 2}"
    local = ["--executor", "local"]
    assert main(["run", str(job), "--out", str(out), "--check"]) == 2
    assert "; continue it with --resume, or pass --force to start over" in _error(capsys, "run")
    assert main(["submit", str(job), "--out", str(out), *local, "--check"]) == 2
    again = shlex.join(["hpcflow", "submit", str(job), "--out", str(out), *local, "--resume"])  # (no --check)
    assert _error(capsys, "submit") == (f"--out {out} holds an interrupted run (checkpoint.h5 that no finished "
                                        f"summary.json describes); continue it with `{again}`, or pass --force to "
                                        "start over\n")
    assert main(["submit", str(job), "--out", str(out), *local, "--check", "--set", "flow.dt=2.0"]) == 2
    assert _error(capsys, "submit").endswith("--set flow.dt=2.0 --resume`, or pass --force to start over\n")
    for where, extra in ((out, []), (out, ["--set", "flow.steps=2"]), (out, ["--set", "kernel.width=0.06"]),
                         (out, ["--force", "--set", target]), (fresh, [])):
        assert main(["run", str(job), "--out", str(where), "--resume", "--check", *extra]) == 2
        refused = _error(capsys, "run")
        assert main(["submit", str(job), "--out", str(where), *local, "--resume", "--check", *extra]) == 2
        assert _error(capsys, "submit") == refused
    assert main(["submit", str(job), "--out", str(out), *local, "--resume", "--command", "tune", "--trials", "2"]) == 2
    assert "--resume is an option of --command run and nn" in _error(capsys, "submit")
    assert not fresh.exists() and not (tmp_path / "pre_logs").exists()

    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(job), "--out", str(out), *local, "--resume",
                        "--set", target, "--wait", "--quiet"], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "finished with exit status 0" in r.stdout, r.stdout + r.stderr
    # (the copy of the job file that submit queues: `hpcflow.commands.submit._frozen_job`)
    assert f"hpcflow run {out}_logs/job-" in r.stdout and f"/job.toml --out {out} --quiet --resume --set {target}" \
        in r.stdout, r.stdout
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert load_resume(out / "checkpoint.h5").step == step + 2
    assert main(["submit", str(job), "--out", str(out), *local, "--resume", "--set", target, "--check"]) == 2
    assert _error(capsys, "submit") == (f"--resume: {out} already finished at step {step + 2} ([flow].steps = "
                                        f"{step + 2}): the job would do nothing, so nothing is queued; raise "
                                        "[flow].steps to extend it\n")


def test_an_interrupted_network_run_is_resubmitted_with_resume_checked_as_nn_checks_it(tmp_path, capsys):
    """A network run's checkpoint.pt without a finished summary: submit named it among 'results' (choose another
    --out or --force) where `hpcflow nn` points to --resume; now it points to submit's --resume, whose checks of the
    checkpoint are nn's own (an unreadable one refused in nn's words)."""
    job, out = ROOT / "jobs" / "nn_smoke.toml", tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(pt_archive())  # (a run's: its mark, not loadable)
    assert main(["nn", str(job), "--out", str(out), "--check"]) == 2
    assert "; continue it with --resume, or pass --force to start over" in _error(capsys, "nn")
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--check"]) == 2
    again = shlex.join(["hpcflow", "submit", str(job), "--out", str(out), "--executor", "local", "--resume"])
    assert _error(capsys, "submit") == (f"--out {out} holds an interrupted run (checkpoint.pt that no finished "
                                        f"summary.json describes); continue it with `{again}`, or pass --force to "
                                        "start over\n")
    assert main(["nn", str(job), "--out", str(out), "--resume", "--check"]) == 2
    refused = _error(capsys, "nn")  # which gives the command line that starts over, where submit (queueing) says so
    restart = shlex.join(["hpcflow", "nn", str(job), "--out", str(out), "--force"])
    restart = f"start over with: {restart} (it replaces that run's files), or choose another --out"
    assert restart in refused and "checkpoint.pt" in refused, refused
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--resume", "--check"]) == 2
    assert _error(capsys, "submit") == refused.replace(restart, "start the run again with --force (replaces it) or "
                                                                "use a new --out")


@pytest.mark.parametrize("executor", ["slurm", "local"])
def test_the_refusal_of_an_interrupted_run_names_the_whole_command_that_continues_it(tmp_path, capsys, monkeypatch,
                                                                                     executor):
    """`hpcflow submit JOB --out DIR --executor slurm --set ...` on a DIR holding an interrupted run was refused with
    "continue it with 'hpcflow submit JOB --out DIR ... --resume --set ...'": the '...' left out --executor (which
    submit requires) and every other option, so the line pasted was refused. It names the command as given, each word
    shell-quoted (a space in the job's path, in a --set value), with --resume: parsed again it asks for the same, and
    pasted it is taken."""
    bin_dir = tmp_path / "bin"
    if executor == "slurm":
        _stand_in_slurm(bin_dir, monkeypatch, SINFO_OK)
    job, out, logs = tmp_path / "my job.toml", tmp_path / "out", tmp_path / "the logs"
    job.write_text(RESUME_JOB)
    _interrupted_run(job, out)
    slurm_only = ["--partition", "debug", "--sbatch", "mail-type=END"] if executor == "slurm" else []
    argv = ["submit", str(job), "--out", str(out), "--executor", executor, "--time", "5", "--logs", str(logs),
            "--quiet", *slurm_only, "--set", "flow.steps=1000000", "--set", "checkpoint.every = 2"]
    capsys.readouterr()
    assert main(argv) == 2
    said = _error(capsys, "submit")
    assert said.startswith(f"--out {out} holds an interrupted run") and said.endswith(
        "`, or pass --force to start over\n"), said
    advised = shlex.split(said.split("continue it with `")[1].rsplit("`, or pass --force", 1)[0])
    assert advised[:2] == ["hpcflow", "submit"] and advised[-1] == "--resume", advised
    from hpcflow.cli import build_parser

    given, again = vars(build_parser().parse_args(argv)), vars(build_parser().parse_args(advised[1:]))
    assert again.pop("resume") is True and given.pop("resume") is False
    assert again == given
    assert main([*advised[1:], "--check"]) == 0, capsys.readouterr().err  # (pasted: checked as --resume, taken)
    assert "would queue 1" in capsys.readouterr().out
    assert not (bin_dir / "called").exists()  # (nothing queued)


def test_a_finished_network_run_whose_nn_h5_is_missing_or_damaged_is_resubmitted_with_resume(tmp_path, capsys,
                                                                                              monkeypatch):
    """`hpcflow nn --resume` writes a finished run's missing or damaged nn.h5 again from checkpoint.pt; submit's
    check of that --resume refused it as a job that would do nothing."""
    from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING

    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(NN_POINTS + SMALL_NET + TINY_TRAINING)
    assert main(["nn", str(job), "--out", str(out), "--quiet"]) == 0
    check = ["submit", str(job), "--out", str(out), "--executor", "local", "--resume", "--check"]
    capsys.readouterr()
    assert main(check) == 2
    assert "the job would do nothing, so nothing is queued" in _error(capsys, "submit")
    whole = (out / "nn.h5").read_bytes()
    for damage in (lambda: (out / "nn.h5").unlink(), lambda: (out / "nn.h5").write_bytes(whole[:len(whole) // 3])):
        damage()
        assert main(check) == 0, capsys.readouterr().err
        said = capsys.readouterr().out
        assert "would queue 1 local job(s)" in said and "--resume" in said, said


def test_wait_on_a_stopped_job_names_the_submit_command_that_continues_it(tmp_path, monkeypatch, capsys):
    """A job whose run stopped with its checkpoint (exit 4: scancel, or a signal it was not requeued after): `--wait`
    said "ended with exit status 4; see LOG", the `hpcflow run ... --resume` only in the log. It now names the
    `hpcflow submit` command that continues it: the options as given, --resume instead of --force, quoted for a
    shell (a space in a path), and that command queues the continuation."""
    import shlex
    from types import SimpleNamespace

    from hpcflow.cli import build_parser
    from hpcflow.submit import executor

    job, out, logs = tmp_path / "my job.toml", tmp_path / "o'ut", tmp_path / "the logs"
    job.write_text(RESUME_JOB)
    steps = ["--set", "flow.steps=1000000"]  # (as _interrupted_run's)

    def submit(ex, task, argvs):  # (the job's run stopped by scancel: a checkpoint, exit status 4)
        _interrupted_run(job, out)
        (logs / "55_0_log.err").write_text("")
        paths = SimpleNamespace(stdout=logs / "55_0_log.out", stderr=logs / "55_0_log.err")
        return [SimpleNamespace(job_id="55", paths=paths, done=lambda: True, results=lambda: [4])]

    monkeypatch.setattr(executor, "submit", submit)
    argv = ["submit", str(job), "--out", str(out), "--executor", "local", "--time", "5", "--logs", str(logs),
            "--force", "--wait", "--quiet", *steps]
    assert main(argv) == 4
    said = capsys.readouterr().out
    line = next(x for x in said.splitlines() if "job 55 ended" in x)
    assert line.startswith(f"hpcflow submit: job 55 ended with exit status 4; see {logs}/55_0_log.err; continue it "
                           "with: hpcflow submit "), said
    advised = shlex.split(line.split("; continue it with: ")[1])
    assert advised[:2] == ["hpcflow", "submit"] and advised[-1] == "--resume" and "--force" not in advised, advised
    parse = build_parser().parse_args
    given, again = vars(parse(argv)), vars(parse(advised[1:]))
    assert {k: v for k, v in again.items() if k not in ("resume", "force")} == \
        {k: v for k, v in given.items() if k not in ("resume", "force")}
    monkeypatch.undo()
    assert main([*advised[1:], "--check"]) == 0, capsys.readouterr().err
    assert f"would queue 1 local job(s) of 1 node(s) x 1 task(s): hpcflow run {shlex.quote(str(job))} --out " \
           f"{shlex.quote(str(out))} --quiet --resume --set flow.steps=1000000" in capsys.readouterr().out
