"""Small selections of the benchmark scripts: --quick runs the cases it names, a selection of cases runs in
seconds, and a setting the machine cannot run is refused in one line before any work."""

import json
import sys

from test_benchmarks_args import BENCH, bench, refused

#: the four small cases of bench_memory_estimate --quick (as before the halo cases were inserted among CASES)
QUICK = {"sample N=1e5 all charts", "flow 1000/1000 (quickstart)", "clustering N=1000 (Fig. 2)", "nn smoke, 1 epoch"}


def test_memory_estimate_quick_runs_its_four_small_cases(monkeypatch):
    """--quick picked cases by index into CASES; inserted halo cases shifted it onto the heaviest flow
    ('flow 12000/4000, 240 clusters, halo pi/2') and 'clustering N=3000', dropping the Fig. 2 clustering and the
    nn smoke case."""
    monkeypatch.syspath_prepend(BENCH)
    sys.modules.pop("bench_memory_estimate", None)
    import bench_memory_estimate as bme

    assert QUICK <= {label for label, _, _ in bme.CASES}
    ran = []
    monkeypatch.setattr(bme, "run_case", lambda label, target, args: ran.append(label) or {"estimate": 1, "peak": 1})
    monkeypatch.setattr(sys, "argv", ["bench_memory_estimate.py", "--quick"])
    bme.main()
    assert sorted(ran) == sorted(QUICK), ran


def test_cupy_backend_without_a_gpu_refused_first():
    """HPCFLOW_BACKEND=cupy where no GPU is usable (CUDA_VISIBLE_DEVICES="" here): bench_gpu printed its {"gpu":
    false} line, then a MissingDependencyError traceback (exit 1); bench_sampler printed its header, then failed in
    its first child. Both refuse it in one line naming the variable, exit 2, before any output."""
    for script, args in [("bench_gpu.py", "--sizes 100 --kernels delta --steps 2 --sample 0"),
                         ("bench_sampler.py", "--sizes 100 --threads 1")]:
        line = refused(bench(script, *args.split(), env={"HPCFLOW_BACKEND": "cupy"}), script)
        assert "HPCFLOW_BACKEND=cupy" in line and "numpy" in line, line


def test_ntk_methods_runs_a_chosen_small_case():
    """bench_ntk_methods ran its four recorded cases only (66 s at the least); --cases picks others: a tiny one runs in
    seconds and prints its one JSON line, the two exact forms agreeing; a case of depth 0 is refused in one line."""
    r = bench("bench_ntk_methods.py", "--cases", "6:1x4", "--repeat", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["points"], row["network"]) for row in rows] == [(6, "1x4 gelu")], r.stdout
    assert rows[0]["max_rel_difference"] < 1e-6, rows
    line = refused(bench("bench_ntk_methods.py", "--cases", "6:0x4"), "bench_ntk_methods.py")
    assert "--cases" in line and "6:0x4" in line, line
