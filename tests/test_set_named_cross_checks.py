"""A refusal that a --set caused ends "(from --set SECTION.KEY=VALUE)" whichever check made it: the job kinds'
cross-field checks (a value fine alone, refused with another key's), the chart's bounds on the P^n of [geometry].dim
and the memory estimate name every key they depend on as [SECTION].KEY (`registry.set_values_named` finds the --set
there). Where two --set values together are refused, both keys are named, so is each --set (the last at the
end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
HUGE = "geometry.n_train=1_000_000_000_000"  # (10^12 points: any host's memory many times over)

#: (job file, --set values in order): each refused by a check that reads the key of the last --set with another key
CROSS = [
    ("quickstart", ["clustering.n_clusters=501"]),  # above the smallest mini-batch of 500 points
    ("quickstart", ["clustering.batch_size=3"]),  # 4 clusters in mini-batches of 2 points
    ("quickstart", ["geometry.n_train=30000", "clustering.method=full"]),  # 'full' clusters at most 20000 points
    ("quickstart", ["clustering.method=full", "geometry.n_train=30000"]),
    ("quickstart", ["kernel.name=relu_ntk"]),  # the Gaussian's keys do not apply, the ReLU's are missing
    ("quickstart", ["geometry.chart=[0,3]", "geometry.dim=1"]),  # P^2 has coordinates 0..2
    ("quickstart", ["geometry.dim=1", "geometry.chart=[0,3]"]),
    ("fig2_clustering", ["points.n_points=6000"]),  # fig2 = true needs N <= 5000
    ("fig2_clustering", ["points.chart=[0,4]", "points.dim=2"]),
    ("fig2_clustering", ["quality.sample_size=100", "quality.seed=3", "quality.sample_size=0"]),  # no rows to seed
    ("distance_scaling", ["scaling.n_points=[100,200]"]),  # fit_from = 3162 leaves no size to fit
    ("distance_scaling", ["scaling.method=tree"]),  # the file's queries = 10000 are brute's
    ("distance_scaling", ["scaling.method=tree", "scaling.queries=0", "scaling.workers=2", "scaling.method=brute"]),
    ("distance_scaling", ["geometry.chart=[0,4]", "geometry.dim=2"]),
    ("noise_scan", ["noise.max_newton=3", "noise.project=false"]),  # no projection, no Newton steps
    ("local_limit", ["geometry.chart=[0,4]", "geometry.dim=2"]),
    ("nn_smoke", ["geometry.n_val=5"]),  # the file's 10 NTK test points of 5
    ("nn_smoke", ["geometry.n_train=200"]),  # the width sweep's 1000 train points of 200
    ("nn_smoke", ["geometry.chart=[0,4]", "geometry.dim=2"]),
    ("nn_smoke", ["training.lr_schedule=cosine", "training.lr_min=1e-5", "training.lr_schedule=exponential"]),
    ("nn_smoke", ["training.lr_decay=0.5", "training.lr_schedule=exponential", "training.epochs=2000"]),  # 0.5^2000
    ("nn_smoke", ["width_sweep.widths=[]", "training.lr_warmup=4", "training.epochs=3"]),  # warmup beyond the run
    ("nn_smoke", ["width_sweep.epochs=5", "training.lr_warmup=4", "width_sweep.epochs=3"]),
    ("nn_smoke", ["training.lr=0.1", "training.lr_schedule=cosine", "training.lr_min=1e-2", "training.lr=1e-3"]),
]


@pytest.mark.parametrize("job, sets", CROSS, ids=[f"{j}:{'+'.join(s)}" for j, s in CROSS])
def test_a_cross_field_refusal_names_the_set_that_made_it(job, sets):
    with pytest.raises(ConfigError) as exc:
        registry.load(JOBS / f"{job}.toml", sets, memory_check=False)
    msg = str(exc.value)
    key = sets[-1].split("=", 1)[0]
    section, name = key.split(".")
    assert f"[{section}].{name}" in msg and msg.endswith(f"(from --set {sets[-1]})"), msg
    registry.load(JOBS / f"{job}.toml", sets[:-1], memory_check=False)  # the job without the last --set is fine


#: (job file, --set values, the --set the memory refusal names): the keys that size its largest part
MEMORY = [
    ("quickstart", [HUGE], HUGE),
    ("quickstart", [HUGE, "flow.steps=3"], HUGE),  # a --set that sizes nothing is not the one named
    ("quickstart", ["geometry.n_train=100_000_000", "clustering.batch_size=100_000_000"],
     "clustering.batch_size=100_000_000"),  # the mini-batch's distance matrices
    ("local_limit", [HUGE], HUGE),
    ("noise_scan", [HUGE], HUGE),
    ("distance_scaling", ["scaling.fit_from=0", "scaling.n_points=[100,1_000_000_000_000]"],
     "scaling.n_points=[100,1_000_000_000_000]"),
    ("nn_smoke", ["geometry.n_train=1_000_000_000"], "geometry.n_train=1_000_000_000"),
]


@pytest.mark.parametrize("job, sets, named", MEMORY, ids=[f"{j}:{'+'.join(s)}" for j, s, _ in MEMORY])
def test_a_memory_refusal_names_the_set_that_sized_it(job, sets, named, monkeypatch):
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    with pytest.raises(ConfigError) as exc:
        registry.load(JOBS / f"{job}.toml", sets)
    msg = str(exc.value)
    assert "estimated peak memory" in msg and msg.endswith(f"(from --set {named})"), msg


def test_a_memory_refusal_of_the_file_itself_names_no_set(tmp_path, monkeypatch):
    """The file's own sizes refused: no --set is blamed, whatever --set of another key is given."""
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    job = tmp_path / "big.toml"
    job.write_text((JOBS / "quickstart.toml").read_text().replace("n_train = 1000", "n_train = 1_000_000_000_000"))
    with pytest.raises(ConfigError) as exc:
        registry.load(job, ["flow.steps=3", "geometry.seed=4"])
    assert "[geometry].n_train" in str(exc.value) and "(from --set" not in str(exc.value), exc.value


