"""`hpcflow submit` where Slurm fails it: sbatch refused or unanswered (one line, nothing left behind), sinfo silent
(--check says the request went unchecked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcflow.cli import main
from test_submit import JOB, _script, _stand_in_slurm

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
    kept = sorted(p.suffix for p in (tmp_path / "out_logs").iterdir())
    assert kept == [".pkl", ".sh"], kept  # the job's pickle and its sbatch script


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
