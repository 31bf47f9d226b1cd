"""Bad input of every class gets a one-line UserError before any work: schema bounds, cross-checks (and none
for switched-off sections), --set, the saved job.toml, output paths, memory bounds, HPCFLOW_* and Slurm variables."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hpcflow.errors import ConfigError, OutputPathError, UserError
from hpcflow.jobs import output, registry
from hpcflow.jobs.schema import Field, parse_override, validate
from hpcflow.jobs.toml_out import dumps

ROOT = Path(__file__).resolve().parents[1]
JOBS = sorted((ROOT / "jobs").glob("*.toml"))


def _load(tmp_path, job: str, *sets, **kw):
    return registry.load(ROOT / "jobs" / job, list(sets), **kw)


def _refused(tmp_path, job, *sets, words=()):
    with pytest.raises(UserError) as exc:
        _load(tmp_path, job, *sets)
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


# ---- every number is bounded ------------------------------------------------------------------------------
def _numeric_fields():
    import importlib

    for kind, modname in registry.KINDS.items():
        for section, fields in importlib.import_module(modname).SCHEMA.items():
            for key, f in fields.items():
                types = f.type if isinstance(f.type, tuple) else (f.type,)
                if {int, float} & set(types) or f.items in (int, float):
                    yield kind, section, key, f


def test_every_number_of_every_schema_has_bounds():
    """Floats need a lower and an upper bound, ints at least a lower one (the int64-safe limit caps the top)."""
    fields = list(_numeric_fields())
    assert len(fields) > 60
    for kind, section, key, f in fields:
        floaty = float in ((f.type,) if not isinstance(f.type, tuple) else f.type) or f.items is float
        assert f.lo is not None, (kind, section, key)
        assert f.hi is not None or not floaty, (kind, section, key)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e308, -1e308, 10**30, -(10**30)])
def test_non_finite_and_huge_values_of_each_number_are_refused_naming_the_key(bad):
    """Each numeric field of every kind, given bad, is refused by its own field with its key in the message
    (ints refuse floats as a type error; floats refuse non-finite values and huge ones by their bounds)."""
    from hpcflow.jobs.schema import validate_field

    for kind, section, key, f in _numeric_fields():
        value = [bad] if f.items is not None else bad
        where = f"J: [{section}].{key}"
        with pytest.raises(ConfigError, match=key):
            validate_field(where, value, f)


@pytest.mark.parametrize("sets, words", [
    (["geometry.seed=-1"], ["[geometry].seed", "[0,"]),
    (["geometry.seed=99999999999999999999999"], ["[geometry].seed"]),
    (["geometry.manifold=\"dwork\"", "geometry.psi=nan"], ["[geometry].psi", "finite"]),
    (["geometry.manifold=\"dwork\"", "geometry.psi=inf"], ["[geometry].psi"]),
    (["geometry.manifold=\"dwork\"", "geometry.psi=1e10"], ["[geometry].psi", "must lie in"]),
    (["geometry.dim=300"], ["[geometry].dim", "16"]),
    (["flow.max_halvings=100000"], ["[flow].max_halvings"]),
    (["flow.steps=1000000000000"], ["[flow].steps"]),
    (["flow.dt=1e-400"], ["[flow].dt"]),
    (["kernel.width=1e-300"], ["[kernel].width"]),
    (["geometry.n_train=100000000000000000000000"], ["[geometry].n_train"]),
    (["geometry.n_train=100000000000000"], ["estimated peak memory", "exceeds", "--no-memory-check"]),
    (["geometry.n_train=1000000000000"], ["estimated peak memory"]),
])
def test_flow_values_that_validate_but_cannot_work(tmp_path, sets, words):
    _refused(tmp_path, "quickstart.toml", *sets, words=words)


def test_distance_scaling_lists_that_cannot_be_fitted(tmp_path):
    _refused(tmp_path, "distance_scaling.toml", "scaling.n_points=[1000]", "scaling.fit_from=0",
             words=["[scaling].n_points", "two different sizes"])
    _refused(tmp_path, "distance_scaling.toml", "scaling.n_points=[1000, 1000]", "scaling.fit_from=0",
             words=["[scaling].n_points"])
    _refused(tmp_path, "distance_scaling.toml", "scaling.n_points=[100, 1000, 1000]", "scaling.fit_from=0",
             words=["[scaling].n_points", "repeats"])
    _refused(tmp_path, "distance_scaling.toml", "scaling.n_points=[100, 1000]", "scaling.fit_from=500",
             words=["[scaling].fit_from"])
    _, cfg = _load(tmp_path, "distance_scaling.toml", "scaling.n_points=[100, 1000]", "scaling.fit_from=0")
    assert cfg["scaling"]["n_points"] == [100, 1000]


# sizes too small for the statistic a kind reports: sigma (eq. B.11) of one point is 0 whatever the metric
# (kappa is the weighted mean of eta over the same points), a silhouette needs 2 <= clusters <= N - 1, a standard
# error needs two samples; each is refused naming its key, and what the same kind accepts at the bound runs
@pytest.mark.parametrize("job, sets, words", [
    ("noise_scan.toml", ["geometry.n_train=1"], ["[geometry].n_train = 1", ">= 2", "sigma"]),
    ("noise_scan.toml", ["geometry.n_train=0"], ["[geometry].n_train = 0", ">= 2"]),
    # below the key's range too: the bound that holds (2) is named, not the range's 0, which is refused as well
    ("quickstart.toml", ["geometry.n_train=-5"], ["[geometry].n_train = -5", "must be >= 2", "sigma"]),
    ("quickstart.toml", ["geometry.n_test=-1"], ["[geometry].n_test = -1", "must be 0 (no test points) or >= 2"]),
    ("local_limit.toml", ["geometry.n_test=0"], ["[geometry].n_test = 0", ">= 2", "test points"]),
    ("local_limit.toml", ["geometry.n_test=1"], ["[geometry].n_test = 1", ">= 2"]),
    ("local_limit.toml", ["geometry.n_train=1"], ["[geometry].n_train = 1", ">= 2"]),
    ("quickstart.toml", ["geometry.n_test=1"], ["[geometry].n_test = 1", "must be 0 (no test points) or >= 2"]),
    ("quickstart.toml", ["geometry.n_train=1", "clustering.method=none"], ["[geometry].n_train = 1", ">= 2"]),
    ("fig2_clustering.toml", ["quality.sample_size=1"], ["[quality].sample_size = 1", "0 (every point", ">= 2"]),
    ("fig2_clustering.toml", ["points.n_points=10", "clustering.n_clusters=10", "clustering.batch_size=10"],
     ["[clustering].n_clusters = 10", "[points].n_points = 10", "N - 1 = 9"]),
    ("distance_scaling.toml", ["scaling.queries=1"], ["[scaling].queries = 1", ">= 2"]),
])
def test_sizes_too_small_for_the_reported_statistic_are_refused(tmp_path, job, sets, words):
    msg = _refused(tmp_path, job, *sets, words=words)
    assert msg.startswith(str(ROOT / "jobs" / job) + ": "), msg


def test_the_smallest_accepted_sizes_load():
    for job, sets in (("noise_scan.toml", ["geometry.n_train=2"]), ("local_limit.toml", ["geometry.n_test=2"]),
                      ("quickstart.toml", ["geometry.n_test=0", "geometry.n_train=2", "clustering.method=none"]),
                      ("fig2_clustering.toml", ["quality.sample_size=2"]),
                      ("fig2_clustering.toml", ["points.n_points=11", "clustering.n_clusters=10",
                                                "clustering.batch_size=11"]),
                      ("distance_scaling.toml", ["scaling.queries=2"])):
        _load(None, job, *sets)


def test_a_local_limit_without_test_points_is_refused_by_the_cli_before_any_work(tmp_path, capsys):
    """`hpcflow run` of local_limit with n_test = 0 used to run and print sigma_test=nan, test gain=None."""
    from hpcflow.cli import main

    out = tmp_path / "ll"
    assert main(["run", str(ROOT / "jobs/local_limit.toml"), "--out", str(out), "--set", "geometry.n_test=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[geometry].n_test = 0" in err and "(from --set geometry.n_test=0)" in err, err
    assert not out.exists()


def test_learning_rates_that_overflow_are_refused(tmp_path):
    # lr(width) = 1e-3 * (64 / 1)^10 ~ 1e15 > 1e6
    _refused(tmp_path, "nn_smoke.toml", "width_sweep.widths=[1, 64]", "width_sweep.width_ref=64",
             "width_sweep.lr=1e-3", "width_sweep.lr_exponent=10", words=["[width_sweep]", "lr_exponent"])
    _refused(tmp_path, "nn_smoke.toml", "width_sweep.lr_exponent=1e300", words=["[width_sweep].lr_exponent"])
    # exponential schedule: 3e-3 * 1e6^5 = 3e27
    _refused(tmp_path, "nn_smoke.toml", "training.lr_decay=1e6", words=["[training].lr_decay"])
    _refused(tmp_path, "nn_smoke.toml", "training.lr=1e300", words=["[training].lr"])


def _log10_of(text: str) -> float:
    """log10 of a number as a message prints it, also beyond a float's range ("3e+597")."""
    mantissa, _, exponent = text.lower().partition("e")
    return math.log10(float(mantissa)) + (int(exponent) if exponent else 0)


