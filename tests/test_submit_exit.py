"""`hpcflow submit`: a failed run fails its job (Slurm FAILED with the run's exit status, `--wait` the same status), the
submitted memory check against the Slurm node's memory (or --mem), the log named by `--wait` only where it exists, and
a '%' in the default logs folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from hpcflow.cli import main
import test_slurm
from test_slurm import JOB, ROOT, _job_info
from test_submit import _stand_in_slurm

# one step of dt 1e9 leaves no metric positive definite: the flow stops with exit status 3 (EXIT_DIVERGED)
DIVERGES = ["--set", "flow.dt=1e9"]


slurm = test_slurm.slurm  # the fixture: a working directory with job.toml on a Slurm that answers (else skipped)


def _submit(cwd, *args, timeout=150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _state(job: str) -> tuple[str, str]:
    info = _job_info(job)
    return re.search(r"JobState=(\S+)", info).group(1), re.search(r" ExitCode=(\S+)", info).group(1)


def test_a_diverged_run_fails_its_slurm_job_with_its_exit_status_and_a_finished_one_completes(slurm):
    """The diverged run's status 3 is the job's: FAILED, ExitCode 3:0 (sacct, afterok and --mail-type=FAIL see a
    failure; it was COMPLETED 0:0 with 3 only in submitit's result), and `--wait` still says 3."""
    r = _submit(slurm, "--out", "runs/d", "--executor", "slurm", "--time", "5", "--wait", "--quiet", *DIVERGES)
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    assert r.returncode == 3 and "finished with exit status 3" in r.stdout, r.stdout + r.stderr
    assert _state(job) == ("FAILED", "3:0"), _job_info(job)
    err = (slurm / "runs" / "d_logs" / f"{job}_0_log.err").read_text()
    assert "Job completed successfully" not in err and "ended with exit status 3" in err, err
    r = _submit(slurm, "--out", "runs/s", "--executor", "slurm", "--time", "5", "--wait", "--quiet")
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    assert r.returncode == 0 and "finished with exit status 0" in r.stdout, r.stdout + r.stderr
    assert _state(job) == ("COMPLETED", "0:0"), _job_info(job)


def test_a_diverged_two_rank_run_fails_its_slurm_job_with_its_exit_status(slurm):
    """Both ranks write their result before either exits with 3 (srun --kill-on-bad-exit ends the others)."""
    r = _submit(slurm, "--out", "runs/d2", "--executor", "slurm", "--ntasks-per-node", "2", "--time", "5", "--wait",
                "--quiet", *DIVERGES)
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    assert r.returncode == 3 and "finished with exit status 3" in r.stdout, r.stdout + r.stderr
    assert "without a result" not in r.stdout + r.stderr
    assert _state(job) == ("FAILED", "3:0"), _job_info(job)


def test_a_diverged_local_job_exits_with_its_status_and_wait_says_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "job.toml").write_text(JOB.split("[tune]")[0])
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    logs = tmp_path / "out_logs"
    assert main(["submit", str(tmp_path / "job.toml"), "--out", str(tmp_path / "out"), "--executor", "local",
                 "--wait", "--quiet", *DIVERGES]) == 3
    assert "finished with exit status 3" in capsys.readouterr().out
    assert "ended with exit status 3" in next(logs.glob("*_0_log.err")).read_text()


def test_wait_on_a_job_cancelled_while_pending_names_no_log_that_does_not_exist(slurm):
    """A job held, then cancelled before it starts: no log was written; `--wait` says so (it named the .err)."""
    with subprocess.Popen([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/c", "--executor",
                           "slurm", "--time", "5", "--wait", "--quiet"], cwd=slurm, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=dict(os.environ, SBATCH_HOLD="1")) as proc:
        first = proc.stdout.readline()
        job = re.search(r"slurm job (\d+):", first).group(1)  # (held: it cannot start before it is cancelled)
        try:
            subprocess.run(["scancel", job], check=True, timeout=30)
            said = first + proc.communicate(timeout=90)[0]
        finally:
            proc.kill()
    assert proc.returncode == 1, said
    err = slurm / "runs" / "c_logs" / f"{job}_0_log.err"
    assert not err.exists()
    assert f"job {job} ended without a result" in said and "never started, and wrote no log" in said, said
    assert f"see {err}" not in said, said


