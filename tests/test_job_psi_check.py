"""A job's Dwork psi whose roots float64 cannot place on X (|psi| 1e5 at dim 3) is refused when the job is checked
(--check, run, submit, every job kind), with the sampler's own message naming [geometry].psi and the --set that gave
it, exit 2, before any work; a psi the sampler takes (5e4 at dim 3) validates and samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import LINES_PER_BATCH, check_placeable, max_off_x
from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
DWORK = ['geometry.manifold="dwork"']


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


@pytest.mark.parametrize("verb", ["run", "submit"])
def test_a_psi_the_sampler_refuses_is_refused_at_check(tmp_path, capsys, verb):
    out = tmp_path / "out"
    extra = ["--executor", "local"] if verb == "submit" else []
    sets = [a for s in [*DWORK, "geometry.psi=1e5"] for a in ("--set", s)]
    assert main([verb, str(QUICKSTART), "--out", str(out), "--check", *extra, *sets]) == 2
    msg = _error(capsys)
    assert "[geometry].psi = 100000" in msg and "(from --set geometry.psi=1e5)" in msg
    assert "cannot be placed on X" in msg
    bound = float(msg.split("use |psi| <= ")[1].split(" ")[0])
    assert 3e4 < bound < 1e5
    assert not out.exists()
    # the sampler itself refuses it (its first batch), as the check said
    with pytest.raises(ConfigError, match="cannot be placed on X"):
        Hypersurface.dwork(3, 1e5).sample(1000, seed=0, threads=1)


def test_a_psi_just_inside_validates_and_samples(tmp_path, capsys):
    sets = [a for s in [*DWORK, "geometry.psi=5e4"] for a in ("--set", s)]
    assert main(["run", str(QUICKSTART), "--out", str(tmp_path / "out"), "--check", *sets]) == 0
    assert "valid" in capsys.readouterr().out
    ps = Hypersurface.dwork(3, 5e4).sample(1000, seed=0, threads=1)
    z = ps.points
    p = np.abs((z**5).sum(axis=1) - 5 * 5e4 * z.prod(axis=1))  # the Dwork quintic at psi = 5e4
    assert len(ps) == 1000 and np.max(p / np.linalg.norm(z, axis=1) ** 5) < 1e-12


def test_every_job_kind_refuses_it_from_the_file_too(tmp_path):
    """A psi written in the file (no --set), in a job of another kind (nn): refused by registry.load."""
    text = (ROOT / "jobs" / "nn_smoke.toml").read_text().replace('manifold = "fermat"',
                                                                 'manifold = "dwork"\npsi = -1e5', 1)
    job = tmp_path / "nn.toml"
    job.write_text(text)
    with pytest.raises(ConfigError) as exc:
        registry.load(job, [])
    msg = str(exc.value)
    assert "[geometry].psi = -100000" in msg and "use |psi| <= " in msg and "--set" not in msg
    _, cfg = registry.load(job, ["geometry.psi=-2e4"])
    assert cfg["geometry"]["psi"] == -2e4


def _lost(X, seed, batches=4):
    """Fraction of the points where `batches` blocks of random lines (stream `seed`) meet X not placed on X."""
    bad = sum(X.line_points(LINES_PER_BATCH, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,))))[1]
              for k in range(batches))
    return bad / (batches * LINES_PER_BATCH * X.degree)


@pytest.mark.parametrize("dim, psi", [(3, 5.2e4), (3, 5.6e4), (3, 6e4), (3, 7e4), (2, 3e4j), (1, 1.5e3)])
def test_what_the_check_refuses_loses_clearly_more_than_any_first_wave_takes(dim, psi):
    """Near the edge: where the check refuses, the fraction lost over 4 blocks of other streams lies above the
    largest any first wave accepts (one block's `max_off_x`); where the sampler's first block takes it, the check
    takes it too."""
    X = Hypersurface.dwork(dim, psi)
    one = LINES_PER_BATCH * X.degree
    try:
        check_placeable(X)
    except ConfigError:
        assert _lost(X, seed=123) > max_off_x(one)
        return
    for seed in range(2):
        lost = _lost(X, seed=seed, batches=1)
        assert lost < max_off_x(one) + 0.01  # accepted: not far beyond what the sampler takes


def test_sample_refuses_it_before_its_out_is_touched(tmp_path, capsys, monkeypatch):
    """hpcflow sample --psi 1e5: refused by the argument checks (the sampler's message), no sampling started."""
    from hpcflow.geometry import sampling

    def never(*a, **kw):
        raise AssertionError("sampling started")

    monkeypatch.setattr(sampling, "sample_checked", never)
    out = tmp_path / "p.h5"
    assert main(["sample", "--manifold", "dwork", "--dim", "3", "--psi", "1e5", "--n", "100", "--quiet",
                 "--out", str(out)]) == 2
    msg = _error(capsys)
    assert "--psi 100000 is refused" in msg and "use |psi| <= " in msg and not out.exists()
