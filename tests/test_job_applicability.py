"""Keys that do not apply to the job as set: refused when given a value (one line naming the key and the fix, exit 2),
accepted at their defaults (as DIR/job.toml writes every key); the batched clustering's keys are ignored by the other
methods (a study searches the method beside them; earlier checkpoints keep them); a kernel key's own value "none" unsets it where it
does not apply; an empty --set value says so; repeated noise scales are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.jobs import registry
from hpcflow.jobs.schema import parse_override
from hpcflow.jobs.toml_out import dumps

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def _refused(job: str, *sets: str, words=()) -> str:
    with pytest.raises(ConfigError) as exc:
        registry.load(JOBS / job, list(sets), memory_check=False)
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.mark.parametrize("job,sets,words", [
    ("distance_scaling.toml", ["scaling.workers=2"], ["[scaling].workers = 2", "method = 'brute'", "remove it",
                                                      "--set scaling.workers=1", 'method = "tree"']),
    ("distance_scaling.toml", ["scaling.method=tree", "scaling.queries=500"],
     ["[scaling].queries = 500", "method = 'tree'", 'method = "brute"']),
    ("noise_scan.toml", ["noise.scales=[0.0, 0.1, 0.1]"], ["[noise].scales", "repeats a scale"]),
    ("fig2_clustering.toml", ["quality.seed=5"], ["[quality].seed = 5", "sample_size = 0", "--set quality.seed=0",
                                                  "set sample_size"]),
    ("noise_scan.toml", ["noise.max_newton=5", "noise.project=false"],
     ["[noise].max_newton = 5", "project = false", "--set noise.max_newton=50", "set project = true"]),
    ("noise_scan_paper.toml", ["noise.max_newton=5"], ["[noise].max_newton = 5", "project = false"]),
    ("local_limit.toml", ["local_limit.widths=[0.01, 1.0, 0.01]"], ["[local_limit].widths", "repeats a width"]),
])
def test_a_key_that_does_not_apply_is_refused(job, sets, words):
    _refused(job, *sets, words=words)


def test_refused_by_the_command_in_one_line_with_exit_2(capsys):
    assert main(["run", str(JOBS / "distance_scaling.toml"), "--out", "unused", "--check",
                 "--set", "scaling.workers=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[scaling].workers = 3 does not apply" in err[0], err


def test_keys_at_their_defaults_and_saved_job_files_still_load(tmp_path):
    """The keys apply where the method uses them; at their defaults they are accepted under any method, so DIR/job.toml
    (every key written, defaults filled in) loads again."""
    registry.load(JOBS / "distance_scaling.toml", ["scaling.method=tree", "scaling.queries=0", "scaling.workers=2"],
                  memory_check=False)
    registry.load(JOBS / "distance_scaling.toml", ["scaling.queries=500"], memory_check=False)
    registry.load(JOBS / "quickstart.toml", ["clustering.method=batched", "clustering.batch_size=50",
                                             "clustering.merge=paper"], memory_check=False)
    registry.load(JOBS / "fig2_clustering.toml", ["quality.sample_size=100", "quality.seed=5"], memory_check=False)
    registry.load(JOBS / "fig2_clustering.toml", ["quality.seed=0"], memory_check=False)
    registry.load(JOBS / "noise_scan.toml", ["noise.max_newton=5"], memory_check=False)
    registry.load(JOBS / "noise_scan_paper.toml", ["noise.max_newton=50"], memory_check=False)
    registry.load(JOBS / "quickstart.toml", ["clustering.method=none", "clustering.batch_size=50"],
                  memory_check=False)  # switched off: its keys stay for switching it on again
    default_batch = "clustering.batch_size=1000"
    for job, sets in (("quickstart.toml", ["clustering.method=full", default_batch]),
                      ("quickstart.toml", ["clustering.method=birch", default_batch]),
                      ("distance_scaling.toml", ["scaling.method=tree", "scaling.queries=0"]),
                      ("distance_scaling.toml", [])):
        _, cfg = registry.load(JOBS / job, sets, memory_check=False)
        saved = tmp_path / "job.toml"
        saved.write_text(dumps(cfg))
        assert registry.load(saved, memory_check=False)[1] == cfg


def test_none_unsets_a_kernel_key_whose_own_value_is_none_where_it_does_not_apply():
    sets = ["kernel.name=delta", "kernel.width=none", "kernel.form=none", "kernel.normalize=none"]
    _, cfg = registry.load(JOBS / "quickstart.toml", sets, memory_check=False)
    assert cfg["kernel"]["normalize"] is None and cfg["kernel"]["name"] == "delta"
    # where it applies, "none" is its value (no normalisation), and "row" still does not apply to delta
    _, cfg = registry.load(JOBS / "quickstart.toml", ["kernel.normalize=none"], memory_check=False)
    assert cfg["kernel"]["normalize"] == "none"
    _refused("quickstart.toml", *sets[:3], "kernel.normalize=row", words=["[kernel].normalize", "remove it"])


def test_an_empty_set_value_says_so_and_how_to_unset():
    with pytest.raises(ConfigError) as exc:
        parse_override("clustering.method=")
    msg = str(exc.value)
    assert "value is empty" in msg and "--set clustering.method=none" in msg and "SECTION.KEY=VALUE" not in msg, msg


def test_batched_clustering_keys_under_another_method_are_ignored_and_its_checkpoint_resumes(tmp_path, monkeypatch):
    """[clustering].batch_size, merge and seed with method "full": accepted, and a run that holds them in its
    checkpoint and DIR/job.toml (as every run before keys were checked, and a study's trials searching the method
    beside them) resumes, from the job file and from DIR/job.toml alike."""
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")
    sets = [a for kv in ("geometry.n_train=200", "geometry.n_test=200", "clustering.n_clusters=2",
                         "clustering.method=full", "clustering.batch_size=100", "clustering.seed=3",
                         "clustering.merge=paper") for a in ("--set", kv)]
    out = tmp_path / "run"
    assert main(["run", str(JOBS / "quickstart.toml"), "--out", str(out), "--quiet", *sets,
                 "--set", "flow.steps=2"]) == 0
    assert main(["run", str(JOBS / "quickstart.toml"), "--out", str(out), "--quiet", "--resume", *sets,
                 "--set", "flow.steps=3"]) == 0
    assert main(["run", str(out / "job.toml"), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=4"]) == 0
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 4