def test_a_learning_rate_out_of_range_is_said_as_a_number_and_the_set_that_made_it_is_cited(tmp_path):
    """lr(width=1) = 1.0 * (64/1)^10 = 64^10 ~ 1.15e18 and 3e-3 * (1e6)^100 = 3e597 are printed as numbers (they were
    "exp(41.59)" and "exp(1375)"), and the sweep's refusal names [width_sweep].lr_exponent in full, so that its --set
    is cited, as for other keys; the other --set values of the line are not."""
    msg = _refused(tmp_path, "nn_smoke.toml", "width_sweep.lr_exponent=10", "width_sweep.widths=[1,64]",
                   "width_sweep.width_ref=64", "width_sweep.lr=1.0", words=["lr(width=1)"])
    said = msg.split(" lies outside")[0].rsplit("= ", 1)[1]
    assert "exp(" not in msg and math.isclose(float(said), 64**10, rel_tol=1e-3), msg
    assert msg.endswith("[width_sweep].lr_exponent (from --set width_sweep.lr_exponent=10)"), msg
    msg = _refused(tmp_path, "nn_smoke.toml", "training.lr_decay=1e6", "training.epochs=100",
                   words=["[training].lr_decay"])
    said = msg.split("takes the learning rate to ")[1].split(",")[0]
    assert "exp(" not in msg and math.isclose(_log10_of(said), math.log10(3e-3) + 600, abs_tol=1e-3), msg


