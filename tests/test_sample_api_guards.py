"""Hypersurface.sample refuses before any work a set whose sampling would peak above the memory the process may use
(as `hpcflow sample --n` is refused; the count it states: test_sample_memory_fits.py), and a count above 2**62 naming
the bound; it samples no more than max_batches batches; `hpcflow sample` says how many intersection points its
dropped ones are of, warns of a --threads above the CPUs as of HPCFLOW_THREADS, and refuses before sampling a
--force onto a file that cannot be replaced."""

from __future__ import annotations

import errno
import os
import re
import subprocess

import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, PointSet, sampling
from hpcflow.geometry.sampling import LINES_PER_BATCH
from hpcflow.parallel import comm as pcomm

FIELDS = ("points", "weights", "omega2", "g_fs", "chart", "jacobian")


class Began(Exception):
    """Raised where the sampling would begin its work."""


@pytest.fixture
def no_work(monkeypatch):
    """Sampling that reaches its first wave raises Began (so a missing refusal fails at once, not after minutes)."""
    def began(*args, **kwargs):
        raise Began()

    monkeypatch.setattr(sampling, "sample_waves", began)
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)


def test_a_sample_whose_arrays_cannot_fit_is_refused_before_any_work(no_work):
    with pytest.raises(ConfigError) as exc:
        Hypersurface.fermat(3).sample(1e12, seed=0)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("n_points=1000000000000: ") and "HPCFLOW_IGNORE_MEMORY_CHECK=1" in msg
    assert "sample at most" in msg, msg


def test_the_override_lets_such_a_sample_begin(no_work, monkeypatch):
    monkeypatch.setenv("HPCFLOW_IGNORE_MEMORY_CHECK", "1")
    with pytest.raises(Began):
        Hypersurface.fermat(3).sample(1e12, seed=0)


def test_hpcflow_sample_no_memory_check_reaches_the_sampler(tmp_path, capsys, monkeypatch):
    """--no-memory-check skips the sampler's check too: the sampling begins (its stand-in runs out of memory)."""
    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(sampling, "sample_waves", out_of_memory)
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    assert main(["sample", "--n", "1e12", "--no-memory-check", "--quiet", "--out", str(tmp_path / "p.h5")]) == 5
    assert "out of memory mid-run (MemoryError)" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_count_above_the_bound_is_refused_naming_it():
    X = Hypersurface.fermat(3)
    for n in (2**62 + 1, 1e30):
        with pytest.raises(ConfigError, match=r"pass a whole number of points in \[1, 2\*\*62\]"):
            X.sample(n, seed=0)
    with pytest.raises(ConfigError, match="pass a whole number of points >= 1"):
        X.sample(0, seed=0)


def test_max_batches_bounds_the_batches_sampled(monkeypatch):
    """One chart of twenty holds ~1/20 of a batch's points: 100000 need many batches, max_batches=1 samples one."""
    done = []
    block = sampling.sample_block

    def counted(surface, k, *args, **kwargs):
        done.append(k)
        return block(surface, k, *args, **kwargs)

    monkeypatch.setattr(sampling, "sample_block", counted)
    with pytest.raises(ConfigError) as exc:
        Hypersurface.fermat(3).sample(100000, seed=0, chart=(0, 1), max_batches=1, threads=2)
    assert done == [0]
    found = int(re.search(r"in 1 batches \(found (\d+)\)", str(exc.value)).group(1))
    first = block(Hypersurface.fermat(3), 0, np.random.SeedSequence(0).entropy, (0, 1), np)[0]
    assert found == len(first) and 0 < found < LINES_PER_BATCH * 5


def test_hpcflow_sample_says_of_how_many_points_it_dropped_some(tmp_path, capsys):
    """200 points need the one first batch: its 2048 lines meet the quintic in 2048 x 5 points."""
    out = tmp_path / "w.h5"
    assert main(["sample", "--n", "200", "--manifold", "dwork", "--psi", "5.3e4", "--threads", "1", "--quiet",
                 "--out", str(out)]) == 0
    said = re.search(r"^points +200 \(dropped (\d+) of the (\d+) intersection points sampled",
                     capsys.readouterr().out, re.M)
    assert said and int(said.group(1)) > 0 and int(said.group(2)) == LINES_PER_BATCH * 5


