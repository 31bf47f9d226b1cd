"""The memory refusal of sampling (`Hypersurface.sample`, `hpcflow sample`) states a count that fits: the largest
n_points whose modelled peak (`sampling.sample_memory`: the set, the sampler's blocks and batches with their
temporaries, the rows gathered under MPI, the interpreter) fits the limit, by the model the check itself uses, so
that count passes the check and one more is refused; and the model bounds the peak measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tracemalloc

import pytest

import hpcflow.resources
from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, sampling
from hpcflow.geometry.sampling import check_sample_memory, sample_memory
from hpcflow.resources import SAMPLE_BASE_BYTES

MiB = 2**20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Began(Exception):
    """Raised where the sampling would begin its work."""


def began(*args, **kwargs):
    raise Began()


@pytest.fixture
def limit(monkeypatch):
    """Sets the memory this process may use (`resources.memory_limit`) to the bytes given."""
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)

    def set_limit(nbytes):
        monkeypatch.setattr(hpcflow.resources, "memory_limit", lambda **kw: (float(nbytes), "a test limit"))

    return set_limit


def stated(exc) -> int:
    m = re.search(r"sample at most (\d+) points a call", str(exc.value))
    assert m, str(exc.value)
    return int(m.group(1))


@pytest.mark.parametrize("threads, chart", [(1, None), (3, None), (2, (0, 1))])
def test_the_stated_count_passes_the_check_and_one_more_is_refused(limit, monkeypatch, threads, chart):
    limit(SAMPLE_BASE_BYTES + 300 * MiB)
    monkeypatch.setattr(sampling, "sample_waves", began)
    X = Hypersurface.fermat(3)
    with pytest.raises(ConfigError) as exc:
        X.sample(10**9, seed=0, threads=threads, chart=chart)
    n = stated(exc)
    assert n > 0
    with pytest.raises(Began):
        X.sample(n, seed=0, threads=threads, chart=chart)
    for more in (1, 2, 1000):
        with pytest.raises(ConfigError, match=rf"^n_points={n + more}: .*sample at most {n} points a call"):
            X.sample(n + more, seed=0, threads=threads, chart=chart)


@pytest.mark.parametrize("layout", ["all", "share", "root"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_the_stated_count_of_every_layout_passes_and_one_more_is_refused(limit, layout, ranks):
    limit(SAMPLE_BASE_BYTES + 200 * MiB)
    X = Hypersurface.fermat(3)
    kw = dict(layout=layout, ranks=ranks, threads=2, error=ConfigError)
    with pytest.raises(ConfigError) as exc:
        check_sample_memory(X, 10**9, **kw)
    n = stated(exc)
    check_sample_memory(X, n, **kw)
    with pytest.raises(ConfigError, match=rf"^n_points={n + 1}: .*sample at most {n} points"):
        check_sample_memory(X, n + 1, **kw)


def test_a_limit_below_one_batch_says_no_point_fits(limit, monkeypatch):
    limit(SAMPLE_BASE_BYTES)  # the interpreter alone: the first batch cannot be formed
    monkeypatch.setattr(sampling, "sample_waves", began)
    with pytest.raises(ConfigError, match=r"^n_points=1: .*not even one point fits"):
        Hypersurface.fermat(3).sample(1, seed=0, threads=1)


def test_hpcflow_sample_states_the_n_it_then_takes(limit, monkeypatch, tmp_path, capsys):
    """The command's refusal (by the model of `resources.estimate_sample`, which its own check shares) names the --n
    that fits; that --n passes every check (the sampling begins: its stand-in runs out of memory), one more does not."""
    limit(SAMPLE_BASE_BYTES + 300 * MiB)
    out = str(tmp_path / "p.h5")
    base = ["sample", "--threads", "2", "--quiet", "--out", out]
    assert main([*base, "--n", "1e9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed" in err, err
    n = int(re.search(r"give --n (\d+) or less", err).group(1))

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(sampling, "sample_waves", out_of_memory)
    assert main([*base, "--n", str(n)]) == 5
    assert "out of memory mid-run (MemoryError)" in capsys.readouterr().err
    assert main([*base, "--n", str(n + 1)]) == 2
    assert f"give --n {n} or less" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_the_commands_count_is_the_samplers_for_the_threads_a_rank_samples_with(limit, monkeypatch, tmp_path, capsys):
    """Without --threads a rank samples with its share of the CPUs (`limit_threads`: here 2 of the 8 its process
    may use), and the command's refusal states the --n the sampler's own check states for those threads, not for
    all 8 (a larger modelled peak, a smaller count)."""
    from hpcflow.parallel import comm
    from hpcflow.resources import THREAD_VARIABLES

    for name in ("HPCFLOW_THREADS", *THREAD_VARIABLES):  # (limit_threads sets them: restored after the test)
        monkeypatch.setenv(name, "1")
        monkeypatch.delenv(name)
    limit(SAMPLE_BASE_BYTES + 300 * MiB)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(comm, "owned_cpus", lambda mask, sharing: (2, "a share of 2 CPUs"))
    out = str(tmp_path / "p.h5")
    assert main(["sample", "--quiet", "--out", out, "--n", "1e9"]) == 2
    n = int(re.search(r"give --n (\d+) or less", capsys.readouterr().err).group(1))
    counts = {}
    for threads in (2, 8):
        with pytest.raises(ValueError) as exc:
            check_sample_memory(Hypersurface.fermat(3), 10**9, layout="root", threads=threads)
        counts[threads] = stated(exc)
    assert counts[8] < counts[2]
    assert n == counts[2], (n, counts)
    assert os.listdir(tmp_path) == []


def test_sampling_the_stated_count_stays_within_the_limit(limit):
    """Fails where the count is of the set's arrays alone: sampling that many points takes about twice as much
    (the blocks and the set concatenated from them) and the first batches on top. The heap the sampling allocates
    (NumPy's buffers and the Python objects, exactly, by tracemalloc) must fit the limit less the interpreter's
    resident base (SAMPLE_BASE_BYTES, which the next test bounds)."""
    room = 60 * MiB
    limit(SAMPLE_BASE_BYTES + room)
    X = Hypersurface.fermat(3)
    X.sample(10, seed=0, threads=1)  # (imports and caches before the measurement)
    with pytest.raises(ConfigError) as exc:
        X.sample(10**9, seed=0, threads=1)
    n = stated(exc)
    tracemalloc.start()
    try:
        ps = X.sample(n, seed=0, threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ps) == n
    assert peak <= room, (n, peak / MiB)


@pytest.mark.parametrize("n, threads, chart", [(1, 1, None), (20000, 1, None), (20000, 3, None),
                                               (2000, 1, (0, 1)), (60000, 2, None)])
def test_the_model_bounds_the_heap_the_sampling_allocates(n, threads, chart):
    """tracemalloc counts every byte NumPy and Python allocate after it starts (the interpreter, imported before,
    is the model's base, left out): no tolerance is needed on this side of an upper bound, and the count does not
    depend on the machine. LAPACK's workspaces, not traced, are a few kB (the model's heap part covers them)."""
    X = Hypersurface.fermat(3)
    X.sample(10, seed=0, threads=1)
    tracemalloc.start()
    try:
        ps = X.sample(n, seed=3, threads=threads, chart=chart)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ps) == n
    model = sample_memory(3, n, threads=threads, one_chart=chart is not None)
    assert peak <= sum(model.values()) - model["base"], (peak / MiB, model)


MEASURE = """
import sys
from hpcflow.geometry import Hypersurface
from hpcflow.resources import peak_rss
X = Hypersurface.fermat(3)
X.sample(100, seed=0, threads=1)
before = peak_rss()
ps = X.sample(int(sys.argv[1]), seed=1, threads=int(sys.argv[2]))
print(before, peak_rss())
"""


@pytest.mark.parametrize("n, threads", [(50000, 1), (150000, 2)])
def test_the_model_bounds_the_resident_peak_of_a_fresh_process(n, threads):
    """In a fresh interpreter (hpcflow.geometry and one small sample loaded: the base, measured there, as what the
    interpreter, NumPy, its BLAS and the C library take differs by build and machine) the peak resident set
    (`resources.peak_rss`: VmHWM, as ru_maxrss is inherited from the parent across exec) grows by at most the
    model's parts other than its base while n points are sampled. Tolerance: RSS counts whole pages, so each mapped
    buffer may show up to one page more than its bytes; with at most 64 live buffers at the peak and pages of up to
    64 KiB (aarch64), 4 MiB."""
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_QUIET="1")
    r = subprocess.run([sys.executable, "-c", MEASURE, str(n), str(threads)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    before, after = map(int, r.stdout.split())
    model = sample_memory(3, n, threads=threads)
    assert after - before <= sum(model.values()) - model["base"] + 4 * MiB, ((after - before) / MiB, model)