def test_switched_off_sections_are_not_cross_checked(tmp_path):
    """A disabled width sweep / kernel flow / NTK / clustering whose sizes exceed the points is accepted;
    switched on, the same sizes are refused."""
    small = ["geometry.n_train=200", "geometry.n_val=100", "width_sweep.n_train=5000", "kernel_flow.n_train=500",
             "kernel_flow.n_test=500", "ntk.n_train_points=300", "ntk.n_test_points=300"]
    off = small + ["width_sweep.widths=[]", "kernel_flow.enabled=false", "ntk.enabled=false"]
    _load(tmp_path, "nn_smoke.toml", *off)
    for on, key in (("width_sweep.widths=[16]", "[width_sweep].n_train"),
                    ("kernel_flow.enabled=true", "[kernel_flow].n_train"),
                    ("ntk.enabled=true", "[ntk].n_train_points")):
        _refused(tmp_path, "nn_smoke.toml", *off, on, words=[key])
    _refused(tmp_path, "nn_smoke.toml", *off, "training.lr_min=1.0", words=["[training].lr_min"])
    # a flow's [clustering] keys are checked only with a method
    _load(tmp_path, "table1_delta_tuned.toml", "geometry.n_train=50", "clustering.n_clusters=500", "clustering.batch_size=3")
    _refused(tmp_path, "table1_delta_tuned.toml", "geometry.n_train=50", "clustering.n_clusters=40",
             "clustering.batch_size=20", "clustering.method=\"batched\"", words=["[clustering]"])