def test_hpcflow_sample_in_a_chart_says_how_many_points_lie_in_other_charts(tmp_path, capsys):
    """With --chart the points sampled lie in every chart: those of the other charts are neither kept nor dropped,
    and the line says so in numbers that add up. 200 points of chart (0, 1) need the first batch alone (about 1/20 of
    its 2048 x 5 points); that batch, its points placed in all charts, gives the counts independently."""
    out = tmp_path / "c.h5"
    assert main(["sample", "--n", "200", "--manifold", "dwork", "--psi", "5.3e4", "--chart", "0", "1", "--threads",
                 "1", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    said = re.search(r"^points +200 in chart \(0, 1\) \(of the (\d+) intersection points sampled, (\d+) lie in other "
                     r"charts and (\d+) were dropped: ambiguous charts or unconverged roots\)$",
                     printed, re.M)
    assert said, printed
    total, other, dropped = (int(x) for x in said.groups())
    X = Hypersurface.dwork(3, psi=5.3e4)
    every = sampling.sample_block(X, 0, np.random.SeedSequence(0).entropy, None, np)[0]  # the batch, every chart
    in_chart = int(np.sum((every.chart[:, 0] == 0) & (every.chart[:, 1] == 1)))
    assert total == LINES_PER_BATCH * 5 and dropped == every.n_dropped > 0 and in_chart >= 200
    assert other == len(every) - in_chart and other + dropped + in_chart == total


@pytest.fixture
def two_cpus(monkeypatch):
    from threadpoolctl import threadpool_limits

    from hpcflow.resources import THREAD_VARIABLES

    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    monkeypatch.delenv("HPCFLOW_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(pcomm, "_SAID", set(), raising=False)
    monkeypatch.setattr(pcomm, "_OWNED", None, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    with threadpool_limits(limits=None):
        yield


def test_threads_above_the_cpus_are_said_in_one_line_as_hpcflow_threads_are(tmp_path, capsys, two_cpus):
    assert main(["sample", "--n", "10", "--threads", "8", "--quiet", "--out", str(tmp_path / "t8.h5")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpcflow: warning: --threads 8 asks for 8 threads, more than the 2 "
                                               "CPUs this rank owns"), err
    assert "pass --threads 2 or less" in err[0], err
    assert main(["sample", "--n", "10", "--threads", "2", "--quiet", "--out", str(tmp_path / "t2.h5")]) == 0
    assert capsys.readouterr().err == ""


def _immutable(path) -> bool:
    """chattr +i on path, where the tool, the privilege and the file system allow it."""
    try:
        return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except OSError:
        return False


def test_force_onto_a_file_that_cannot_be_replaced_is_refused_before_sampling(tmp_path, capsys, monkeypatch):
    """An immutable --out (chattr +i) was sampled into, then the write failed (exit 5). Where chattr cannot be
    used here, the OS's refusal of such a file (EPERM on opening it for writing) is stood in for."""
    out = tmp_path / "immf.h5"
    # a PointSet file, the only kind --force replaces
    assert main(["sample", "--n", "10", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    kept = out.read_bytes()
    capsys.readouterr()
    began = []

    def sample_waves(*args, **kwargs):
        began.append(1)
        raise Began()

    monkeypatch.setattr(sampling, "sample_waves", sample_waves)
    frozen = _immutable(out)
    if not frozen:
        opened = os.open

        def refused(path, flags, *args, **kwargs):
            if os.fspath(path) == str(out) and flags & (os.O_WRONLY | os.O_RDWR):
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(out))
            return opened(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refused)
    try:
        code = main(["sample", "--n", "10", "--quiet", "--force", "--out", str(out)])
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", str(out)], check=True)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and began == [], err
    assert err.startswith(f"hpcflow sample: error: --out {out}: the existing file {out} cannot be replaced"), err
    assert out.read_bytes() == kept and sorted(os.listdir(tmp_path)) == ["immf.h5"]


def test_force_onto_a_read_only_file_in_a_writable_directory_still_replaces_it(tmp_path, capsys):
    out = tmp_path / "ro.h5"
    assert main(["sample", "--n", "10", "--threads", "1", "--quiet", "--out", str(out)]) == 0  # a PointSet file
    out.chmod(0o444)
    assert main(["sample", "--n", "12", "--threads", "1", "--quiet", "--force", "--out", str(out)]) == 0
    assert len(PointSet.load(str(out))) == 12  # the new set
    capsys.readouterr()
