"""`hpcflow submit`'s further Slurm requests (--account, --qos, --constraint, --reservation, --exclusive, --sbatch
KEY=VALUE): #SBATCH lines of the submission (a real Slurm takes them: tests/test_slurm.py), refused with the local
executor, and values that would break the script's line refused before any work (one line, exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "jobs" / "quickstart.toml"


def _submit(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(JOB), "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _refused(tmp_path, args, said: str) -> None:
    """`hpcflow submit ... ARGS` is refused in one line that starts with `said`, exit 2, before any work."""
    r = _submit(tmp_path, *args)
    assert r.returncode == 2 and r.stderr.startswith(f"hpcflow submit: error: {said}") and r.stderr.count("\n") == 1, \
        r.stderr
    assert not (tmp_path / "out").exists()


def test_the_requests_are_sbatch_lines_of_the_submission(tmp_path, monkeypatch):
    from hpcflow.submit import executor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):
        (bin_dir / name).write_text("#!/bin/bash\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    res = executor.Resources(sbatch=(("account", "proj-7", "--account"), ("constraint", "a&b|c", "--constraint"),
                                     ("exclusive", True, "--exclusive"), ("mail-type", "END", "--sbatch")))
    ex = executor.make_executor("slurm", str(tmp_path / "logs"), res, name="hpcflow-run-x")
    lines = ex._make_submission_file_text(ex._submitit_command_str, "uid").splitlines()
    for line in ("#SBATCH --account=proj-7", "#SBATCH --constraint='a&b|c'", "#SBATCH --exclusive",
                 "#SBATCH --mail-type=END"):  # (sbatch takes the quotes off, as a shell would)
        assert lines.count(line) == 1, lines


@pytest.mark.parametrize("args, said", [
    (["--account", "a"], "--account: Slurm's request"),
    (["--exclusive", "--sbatch", "mail-type=END"], "--exclusive and --sbatch: Slurm's requests"),
])
def test_the_local_executor_refuses_them(tmp_path, args, said):
    _refused(tmp_path, ["--executor", "local", *args], f"{said}, which --executor local does not make")


@pytest.mark.parametrize("args, said", [
    (["--account", "a b"], "argument --account: 'a b' is not a value for an #SBATCH line"),
    (["--qos", "x\ny"], "argument --qos: 'x\\ny' is not a value for an #SBATCH line"),
    (["--reservation", ""], "argument --reservation: '' is not a value for an #SBATCH line"),
    (["--constraint", "a'b"], "argument --constraint: \"a'b\" is not a value for an #SBATCH line"),
    (["--sbatch", "mail-user=a b"], "argument --sbatch: 'a b' is not a value for an #SBATCH line"),
    (["--sbatch=--mail-type=END"], "argument --sbatch: '--mail-type=END': give KEY=VALUE"),
    (["--sbatch", "time=5"], "argument --sbatch: time: hpcflow submit sets #SBATCH --time itself; use --time"),
    (["--sbatch", "account=a"], "argument --sbatch: account: hpcflow submit sets #SBATCH --account itself; use "
                                "--account"),
])
def test_a_value_that_would_break_the_line_or_repeat_an_option_is_refused(tmp_path, args, said):
    _refused(tmp_path, ["--executor", "slurm", *args], said)


def test_the_line_that_continues_a_stopped_job_asks_for_the_same_requests():
    """The continue line (`_continuing_argv`) gives each request as the command line did: parsed again, it asks
    Slurm for the same #SBATCH lines (a --sbatch KEY=VALUE is not written as Python's tuple)."""
    from hpcflow.commands.submit import _continuing_argv, _parser_of, _sbatch_lines

    given = [str(JOB), "--out", "o", "--executor", "slurm", "--account", "phys", "--exclusive", "--qos", "q1",
             "--sbatch", "hold", "--sbatch", "mail-type=END", "--set", "flow.steps=5"]
    args = _parser_of("submit").parse_args(given)
    again = _continuing_argv(args)
    assert again[:2] == ["hpcflow", "submit"] and "--resume" in again
    parsed = _parser_of("submit").parse_args([w for w in again[2:] if w != "--resume"])
    assert _sbatch_lines(parsed) == _sbatch_lines(args) and parsed.set == ["flow.steps=5"]


