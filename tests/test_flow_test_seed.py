"""A flow job whose [geometry].test_seed equals its seed would test on its train points (gain_test = gain_train
without a word): refused in one line naming both keys, before any work; without test points it is harmless."""

from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.experiments import flow_job
from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")


def test_equal_seeds_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", JOB, "--out", str(out), "--set", "geometry.seed=5", "--set", "geometry.test_seed=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "[geometry].test_seed = 5 equals [geometry].seed" in err and "train points" in err, err
    assert not out.exists()


def test_equal_seeds_without_test_points_and_other_seeds_are_accepted(capsys):
    for sets in (["geometry.seed=5", "geometry.test_seed=5", "geometry.n_test=0"],
                 ["geometry.seed=5", "geometry.test_seed=6"], ["geometry.seed=4"]):
        assert main(["run", JOB, "--out", "unused", "--check", *(x for s in sets for x in ("--set", s))]) == 0


def test_the_python_api_refuses_a_test_seed_equal_to_the_seed(tmp_path):
    cfg = registry.load(JOB, ["geometry.n_train=50", "geometry.n_test=20", "flow.steps=1"])[1]
    with pytest.raises(ConfigError, match="test_seed = 0 equals"):
        flow_job.run(cfg, str(tmp_path), test_seed=cfg["geometry"]["seed"])
    assert not (tmp_path / "checkpoint.h5").exists()
