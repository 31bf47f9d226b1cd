"""Job files: schema validation (one-line errors, exit 2, nothing written) and `hpcflow run` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcflow.errors import ConfigError, OutputPathError
from hpcflow.jobs import output
from hpcflow.jobs.schema import REQUIRED, Field, load_job, positive

ROOT = Path(__file__).resolve().parents[1]

SCHEMA = {
    "job": {"kind": Field(str)},
    "flow": {
        "dt": Field(float, check=positive),
        "steps": Field(int, 50),
        "loss": Field(str, "sigma", choices=("sigma", "ultralocal")),
        "scales": Field(list, [0.1], items=float),
        "clip": Field(float, None, check=positive),
    },
}


def _write(tmp_path, text, name="job.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_load_job_fills_defaults_and_converts_int_to_float(tmp_path):
    p = _write(tmp_path, """
        [job]
        kind = "x"
        [flow]
        dt = 1
        scales = [1, 0.5]
    """)
    cfg = load_job(p, SCHEMA)
    assert cfg == {"job": {"kind": "x"},
                   "flow": {"dt": 1.0, "steps": 50, "loss": "sigma", "scales": [1.0, 0.5], "clip": None}}
    assert isinstance(cfg["flow"]["dt"], float) and Field(int).default is REQUIRED


@pytest.mark.parametrize("body, words", [
    ("[flow]\ndt = 1\nstpes = 3\n", ["[flow].stpes", "unknown key", "did you mean steps?"]),
    ("[flw]\ndt = 1\n", ["[flw]", "unknown section", "did you mean [flow]?"]),
    ("[flow]\ndt = \"fast\"\n", ["[flow].dt", "number"]),
    ("[flow]\ndt = 1\nsteps = 2.5\n", ["[flow].steps", "integer"]),
    ("[flow]\ndt = 1\nsteps = true\n", ["[flow].steps", "integer"]),
    ("[flow]\ndt = -0.1\n", ["[flow].dt", "> 0"]),
    ("[flow]\ndt = nan\n", ["[flow].dt", "finite"]),
    ("[flow]\ndt = 1\nloss = \"l2\"\n", ["[flow].loss", "'sigma'"]),
    ("[flow]\ndt = 1\nscales = [0.1, \"a\"]\n", ["[flow].scales", "elements"]),
    ("[flow]\nsteps = 3\n", ["[flow].dt", "required"]),
    ("[flow]\ndt = 1\n[flow.sub]\nx = 1\n", ["[flow].sub", "unknown key"]),
])
def test_schema_errors_name_the_key(tmp_path, body, words):
    p = _write(tmp_path, "[job]\nkind = \"x\"\n" + body)
    with pytest.raises(ConfigError) as exc:
        load_job(p, SCHEMA)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("body, fix", [
    ("dt = nan", "= nan is not a finite number; give a finite value"),
    ("dt = -inf", "= -inf is not a finite number; give a finite value"),
    ("dt = " + "9" * 400, "is beyond a float's range; give a finite value"),
    ("dt = 1\nscales = [0.1, inf]", "element inf is not a finite number; give a finite value"),
    ("dt = \"fast\"", "must be a finite number; fix its type"),
    ("dt = 1\nscales = [0.1, \"a\"]", "fix its elements"),
])
def test_a_nan_or_inf_is_a_value_to_change_a_string_a_type_to_fix(tmp_path, body, fix):
    """NaN and inf are numbers of the right type with a wrong value: the fix is a finite value, not 'fix its
    type', which stays for a wrong type."""
    with pytest.raises(ConfigError) as exc:
        load_job(_write(tmp_path, f"[job]\nkind = \"x\"\n[flow]\n{body}\n"), SCHEMA)
    assert fix in str(exc.value) and "\n" not in str(exc.value)
    assert ("fix its" in str(exc.value)) == ("fix its" in fix)


def test_sample_psi_nan_asks_for_a_finite_value(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hpcflow", "sample", "--manifold", "dwork", "--psi", "nan", "--n", "10",
                        "--out", str(tmp_path / "p.h5")], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and not (tmp_path / "p.h5").exists(), r.stderr
    assert "--psi = nan is not a finite number; give a finite value" in r.stderr


