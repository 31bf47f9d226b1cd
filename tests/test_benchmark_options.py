"""Options of the benchmark scripts: a value that makes a comparison meaningless is refused in one line (exit 2),
internal entry points stay out of --help, every count a benchmark varies can be given, and a script whose product is
JSON lines prints nothing else on stdout."""

import importlib
import json
import os
import sys

import pytest

from hpcflow.arguments import MAX_THREADS
from test_benchmarks_args import bench, refused


def test_flow_scaling_refuses_one_thread():
    """scaling compares 1 process x T threads, 1 x 1 and T ranks x 1: at T = 1 the three are one run (its rows
    even overwrote each other under the one key "1x1"), and it ran all six flows before printing that."""
    line = refused(bench("bench_flow_mpi.py", "scaling", "--threads", "1", "--n", "100"), "bench_flow_mpi.py")
    assert "--threads" in line and "2 or more" in line, line


def test_flow_scaling_refuses_more_ranks_than_the_cores_hold():
    """The T x 1 run starts T ranks: T beyond 4 per core is refused as --ranks is (hours of time-slicing)."""
    many = 4 * len(os.sched_getaffinity(0)) + 1
    line = refused(bench("bench_flow_mpi.py", "scaling", "--threads", str(many), "--n", "100"), "bench_flow_mpi.py")
    assert "--threads" in line and ("ranks" in line or many > MAX_THREADS), line


def test_flow_mpi_help_names_no_internal_worker():
    """--help listed the `worker` subcommand that the script starts under mpiexec itself (its arguments undocumented
    positionals)."""
    r = bench("bench_flow_mpi.py", "--help")
    assert r.returncode == 0, r.stderr
    assert "worker" not in r.stdout.lower() and "scaling" in r.stdout and "exact-step" in r.stdout, r.stdout
    refused(bench("bench_flow_mpi.py", "worker", "exact", "10", "0", "1", "0", "0"), "bench_flow_mpi.py")


