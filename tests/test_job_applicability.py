"""Keys that do not apply to the job as set: refused when given a value (one line naming the key and the fix, exit 2),
accepted at their defaults (as DIR/job.toml writes every key); a kernel key's own value "none" unsets it where it
does not apply; an empty --set value says so; repeated noise scales are refused."""

from __future__ import annotations

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
                                                      'method = "tree"']),
    ("distance_scaling.toml", ["scaling.method=tree", "scaling.queries=500"],
     ["[scaling].queries = 500", "method = 'tree'", 'method = "brute"']),
    ("quickstart.toml", ["clustering.method=full", "clustering.batch_size=50"],
     ["[clustering].batch_size = 50", "method = 'full'", "(default 1000)", 'method = "batched"']),
    ("quickstart.toml", ["clustering.method=birch", "clustering.batch_size=1000", "clustering.merge=paper"],
     ["[clustering].merge = 'paper'", "method = 'birch'"]),
    ("quickstart.toml", ["clustering.method=full", "clustering.batch_size=1000", "clustering.seed=3"],
     ["[clustering].seed = 3", "remove it (default 0)"]),
    ("noise_scan.toml", ["noise.scales=[0.0, 0.1, 0.1]"], ["[noise].scales", "repeats a scale"]),
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