def _main_refuses(capsys, args, said: str) -> str:
    """`hpcflow submit JOB --out O --executor slurm --check ARGS` (in this process) is refused in one line that
    starts with `said`, exit 2."""
    from hpcflow.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["submit", str(JOB), "--out", "never-written", "--executor", "slurm", "--check", *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"hpcflow submit: error: argument --sbatch: {said}") \
        and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("key, said", [
    ("parsable", "parsable: not taken, as sbatch then prints the job id alone"),
    ("no-requeue", "no-requeue: not taken, as a job stopped at its checkpoint"),
    ("wait", "wait: not taken, as sbatch would block until the job ends"),
    ("test-only", "test-only: not taken, as sbatch then queues nothing"),
    ("chdir=/tmp", "chdir: not taken"),
    ("export=NONE", "export: not taken"),
    ("mem-per-cpu=2G", "mem-per-cpu: not taken"),
    ("mem-per-gpu=2G", "mem-per-gpu: not taken"),
    ("gres=gpu:1", "gres: not taken"),
    ("gpus=1", "gpus: not taken"),
    ("gpus-per-task=1", "gpus-per-task: not taken"),
])
def test_an_sbatch_option_that_breaks_the_submission_or_a_check_is_refused_with_what_to_use(capsys, key, said):
    instead = {"wait": "use --wait", "test-only": "use --check", "mem-per-cpu=2G": "use --mem",
               "mem-per-gpu=2G": "use --mem", "gres=gpu:1": "use --gpus-per-node", "gpus=1": "use --gpus-per-node",
               "gpus-per-task=1": "use --gpus-per-node"}.get(key)
    err = _main_refuses(capsys, ["--sbatch", key], said)
    assert f"; {instead} (see" in err if instead else "; use" not in err, err


@pytest.mark.parametrize("key, said", [
    ("partitio=gpu", "partitio (sbatch takes it as --partition): hpcflow submit sets #SBATCH --partition itself; "
                     "use --partition"),
    ("accoun=foo", "accoun (sbatch takes it as --account): hpcflow submit sets #SBATCH --account itself"),
    ("parsab", "parsab (sbatch takes it as --parsable): not taken"),
    ("mail-ty=END", "mail-ty: sbatch takes it as --mail-type; give it in full, --sbatch mail-type=END"),
    ("mem-per=1G", "mem-per: not a long option of sbatch (the start of mem-per-cpu, mem-per-gpu)"),
    ("no-such-option=1", "no-such-option: not a long option of sbatch"),
])
def test_an_sbatch_key_that_is_a_prefix_or_no_option_is_refused_naming_the_option(capsys, key, said):
    """sbatch takes a unique prefix of a long option as that option (--accoun=foo is --account=foo): such a key
    would pass by the refusal of the options hpcflow submit gives itself."""
    _main_refuses(capsys, ["--sbatch", key], said)


def test_exclusive_takes_user_mcs_or_topo_through_sbatch(capsys):
    from hpcflow.commands.submit import _parser_of, _sbatch_lines

    for value in ("user", "mcs", "topo"):
        args = _parser_of("submit").parse_args([str(JOB), "--out", "o", "--executor", "slurm", "--sbatch",
                                                f"exclusive={value}"])
        assert _sbatch_lines(args) == (("exclusive", value, "--sbatch"),)
    _main_refuses(capsys, ["--sbatch", "exclusive=nodes"], "exclusive=nodes: give --sbatch exclusive=user|mcs|topo")
    _main_refuses(capsys, ["--sbatch", "exclusive"], "exclusive: hpcflow submit sets #SBATCH --exclusive itself; use "
                                                     "--exclusive for whole nodes, or --sbatch exclusive=user|mcs|topo")


def test_exclusive_and_an_sbatch_exclusive_together_are_refused(tmp_path):
    _refused(tmp_path, ["--executor", "slurm", "--check", "--exclusive", "--sbatch", "exclusive=user"],
             "--exclusive and --sbatch exclusive=user ask for two kinds of exclusive nodes")