def test_cluster_flow_takes_the_number_of_clusters():
    """bench_cluster flow always used k = N/5000 (1 cluster below 7500 points); --clusters sets it, as in cluster."""
    r = bench("bench_cluster.py", "flow", "--n", "600", "--n-test", "60", "--clusters", "3", "--batch-size", "200",
              "--time-steps", "2", "--steps", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["clusters"] == 3 and len(out["cluster_sizes"]) == 3 and sum(out["cluster_sizes"]) == 600, out
    line = refused(bench("bench_cluster.py", "flow", "--n", "600", "--clusters", "601"), "bench_cluster.py")
    assert "--clusters" in line and "601" in line, line


def test_report_checkpoint_prints_json_lines_only(tmp_path):
    """The run it makes said "hpcflow run: wrote .../summary.json" on stdout before the JSON line; that goes to
    stderr now, and stdout is the JSON line alone."""
    r = bench("bench_report_checkpoint.py", "--n", "150", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["n_train"] == 150, r.stdout
    assert "hpcflow run: wrote" in r.stderr, r.stderr


def test_flow_scaling_without_test_points_prints_null_spread():
    """scaling --n-test 0 (no test points) prints a null spread of sigma_test across the three runs, and each run's
    sigma_test history as nulls: they were NaN, which is not JSON."""
    r = bench("bench_flow_mpi.py", "scaling", "--n", "30", "--n-test", "0", "--clusters", "2", "--steps", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [strict_json(line) for line in r.stdout.splitlines()]
    assert [row["mode"] for row in rows] == ["clustered", "exact"], r.stdout[-2000:]
    assert [row["sigma_test_rel_spread"] for row in rows] == [None, None], r.stdout[-2000:]
    assert [run["sigma_test"] for row in rows for run in row["runs"].values()] == [[None] * 3] * 6, r.stdout[-2000:]


def strict_json(line: str):
    """A line of strict JSON (json.loads takes NaN and Infinity, which JSON does not have)."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON: {line[:200]}")

    return json.loads(line, parse_constant=refuse)


def test_flow_exact_step_prints_strict_json():
    """exact-step has no test points: its sigma_test history is printed as nulls (it printed [NaN, NaN], which is
    not JSON though --help says one JSON line per run)."""
    r = bench("bench_flow_mpi.py", "exact-step", "--n", "30", "--ranks", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [strict_json(line) for line in r.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["sigma_test"] == [None, None], r.stdout
    assert len(rows[0]["sigma_train"]) == 2 and all(s > 0 for s in rows[0]["sigma_train"]), r.stdout
    assert len(rows[0]["step_s"]) == 1, r.stdout


def import_bench(name: str):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(os.path.join(root, "benchmarks"))


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_flow_step_times_leave_out_the_first_step_of_the_process(monkeypatch, capsys, steps):
    """The first flow step of a process costs more (Numba's compilation or cache load, the first messages between
    ranks). On a clock that charges 1 s for the process's first step and 0.01 s for every other, every step timed
    takes 0.01 s: the median of --steps 2 was (1 + 0.01) / 2, and scaling's efficiency_vs_threads came out as 1.9
    where the runs were equal."""
    import hpcflow.flow

    bench_flow_mpi = import_bench("bench_flow_mpi")
    real, taken = hpcflow.flow.kernel_flow, []

    def clocked(*args, **kwargs):
        res = real(*args, **kwargs)
        first, n = not taken, len(res.history["step_seconds"])
        res.history["step_seconds"] = [1.0 if first and i == 0 else 0.01 for i in range(n)]
        taken.extend(res.history["step_seconds"])
        return res

    monkeypatch.setattr(hpcflow.flow, "kernel_flow", clocked)
    bench_flow_mpi.worker("exact", 30, 10, steps, 0, 0.0)
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert taken[0] == 1.0, taken  # the process's first step was taken
    assert row["step_s"] == [0.01] * steps and row["step_s_median"] == 0.01, row
    assert len(row["sigma_train"]) == len(row["sigma_test"]) == steps + 1, row


def test_gaussian_job_named_for_the_flow_benchmarks_is_the_one_they_run():
    """bench_cluster flow and bench_flow_mpi flow a Gaussian of width 1/30 (exp form), rows normalised, with the
    weighted ultra-local loss and dt = 17 N / 2500. The job file their docstrings and BENCHMARKS.md name for that
    kernel has those settings (they named jobs/table1_gaussian.toml, since commit 6ae9ef6 the paper's literal
    sigma = 30, unnormalised, with the sigma loss)."""
    import re
    import sys

    from hpcflow.jobs import registry

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    try:
        import bench_cluster
        import bench_flow_mpi
    finally:
        sys.path.remove(os.path.join(root, "benchmarks"))
    with open(os.path.join(root, "BENCHMARKS.md"), encoding="utf-8") as fh:
        text = fh.read()
    named = {}
    for where, doc in (("bench_cluster", bench_cluster.__doc__), ("bench_flow_mpi", bench_flow_mpi.__doc__),
                       ("BENCHMARKS.md", text)):
        for m in re.finditer(r"Gaussian[^.]{0,200}?(?:of|as\s+in)\s+`?(jobs/\w+\.toml)", doc):
            named.setdefault(m.group(1), []).append(where)
    assert {"bench_cluster", "bench_flow_mpi", "BENCHMARKS.md"} <= {w for ws in named.values() for w in ws}, named
    for job, where in named.items():
        _, cfg = registry.load(os.path.join(root, job), memory_check=False)
        k, fl, n = cfg["kernel"], cfg["flow"], cfg["geometry"]["n_train"]
        got = (k["name"], k["form"], k["width"], k["normalize"], fl["loss"], fl["weighted"], fl["dt"] / n)
        assert got == ("gaussian", "exp", pytest.approx(1 / 30), "row", "ultralocal", True,
                       pytest.approx(17 / 2500)), (job, where, got)


def test_kernels_modes_are_exclusive():
    """--mem-only, --profile and --only each name the one thing run: given two, one was ignored (--mem-only
    --profile ran the profile alone); the refusal names both."""
    line = refused(bench("bench_kernels.py", "--mem-only", "--profile"), "bench_kernels.py")
    assert "--mem-only" in line and "--profile" in line and "not allowed" in line, line
