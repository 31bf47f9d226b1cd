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


def test_flow_launch_names_one_process_and_one_thread_in_words(monkeypatch):
    """A failed run is named '1 process x 2 threads' or '2 ranks x 1 thread' (it said '1 ranks x 2 threads')."""
    bench_flow_mpi = import_bench("bench_flow_mpi")
    bench_nn_mpi = import_bench("bench_nn_mpi")
    said = []

    def child(cmd, what, **kwargs):
        said.append(what)
        raise SystemExit(1)

    monkeypatch.setattr(bench_flow_mpi._args, "child", child)
    for ranks, threads in ((1, 2), (2, 1)):
        with pytest.raises(SystemExit):
            bench_flow_mpi._launch(ranks, threads, ["exact", 30, 0, 1, 0, 0.0])
        with pytest.raises(SystemExit):
            bench_nn_mpi.run_case(ranks, threads, 64, 1, 200, None)
    assert said == ["the exact flow of N=30 at 1 process x 2 threads", "hpcflow nn at 1 process x 2 threads, batch 64",
                    "the exact flow of N=30 at 2 ranks x 1 thread", "hpcflow nn at 2 ranks x 1 thread, batch 64"], said


def test_sampler_chart_refused_in_the_scripts_words():
    """--chart a b is refused as every other count is ('... is not a whole number; pass ...'), not with argparse's
    "invalid int value: 'a'"."""
    line = refused(bench("bench_sampler.py", "--sizes", "10", "--threads", "1", "--chart", "a", "b"),
                   "bench_sampler.py")
    assert "--chart" in line and "'a' is not a whole number; pass an integer >= 0" in line, line


def test_usage_examples_keep_their_line_breaks():
    """A usage example broken over lines with a backslash in a script's docstring is printed by --help as written:
    the docstring is raw, so Python does not join the lines (it printed one line with a run of spaces in the
    middle, which no shell reads as the example meant)."""
    import ast
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(root, "benchmarks")
    checked = 0
    for script in sorted(os.listdir(folder)):
        if not script.endswith(".py"):
            continue
        with open(os.path.join(folder, script), encoding="utf-8") as fh:
            source = fh.read()
        first = ast.parse(source).body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
            continue
        written = ast.get_source_segment(source, first.value)
        broken = [line.strip() for line in written.splitlines() if line.rstrip().endswith("\\")]
        if not broken or script.startswith("_"):
            continue
        r = bench(script, "--help")
        assert r.returncode == 0, r.stderr[-2000:]
        shown = [line.strip() for line in r.stdout.splitlines()]
        assert [line for line in broken if line not in shown] == [], (script, r.stdout)
        assert not re.search(r"\S {5,}--", r.stdout), (script, r.stdout)
        checked += 1
    assert checked >= 2


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
