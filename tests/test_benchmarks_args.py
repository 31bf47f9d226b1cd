"""The benchmark scripts refuse bad arguments in one line on stderr with exit status 2, before any work (nothing on
stdout), within seconds; under mpiexec every rank refuses them (none is left waiting in a collective); a child
process's own error comes out as one line; a kept run's rows are its own; tune_table1's stdout is its table alone."""

import json
import os
import subprocess
import sys

import h5py
import pytest

from test_parallel import mpiexec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
#: one CPU per process, and no GPU for torch (--device cuda is refused alike on every machine)
ENV = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
#: seconds a refusal may take (imports only); the old scripts ran some of these cases for minutes, or hung
TIMEOUT = 60

#: (script, arguments) refused before any work: bad counts, missing paths, values a case cannot use
REFUSED = [
    ("bench_sampler.py", "--sizes 0 --threads 1"),
    ("bench_sampler.py", "--sizes 10 --threads 1 --chart 0 0"),
    ("bench_cluster.py", "cluster --n 2000 --batch-size 500 --silhouette-rows 200"),
    ("bench_cluster.py", "cluster --n 1000 --clusters 0 --full-up-to 0"),
    ("bench_cluster.py", "flow --n 200 --n-test 20 --time-steps 1 --steps 0"),
    ("bench_cluster.py", "flow --n 400 --n-test 1 --clusters 2 --batch-size 200 --time-steps 0 --steps 2"),
    ("bench_cluster.py", "flow --n 1 --n-test 20 --clusters 1 --batch-size 2 --time-steps 0 --steps 2"),
    ("bench_cluster.py", "flow --n 400 --n-test 20 --clusters 1 --batch-size 1 --time-steps 0 --steps 2"),
    ("bench_cluster.py", "cluster --n 400 --clusters 1 --batch-size 1 --full-up-to 0"),
    ("bench_distance.py", "--baseline /nonexistent --repeats 1"),
    ("bench_distance.py", "--repeats 0"),
    ("bench_distributed_data.py", "blocks --sizes 5 --ranks 1"),
    ("bench_distributed_data.py", "sample --sizes 1000 --ranks 0"),
    ("bench_distributed_data.py", "sample --sizes 1000 --ranks 1 100000"),
    ("bench_flow_collectives.py", "--steps 2 --repeat 1"),
    ("bench_flow_collectives.py", "--ranks 0 --n 30 --steps 3 --repeat 1"),
    ("bench_flow_mpi.py", "exact-step --ranks 0 --n 100"),
    ("bench_flow_mpi.py", "volume --n 1 --ranks 1 --halo 0.1"),
    ("bench_flow_mpi.py", "volume --n 15 --ranks 1"),
    ("bench_flow_mpi.py", "volume --n 20 10 --ranks 1"),
    ("bench_flow_mpi.py", "scaling --n 400 --n-test 1 --clusters 2 --steps 2"),
    ("bench_flow_mpi.py", "scaling --n 1 --n-test 0 --clusters 1 --steps 2"),
    ("bench_flow_mpi.py", "exact-step --n 1 --ranks 1"),
    ("bench_identity_check.py", "--sizes 0 100 --repeats 1"),
    ("bench_input_checks.py", "--repeats 0 --n 100 --trials 2"),
    ("bench_kernels.py", "--only nosuch --n 100 --mem-n 0 --repeat 1"),
    ("bench_kernels.py", "--mem-only --profile"),
    ("bench_kernels.py", "--profile --only delta"),
    ("bench_kernels.py", "--only delta --mem-only --mem-n 10 --n 10 --repeat 1"),
    ("bench_memory_estimate.py", "--quick extra"),
    ("bench_nn.py", "--n 3000 --device cuda"),
    ("bench_nn_mpi.py", "--model-only --lr-for abc"),
    ("bench_nn_mpi.py", "--model-only"),
    ("bench_nn_startup.py", "--repeat 0"),
    ("bench_ntk_methods.py", "--threads 0"),
    ("bench_ntk_operator.py", "--repeat 0"),
    ("bench_pointset_io.py", "--dir /nonexistent --sizes 10 --repeat 1"),
    ("bench_pointset_io.py", "--sizes 1.5 --repeat 1"),
    ("bench_pointset_io.py", "--sizes 10 --repeat 0"),
    ("bench_report_checkpoint.py", "--n 100 --dir /nonexistent"),
    ("kernel_spectrum.py", "/nonexistent.toml"),
    ("tune_table1.py", "/nonexistent --seeds 1"),
]


