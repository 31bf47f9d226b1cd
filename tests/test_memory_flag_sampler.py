"""--no-memory-check of `hpcflow run` and `hpcflow nn` reaches every memory check the job meets, the sampler's own
(`Hypersurface.sample`) too: a job the user lets past the estimate is not refused later when its points are drawn."""

import json

import pytest

from hpcflow import resources
from hpcflow.cli import main
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

JOBS = {"run": flow_points(40, 20) + DELTA_FLOW,
        "nn": NN_POINTS + SMALL_NET + TINY_TRAINING.replace("epochs = 4", "epochs = 1")}


@pytest.mark.parametrize("command", ["run", "nn"])
def test_no_memory_check_reaches_the_samplers_check(command, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(resources.ENV_IGNORE, raising=False)
    # a node whose limit is below what even 20 points' arrays take (~10 kB): every check would refuse
    monkeypatch.setattr(resources, "memory_limit", lambda *a, **k: (1000.0, "a tiny limit"))
    job = tmp_path / "job.toml"
    job.write_text(JOBS[command])
    assert main([command, str(job), "--out", str(tmp_path / "refused")]) == 2
    assert "--no-memory-check" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "out"
    assert main([command, str(job), "--out", str(out), "--no-memory-check"]) == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert resources.ENV_IGNORE not in __import__("os").environ  # restored after the command