def test_the_memory_check_of_a_slurm_job_is_against_the_node_memory_sinfo_gives(tmp_path, monkeypatch, capsys):
    """--executor slurm: the estimate per rank against the partition's node memory (sinfo %m) shared by the ranks of
    a node, or --mem where given (a --mem above the node's is refused); where sinfo gives none, this host's, said."""
    from hpcflow.jobs import registry
    from hpcflow.resources import estimate

    job = tmp_path / "job.toml"
    job.write_text(JOB.split("[tune]")[0])
    _, cfg = registry.load(str(job), memory_check=False)
    one, two = estimate(cfg, ranks=1).bytes, estimate(cfg, ranks=2).bytes
    node = int(1.5 * two / 2**20)  # MiB: two ranks' estimates do not fit, one rank's does (one <= 2 * two)
    assert 2 * two > node * 2**20 >= one
    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, f"debug*|8|1|(null)|infinite|1-infinite|UNLIMITED|{node}")
    base = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--ntasks-per-node", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"partition debug's node memory {node} MiB (sinfo), 2 ranks per node" in err, err
    assert "--ntasks-per-node" in err and "--nodes" in err and "--no-memory-check" in err
    assert main([*base, "--ntasks-per-node", "2", "--no-memory-check"]) == 0
    capsys.readouterr()
    small = int(0.75 * one / 2**20)  # MiB: below one rank's estimate
    assert main([*base, "--mem", str(small)]) == 2
    assert f"--mem {small} MiB per node, one rank per node" in capsys.readouterr().err
    assert main([*base, "--mem", f"{node + 1}M"]) == 2
    err = capsys.readouterr().err
    assert f"--mem {node + 1} MiB exceeds the {node} MiB of partition debug's nodes" in err, err
    assert "sbatch" not in (called.read_text() if called.exists() else "")  # nothing queued
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|1|(null)|infinite|1-infinite|UNLIMITED|0")
    huge = ["--set", f"geometry.n_train={10**12}"]
    assert main([*base, *huge]) == 2
    err = capsys.readouterr().err
    assert "the submit host's memory: sinfo gives no memory for partition debug" in err, err


def test_submit_passes_mem_to_sbatch(slurm):
    r = _submit(slurm, "--out", "runs/m", "--executor", "slurm", "--time", "5", "--mem", "1G", "--wait", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    script = next((slurm / "runs" / "m_logs").glob("*_submission.sh")).read_text()
    assert "#SBATCH --mem=1024M" in script, script


def test_a_percent_sign_in_out_is_refused_for_the_default_logs_folder(tmp_path, job_text=JOB.split("[tune]")[0]):
    """submitit reads %j in its folder as the job id: --out 'pct%jdir' put the logs in pct157dir_logs."""
    job = tmp_path / "job.toml"
    job.write_text(job_text)
    out = tmp_path / "pct%jdir"
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(job), "--out", str(out), "--executor", "local"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--out" in r.stderr and "choose a --logs folder" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]  # nothing written


def test_a_network_job_one_rank_per_node_is_not_told_more_nodes_would_fit_it(tmp_path, monkeypatch, capsys):
    """Data parallel: each rank holds the whole network and is counted with every point (`estimate_nn`), so more
    nodes never lower its estimate; the advice for one rank per node is smaller sizes (it was 'use more nodes')."""
    from hpcflow.jobs import registry
    from hpcflow.resources import estimate

    job = ROOT / "jobs" / "nn_smoke.toml"
    _, cfg = registry.load(str(job), memory_check=False)
    one = estimate(cfg, ranks=1).bytes
    assert estimate(cfg, ranks=4).bytes >= one  # (the premise: more ranks do not shrink it)
    node = int(0.75 * one / 2**20)  # MiB: below one rank's estimate
    _stand_in_slurm(tmp_path / "bin", monkeypatch, f"debug*|8|1|(null)|infinite|1-infinite|UNLIMITED|{node}")
    base = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--command", "nn", "--check"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one rank per node" in err and "more nodes" not in err, err
    assert "n_train" in err and "--no-memory-check" in err, err
    assert main([*base, "--nodes", "2", "--ntasks-per-node", "2"]) == 2  # two on a node: one alone does not fit
    err = capsys.readouterr().err                                           # either, so fewer per node does not help
    assert "--ntasks-per-node" not in err and "more nodes" not in err and "one rank alone does not fit" in err, err


def test_every_task_of_a_job_cancelled_before_it_ran_is_read_without_the_result_file_wait(tmp_path):
    """An MPI job (4 tasks) cancelled while pending: each task's result is read without submitit's 15 s wait for a
    file that cannot come (the job's, alone, left 4 x 15 s); one that wrote a log (it ran) keeps the wait."""
    from submitit import SlurmJob

    from hpcflow.submit.executor import _no_result_wait

    class Cancelled:
        def get_state(self, job_id, mode="standard"):
            return "CANCELLED by 0"

    job = SlurmJob(tmp_path, "12345", tasks=(0, 1, 2, 3))
    job.watcher = Cancelled()
    _no_result_wait(job)
    assert [j._results_timeout_s for j in (job, *job._sub_jobs)] == [0] * 5
    ran = SlurmJob(tmp_path / "ran", "12346", tasks=(0, 1))
    ran.watcher = Cancelled()
    ran.paths.stderr.parent.mkdir(parents=True)
    ran.paths.stderr.write_text("started\n")
    _no_result_wait(ran)
    assert [j._results_timeout_s for j in (ran, *ran._sub_jobs)] == [SlurmJob._results_timeout_s] * 3