def bench(script: str, *args: str, ranks: int | None = None, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run a benchmark script (under `mpiexec -n ranks` when given; `env`: variables set over ENV) within TIMEOUT
    seconds."""
    cmd = [sys.executable, os.path.join(BENCH, script), *args]
    if ranks:
        cmd = ["timeout", str(TIMEOUT), mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=cwd or ROOT,
                          timeout=TIMEOUT + 30)


def refused(r: subprocess.CompletedProcess, script: str) -> str:
    """The one line of a refusal (exit status 2, nothing on stdout), naming the script."""
    lines = r.stderr.strip().splitlines()
    assert (r.returncode, r.stdout, len(lines)) == (2, "", 1), (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert lines[0].startswith(script), lines[0]
    return lines[0]


@pytest.mark.parametrize("script,args", REFUSED, ids=[f"{s} {a}" for s, a in REFUSED])
def test_bad_arguments_refused_in_one_line(script, args):
    refused(bench(script, *args.split()), script)


#: modules that take seconds to import, which no benchmark may import before its arguments are checked
HEAVY = ("torch", "optuna", "sklearn", "cupy")
#: a value an _args type refuses, for the scripts that use these modules; every other script: an unknown option
BAD_VALUE = {"bench_nn.py": "--n 0", "bench_ntk_methods.py": "--threads 0", "bench_ntk_operator.py": "--repeat 0",
             "tune_table1.py": "/nonexistent --seeds 1"}
#: runs each script (argv: the benchmarks folder, then JSON [[script, args], ...]) as __main__ in this one process,
#: printing per script a JSON [script, exit status, the HEAVY modules imported so far]
REFUSE_ALL = """import json, os, runpy, sys
bench, cases, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.path.insert(0, bench)
for script, args in cases:
    sys.argv = [os.path.join(bench, script), *args]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        status = 0
    except SystemExit as exc:
        status = exc.code
    print(json.dumps([script, status, [m for m in heavy if m in sys.modules]]), flush=True)
"""


def test_bad_arguments_refused_before_heavy_imports():
    """Every benchmark script refuses a bad argument (exit status 2) before it imports torch, optuna, scikit-learn
    or CuPy (bench_nn, bench_ntk_methods and bench_ntk_operator imported torch, tune_table1 optuna, at the top: a
    mistyped argument took seconds to be refused). The scripts run in one process, so the first script that
    imports such a module is the first row that names it."""
    scripts = sorted(s for s in os.listdir(BENCH) if s.endswith(".py") and not s.startswith("_"))
    cases = [[s, BAD_VALUE.get(s, "--no-such-option").split()] for s in scripts]
    r = subprocess.run([sys.executable, "-c", REFUSE_ALL, BENCH, json.dumps(cases), json.dumps(HEAVY)],
                       capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == scripts, r.stderr[-3000:]
    assert [row for row in rows if row[1:] != [2, []]] == [], r.stderr[-3000:]
    assert len(r.stderr.splitlines()) == len(scripts), r.stderr[-3000:]  # one refusal line each


@pytest.mark.parametrize("script,args", [("bench_identity_check.py", "--sizes 0 100 --repeats 1"),
                                         ("bench_input_checks.py", "--n 100 --trials 2 --repeats 0")])
def test_every_rank_refuses_together(script, args):
    """Under mpiexec the ranks parse the same arguments: all exit 2, rank 0 alone prints (rank 0 used to raise
    while printing and rank 1 waited in the next collective for ever)."""
    refused(bench(script, *args.split(), ranks=2), script)


def test_child_error_in_one_line():
    """`hpcflow nn` refuses the value of a --set-for: its own line comes out, with its exit status."""
    line = refused(bench("bench_nn_mpi.py", "--batches", "64", "--set-for", "64:training.lr=abc", "--ranks", "1",
                         "--single-threads", "1", "--epochs", "1", "--n", "200"), "bench_nn_mpi.py")
    assert "hpcflow nn: error:" in line and "training" in line and "lr" in line, line


def test_kept_run_reports_its_own_rows(tmp_path):
    """A kept --run is measured with the rows its checkpoint holds; another --n is refused."""
    kept = str(tmp_path / "kept")
    first = bench("bench_report_checkpoint.py", "--n", "150", "--run", kept, "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    with h5py.File(os.path.join(kept, "run", "checkpoint.h5"), "r") as f:
        rows = f["train/points"].shape[0]
    again = bench("bench_report_checkpoint.py", "--run", kept, "--dir", str(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["n_train"] == rows
    line = refused(bench("bench_report_checkpoint.py", "--n", "5000000", "--run", kept), "bench_report_checkpoint.py")
    assert "--n" in line and str(rows) in line, line


def small_study(folder) -> str:
    """A study directory as `hpcflow tune --out` leaves it: study.json, a journal of one finished trial, and
    best.toml (a flow of 60 train and 30 test points, 10 steps: one progress line)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from jobtexts import GAUSSIAN_KERNEL, flow_points

    os.makedirs(folder)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = JournalStorage(JournalFileBackend(os.path.join(folder, "study.journal")))
    study = optuna.create_study(study_name="small", storage=storage)
    trial = study.ask({"flow.dt": optuna.distributions.FloatDistribution(0.1, 1.0)})
    study.tell(trial, 1.5)
    with open(os.path.join(folder, "study.json"), "w") as fh:
        json.dump({"study": "small"}, fh)
    with open(os.path.join(folder, "best.toml"), "w") as fh:
        fh.write(flow_points(60, 30) + GAUSSIAN_KERNEL + '[flow]\ndt = 0.5\nsteps = 10\nloss = "ultralocal"\n')
    return folder


def test_tune_table1_missing_hand_file_refused_first(tmp_path):
    """A --hand file that does not exist is refused before any study seed runs."""
    study = small_study(str(tmp_path / "study"))
    refused(bench("tune_table1.py", study, "--hand", str(tmp_path / "nosuch.toml"), "--seeds", "1"), "tune_table1.py")


def test_tune_table1_refuses_a_job_of_another_kind(tmp_path):
    """A --hand job that is not a flow (an nn job has no train and test gains) is refused in one line before any
    flow runs (the flows ran, then the nn job, then a KeyError 'gain_train')."""
    study = small_study(str(tmp_path / "study"))
    line = refused(bench("tune_table1.py", study, "--hand", os.path.join(ROOT, "jobs", "nn_smoke.toml"),
                         "--seeds", "1"), "tune_table1.py")
    assert "nn_smoke.toml" in line and "'nn'" in line and "'flow'" in line, line


def test_tune_table1_counts_a_flow_that_stops(tmp_path):
    """A flow that finds no positive-definite step (dt 10^9) stops; its row has the gains up to the stop (the
    stopped flow's sigma(0) / sigma(0) = 1 here) and its steps taken, and the table goes on (a NumericalStop
    traceback ended it)."""
    from jobtexts import GAUSSIAN_KERNEL, flow_points

    study = small_study(str(tmp_path / "study"))
    job = tmp_path / "stops.toml"
    job.write_text(flow_points(60, 30) + GAUSSIAN_KERNEL + '[flow]\ndt = 1e9\nsteps = 10\nloss = "sigma"\n')
    r = bench("tune_table1.py", study, "--hand", str(job), os.path.join(study, "best.toml"), "--seeds", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("|")][2:]
    assert [row[0].strip() for row in rows] == [os.path.join(study, "best.toml"), str(job),
                                               os.path.join(study, "best.toml")], r.stdout
    assert [c.strip() for c in rows[1][1:4]] == ["1 ± 0", "1 ± 0", "[0]"], r.stdout
    assert "stops.toml, seed 1:" in r.stderr and "positive definite" in r.stderr, r.stderr[-2000:]



def test_cluster_peak_rss_in_gib():
    """bench_cluster's peak RSS is ru_maxrss (KiB) in GiB: the process's VmHWM (kB = KiB) / 2**20 (it was / 1e6)."""
    sys.path.insert(0, BENCH)
    try:
        import bench_cluster
    finally:
        sys.path.remove(BENCH)
    out = bench_cluster.one_clustering("batched", 300, 2, 150)
    with open("/proc/self/status") as fh:
        hwm_kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    assert out["peak_rss_gib"] == pytest.approx(hwm_kib / 2**20, rel=0.02)


def test_steps_only_on_one_cpu():
    """bench_nn_mpi --steps-only times a step on one CPU: one torch thread and one thread in every BLAS and OpenMP
    pool (NumPy's BLAS kept its default, and process_time counted its second thread), whatever the environment."""
    code = ("import json, sys, threadpoolctl, torch; sys.path.insert(0, sys.argv[1]); import bench_nn_mpi; "
            "bench_nn_mpi.step_times([32, 64], repeat=1); "
            "print(json.dumps([torch.get_num_threads()] + [p['num_threads'] for p in threadpoolctl.threadpool_info()]))")
    env = {k: v for k, v in ENV.items() if k not in ("HPCFLOW_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code, BENCH], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    threads = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(threads) >= 2 and set(threads) == {1}, threads


def test_memory_estimate_flow_labels_say_what_runs():
    """Each flow case of bench_memory_estimate says whether it is clustered ('unclustered', or a number of clusters)
    or runs its job as it is ('quickstart'): the loaded job's [clustering].method agrees (the quickstart is
    clustered; 'flow 4000/4000 gaussian' ran clustered though BENCHMARKS.md read it as unclustered)."""
    from hpcflow.jobs import registry

    sys.path.insert(0, BENCH)
    try:
        import bench_memory_estimate as bme
    finally:
        sys.path.remove(BENCH)
    flows = [(label, target, sets) for label, target, sets in bme.CASES if label.startswith("flow")]
    assert flows
    for label, target, sets in flows:
        _, cfg = registry.load(os.path.join(ROOT, target), sets, memory_check=False)
        clustered = cfg["clustering"]["method"] is not None
        if "unclustered" in label:
            assert not clustered, label
        elif "cluster" in label:
            assert clustered, label
        else:
            assert "quickstart" in label, f"{label!r} does not say whether it runs clustered ({clustered})"


def cells(line: str) -> list:
    """The cells of a GitHub-flavoured Markdown table row (one leading and one trailing pipe optional)."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [c.strip() for c in inner.split("|")]


def test_tune_table1_stdout_is_the_table(tmp_path):
    """The flows' progress lines go to stderr: stdout holds the study line, a blank line, the seeds, a blank line
    and the Markdown table, each of whose rows has as many cells as its delimiter row (the seeds, written after
    the header's last pipe, made a sixth header cell, and GitHub did not render the table)."""
    study = small_study(str(tmp_path / "study"))
    r = bench("tune_table1.py", study, "--hand", os.path.join(study, "best.toml"), "--seeds", "1", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("small: 1 trials") and lines[1] == "", r.stdout
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 4 and lines[-4:] == table and lines[-5] == "", r.stdout
    assert "1, 2" in "\n".join(lines[2:-4]), r.stdout  # the seeds, outside the table
    delimiter = cells(table[1])
    assert set(delimiter) == {"---"}, table[1]
    assert [len(cells(line)) for line in table] == [len(delimiter)] * 4, r.stdout
    assert cells(table[0]) == ["job", "train gain", "test gain", "steps taken", "rejected steps"], table[0]
    assert "step" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("ranks", [None, 2])
def test_input_checks_runs(ranks):
    """bench_input_checks runs at a tiny size and prints its JSON line: every check timed (it crashed once its
    stand-in rows lacked the g_fs, omega2 and weights that check_sets checks), the sampled rows of every chart
    counted."""
    r = bench("bench_input_checks.py", "--n", "50", "--trials", "2", "--repeats", "1", ranks=ranks)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out["ranks"], out["n"]) == (ranks or 1, 50)
    for key in ("check_indices_s", "check_sets_one_chart_s", "check_sets_many_charts_s", "journal_check_s",
                "optuna_open_s"):
        assert out[key] > 0, (key, out)
    assert out["charts"] > 1, out


def test_kept_run_path_refused_before_work(tmp_path):
    """A --run that cannot be made (a file on its way) is refused in one line before the run is made (it failed
    with a traceback after all the work); nothing is left on disk."""
    (tmp_path / "f").write_text("x")
    line = refused(bench("bench_report_checkpoint.py", "--n", "100", "--run", str(tmp_path / "f" / "kept"),
                         "--dir", str(tmp_path)), "bench_report_checkpoint.py")
    assert "--run" in line and "cannot be made" in line, line
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_memory_estimate_table_names_the_cases():
    """Every case of BENCHMARKS.md's memory-estimate tables is a label bench_memory_estimate prints and --only takes
    (the tables once named them otherwise, so no row could be rerun by its name)."""
    sys.path.insert(0, BENCH)
    try:
        import bench_memory_estimate as bme
    finally:
        sys.path.remove(BENCH)
    labels = {label for label, _, _ in bme.CASES}
    with open(os.path.join(ROOT, "BENCHMARKS.md")) as fh:
        text = fh.read()
    cases, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
        elif header is None:
            header = line
        elif "estimate MiB" in header and not line.startswith("|---"):
            cases.append(line.split("|")[1].strip())
    assert len(cases) >= 16, cases
    assert [c for c in cases if c not in labels] == [], labels


def test_child_stdin_is_empty():
    """A benchmark's child (mpiexec forwards its stdin to rank 0) reads nothing from the benchmark's stdin."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import _args; "
            "print(_args.child([sys.executable, '-c', 'import sys; print(repr(sys.stdin.read()))'], 'x').stdout)")
    r = subprocess.run([sys.executable, "-c", code, BENCH], input="typed ahead\n", capture_output=True, text=True,
                       env=ENV, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "''", r.stdout


def test_kernel_rate_per_thread_used():
    """bench_kernels scales a step's entries per CPU second by the threads it ran on (1 here), not by the cores
    the machine has."""
    sys.path.insert(0, BENCH)
    try:
        import bench_kernels
    finally:
        sys.path.remove(BENCH)
    from hpcflow.geometry import Hypersurface

    ps = Hypersurface.fermat(3).sample(60, seed=0)
    r = bench_kernels.entries_per_second(ps, bench_kernels.gradients(ps), "gaussian", {"width": 1.0, "engine": "numpy"},
                                         tile=32, threads=1, repeat=1)
    assert r["threads"] == 1
    assert r["entries_per_cpu_second_times_threads"] == pytest.approx(60 ** 2 / r["cpu_seconds"], rel=1e-12)


def _bench_nn_mpi(monkeypatch, tmp_path, child):
    """bench_nn_mpi with its `hpcflow nn` child replaced by `child(out_dir)` and its temporary folders in
    tmp_path."""
    import tempfile

    sys.path.insert(0, BENCH)
    try:
        import bench_nn_mpi
    finally:
        sys.path.remove(BENCH)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def fake(cmd, what, **kwargs):
        return child(cmd[cmd.index("--out") + 1])

    monkeypatch.setattr(bench_nn_mpi._args, "child", fake)
    return bench_nn_mpi


def test_nn_mpi_comm_seconds_per_epoch_from_the_epochs(monkeypatch, tmp_path):
    """comm_seconds_per_epoch is each rank's mean over the epochs of history/comm_seconds; the summary's
    per_rank.comm_seconds (every collective of the run: set-up and validation too) was divided by the epochs, which
    gave more seconds in collectives per epoch than the epoch took."""
    def child(run):
        os.makedirs(run)
        with open(os.path.join(run, "summary.json"), "w") as fh:
            json.dump({"config": {"training": {"lr": 1e-3}}, "per_rank": [
                {"comm_seconds": 5.0, "allreduce_seconds": 0.2, "allreduce_calls": 8},
                {"comm_seconds": 7.0, "allreduce_seconds": 0.4, "allreduce_calls": 8}]}, fh)
        with h5py.File(os.path.join(run, "nn.h5"), "w") as f:
            f["history/epoch_seconds"] = [1.0, 2.0]
            f["history/comm_seconds"] = [[0.1, 0.3], [0.5, 0.9]]
            f["history/sigma_val"] = [0.5, 0.4, 0.3]

    res = _bench_nn_mpi(monkeypatch, tmp_path, child).run_case(2, 1, 64, 2, 200, None)
    assert res["comm_seconds_per_epoch"] == pytest.approx([0.3, 0.6])
    assert res["comm_seconds_whole_run"] == [5.0, 7.0]
    assert res["mean_epoch_seconds"] == 1.5


def test_nn_mpi_failed_case_leaves_no_folder(monkeypatch, tmp_path):
    """A case whose `hpcflow nn` fails (its one line, then SystemExit) leaves no bench_nn_mpi_* folder behind."""
    def child(run):
        raise SystemExit(1)

    bench_nn_mpi = _bench_nn_mpi(monkeypatch, tmp_path, child)
    with pytest.raises(SystemExit):
        bench_nn_mpi.run_case(2, 1, 64, 2, 200, None)
    assert os.listdir(tmp_path) == []


def test_kernel_rates_of_delta_are_null():
    """The Delta kernel gathers each point's nearest train row (no N^2 kernel entries): bench_kernels and bench_gpu
    print no entries/s for it (N^2 / step), while a Gaussian step's rate is N^2 / its step seconds."""
    sys.path.insert(0, BENCH)
    try:
        import bench_gpu
        import bench_kernels
    finally:
        sys.path.remove(BENCH)
    from hpcflow.geometry import Hypersurface

    ps = Hypersurface.fermat(3).sample(60, seed=0)
    r = bench_kernels.entries_per_second(ps, bench_kernels.gradients(ps), "delta", {}, tile=32, threads=1, repeat=1)
    assert (r["entries_per_second"], r["entries_per_cpu_second_times_threads"]) == (None, None), r
    delta = bench_gpu.flow_case("delta", 60, 2, "numpy", 1)
    assert delta["entries_per_second"] is None and delta["best_step_seconds"] > 0, delta
    gauss = bench_gpu.flow_case("gaussian", 60, 2, "numpy", 1)
    assert gauss["entries_per_second"] == pytest.approx(60 ** 2 / gauss["best_step_seconds"], rel=1e-12)


def test_naive_kernel_step_on_the_threads_given():
    """bench_kernels --threads T runs the naive NumPy reference step on T BLAS threads as well, and its row says
    so (it ran on BLAS's default, here 2, and printed 2, next to rows on 1); the limit ends with the row."""
    code = ("import json, sys, threadpoolctl; sys.path.insert(0, sys.argv[1]); import bench_kernels as bk; "
            "from hpcflow.geometry import Hypersurface; threadpoolctl.threadpool_limits(2, user_api='blas'); "
            "seen = []; step = bk.naive_step; "
            "bk.naive_step = lambda *a, **k: (seen.append(bk.blas_threads()), step(*a, **k))[1]; "
            "ps = Hypersurface.fermat(3).sample(40, seed=0); g = bk.gradients(ps); "
            "one = bk.naive_row(ps, g, threads=1, repeat=2); after = bk.blas_threads(); "
            "default = bk.naive_row(ps, g, threads=None, repeat=1); "
            "print(json.dumps([seen, one['threads'], after, default['threads']]))")
    r = subprocess.run([sys.executable, "-c", code, BENCH], capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [[1, 1, 2], 1, 2, 2], r.stdout


def test_distance_ratio_does_not_favour_the_side_run_first(monkeypatch, capsys):
    """bench_distance --baseline: the first call of a case costs more whichever side makes it (page faults, caches
    warmed for both). On a clock that charges 1 s for a case's first call and 0.01 s for every other, the same code
    on both sides gives a ratio of 1 (the tree side always ran first and timed that call: ratio 100 at --repeats 1,
    as 2.1-2.7 came out for the same code on a real clock)."""
    import types

    sys.path.insert(0, BENCH)
    try:
        import bench_distance
    finally:
        sys.path.remove(BENCH)
    clock, seen = [0.0], set()

    def side():
        def call(name):
            def f(*args, **kwargs):
                clock[0] += 0.01 if name in seen else 1.0
                seen.add(name)
            return f
        return types.SimpleNamespace(**{n: call(n) for n in ("fs_distance", "fs_distance_paired",
                                                             "projector_features", "normalize")})

    monkeypatch.setattr(bench_distance, "tree", side())
    monkeypatch.setattr(bench_distance, "load_baseline", lambda root: side())
    monkeypatch.setattr(bench_distance, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    for repeats in ("1", "2"):
        seen.clear()
        bench_distance.main(["--repeats", repeats, "--baseline", ROOT])
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 5 and {r["ratio"] for r in rows} == {1.0}, rows


#: (script, arguments) that start their work at once (the old scripts started children that failed on a bad
#: HPCFLOW_THREADS after their header, or measured without reading it)
BAD_ENVIRONMENT = [
    ("bench_sampler.py", "--sizes 1000 --threads 1".split()),
    ("bench_kernels.py", "--only delta --n 200 --repeat 1 --mem-n 0".split()),
    ("bench_cluster.py", "cluster --n 1000 --clusters 2 --silhouette-rows 0 --full-up-to 0".split()),
    ("bench_distributed_data.py", "sample --sizes 1000 --ranks 1".split()),
    ("bench_memory_estimate.py", ["--only", "sample N=2e3 dim=8"]),
    ("bench_identity_check.py", "--sizes 100 --repeats 1".split()),
    ("bench_nn_mpi.py", "--model-only --alpha 1e-6 --beta 1e-10 --c 1e-9 --batches 64".split()),
]


@pytest.mark.parametrize("script,args", BAD_ENVIRONMENT, ids=[s for s, _ in BAD_ENVIRONMENT])
def test_bad_thread_variable_refused_before_any_work(script, args):
    """HPCFLOW_THREADS=abc is refused as hpcflow's commands and the analysis scripts refuse it: one line naming the
    variable, exit 2, nothing on stdout (no header)."""
    line = refused(bench(script, *args, env={"HPCFLOW_THREADS": "abc"}), script)
    assert "HPCFLOW_THREADS='abc'" in line and "integer" in line, line


def test_bad_thread_variable_refused_by_every_rank():
    """Under mpiexec every rank refuses the environment together, rank 0 saying it once."""
    line = refused(bench("bench_identity_check.py", "--sizes", "100", "--repeats", "1", ranks=2,
                         env={"HPCFLOW_THREADS": "0"}), "bench_identity_check.py")
    assert "HPCFLOW_THREADS='0'" in line, line


#: a parent that runs one child through _args.child; the child starts a grandchild (as mpiexec starts its ranks),
#: writes both pids to argv[2] and waits
STOPPED_PARENT = r"""import sys
sys.path.insert(0, sys.argv[1])
import _args
code = ("import os, subprocess, sys; g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "open(sys.argv[1], 'w').write(f'{os.getpid()} {g.pid}'); g.wait()")
_args.child([sys.executable, "-c", code, sys.argv[2]], "the sleeper")
"""


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signame,status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_script_stops_its_child_and_what_the_child_started(tmp_path, signame, status):
    """SIGTERM (or Ctrl-C) to a benchmark script while its measuring child runs ends the child and the processes
    the child started (an mpiexec's ranks), and the script with one line and 128 + the signal; the child was left
    running (SIGTERM), its own child too (SIGINT: subprocess.run killed the child alone)."""
    import signal
    import time

    pids, parent = tmp_path / "pids", tmp_path / "parent.py"
    parent.write_text(STOPPED_PARENT)
    proc = subprocess.Popen([sys.executable, str(parent), BENCH, str(pids)], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C raises
    started = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = [int(p) for p in pids.read_text().split()]
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT  # (a killed process may take a moment to go)
        while any(map(_alive, started)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in started if _alive(p)] == [], started
        assert (proc.returncode, out) == (status, ""), (proc.returncode, err[-2000:])
        assert err.splitlines() == [f"parent.py: stopped by {signame}: the sleeper was stopped"], err[-2000:]
    finally:
        proc.kill()
        for pid in started:  # what the old script left running
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _nn_mpi_main(monkeypatch, argv) -> list:
    """bench_nn_mpi's main on `argv` with its Allreduce child's output made up (the same rows each call) and its
    `hpcflow nn` cases recorded, not run; the cases run, as (ranks, threads, batch, epochs, n)."""
    sys.path.insert(0, BENCH)
    try:
        import bench_nn_mpi
    finally:
        sys.path.remove(BENCH)
    rows = [{"backend": "mpi", "allreduce_floats": n, "ranks": 2, "seconds": 1e-6 + 1e-9 * n} for n in (1, 1000)]

    def child(cmd, what, **kwargs):
        assert "--worker" in cmd, cmd
        return subprocess.CompletedProcess(cmd, 0, "".join(json.dumps(r) + "\n" for r in rows), "")

    cases = []

    def run_case(ranks, threads, batch, epochs, n, lr, extra=(), blas=None):
        cases.append((ranks, threads, batch, epochs, n))
        return {"best_epoch_seconds": 1.0}

    monkeypatch.setattr(bench_nn_mpi._args, "child", child)
    monkeypatch.setattr(bench_nn_mpi, "run_case", run_case)
    monkeypatch.setattr(sys, "argv", ["bench_nn_mpi.py", *argv])
    bench_nn_mpi.main()
    return cases


def test_nn_mpi_allreduce_alone_times_the_allreduce_alone(monkeypatch, capsys):
    """--allreduce alone prints the Allreduce rows and their fit, and runs no `hpcflow nn` case (it ran the six
    10^5-point cases of the default epoch comparison after them)."""
    assert _nn_mpi_main(monkeypatch, ["--allreduce"]) == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["allreduce_floats"] for r in lines[:-1]] == [1, 1000], lines
    assert lines[-1]["fit"] == "allreduce" and {"alpha_seconds", "beta_seconds_per_byte"} <= set(lines[-1]), lines


def test_nn_mpi_allreduce_with_epoch_options_runs_the_comparison(monkeypatch, capsys):
    """--allreduce with an option of the epoch comparison runs that comparison after the fit, with the defaults
    of the options not given."""
    cases = _nn_mpi_main(monkeypatch, ["--allreduce", "--epochs", "1", "--batches", "64"])
    assert cases == [(1, 2, 64, 1, 100_000), (1, 1, 64, 1, 100_000), (2, 1, 64, 1, 100_000)]
    default = [(ranks, threads, batch, 2, 100_000) for batch in (64, 1024)
               for ranks, threads in ((1, 2), (1, 1), (2, 1))]
    assert _nn_mpi_main(monkeypatch, []) == default  # (no --allreduce: the default comparison, as before)


def test_kernels_peak_memory_names_the_tile_edge_used():
    """On a CPU the operator caps the tile edge at hpcflow.kernels.base.CACHE_EDGE (512): --mem-only printed the
    2048 asked for as "tile"; now the edge used, and the one asked beside it where they differ."""
    sys.path.insert(0, BENCH)
    try:
        import bench_kernels
    finally:
        sys.path.remove(BENCH)
    asked = bench_kernels.peak_memory(600, 2048, 1)
    assert (asked["tile"], asked["tile_asked"]) == (512, 2048), asked
    small = bench_kernels.peak_memory(600, 300, 1)
    assert small["tile"] == 300 and "tile_asked" not in small, small


#: a parent that runs `sh -c argv[3]` through _args.child (a 1 s limit where argv[4] is "timeout"), its stop grace
#: 2 s; the stop requests `child` sends go to argv[2] as lines, with the stop grace's start
GRACE_PARENT = r"""import os, signal, sys
sys.path.insert(0, sys.argv[1])
import _args
_args.STOP_GRACE = 2.0
signal_group = _args._signal_group


def noted(pgid, sig):
    signal_group(pgid, sig)
    with open(sys.argv[2] + ".sent", "a") as fh:
        fh.write(f"{int(sig)}\n")


_args._signal_group = noted
_args.child(["sh", "-c", sys.argv[3], "sh", sys.argv[2]], "the sleeper",
            timeout=1.0 if sys.argv[4] == "timeout" else None)
"""


def _grace_parent(tmp_path, script: str, mode: str):
    import signal

    parent, pids = tmp_path / "parent.py", tmp_path / "pids"
    parent.write_text(GRACE_PARENT)
    proc = subprocess.Popen([sys.executable, str(parent), BENCH, str(pids), script, mode], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C raises
    return proc, pids


def _wait_for(check) -> None:
    import time

    deadline = time.monotonic() + TIMEOUT
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


def _reap(proc, started) -> None:
    import signal

    proc.kill()
    proc.communicate()
    for pid in started:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_request_while_a_timed_out_child_is_stopped_still_kills_it(tmp_path, signame):
    """A SIGTERM (or Ctrl-C) while a child past its limit has its stop grace (it ignores SIGTERM) leaves that stop
    to go on: the child is killed when the grace ends and the script ends with the timeout line, status 1. The
    request was raised out of the grace's wait: no SIGKILL, the script waited for the child to end by itself and
    ended 143 with no line (a traceback for Ctrl-C)."""
    import signal

    proc, pids = _grace_parent(tmp_path, 'echo $$ > "$1"; trap "" TERM; exec sleep 30', "timeout")
    started = []
    try:
        _wait_for(lambda: (pids.parent / "pids.sent").exists())  # the timeout's SIGTERM went out: the grace runs
        started = [int(p) for p in pids.read_text().split()]
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=TIMEOUT)
        assert [p for p in started if _alive(p)] == [], started
        assert (proc.returncode, out) == (1, ""), (proc.returncode, err[-2000:])
        assert err.splitlines() == ["parent.py: error: the sleeper ran past its limit of 1 s and was stopped"], err
        assert (pids.parent / "pids.sent").read_text().split() == [str(int(signal.SIGTERM)),
                                                                   str(int(signal.SIGKILL))]
    finally:
        _reap(proc, started)


def test_a_stopped_child_leaves_nothing_of_its_group_running(tmp_path):
    """A process the child started that ignores SIGTERM is killed when the stop grace ends, though the child itself
    ended on the SIGTERM: it was left running (SIGKILL went out only where the child had not ended)."""
    import signal

    script = 'echo $$ > "$1"; (trap "" TERM; exec sleep 300) & echo $! >> "$1"; sleep 200'
    proc, pids = _grace_parent(tmp_path, script, "none")
    started = []
    try:
        _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
        started = [int(p) for p in pids.read_text().split()]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
        _wait_for(lambda: not any(map(_alive, started)))  # (a killed process may take a moment to go)
        assert [p for p in started if _alive(p)] == [], started
        assert (proc.returncode, out) == (143, ""), (proc.returncode, err[-2000:])
        assert err.splitlines() == ["parent.py: stopped by SIGTERM: the sleeper was stopped"], err
    finally:
        _reap(proc, started)
