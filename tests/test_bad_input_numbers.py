"""Numbers too large to read or to compute with (a job file's, a --set's, an environment variable's, a command-line
option's) are one-line refusals, exit 2, naming where they came from and the fix: never a traceback."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
#: more digits than Python's int() reads from text (its ValueError was a traceback)
HUGE = "9" * (sys.get_int_max_str_digits() + 700)


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


# ---- job files and --set --------------------------------------------------------------------------------------
def test_a_job_file_integer_beyond_pythons_digit_limit_names_the_file_and_line(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(QUICKSTART.read_text().replace("seed = 0\n", f"seed = {HUGE}\n", 1))
    line = 1 + job.read_text().splitlines().index(f"seed = {HUGE}")
    with pytest.raises(ConfigError) as exc:
        registry.load(job)
    msg = _one_line(exc)
    assert msg.startswith(f"{job}: line {line} holds an integer of more than {sys.get_int_max_str_digits()} digits")
    assert "fix it" in msg


@pytest.mark.parametrize("value", [HUGE, f"-{HUGE}", f"[{HUGE}]"])
def test_a_set_integer_beyond_pythons_digit_limit_names_the_set(value):
    with pytest.raises(ConfigError) as exc:
        registry.load(QUICKSTART, [f"geometry.seed={value}"])
    msg = _one_line(exc)
    assert msg.startswith("--set 'geometry.seed=") and "an integer of more than" in msg and "bounds" in msg


@pytest.mark.parametrize("key", ["geometry.seed", "flow.dt", "geometry.chart"])
def test_a_hex_integer_too_long_to_print_in_decimal_is_refused_by_its_key(key):
    """TOML's 0x form reads an int of 16000 bits (beyond str()'s digit limit): the refusal names the key and shows
    the value (its print raised a ValueError)."""
    value = "0x" + "f" * 4000
    with pytest.raises(ConfigError) as exc:
        registry.load(QUICKSTART, [f"{key}={f'[{value}, 1]' if key == 'geometry.chart' else value}"])
    section, name = key.split(".")
    msg = _one_line(exc)
    assert f"[{section}].{name} = " in msg and "0xffff" in msg


# ---- environment variables ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [
    ("HPCFLOW_THREADS", HUGE), ("SLURM_CPUS_PER_TASK", HUGE), ("SLURM_MEM_PER_NODE", HUGE),
    ("SLURM_MEM_PER_CPU", HUGE + "G"), ("SLURM_NTASKS_PER_NODE", HUGE), ("SLURM_NODEID", HUGE),
    ("SLURM_TASKS_PER_NODE", f"2(x{HUGE})"), ("SLURM_TASKS_PER_NODE", f"{HUGE}(x2)"),
])
def test_environment_counts_of_thousands_of_digits_are_one_line_exit_2(tmp_path, monkeypatch, capsys, name, value):
    """Every command's job check reads them (the HPCFLOW_* and Slurm variables, the ranks that share a node's
    memory): one line naming the variable and the fix, exit 2, nothing written."""
    from hpcflow.arguments import MAX_DIGITS

    monkeypatch.setenv(name, value)
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    if name == "SLURM_TASKS_PER_NODE":
        monkeypatch.setenv("SLURM_MEM_PER_NODE", "100000")  # (the node's tasks share it)
    out = tmp_path / "out"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hpcflow run: error: {name}=") and "unset" in err, err
    assert f"more than any count or size ({MAX_DIGITS} at most)" in err
    assert not out.exists()


def test_default_threads_refuses_a_count_of_thousands_of_digits(monkeypatch):
    from hpcflow.backend import default_threads

    monkeypatch.setenv("HPCFLOW_THREADS", HUGE)
    with pytest.raises(ConfigError, match="^HPCFLOW_THREADS="):
        default_threads()
    monkeypatch.setenv("HPCFLOW_THREADS", "0003")
    assert default_threads() == 3


def test_a_requeued_legs_restart_count_of_thousands_of_digits_is_one_line(monkeypatch, capsys):
    """`python -m hpcflow.submit.requeue` (the sbatch templates) and a submitted task read SLURM_RESTART_COUNT."""
    from hpcflow.submit import requeue
    from hpcflow.submit.task import requeued

    monkeypatch.setenv("SLURM_RESTART_COUNT", HUGE)
    assert requeue.main([str(QUICKSTART), "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: SLURM_RESTART_COUNT=" in err, err
    for text, again in (("0", False), ("2", True), ("", False)):
        assert requeued({"SLURM_RESTART_COUNT": text}) is again


def _none_root(tmp_path):
    root = tmp_path / "root"
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text("0::/\n")
    return str(root)


@pytest.mark.parametrize("env", [
    {"SLURM_MEM_PER_NODE": "9" * 400}, {"SLURM_MEM_PER_CPU": "9" * 400}, {"SLURM_MEM_PER_NODE": "9" * 400 + "K"},
    {"SLURM_MEM_PER_CPU": "100", "SLURM_CPUS_PER_TASK": "9" * 400},
])
def test_memory_sizes_beyond_a_float_are_refused_not_overflowed(tmp_path, env):
    """400 digits are within int()'s limit, but MiB x 2^20 / ranks overflowed a float (OverflowError)."""
    from hpcflow.resources import memory_limit

    with pytest.raises(ConfigError) as exc:
        memory_limit(root=_none_root(tmp_path), environ=env)
    msg = _one_line(exc)
    assert msg.split("=")[0] in env and "400 digits" in msg