@pytest.mark.parametrize("value", ["clustering.n_clusters=501", HUGE])
def test_run_check_names_the_set_in_its_one_line(value, tmp_path, capsys, monkeypatch):
    """`hpcflow run --check` of the quickstart job: the mini-batch check and the memory refusal lacked the suffix."""
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    out = tmp_path / "out"
    assert main(["run", str(JOBS / "quickstart.toml"), "--out", str(out), "--check", "--set", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith(f"(from --set {value})"), err
    assert not out.exists()


def test_a_section_only_a_set_made_is_refused_naming_that_set_not_the_file(tmp_path):
    """[tune] on a clustering job: from --set, the line ends naming it and says to drop it (it said "remove it", as
    of a file that has no [tune]); from the file, "remove it" as before, with no --set named."""
    with pytest.raises(ConfigError) as exc:
        registry.load(JOBS / "fig2_clustering.toml", ["tune.seed=1"], memory_check=False)
    msg = str(exc.value)
    assert msg.endswith("(from --set tune.seed=1)") and "remove it" not in msg and msg.count("--set") == 2, msg
    job = tmp_path / "clus.toml"
    job.write_text((JOBS / "fig2_clustering.toml").read_text() + "\n[tune]\nseed = 1\n")
    with pytest.raises(ConfigError) as exc:
        registry.load(job, ["points.seed=2"], memory_check=False)
    assert str(exc.value).endswith("; remove it") and "--set" not in str(exc.value), exc.value


def test_a_kernel_refusal_in_its_own_words_names_the_set_of_a_key_it_names(tmp_path):
    """The kernel's own refusal ("[kernel]: ... for width=..., form='gauss'; use method='direct'") names the last
    --set of a key it names as KEY=...; one of a key it does not name (engine) is not cited."""
    sets = ["kernel.form=gauss", "kernel.method=poly"]
    for order in (sets, sets[::-1]):
        with pytest.raises(ConfigError) as exc:
            registry.load(JOBS / "quickstart.toml", order, memory_check=False)
        msg = str(exc.value)
        assert "no polynomial" in msg and msg.endswith(f"(from --set {order[-1]})"), msg
    job = tmp_path / "poly.toml"
    job.write_text((JOBS / "quickstart.toml").read_text().replace('form = "exp"', 'form = "gauss"\nmethod = "poly"'))
    with pytest.raises(ConfigError) as exc:
        registry.load(job, ["kernel.engine=numpy"], memory_check=False)
    assert "no polynomial" in str(exc.value) and "--set" not in str(exc.value), exc.value



@pytest.mark.parametrize("sets, named", [
    (["model.width=1000", "training.lr=1e-3", "model.width=1048576", "model.depth=5"],
     ["model.width=1048576", "model.depth=5"]),
    (["model.depth=5", "model.width=1048576", "training.lr=1e-3", "model.depth=4"],
     ["model.width=1048576", "model.depth=4"])])
def test_a_memory_refusal_names_every_set_of_a_key_it_names(sets, named, monkeypatch):
    """The network's estimate names [model].width and [model].depth: the --set in force of each is named, in the
    order given (it named only the last --set of either key, "(from --set model.depth=3)" for a width of 2^20 that
    alone makes 240 TiB); a --set of a key the estimate does not read is not. Each is its own "(from --set ...)", so
    a caller that drops those of values no --set gave (`hpcflow tune`'s trial values) drops each alone."""
    from hpcflow.tune.study import refusal

    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    with pytest.raises(ConfigError) as exc:
        registry.load(JOBS / "nn_smoke.toml", sets)
    msg = str(exc.value)
    assert "estimated peak memory" in msg and msg.endswith("".join(f" (from --set {s})" for s in named)), msg
    assert msg.count("(from --set ") == 2, msg
    rest = refusal(str(JOBS / "nn_smoke.toml"), exc.value, [named[1]])  # a trial's value of depth, a user's width
    assert rest.endswith(f"(from --set {named[0]})") and rest.count("(from --set ") == 1, rest