# ---- --set and the saved job ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "job.description=\"x\"\n[evil]\ny = 1",
    "job.description=\"x\"\r[evil]",
    "flow.steps=1\nflow.dt=3",
    "flow.steps=1 flow.dt = 3",
    "flow.steps=\"a\" \"b\"",
    "job.description=two words",
    "flow.steps=1, 2",
    "a.b.c=1",
    "flow .steps=1",
])
def test_set_value_is_one_toml_value_or_refused(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_an_error_in_an_overridden_value_names_the_set(capsys):
    """The job file is fine; the refused value came from --set: the one line says so (and only then)."""
    from hpcflow.cli import main

    job = str(ROOT / "jobs" / "quickstart.toml")
    for text, words in (("flow.dt=x", "[flow].dt"), ("flow.dt=-1", "[flow].dt"), ("flow.dtt=1", "[flow].dtt"),
                        ("geometry.n_train=0", "n_train"), ("training.lr=3e-3", "unknown section [training]")):
        assert main(["run", job, "--out", "unused", "--check", "--set", "flow.steps=3", "--set", text]) == 2
        err = capsys.readouterr().err
        assert words in err and err.rstrip().endswith(f"(from --set {text})") and "flow.steps" not in err, err
    assert main(["run", job, "--out", "unused", "--check", "--set", "foo=1"]) == 2
    assert "expected SECTION.KEY=VALUE" in capsys.readouterr().err
    # a key set twice: the last --set is in force, and the line names that one, not the fine value before it
    assert main(["run", job, "--out", "unused", "--check", "--set", "flow.dt=1", "--set", "flow.dt=-1"]) == 2
    err = capsys.readouterr().err
    assert "[flow].dt = -1" in err and err.rstrip().endswith("(from --set flow.dt=-1)"), err


def test_deeply_nested_values_are_config_errors(tmp_path):
    from hpcflow.jobs.schema import read_toml

    with pytest.raises(ConfigError, match="--set"):
        parse_override("flow.steps=" + "[" * 50000 + "]" * 50000)
    job = tmp_path / "deep.toml"
    job.write_text("[job]\nkind = \"flow\"\n[flow]\ndt = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_toml(job)


def test_set_accepts_single_values():
    assert parse_override("flow.steps=3 # comment") == ("flow", "steps", 3)
    assert parse_override("kernel.name=delta") == ("kernel", "name", "delta")
    assert parse_override('job.description="a\\nb = [c]"') == ("job", "description", "a\nb = [c]")
    assert parse_override("scaling.n_points=[1, 2]") == ("scaling", "n_points", [1, 2])


def test_none_on_a_key_that_is_not_optional_says_it_cannot_unset(capsys):
    """`none` unsets optional keys (default None); on another key the line says so and what to give, instead of
    "'none' must be a list; fix its type", which hid that [] is the sweep switched off."""
    from hpcflow.cli import main

    jobs = ROOT / "jobs"
    for cmd, job, text, words in (
            ("nn", "nn_width_sweep.toml", "width_sweep.widths=none", "this one defaults to []; give a list"),
            ("run", "quickstart.toml", "flow.steps=none", "this one defaults to 50; give an integer")):
        assert main([cmd, str(jobs / job), "--out", "unused", "--check", "--set", text]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "= 'none' cannot unset it: only optional keys unset" in err and words in err
    schema = {"job": {"kind": Field(str)}, "s": {"k": Field(int)}}
    with pytest.raises(ConfigError, match=r"\[s\]\.k = 'none' cannot unset it: .* this one is required; give an int"):
        validate({"job": {"kind": "x"}, "s": {"k": "none"}}, schema)
    assert validate({"job": {"kind": "x"}, "s": {"k": 3}}, schema)["s"]["k"] == 3


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.name)
def test_saved_job_rereads_to_the_same_configuration(job):
    _, cfg = registry.load(job)
    module = registry.job_module(cfg["job"]["kind"])
    text = dumps(cfg, header=f"from {job}\nrun with: --set x=1")
    assert validate(tomllib.loads(text), module.SCHEMA) == cfg


def test_toml_writer_escapes_strings_and_keys():
    cfg = {"job": {"kind": "flow", "description": 'a "q" \\ back\nnew\ttab \x01 \x7f é ✓ \U0001F600'},
           "odd key": {"k.e y": [1, 2.5, -0.0, 1e-300, 1e300], "t": True, "u": {"x": 1, "y": "z"}}}
    assert tomllib.loads(dumps(cfg, header="line 1\nline \x00 2\r")) == cfg
    with pytest.raises(ValueError):
        dumps({"a": {"x": math.nan}})


# ---- output paths -----------------------------------------------------------------------------------------
def test_output_path_refusals(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [("", "empty"), ("   ", "empty"), ("/proc/self/hpcflow_out", "/proc"), ("/sys/kernel/x", "/sys"),
             (str(tmp_path / "file"), "not a directory"), (str(tmp_path / "file" / "sub" / "x"), "not a directory"),
             (str(tmp_path / "a\x00b"), "NUL")]
    for path, words in cases:
        with pytest.raises(OutputPathError, match=words):
            output.check_outdir(path)
    out = tmp_path / "out"
    (out / "summary.json").mkdir(parents=True)
    with pytest.raises(OutputPathError, match="summary.json is a directory"):
        output.check_outdir(out, force=True)
    (out / "summary.json").rmdir()
    (out / "checkpoint.h5").mkdir()
    output.check_outdir(out, force=True)  # not an output of this kind
    with pytest.raises(OutputPathError, match="checkpoint.h5 is a directory"):
        output.check_outdir(out, force=True, outputs=registry.OUTPUTS["flow"])


def test_empty_directory_and_write_debris_are_accepted_and_debris_removed(tmp_path):
    """The rule: an empty --out (e.g. left by a killed run) or one holding only `.NAME.tmp-*` debris of an
    interrupted atomic write is reused without --force; the debris is removed."""
    out = tmp_path / "out"
    out.mkdir()
    output.prepare_outdir(out)
    (out / ".summary.json.tmp-0123abcd").write_text("half")
    output.prepare_outdir(out)
    assert list(out.iterdir()) == []
    (out / "notes.txt").write_text("x")
    with pytest.raises(OutputPathError, match="--force"):
        output.prepare_outdir(out)


def test_force_removes_every_earlier_run_file_and_keeps_other_files(tmp_path, capsys):
    """--force over a finished flow run with a noise scan: the flow's checkpoint.h5 (which a report would show
    as this run's, and --resume would continue) goes with the summary; files the runs never write stay."""
    from hpcflow.cli import main
    from hpcflow.nn.checkpoint import CHECKPOINT

    assert CHECKPOINT in registry.OUTPUTS["nn"]
    out = tmp_path / "out"
    small = ["--set", "geometry.n_train=200", "--set", "flow.steps=2", "--quiet", "--out", str(out)]
    assert main(["run", str(ROOT / "jobs" / "quickstart.toml"), "--set", "geometry.n_test=50", "--set",
                 "clustering.batch_size=100", *small]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.h5", "job.toml", "summary.json"]
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(ROOT / "jobs" / "noise_scan.toml"), *small]) == 2  # without --force: refused
    assert (out / "checkpoint.h5").exists()
    (out / "model.pt").write_bytes(b"a user's network")  # a network run's name, but no run's file: refused too
    assert main(["run", str(ROOT / "jobs" / "noise_scan.toml"), *small, "--force"]) == 2
    assert (out / "model.pt").read_bytes() == b"a user's network" and (out / "checkpoint.h5").exists()
    os.unlink(out / "model.pt")
    assert main(["run", str(ROOT / "jobs" / "noise_scan.toml"), *small, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["job.toml", "noise_scan.h5", "notes.txt", "summary.json"]
    assert (out / "notes.txt").read_text() == "mine"
    assert main(["run", str(ROOT / "jobs" / "quickstart.toml"), *small, "--resume"]) == 2  # nothing to continue
    assert "checkpoint.h5 does not exist" in capsys.readouterr().err


def _hpcflow(*args, cwd, env=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "hpcflow", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def test_cli_refuses_bad_outputs_before_any_work(tmp_path):
    """A long job (10^6 steps) refused in seconds: nothing was sampled or flowed, and the directory is as it was."""
    long = ["--set", "flow.steps=1000000"]
    (tmp_path / "file").write_text("keep")
    out = tmp_path / "out"
    (out / "summary.json").mkdir(parents=True)
    (out / "summary.json" / "x").write_text("keep")
    before = _snapshot(tmp_path)
    for target, extra in ((out, ["--force"]), (tmp_path / "file", ["--force"]), ("", []),
                          ("/proc/self/out", []), (tmp_path / "file" / "x", [])):
        r = _hpcflow("run", ROOT / "jobs/quickstart.toml", "--out", target, *extra, *long, cwd=tmp_path, timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert _snapshot(tmp_path) == before
    # sample: a directory where a file is expected, a missing parent
    for target in (out, tmp_path / "missing" / "p.h5"):
        r = _hpcflow("sample", "--n", "10", "--out", target, "--force", cwd=tmp_path, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _snapshot(tmp_path) == before


def test_check_flag_validates_and_writes_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    r = _hpcflow("run", ROOT / "jobs/nn_smoke.toml", "--out", out, "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "new").exists()
    r = _hpcflow("run", ROOT / "jobs/quickstart.toml", "--out", out, "--check", "--set",
                 "geometry.n_train=1000000000000", cwd=tmp_path)
    assert r.returncode == 2 and "estimated peak memory" in r.stderr and not (tmp_path / "new").exists()
    # a GPU job checked on a node without one is accepted (login node) with a warning; the run itself refuses it
    from hpcflow.backend import gpu_available

    for cmd, job in (("run", "quickstart.toml"), ("nn", "nn_smoke.toml")):  # (the run of `hpcflow nn` refuses too)
        r = _hpcflow(cmd, ROOT / "jobs" / job, "--out", out, "--check", cwd=tmp_path, env={"HPCFLOW_BACKEND": "cupy"})
        assert r.returncode == 0 and ("no usable GPU" in r.stdout) == (not gpu_available()), r.stdout
    assert "backend numpy" in _hpcflow("run", ROOT / "jobs/quickstart.toml", "--out", out, "--check", cwd=tmp_path,
                                       env={"HPCFLOW_BACKEND": "numpy"}).stdout
    assert not (tmp_path / "new").exists()


def test_killed_run_leaves_a_directory_that_a_rerun_accepts(tmp_path):
    """SIGKILL during the flow: no summary.json, at most debris (and a checkpoint); the rerun into the same --out
    succeeds, or, when a checkpoint was written, is refused with a pointer to --resume and succeeds with --force."""
    import signal
    import time

    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", str(ROOT / "jobs/quickstart.toml"), "--out",
                             str(out), "--set", "flow.steps=100000"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not out.is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the directory appears once the job is validated, just before the work
        time.sleep(1.0)  # sampling / flowing
        assert proc.poll() is None, "the long run ended by itself"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert out.is_dir() and not (out / "summary.json").exists()
    rerun = ("run", ROOT / "jobs/quickstart.toml", "--out", out, "--set", "flow.steps=1",
             "--set", "geometry.n_train=50", "--set", "geometry.n_test=50")
    if (out / "checkpoint.h5").exists():  # killed after its first checkpoint: an interrupted run, kept for --resume
        before = (out / "checkpoint.h5").read_bytes()
        r = _hpcflow(*rerun, cwd=tmp_path)
        assert r.returncode == 2 and "--resume" in r.stderr and (out / "checkpoint.h5").read_bytes() == before
        rerun = (*rerun, "--force")
    r = _hpcflow(*rerun, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 1


# ---- resources --------------------------------------------------------------------------------------------
def _fake_root(tmp_path, cgroup: str, files: dict) -> str:
    root = tmp_path / "root"
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return str(root)


def test_memory_limit_reads_cgroups_and_slurm(tmp_path):
    from hpcflow.resources import cgroup_limit, memory_limit

    v2 = _fake_root(tmp_path / "v2", "0::/job/step\n", {"sys/fs/cgroup/job/step/memory.max": "max\n",
                                                       "sys/fs/cgroup/job/memory.max": "4294967296\n"})
    assert cgroup_limit(v2) == 4 * 2**30  # the ancestor's limit binds
    assert memory_limit(root=v2, environ={}) == (4 * 2**30, "cgroup memory limit")
    limit, where = memory_limit(ranks=4, root=v2, environ={})
    assert limit == 2**30 and "4 ranks" in where
    assert memory_limit(ranks=4, root=v2, environ={"OMPI_COMM_WORLD_LOCAL_SIZE": "2"})[0] == 2 * 2**30
    v1 = _fake_root(tmp_path / "v1", "4:memory:/slurm/uid\n1:cpu:/\n",
                    {"sys/fs/cgroup/memory/slurm/uid/memory.limit_in_bytes": "9223372036854771712\n",
                     "sys/fs/cgroup/memory/slurm/memory.limit_in_bytes": "1073741824\n"})
    assert cgroup_limit(v1) == 2**30
    none = _fake_root(tmp_path / "none", "0::/\n", {})
    assert cgroup_limit(none) is None
    assert memory_limit(root=none, environ={"SLURM_MEM_PER_NODE": "1000"}) == (1000 * 2**20, "SLURM_MEM_PER_NODE")
    assert memory_limit(root=none, environ={"SLURM_MEM_PER_CPU": "500", "SLURM_CPUS_PER_TASK": "3"}) == (
        1500 * 2**20, "SLURM_MEM_PER_CPU")
    with pytest.raises(ConfigError, match="SLURM_CPUS_PER_TASK='4x'"):  # was read as 4 CPUs
        memory_limit(root=none, environ={"SLURM_MEM_PER_CPU": "500", "SLURM_CPUS_PER_TASK": "4x"})
    # sbatch --mem units (M default, K/G/T); 0 (--mem=0: the whole node) is no limit; a value that is not a size
    # is refused in one line naming it (it was ignored: the job ran without the limit Slurm would enforce)
    assert memory_limit(root=none, environ={"SLURM_MEM_PER_NODE": "2G"}) == (2 * 2**30, "SLURM_MEM_PER_NODE")
    assert memory_limit(root=none, environ={"SLURM_MEM_PER_CPU": "512k"}) == (2**19, "SLURM_MEM_PER_CPU")
    assert memory_limit(root=none, environ={"SLURM_MEM_PER_NODE": "0"})[1] != "SLURM_MEM_PER_NODE"
    for name, text in (("SLURM_MEM_PER_NODE", "abc"), ("SLURM_MEM_PER_NODE", "2X"), ("SLURM_MEM_PER_CPU", "-5"),
                       ("SLURM_MEM_PER_CPU", "1.5G"), ("SLURM_MEM_PER_NODE", "\u0663")):
        with pytest.raises(ConfigError, match=f"^{name}='.*' is not a memory size .* unset it or set e.g. {name}="):
            memory_limit(root=none, environ={name: text})
    # ranks on this node from SLURM_TASKS_PER_NODE ("2(x2),1": 2, 2 and 1 tasks on nodes 0-2) without
    # --ntasks-per-node: node memory is shared by this node's ranks, not by all 5
    for node, local in ((1, 2), (2, 1)):
        env = {"SLURM_MEM_PER_NODE": "1200", "SLURM_TASKS_PER_NODE": "2(x2),1", "SLURM_NODEID": str(node)}
        assert memory_limit(ranks=5, root=none, environ=env)[0] == 1200 * 2**20 / local
    phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_limit(root=none, environ={})[0] <= phys


def test_check_resources_refuses_with_estimate_and_limit_and_can_be_overridden(tmp_path, monkeypatch):
    from hpcflow.resources import check_resources, fmt_bytes, memory_limit

    _, cfg = _load(tmp_path, "quickstart.toml")
    cfg["geometry"]["n_train"] = 10**11
    limit = memory_limit()[0]
    with pytest.raises(ConfigError) as exc:
        check_resources(cfg, "flow", source="J")
    assert fmt_bytes(limit) in str(exc.value) and "estimated peak memory" in str(exc.value)
    assert check_resources(cfg, "flow", force=True).bytes > limit
    monkeypatch.setenv("HPCFLOW_IGNORE_MEMORY_CHECK", "1")
    check_resources(cfg, "flow")
    _load(tmp_path, "quickstart.toml", "geometry.n_train=100000000000")
    monkeypatch.setenv("HPCFLOW_IGNORE_MEMORY_CHECK", "yes")
    with pytest.raises(ConfigError, match="HPCFLOW_IGNORE_MEMORY_CHECK"):
        _load(tmp_path, "quickstart.toml")
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK")
    _load(tmp_path, "quickstart.toml", "geometry.n_train=100000000000", memory_check=False)
    with pytest.raises(ConfigError, match="estimated peak memory"):
        _load(tmp_path, "nn_smoke.toml", "model.width=1000000")


@pytest.mark.parametrize("name, value", [("HPCFLOW_THREADS", "0"), ("HPCFLOW_THREADS", "100000"),
                                         ("HPCFLOW_THREADS", "two"), ("HPCFLOW_THREADS", "\u00b2"),
                                         ("HPCFLOW_THREADS", "\u0663"), ("HPCFLOW_BACKEND", "fortran"),
                                         ("HPCFLOW_QUIET", "yes please"),
                                         ("SLURM_CPUS_PER_TASK", "0"), ("SLURM_CPUS_PER_TASK", "4x"),
                                         ("SLURM_MEM_PER_NODE", "lots"), ("SLURM_MEM_PER_CPU", "2GiB")])
def test_environment_variables_are_checked_before_work(tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        _load(tmp_path, "quickstart.toml")


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "0", "two"])
def test_default_threads_refuses_what_is_not_ascii_digits(monkeypatch, value):
    """str.isdigit() takes a superscript two (then int() raised a traceback) and other scripts' digits."""
    from hpcflow.backend import default_threads

    monkeypatch.setenv("HPCFLOW_THREADS", value)
    with pytest.raises(ConfigError, match="HPCFLOW_THREADS"):
        default_threads()


def test_slurm_cpus_per_task_is_a_positive_integer_or_not_set():
    """The one reader of SLURM_CPUS_PER_TASK (threads per rank, the memory of SLURM_MEM_PER_CPU): what Slurm writes
    (digits, >= 1) is read; unset or blank is "not set"; anything else is refused in one line naming it and the fix."""
    from hpcflow.resources import slurm_cpus_per_task

    for text in ("1", "2", "64", "007", " 8\n", str(10**6)):
        assert slurm_cpus_per_task({"SLURM_CPUS_PER_TASK": text}) == int(text.strip())
    for env in ({}, {"SLURM_CPUS_PER_TASK": ""}, {"SLURM_CPUS_PER_TASK": "  "}):
        assert slurm_cpus_per_task(env) is None
    for text in ("0", "00", "abc", "-3", "4x", "+4", "4.0", "1e3", "4 4", "\u00b2", "\u0663"):
        with pytest.raises(ConfigError) as exc:
            slurm_cpus_per_task({"SLURM_CPUS_PER_TASK": text})
        msg = str(exc.value)
        assert "\n" not in msg and msg.startswith(f"SLURM_CPUS_PER_TASK={text.strip()!r} ") and "unset it" in msg


@pytest.mark.parametrize("argv, value", [
    (["run", ROOT / "jobs/quickstart.toml", "--out", "out"], "abc"),
    (["run", ROOT / "jobs/quickstart.toml", "--out", "out"], "4x"),
    (["nn", ROOT / "jobs/nn_smoke.toml", "--out", "out"], "0"),
    (["sample", "--n", "200", "--out", "out.h5"], "-3"),
])
def test_a_slurm_cpus_per_task_slurm_never_writes_is_refused_by_the_commands(tmp_path, argv, value):
    """Exit 2, one line naming the variable and the fix, no output created; a value Slurm writes is accepted."""
    r = _hpcflow(*argv, cwd=tmp_path, env={"SLURM_CPUS_PER_TASK": value})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"error: SLURM_CPUS_PER_TASK={value!r} is not a positive integer" in lines[0] and "unset it" in lines[0]
    assert _snapshot(tmp_path) == {}
    check = ["--check"] if argv[0] != "sample" else []
    r = _hpcflow(*argv, *check, cwd=tmp_path, env={"SLURM_CPUS_PER_TASK": "1"})
    assert r.returncode == 0, r.stderr


CHILD = """
import json, sys
from hpcflow.geometry import Hypersurface
from hpcflow.resources import estimate, peak_rss
est = estimate({"sample": {"n": int(sys.argv[1]), "dim": 3, "chart": None, "threads": 2}}, "sample")
Hypersurface.fermat(3).sample(int(sys.argv[1]), seed=0, threads=2)
print(json.dumps([est.bytes, peak_rss()]))
"""


def test_sample_memory_estimate_bounds_measured_peak_rss(tmp_path):
    """The estimate is an upper bound of the measured peak RSS of a fresh process, and not a loose one (< 3x);
    the growth from 10^4 to 2 10^5 points is bounded by the estimate's growth too."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = {}
    for n in (10_000, 200_000):
        r = subprocess.run([sys.executable, "-c", CHILD, str(n)], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        res[n] = json.loads(r.stdout)
    for est, peak in res.values():
        assert peak <= est <= 3 * peak
    assert res[200_000][1] - res[10_000][1] <= res[200_000][0] - res[10_000][0]


@pytest.mark.parametrize("change, flag", [
    ({"n": 0}, "--n"), ({"n": -5}, "--n"), ({"n": 10**13}, "would peak at about"), ({"n": 10**30}, "--n"),
    ({"dim": 0}, "--dim"), ({"dim": 300}, "--dim"), ({"seed": -1}, "--seed"),
    ({"psi": complex(math.nan, 0)}, "--psi"), ({"psi": complex(0, math.inf)}, "--psi"), ({"psi": 1e9}, "--psi"), ({"psi": 0.5}, "--manifold dwork"),
    ({"threads": 0}, "--threads"), ({"threads": 10**6}, "--threads"), ({"manifold": "k3"}, "--manifold"),
])
def test_sample_arguments_are_checked_before_work(change, flag):
    from argparse import Namespace

    from hpcflow.commands.sample import check_arguments

    args = Namespace(**{"manifold": "fermat", "dim": 3, "psi": 0.0, "n": 100, "seed": 0, "chart": None,
                        "threads": None, "no_memory_check": False, **change})
    with pytest.raises(ConfigError, match=flag):
        check_arguments(args)
    if "peak" in flag:
        check_arguments(Namespace(**{**vars(args), "no_memory_check": True}))


def test_sample_psi_is_bounded_where_the_sampler_cannot_place_its_roots(tmp_path, capsys):
    """--psi and [geometry] psi take what the API's `Hypersurface.dwork(dim, psi).sample` takes: |psi| = 2000
    (refused before as losing accuracy beyond 1000) samples points on X to |p(z)|/|z|^5 < 1e-12, and a |psi| whose
    roots float64 cannot place (1e5 at dim 3) is refused by the sampler's accuracy check with its message (the |psi|
    it would take), exit 2, nothing written."""
    from argparse import Namespace

    from hpcflow.cli import main
    from hpcflow.commands.sample import check_arguments
    from hpcflow.geometry import Hypersurface, PointSet

    import numpy as np

    base = {"manifold": "dwork", "dim": 3, "n": 100, "seed": 0, "chart": None, "threads": None,
            "no_memory_check": False}
    for psi in (1001, -2000.0, 999 + 999j):
        assert check_arguments(Namespace(psi=psi, **base))["psi"] == psi
    _, cfg = _load(tmp_path, "quickstart.toml", 'geometry.manifold="dwork"', "geometry.psi=2000.0")
    assert cfg["geometry"]["psi"] == 2000.0
    out = tmp_path / "ok.h5"
    assert main(["sample", "--manifold", "dwork", "--psi", "2000", "--n", "300", "--threads", "1", "--quiet",
                 "--out", str(out)]) == 0
    ps = PointSet.load(out)
    z = ps.points
    p = np.abs((z**5).sum(axis=1) - 5 * 2000 * z.prod(axis=1))  # the Dwork quintic at psi = 2000
    assert len(ps) == 300 and np.max(p / np.linalg.norm(z, axis=1) ** 5) < 1e-12
    assert Hypersurface.dwork(3, 2000) == ps.manifold
    capsys.readouterr()
    bad = tmp_path / "bad.h5"
    assert main(["sample", "--manifold", "dwork", "--psi", "1e5", "--n", "300", "--threads", "1", "--quiet",
                 "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpcflow sample: error: --psi 100000 is refused by the sampler: dwork(dim=3, psi=100000): ")
    assert "use |psi| <= " in err, err
    assert err.count("\n") == 1 and not bad.exists()


def test_unwritable_directories_are_refused(tmp_path, monkeypatch):
    """(Tests may run as root, who can write anywhere: the kernel's refusal of a file created there is simulated.)"""
    (tmp_path / "out").mkdir()
    real_open = os.open

    def denied(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(output.os, "open", denied)
    with pytest.raises(OutputPathError, match="not writable"):
        output.check_outdir(tmp_path / "out")
    with pytest.raises(OutputPathError, match="not writable"):
        output.check_outdir(tmp_path / "new" / "deeper")
    with pytest.raises(OutputPathError, match="not writable"):
        output.check_output_file(str(tmp_path / "p.h5"), force=False)


def test_relu_ntk_depth_is_validated(tmp_path):
    _refused(tmp_path, "table1_relu.toml", "kernel.depth=0", words=["[kernel].depth"])
    _refused(tmp_path, "table1_relu.toml", "kernel.depth=2.5", words=["[kernel].depth"])
    _refused(tmp_path, "table1_gaussian.toml", "kernel.depth=4", words=["[kernel].depth", "remove it"])
    _, cfg = _load(tmp_path, "table1_relu.toml", "kernel.depth=8")
    assert cfg["kernel"]["depth"] == 8


@pytest.mark.parametrize("argv", [["run", "j.toml", "--out", "o"], ["nn", "j.toml", "--out", "o"],
                                  ["sample", "--n", "10", "--out", "p.h5"], ["tune", "j.toml", "--trials", "1", "--out", "o"],
                                  ["report", "d", "--out", "o"], ["info"],
                                  ["submit", "j.toml", "--out", "o", "--executor", "local"]])
def test_an_unknown_option_is_refused_by_the_subcommand_in_one_line(argv, capsys):
    from hpcflow.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--bogus", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"hpcflow {argv[0]}: error: unrecognized arguments: --bogus x"), err


@pytest.mark.parametrize("argv", [[], ["--bogus"]])
def test_hpcflow_without_a_command_names_the_commands_in_one_line(argv, capsys):
    """`hpcflow` alone says which commands there are, not argparse's internal destination name."""
    from hpcflow.cli import COMMANDS, main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "verb" not in err
    assert (argv[0] in err) if argv else all(m.rsplit(".", 1)[1] in err for m in COMMANDS), err