def test_the_largest_counts_taken_give_a_finite_limit(tmp_path):
    """MAX_DIGITS digits in every factor: the Slurm figure is computed (above every other limit, which decides)."""
    from hpcflow.arguments import MAX_DIGITS
    from hpcflow.resources import memory_limit

    big, root = "9" * MAX_DIGITS, _none_root(tmp_path)
    for env in ({"SLURM_MEM_PER_NODE": big + "T"}, {"SLURM_MEM_PER_CPU": big, "SLURM_CPUS_PER_TASK": big}):
        limit = memory_limit(root=root, environ=env)
        assert math.isfinite(limit[0]) and limit == memory_limit(root=root, environ={})


def _expanded(text: str, node: int):
    """SLURM_TASKS_PER_NODE's entry of `node`, from the list written out (small repeats only)."""
    counts = []
    for part in text.split(","):
        n, _, rest = part.partition("(x")
        counts += [int(n)] * int(rest.rstrip(")") or 1)
    return counts[node] if node < len(counts) else None


def test_tasks_per_node_repeats_are_counted_not_expanded(tmp_path):
    """'2(x30000000)' was written out as a list of 3*10^7 entries (600 MB) to read one; a repeat of 10^15 (a
    MemoryError then) is read at once, and small forms give the entry of the list written out."""
    from hpcflow.resources import local_ranks, memory_limit

    for text in ("4", "2(x3),1", "1,3(x2),2(x1)", "5(x2)"):
        for node in range(6):
            want = _expanded(text, node)
            got = local_ranks(8, {"SLURM_TASKS_PER_NODE": text, "SLURM_NODEID": str(node)})
            assert got == (8 if want is None else min(want, 8)), (text, node)
    n = 10**15
    env = {"SLURM_TASKS_PER_NODE": f"3(x{n}),1", "SLURM_MEM_PER_NODE": "1200"}
    root = _none_root(tmp_path)
    for node, tasks in ((0, 3), (n - 1, 3), (n, 1)):
        limit, where = memory_limit(ranks=8, root=root, environ={**env, "SLURM_NODEID": str(node)})
        assert limit == 1200 * 2**20 / tasks and where.startswith("SLURM_MEM_PER_NODE")
    assert local_ranks(8, {**env, "SLURM_NODEID": str(n + 1)}) == 8  # beyond the list: not said, all ranks


# ---- hpcflow submit's counts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--nodes", "--ntasks-per-node", "--gpus-per-node", "--cpus-per-task", "--array",
                                    "--trials"])
@pytest.mark.parametrize("value", ["99999999999999999999", HUGE])
def test_submit_counts_beyond_any_cluster_are_usage_errors(tmp_path, capsys, option, value):
    """--nodes 10^20 --check ended in estimate's ValueError (ranks beyond int64), --trials 10^20 in an OverflowError
    of the workers' shares: now a usage error naming the option and its range."""
    job = ROOT / "jobs" / ("tune_gaussian.toml" if option in ("--array", "--trials") else "quickstart.toml")
    tune = ["--command", "tune"] + (["--trials", "4"] if option == "--array" else [])
    with pytest.raises(SystemExit) as stop:
        main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--check",
              *(tune if job.name.startswith("tune") else []), option, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert f"argument {option}: '{value[:40]}' is not a whole number in [" in err
    assert not (tmp_path / "out").exists()


def test_command_line_count_type_takes_its_range_and_nothing_else():
    import argparse

    from hpcflow.arguments import whole_number

    whole = whole_number(1, 1000)
    for text, n in (("1", 1), ("1000", 1000), ("0007", 7), (" 12 ", 12), ("+5", 5), ("0" * 50 + "9", 9)):
        assert whole(text) == n
    for text in ("0", "1001", "-1", "1e3", "1.0", "", "x", "\u0663", "1" * 5000):
        with pytest.raises(argparse.ArgumentTypeError):
            whole(text)


def test_a_submit_time_of_thousands_of_digits_names_time_and_the_fix(tmp_path, capsys):
    """It said "argument --time: invalid _time_limit value: '999...(5000 digits)'" (int()'s ValueError)."""
    for value in (HUGE, "10000001", f"{HUGE}:00"):
        with pytest.raises(SystemExit) as stop:
            main(["submit", str(QUICKSTART), "--out", str(tmp_path / "out"), "--executor", "local", "--check",
                  "--time", value])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1, err
        assert f"argument --time: '{value[:40]}' is longer than any time limit" in err and "shorter --time" in err
        assert "_time_limit" not in err and len(err) < 400
    assert main(["submit", str(QUICKSTART), "--out", str(tmp_path / "out"), "--executor", "local", "--check",
                 "--time", "10000000"]) == 0
    assert not (tmp_path / "out").exists()



def test_a_tune_workers_restart_count_of_thousands_of_digits_is_a_config_error(monkeypatch):
    """A tune worker records its Slurm run count (tune.storage.slurm_worker): int() of the text raised ValueError."""
    from hpcflow.tune.storage import slurm_worker

    monkeypatch.setenv("SLURM_RESTART_COUNT", HUGE)
    with pytest.raises(ConfigError, match="^SLURM_RESTART_COUNT="):
        slurm_worker()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0007")
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert slurm_worker() == ("41", 7)


@pytest.mark.parametrize("option", ["--trials", "--max-trials"])
def test_tune_counts_beyond_int64_are_a_usage_error(option, tmp_path, capsys):
    """hpcflow tune --trials / --max-trials of 10^40 or thousands of digits: one usage line naming the option."""
    for text in ("1" + "0" * 40, HUGE):
        counts = {"--trials": "1", option: text}
        argv = ["tune", str(ROOT / "jobs" / "tune_gaussian.toml"), "--out", str(tmp_path / "s")]
        for name, value in counts.items():
            argv += [name, value]
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and f"argument {option}:" in err, err
    assert not (tmp_path / "s").exists()