def test_malformed_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_job(_write(tmp_path, "[job\n"), SCHEMA)
    with pytest.raises(ConfigError, match="does not exist"):
        load_job(tmp_path / "nope.toml", SCHEMA)


def test_a_directory_given_as_the_job_file_is_called_a_directory(tmp_path):
    """`hpcflow run jobs/ --out X` said "job file does not exist" of a directory that exists: it says what it is
    and asks for a TOML file in it (exit 2, one line, nothing written)."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    _write(jobs, TINY, "tiny.toml")
    r = _hpcflow("run", jobs, "--out", tmp_path / "out", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"{jobs}: is a directory, not a job file" in lines[0] and str(jobs / "tiny.toml") in lines[0]
    assert "does not exist" not in lines[0] and not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="empty: is a directory, not a job file; pass the path of a TOML job file"):
        load_job(empty, SCHEMA)
    with pytest.raises(ConfigError, match="null: is not a regular file; pass the path of a TOML job file"):
        load_job(os.devnull, SCHEMA)  # exists, but is a device


# ---- output helpers ------------------------------------------------------------------------------------
class _Rank1:
    """Rank 1 of a world of 2 (the communicator's two questions)."""

    def Get_rank(self):
        return 1

    def Get_size(self):
        return 2


def test_writers_write_only_on_rank_zero(tmp_path):
    output.write_json(tmp_path / "a.json", {"x": 1}, comm=_Rank1())
    output.write_hdf5(tmp_path / "a.h5", {"g/x": np.arange(3)}, comm=_Rank1())
    assert list(tmp_path.iterdir()) == []
    output.write_json(tmp_path / "a.json", {"x": np.float64(np.inf), "y": np.arange(2)})
    output.write_hdf5(tmp_path / "a.h5", {"g/x": np.arange(3)}, attrs={"config": {"a": [1, 2]}})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [0, 1]}
    with h5py.File(tmp_path / "a.h5") as f:
        assert f["g/x"][()].tolist() == [0, 1, 2] and json.loads(f.attrs["config"]) == {"a": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "a.json"]  # no temporary files left


def test_prepare_outdir_refuses_results_unless_forced(tmp_path):
    out = tmp_path / "out"
    output.prepare_outdir(out)  # creates it
    output.prepare_outdir(out)  # empty: fine
    (out / "summary.json").write_text('{"hpcflow_version": "0.1.0"}')  # (an earlier run's: `output.run_files_in`)
    with pytest.raises(OutputPathError, match="--force"):
        output.prepare_outdir(out)
    output.prepare_outdir(out, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="not a directory"):
        output.prepare_outdir(tmp_path / "file", force=True)
    with pytest.raises(OutputPathError, match="cannot create"):
        output.prepare_outdir(tmp_path / "file" / "sub")
    assert os.path.isdir(output.prepare_outdir(tmp_path / "a" / "b"))  # missing parents are created


