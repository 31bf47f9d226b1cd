"""An sbatch template checks its job (the job file, the command's options, --out) before anything else runs: a bad
job ends the job at once with the command's one-line refusal, exit 2, with no `hpcflow info`, no srun step and
nothing written. It ran `hpcflow info` (in the MPI templates an srun step of every task) first, and the refusal came
from the run's step after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from standin_srun import stand_in_srun
from test_slurm_script import JOB as GOOD, TUNE  # (a small flow job; its [tune] table)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "slurm").glob("*.sbatch"))


def _run(tmp_path, script, *args, **env_extra):
    """`script` run by bash as Slurm would start it (submit directory tmp_path, job 4242, one CPU), with a stand-in
    srun that records each call's options in tmp_path/srun_options."""
    bin_dir = tmp_path / "bin"
    stand_in_srun(bin_dir, tmp_path / "srun_options", "", stream=2)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", HPCFLOW_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT), SLURM_SUBMIT_DIR=str(tmp_path), SLURM_CPUS_PER_TASK="1", SLURM_JOB_ID="4242",
               HPCFLOW_BACKEND="numpy", **env_extra)
    for name in ("SLURM_GPUS_PER_NODE", "SLURM_RESTART_COUNT", "HPCFLOW_THREADS"):
        if name not in env_extra:
            env.pop(name, None)
    extra = ["2"] if script.name == "hpcflow_tune_array.sbatch" else []  # (its TRIALS_PER_WORKER)
    return subprocess.run(["bash", str(script), *map(str, args[:2]), *extra, *map(str, args[2:])], env=env,
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)


def _refused_first(tmp_path, r, *words) -> str:
    """Assert `r` is the one-line refusal (exit 2) holding `words`, with nothing before it (no `hpcflow info`, no
    srun, no output directory); return the line."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr[-3000:])
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], r.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert r.stdout == "", r.stdout  # nothing said before it: no environment from hpcflow info, no worker line
    assert not (tmp_path / "srun_options").exists()  # no srun at all (hpcflow info's step, the run's step)
    return lines[0]


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_a_template_refuses_a_bad_job_file_before_anything_runs(tmp_path, script):
    job = tmp_path / "bad job.toml"  # (a path with a space, as a user's may be)
    body = GOOD + (TUNE if "tune" in script.name else "")
    job.write_text(body.replace("n_train = 40", "n_trian = 40"))
    r = _run(tmp_path, script, job, "runs/out")
    _refused_first(tmp_path, r, "n_trian")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_a_template_refuses_a_bad_set_or_option_before_anything_runs(tmp_path, script):
    job = tmp_path / "job.toml"
    job.write_text(GOOD + (TUNE if "tune" in script.name else ""))
    _refused_first(tmp_path, _run(tmp_path, script, job, "runs/out", "--set", "flow.dtt=1"), "flow.dtt")
    (tmp_path / "srun_options").unlink(missing_ok=True)
    _refused_first(tmp_path, _run(tmp_path, script, job, "runs/out", "--bogus"), "--bogus")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script", [p for p in TEMPLATES if "tune" not in p.name], ids=lambda p: p.name)
def test_a_template_refuses_an_out_holding_files_before_anything_runs(tmp_path, script):
    """An OUT holding other files, without --force: refused by the run's own check first, the files untouched."""
    job = tmp_path / "job.toml"
    job.write_text(GOOD)
    (tmp_path / "runs" / "out").mkdir(parents=True)
    (tmp_path / "runs" / "out" / "notes.txt").write_text("mine")
    _refused_first(tmp_path, _run(tmp_path, script, job, "runs/out"), "runs/out")
    assert os.listdir(tmp_path / "runs" / "out") == ["notes.txt"]
    assert (tmp_path / "runs" / "out" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("script,tune", [(p, t) for p in TEMPLATES for t in (False, True) if t or "tune" not in p.name],
                         ids=lambda v: v.name if isinstance(v, Path) else ("tune_table" if v else "plain"))
def test_a_template_with_a_good_job_still_runs_it(tmp_path, script, tune):
    """The check says nothing of a valid job: the template's output is as before (hpcflow info's lines, the run), and
    its stderr holds nothing of the check; a job with a [tune] table run by `hpcflow run|nn` notes the unused table
    once (the run's note), not once more from the check."""
    job = tmp_path / "job.toml"
    job.write_text(GOOD + (TUNE if tune else ""))
    r = _run(tmp_path, script, job, "runs/out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "nothing run" not in r.stdout and "valid;" not in r.stdout, r.stdout
    assert (tmp_path / "srun_options").exists()
    assert os.path.isdir(tmp_path / "runs" / "out")
    if tune and "tune" not in script.name:
        assert r.stderr.count("[tune] section is not used") == 1, r.stderr


@pytest.mark.parametrize("command,tune", [("run", False), ("run", True), ("tune", True)],
                         ids=["run", "run_tune_table", "tune"])
def test_the_check_of_a_good_job_says_nothing(tmp_path, command, tune):
    """The template's check itself, of a valid job (one with a [tune] table too, which `hpcflow run --check` notes as
    unused): status 0, nothing on stdout or stderr, nothing written."""
    job = tmp_path / "job.toml"
    job.write_text(GOOD + (TUNE if tune else ""))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_BACKEND="numpy")
    for name in ("SLURM_RESTART_COUNT", "SLURM_NTASKS", "SLURM_NPROCS"):
        env.pop(name, None)
    extra = ["--trials", "2"] if command == "tune" else []
    r = subprocess.run([sys.executable, "-m", "hpcflow.submit.template_check", sys.executable, "-m", "hpcflow",
                        command, str(job), "--out", "runs/out", *extra], env=env, capture_output=True, text=True,
                       timeout=180, cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert sorted(os.listdir(tmp_path)) == ["job.toml"]


@pytest.mark.parametrize("status", [0, 1, 2, 3, 5])
def test_the_check_says_its_stderr_only_for_a_refusal(capfd, monkeypatch, status):
    """The check's command saying something on stderr: said by the check (status 2) only for a refusal, its line
    once; any other status (a note of a valid job, a traceback, status 1, 3, 5) says nothing, and the template goes on
    to the run, which says it itself."""
    from hpcflow.submit.template_check import check

    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    said = f"hpcflow run: error: said with status {status}"
    command = [sys.executable, "-c", f"import sys; print({said!r}, file=sys.stderr); sys.exit({status})",
               "-m", "hpcflow", "run", "job.toml", "--out", "out"]
    assert check(command) == (2 if status == 2 else 0)
    out, err = capfd.readouterr()
    assert out == ""
    assert err == (said + "\n" if status == 2 else "")
