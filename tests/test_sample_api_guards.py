"""Hypersurface.sample refuses before any work a set whose arrays alone exceed the memory the process may use (as
`hpcflow sample --n` is refused), and a count above 2**62 naming the bound; it samples no more than max_batches
batches; `hpcflow sample` says how many intersection points its dropped ones are of."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, sampling
from hpcflow.geometry.sampling import LINES_PER_BATCH

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


def test_the_refusal_is_where_the_sets_own_arrays_exceed_the_limit(monkeypatch):
    """The bytes of a sampled set's arrays, measured, as the limit: that many points are sampled, one more is not."""
    import hpcflow.resources

    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    X = Hypersurface.fermat(3)
    ps = X.sample(300, seed=0, threads=1)
    held = sum(getattr(ps, name).nbytes for name in FIELDS)
    monkeypatch.setattr(hpcflow.resources, "memory_limit", lambda **kw: (float(held), "a test limit"))
    assert len(X.sample(300, seed=1, threads=1)) == 300
    with pytest.raises(ConfigError, match=r"^n_points=301: .*\(a test limit\); sample at most 300 points"):
        X.sample(301, seed=1, threads=1)


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
