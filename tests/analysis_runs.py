"""Small run directories of every job kind, produced once per pytest run with `python -m hpcflow run/nn`,
and helpers that read figures back (line data, images, bars) for the analysis and report tests."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np

from jobtexts import GAUSSIAN_KERNEL, SMALL_NET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

JOBS = {
    "flow": ("run", """
[job]
kind = "flow"
[geometry]
manifold = "fermat"
dim = 3
chart = [0, 1]
n_train = 120
n_test = 80
seed = 0
[kernel]
name = "delta"
[flow]
dt = 1.0
steps = 6
loss = "ultralocal"
"""),
    "flow_gauss": ("run", """
[job]
kind = "flow"
[geometry]
manifold = "fermat"
dim = 3
chart = [0, 1]
n_train = 100
n_test = 60
seed = 3
""" + GAUSSIAN_KERNEL + """[flow]
dt = 0.65
steps = 5
loss = "ultralocal"
"""),
    "noise": ("run", """
[job]
kind = "noise_scan"
[geometry]
manifold = "fermat"
dim = 3
chart = [0, 1]
n_train = 80
seed = 0
[kernel]
name = "delta"
[flow]
dt = 1.0
steps = 4
loss = "ultralocal"
[noise]
scales = [0.0, 0.01, 0.1]
"""),
    "scaling": ("run", """
[job]
kind = "distance_scaling"
[geometry]
manifold = "fermat"
dim = 3
[scaling]
n_points = [50, 100, 200, 400]
fit_from = 100
"""),
    "clustering": ("run", """
[job]
kind = "clustering"
[points]
manifold = "fermat"
dim = 3
n_points = 60
[clustering]
n_clusters = 3
batch_size = 30
"""),
    "local_limit": ("run", """
[job]
kind = "local_limit"
[geometry]
manifold = "fermat"
dim = 3
chart = [0, 1]
n_train = 80
n_test = 40
[flow]
dt = 0.5
steps = 3
loss = "ultralocal"
[local_limit]
widths = [1.0, 0.1]
"""),
    "nn": ("nn", """
[job]
kind = "nn"
[geometry]
manifold = "fermat"
dim = 3
n_train = 200
n_val = 100
""" + SMALL_NET + """[training]
epochs = 3
batch_size = 100
threads = 1
[ntk]
n_train_points = 4
n_test_points = 4
[width_sweep]
widths = [4, 16]
epochs = 1
n_train = 100
[kernel_flow]
enabled = false
n_train = 100
n_test = 100
"""),
}

_CACHE: dict = {}


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    e.pop("HPCFLOW_BACKEND", None)
    return e


def run_dirs(tmp_path_factory) -> dict:
    """{kind: run directory} of the JOBS, made once per pytest run and shared by every test module, also across
    pytest-xdist's workers: the first to ask makes them under the run's common temporary folder, holding a lock
    that the others wait on; the tests read them (a test that changes one works on a copy)."""
    if "runs" not in _CACHE:
        from filelock import FileLock

        base = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):  # basetemp is the worker's folder in the run's
            base = base.parent
        root = os.path.join(base, "analysis_runs")
        with FileLock(root + ".lock"):
            if not os.path.exists(os.path.join(root, "made")):
                _make(root)
                with open(os.path.join(root, "made"), "w", encoding="utf-8"):
                    pass
        _CACHE["runs"] = {name: os.path.join(root, name) for name in JOBS}
    return _CACHE["runs"]


#: jobs started first: the network job alone (torch's import) takes about as long as the others together, so
#: begun first it runs beside them instead of alone at the end
LONGEST_FIRST = ("nn",)


def _make(key: str) -> None:
    """Run every job of JOBS into KEY/NAME, one thread each, two at a time (the jobs are independent), the next
    one starting as soon as either slot is free."""
    from concurrent.futures import ThreadPoolExecutor

    shutil.rmtree(key, ignore_errors=True)  # what a worker that failed left
    os.makedirs(key)
    order = sorted(JOBS, key=lambda name: name not in LONGEST_FIRST)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {name: pool.submit(_run_job, key, name) for name in order}
    for name, future in done.items():
        proc = future.result()
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


def _run_job(key: str, name: str) -> subprocess.CompletedProcess:
    """Job NAME of JOBS written to KEY/NAME.toml and run into KEY/NAME."""
    command, text = JOBS[name]
    job = os.path.join(key, f"{name}.toml")
    with open(job, "w", encoding="utf-8") as fh:
        fh.write(text)
    return subprocess.run([sys.executable, "-m", "hpcflow", command, job, "--out", os.path.join(key, name)], cwd=ROOT,
                          env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)


def forced(run_dir, verb: str = "run") -> str:
    """The advice to rerun the job of run directory `run_dir` with --force, with the command that does it: its
    job.toml run into it again (`hpcflow VERB`), the paths absolute and quoted for a POSIX shell."""
    where = os.path.abspath(run_dir)
    return (f"rerun the job with --force: hpcflow {verb} {shlex.quote(os.path.join(where, 'job.toml'))} --out "
            f"{shlex.quote(where)} --force")


def md_rows(text) -> dict:
    """{first cell: [cells]} of the body rows of the markdown tables in `text` (header and rule rows left out)."""
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in text.splitlines()
            if line.startswith("| ")]  # an escaped '\|' is a cell's text
    return {r[0]: r for r in rows if r[0] not in ("run",)}


def script(name, *args, timeout=180):
    """Run analysis/NAME.py as users do; the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "analysis", f"{name}.py"), *map(str, args)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=timeout)