def test_prepare_outdir_tells_files_no_run_writes_from_results(tmp_path):
    """A directory holding only a user's file is refused as not empty (the file named, not as results); --force
    runs beside it and leaves it as it was; an earlier run's file is still refused as results."""
    out = tmp_path / "od"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"is not empty: it holds 'notes\.txt', which no run writes") as exc:
        output.prepare_outdir(out)
    assert "already holds results" not in str(exc.value) and "--force" in str(exc.value)
    (out / "b.txt").write_text("also mine")
    with pytest.raises(OutputPathError, match=r"'b\.txt' and 1 more entry"):
        output.prepare_outdir(out)
    output.prepare_outdir(out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "b.txt").read_text() == "also mine"
    (out / "summary.json").write_text('{"hpcflow_version": "0.1.0"}')
    with pytest.raises(OutputPathError, match=r"already holds results \(summary\.json\)"):
        output.prepare_outdir(out)
    cli = tmp_path / "cli"  # the command line: one line, exit 2; --force runs beside the user's file
    cli.mkdir()
    (cli / "notes.txt").write_text("mine")
    job = _write(tmp_path, TINY)
    r = _hpcflow("run", job, "--out", cli, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'notes.txt'" in r.stderr, r.stderr
    assert sorted(os.listdir(cli)) == ["notes.txt"]
    r = _hpcflow("run", job, "--out", cli, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (cli / "notes.txt").read_text() == "mine" and (cli / "summary.json").is_file()


# ---- hpcflow run end to end ----------------------------------------------------------------------------
TINY = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 60
n_test = 40
seed = 3
[kernel]
name = "delta"
[flow]
dt = 0.5
steps = 4
loss = "ultralocal"
"""


def _hpcflow(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "hpcflow", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _sigma(eta, w):
    """sigma measure written out independently (eq. B.11)."""
    k = np.sum(w * eta) / np.sum(w)
    return np.sum(w * np.abs(1 - eta / k)) / np.sum(w)


def test_run_tiny_flow_job_end_to_end(tmp_path):
    job = _write(tmp_path, TINY)
    out = tmp_path / "out"
    r = _hpcflow("run", job, "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    with h5py.File(out / "checkpoint.h5") as f:
        st, se = f["history/sigma_train"][()], f["history/sigma_test"][()]
        cfg = json.loads(f.attrs["config"])
        g_tr, w_tr, o_tr = f["train/g"][()], f["train/weights"][()], f["train/omega2"][()]
        g_te, w_te, o_te = f["test/g"][()], f["test/weights"][()], f["test/omega2"][()]
        z_tr = f["train/points"][()]
    assert st.shape == se.shape == (5,)
    assert g_tr.shape == (60, 3, 3) and g_te.shape == (40, 3, 3)
    assert cfg["flow"]["dt"] == 0.5 and cfg["kernel"]["name"] == "delta"
    # summary agrees with the history and with sigma recomputed from the stored final metrics
    assert summary["sigma_train_initial"] == st[0] and summary["sigma_train_final"] == st[-1]
    assert summary["sigma_test_initial"] == se[0] and summary["sigma_test_final"] == se[-1]
    assert summary["gain_train"] == pytest.approx(st[0] / st[-1], rel=1e-12)
    assert _sigma(np.linalg.det(g_tr).real / o_tr, w_tr) == pytest.approx(st[-1], rel=1e-9)
    assert _sigma(np.linalg.det(g_te).real / o_te, w_te) == pytest.approx(se[-1], rel=1e-9)
    assert summary["n_train"] == 60 and summary["n_test"] == 40 and summary["kernel"] == "delta"
    assert summary["steps"] == 4 and summary["rejected_steps"] >= 0 and summary["wall_seconds"] > 0
    # train points: chart (0, 1), z_0 = 1, and the FS sigma at step 0 matches g_FS recomputed from the points
    from hpcflow.geometry import Hypersurface

    assert np.allclose(z_tr[:, 0], 1.0)
    ps = Hypersurface.fermat(3).point_set(z_tr, chart=np.tile([0, 1], (60, 1)))
    assert _sigma(np.linalg.det(ps.g_fs).real / ps.omega2, ps.weights) == pytest.approx(st[0], rel=1e-9)
    assert st[-1] < st[0]  # the flow lowers the train loss
    # the saved job is the validated configuration: reading it back gives the same cfg as the original file
    from hpcflow.jobs import registry

    assert registry.load(out / "job.toml")[1] == registry.load(job)[1] == cfg

    # an existing output directory with results is refused and left untouched; --force overwrites it
    before = (out / "summary.json").read_bytes()
    r = _hpcflow("run", job, "--out", out, cwd=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (out / "summary.json").read_bytes() == before
    r = _hpcflow("run", job, "--out", out, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("change, key", [
    (("n_train = 60", "n_train = 60\nn_tarin = 5"), "[geometry].n_tarin"),
    (("dt = 0.5", "dt = \"0.5\""), "[flow].dt"),
    (("dt = 0.5", "dt = 0.0"), "[flow].dt"),
    (("steps = 4", "steps = -1"), "[flow].steps"),
    (("chart = [0, 1]", "chart = [1, 1]"), "[geometry].chart"),
    (("chart = [0, 1]", "chart = [0, 7]"), "[geometry].chart"),
    (("name = \"delta\"", "name = \"delta\"\nwidth = 0.1"), "[kernel].width"),
    (("name = \"delta\"", "name = \"gaussian\""), "[kernel].width"),
    (("name = \"delta\"", "name = \"delta\"\nengine = \"numba\""), "[kernel].engine"),
    (("name = \"delta\"", "name = \"gaussian\"\nwidth = 0.5\nengine = \"fortran\""), "[kernel].engine"),
    (("kind = \"flow\"", "kind = \"flwo\""), "[job].kind"),
    (("chart = [0, 1]", "chart = [0, 1]\npsi = 0.5"), "[geometry].psi"),  # psi of a Fermat job: meant Dwork
])
def test_run_rejects_bad_job_before_any_work(tmp_path, change, key):
    job = _write(tmp_path, TINY.replace(*change))
    out = tmp_path / "out"
    r = _hpcflow("run", job, "--out", out, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and lines[0].startswith("hpcflow run: error:")
    assert not out.exists()


def test_shipped_job_files_validate():
    from hpcflow.jobs import registry

    jobs = sorted((ROOT / "jobs").glob("*.toml"))
    assert {"quickstart.toml", "table1_delta.toml", "table1_gaussian.toml"} <= {p.name for p in jobs}
    for p in jobs:
        registry.load(p)


def test_clustering_table_builds_blocks_and_full_halo_equals_one_block(tmp_path):
    """[clustering] goes to hpcflow.cluster.flow_blocks; a halo of pi/2 makes every train point a source of
    every block, which must reproduce the unclustered flow."""
    from hpcflow.experiments import flow_job
    from hpcflow.jobs import registry

    def run(extra, name):
        p = _write(tmp_path, TINY.replace("name = \"delta\"", "name = \"gaussian\"\nwidth = 0.05") + extra, name)
        module, cfg = registry.load(p)
        assert module is flow_job
        out = tmp_path / name.replace(".toml", "")
        out.mkdir()
        return flow_job.run(cfg, out)

    plain = run("", "plain.toml")
    # "none" unsets an optional key, as if the table had no method (what --set clustering.method=none gives)
    off = run("[clustering]\nmethod = \"none\"\nn_clusters = 3\nhalo_cutoff = \"none\"\n", "off.toml")
    assert off["n_blocks"] is None and off["sigma_train_final"] == plain["sigma_train_final"]
    clustered = run("[clustering]\nmethod = \"full\"\nn_clusters = 3\n", "clustered.toml")
    halo = run("[clustering]\nmethod = \"full\"\nn_clusters = 3\nhalo_cutoff = 1.5708\n", "halo.toml")
    assert plain["n_blocks"] is None and clustered["n_blocks"] == 3 == halo["n_blocks"]
    assert clustered["sigma_train_final"] != plain["sigma_train_final"]
    for key in ("sigma_train_final", "sigma_test_final"):
        assert halo[key] == pytest.approx(plain[key], rel=1e-10)


def test_set_overrides_values_and_is_recorded(tmp_path):
    """--set SECTION.KEY=VALUE changes the run (4 -> 2 flow steps, delta -> gaussian with a width), is validated
    like the file, and is recorded in summary.json and the saved job.toml."""
    job = _write(tmp_path, TINY)
    out = tmp_path / "out"
    r = _hpcflow("run", job, "--out", out, "--set", "flow.steps=2", "--set", "kernel.name=gaussian",
                 "--set", "kernel.width=0.2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    with h5py.File(out / "checkpoint.h5") as f:
        assert f["history/sigma_train"].shape == (3,)
        cfg = json.loads(f.attrs["config"])
    assert cfg["kernel"] == {**cfg["kernel"], "name": "gaussian", "width": 0.2}
    assert summary["kernel"] == "gaussian" and summary["overrides"][0] == "flow.steps=2"
    assert "--set flow.steps=2 --set kernel.name=gaussian" in (out / "job.toml").read_text()


@pytest.mark.parametrize("override, words", [
    ("flow.steps", "SECTION.KEY=VALUE"),
    ("steps=3", "SECTION.KEY=VALUE"),
    ("flow.stpes=3", "[flow].stpes"),
    ("flow.steps=-1", "[flow].steps"),
    ("flow.dt=fast", "[flow].dt"),
])
def test_bad_set_is_one_line_exit_2_before_any_work(tmp_path, override, words):
    job = _write(tmp_path, TINY)
    out = tmp_path / "out"
    r = _hpcflow("run", job, "--out", out, "--set", override, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not out.exists()


def test_none_unsets_only_optional_keys_without_a_none_choice(tmp_path):
    """clip (default None) given as "none" is unset; "none" for a key with a default, or for a required key, is
    still a type error naming the key; a key whose choices include "none" keeps it as its value."""
    cfg = load_job(_write(tmp_path, '[job]\nkind = "x"\n[flow]\ndt = 0.1\nclip = "none"\n'), SCHEMA)
    assert cfg["flow"]["clip"] is None
    for body, key in (('dt = "none"', "[flow].dt"), ('dt = 0.1\nsteps = "none"', "[flow].steps")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            load_job(_write(tmp_path, f'[job]\nkind = "x"\n[flow]\n{body}\n'), SCHEMA)
    own = {**SCHEMA, "flow": {**SCHEMA["flow"], "norm": Field(str, None, choices=("none", "row"))}}
    assert load_job(_write(tmp_path, '[job]\nkind = "x"\n[flow]\ndt = 0.1\nnorm = "none"\n'), own)["flow"]["norm"] == "none"


@pytest.mark.parametrize("override, shown", [
    ("flow.steps=true", "[flow].steps = true must be an integer"),
    ("flow.loss=false", "[flow].loss = false must be a string"),
    ("geometry.chart=[true, 1]", "[geometry].chart = [true, 1] must be a list whose elements are each an integer"),
    ("job.kind=true", "[job].kind = true must be a string"),
])
def test_a_wrong_value_is_shown_as_toml_writes_it(tmp_path, override, shown):
    """A boolean given where it does not fit is echoed as the user wrote it (TOML's true), not Python's True."""
    from hpcflow.jobs import registry

    with pytest.raises(ConfigError) as exc:
        registry.load(_write(tmp_path, TINY), [override])
    msg = str(exc.value)
    assert shown in msg and f"(from --set {override})" in msg and "True" not in msg and "False" not in msg, msg


def test_parse_override_reads_toml_values():
    from hpcflow.jobs.schema import parse_override

    assert parse_override("training.lr=3e-3") == ("training", "lr", 0.003)
    assert parse_override("width_sweep.widths=[64, 128]") == ("width_sweep", "widths", [64, 128])
    assert parse_override("ntk.enabled=false") == ("ntk", "enabled", False)
    assert parse_override("model.features=reim_abs2") == ("model", "features", "reim_abs2")
    assert parse_override('job.description="a = b"') == ("job", "description", "a = b")


def test_an_unknown_section_of_an_nn_job_names_tune_among_the_known_and_the_closest(tmp_path):
    """[trainng] in a network job: the refusal guesses [training], and lists [tune], which such a job may carry
    (validated by hpcflow.tune.space), among the known sections; a name close to none gets no guess."""
    from hpcflow.jobs.registry import load

    for section, guess in (("trainng", "did you mean [training]? "), ("zzz", "")):
        p = tmp_path / f"{section}.toml"
        p.write_text(f'[job]\nkind = "nn"\n[{section}]\nepochs = 2\n')
        with pytest.raises(ConfigError) as exc:
            load(p)
        msg = str(exc.value)
        assert f"unknown section [{section}]; {guess}known sections are [job]" in msg, msg
        assert "[training]" in msg and msg.endswith(", [tune]"), msg