def assert_png(path) -> None:
    """A PNG file that decodes, with a picture larger than a thumbnail."""
    from PIL import Image

    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
        px = np.asarray(im.convert("L"))
    assert px.std() > 1.0, f"{path} is blank"


def lines_of(ax) -> list:
    """(x, y) float arrays of every line of an axes that has points; AssertionError on bare axes."""
    out = [(np.asarray(l.get_xdata(), float), np.asarray(l.get_ydata(), float)) for l in ax.get_lines()
           if len(l.get_xdata())]
    assert out, "axes draw no line"
    return out


def find_line(ax, x, y) -> None:
    """Assert some line of `ax` is exactly (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    for lx, ly in lines_of(ax):
        if lx.shape == x.shape and np.array_equal(lx, x) and np.array_equal(ly, y):
            return
    raise AssertionError(f"no line with the expected data among {len(lines_of(ax))} lines")


def make_study(directory, run_dir, values):
    """A maximising Optuna study in directory/study.journal; the best trial's user attribute run_dir = run_dir."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    os.makedirs(directory, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(os.path.join(directory, "study.journal")))
    study = optuna.create_study(study_name="table1_delta", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for i, value in enumerate(values):
        trial = study.ask({"flow.dt": optuna.distributions.FloatDistribution(0.1, 10, log=True),
                           "kernel.width": optuna.distributions.FloatDistribution(0.01, 1.0)})
        trial.set_user_attr("run_dir", run_dir if i == int(np.argmax(values)) else f"trials/{i:04d}")
        study.tell(trial, value)
    return study


def interrupted_copy(src, dst, status: str = "preempted") -> str:
    """A copy of flow run `src` with checkpoint.h5's status attribute `status` and no summary.json: "preempted" as
    SIGTERM left it before summaries of preempted runs, "running" as SIGKILL (a node failure) leaves it."""
    import shutil

    import h5py

    shutil.copytree(src, dst)
    os.remove(os.path.join(dst, "summary.json"))
    with h5py.File(os.path.join(dst, "checkpoint.h5"), "a") as f:
        f.attrs["status"] = status
    return os.fspath(dst)


def extended_copy(src, dst, described: int) -> str:
    """A copy of finished flow run `src` as if it had finished at step `described`, then been extended with
    --resume and preempted at its last step: summary.json describes `described`, checkpoint.h5 is further on."""
    import json
    import shutil

    import h5py

    shutil.copytree(src, dst)
    with open(os.path.join(dst, "summary.json"), encoding="utf-8") as fh:
        s = json.load(fh)
    with open(os.path.join(dst, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump({**s, "checkpoint_step": described, "steps_taken": described}, fh)
    with h5py.File(os.path.join(dst, "checkpoint.h5"), "a") as f:
        f.attrs["status"] = "preempted"
    return os.fspath(dst)


def diverged_run(directory, name: str = "flow", *, status: int = 3, with_proc: bool = False):
    """Job `name` of JOBS with dt = 2 and no halving, in directory/diverged_NAME: its flows take one step and stop
    at step 2 (no positive-definite step); the job exits 3 ("diverged"). The run directory (and the
    CompletedProcess with with_proc)."""
    os.makedirs(directory, exist_ok=True)
    job = os.path.join(directory, f"{name}.toml")
    with open(job, "w", encoding="utf-8") as fh:
        fh.write(JOBS[name][1])
    out = os.path.join(directory, "diverged" if name == "flow" else f"diverged_{name}")
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", job, "--out", out, "--quiet", "--set", "flow.dt=2",
                           "--set", "flow.max_halvings=0"], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == status, proc.stderr
    return (out, proc) if with_proc else out
