"""Refusals say what is wrong and a fix that works, and the command lines shown to users paste back into a shell as
they were."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.jobs import registry
from jobtexts import DELTA_FLOW, flow_points

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
NN = ROOT / "jobs" / "nn_smoke.toml"
SMALL = ["--set", "geometry.n_train=100", "--set", "geometry.n_test=100", "--set", "flow.steps=2", "--set",
         "checkpoint.every=1", "--set", "clustering.batch_size=50"]


def _error(capsys, verb: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"hpcflow {verb}: error: ") and err.count("\n") == 1, err
    return err[len(f"hpcflow {verb}: error: "):].rstrip("\n")


@pytest.fixture
def threads_kept(monkeypatch):
    """An in-process `hpcflow run` sets the thread variables (limit_threads): restored after the test."""
    for name in ("HPCFLOW_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")


@pytest.fixture(scope="module")
def stopped_flow(tmp_path_factory):
    """--out of a small flow killed after its last checkpoint (no summary.json): an interrupted `hpcflow run`."""
    out = tmp_path_factory.mktemp("flow") / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(QUICKSTART), "--out", str(out), *SMALL],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (out / "summary.json").unlink()
    return out


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---- job files and --set ------------------------------------------------------------------------------------------
def test_a_job_file_with_a_byte_order_mark_reads_as_without_it(tmp_path):
    """Some editors start UTF-8 files with U+FEFF: it said "not valid TOML (Invalid statement (at line 1, column 1))";
    the sbatch templates' choice of command (run or nn) took such a network job for a flow."""
    from hpcflow.submit.requeue import command

    for job in (QUICKSTART, NN):
        marked = tmp_path / job.name
        marked.write_bytes("\ufeff".encode() + job.read_bytes())
        assert registry.load(marked, memory_check=False)[1] == registry.load(job, memory_check=False)[1]
    assert command(str(tmp_path / NN.name), str(tmp_path / "out")) == ["nn"]


@pytest.mark.parametrize("raw", [".5", "5.", "05", "+.5", ".5e3", "00.25", "1_0.", "007"])
def test_a_set_number_in_pythons_spelling_is_given_in_tomls(raw):
    """`--set flow.dt=.5` said "quote a string as flow.dt='"..."'", which a number key refuses; the fix given is
    the number as TOML writes it, which reads back as the number Python reads from `raw`."""
    with pytest.raises(ConfigError) as exc:
        registry.load(QUICKSTART, [f"flow.dt={raw}"])
    msg = str(exc.value)
    assert "quote a string" not in msg and "is not a TOML number" in msg, msg
    fix = re.search(r"write it as flow\.dt=(\S+)$", msg).group(1)
    assert tomllib.loads(f"v = {fix}")["v"] == float(raw)
    registry.load(QUICKSTART, [f"flow.dt={fix}"], memory_check=False)


def test_a_set_value_that_is_neither_a_word_nor_a_number_still_gets_the_quoting_hint():
    for raw in ("1,5", "a b", "0.5.5"):
        with pytest.raises(ConfigError, match=r"quote a string as flow\.dt="):
            registry.load(QUICKSTART, [f"flow.dt={raw}"])


def test_a_bare_word_of_any_script_is_a_string_as_an_ascii_one_is(tmp_path, capsys, threads_kept):
    """README: a bare --set word is a string; `fërmat` was refused as "not one TOML value; quote a string" where
    `fermat` is taken. Now the manifold's own check refuses it, listing the manifolds."""
    from hpcflow.jobs.schema import parse_override

    for word in ("fërmat", "fe\u0301rmat", "ферма_2", "_ö-1.x"):
        assert parse_override(f"geometry.manifold={word}") == ("geometry", "manifold", word)
    out = tmp_path / "out"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--set", "geometry.manifold=fërmat"]) == 2
    msg = _error(capsys, "run")
    assert "[geometry].manifold = 'fërmat' is not one of 'fermat', 'dwork'" in msg and "quote" not in msg, msg
    assert not out.exists()
    for raw in ("3ë", "fër mat"):  # not one word: the quoting hint, as for 3x or "fer mat"
        with pytest.raises(ConfigError, match=r"quote a string as geometry\.manifold="):
            parse_override(f"geometry.manifold={raw}")


@pytest.mark.parametrize("value", ["3\n", "3\r", "3\r\n", "3\u2028", "\n3", "3\n\n"])
def test_a_set_value_with_a_line_break_is_refused_at_its_end_too(tmp_path, capsys, value):
    """README's table: a newline in VALUE gives "VALUE must be one line"; a trailing one was stripped and the value
    taken."""
    out = tmp_path / "out"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--set", f"flow.steps={value}"]) == 2
    msg = _error(capsys, "run")
    assert "VALUE must be one line" in msg and "remove the line break" in msg, msg
    assert not out.exists()


def test_a_job_key_that_is_not_a_table_is_said_so_not_a_missing_kind(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text("job = 3\n")
    for verb in ("run", "nn"):
        assert main([verb, str(job), "--out", str(tmp_path / "out"), "--check"]) == 2
        msg = _error(capsys, verb)
        assert msg.startswith(f"{job}: [job] must be a table") and "job = 3" in msg and "missing" not in msg
    job.write_text('[job]\ndescription = "no kind"\n')
    assert main(["nn", str(job), "--out", str(tmp_path / "out"), "--check"]) == 2
    assert _error(capsys, "nn") == (f"{job}: [job].kind is required but missing; add [job] with kind = \"nn\" (the "
                                    "jobs 'hpcflow nn' runs)")  # (it said "[job].kind = None", then kind = "flow")
    assert not (tmp_path / "out").exists()


def test_a_signal_delay_beyond_slurms_is_said_before_the_time_limit(tmp_path, capsys):
    """--signal-delay 70000 said "raise --time above 1166", and no --time lets Slurm take that delay."""
    assert main(["submit", str(QUICKSTART), "--out", str(tmp_path / "out"), "--executor", "local", "--check",
                 "--signal-delay", "70000"]) == 2
    msg = _error(capsys, "submit")
    assert msg.startswith("--signal-delay 70000 exceeds Slurm's largest signal time (65535 s)") and "--time" not in msg


# ---- another command's interrupted run, a resume's unset key ------------------------------------------------
@pytest.mark.parametrize("verb, job", [("nn", NN), ("run", NN), ("run", ROOT / "jobs" / "noise_scan.toml")])
def test_an_interrupted_run_of_another_kind_names_the_command_that_continues_it(stopped_flow, capsys, threads_kept,
                                                                                 verb, job):
    """It said "continue it with --resume", which the job of another kind refuses (no checkpoint.pt, or no
    checkpoints at all); the command named continues the run there, and --out is left as it was."""
    before = _snapshot(stopped_flow)
    assert main([verb, str(job), "--out", str(stopped_flow), "--check"]) == 2
    msg = _error(capsys, verb)
    assert "holds an interrupted run of 'hpcflow run' (checkpoint.h5" in msg and "--force" in msg, msg
    again = shlex.split(msg.split("continue it with: ", 1)[1])
    assert again == ["hpcflow", "run", str(stopped_flow / "job.toml"), "--out", str(stopped_flow), "--resume"]
    assert main([*again[1:], "--check"]) == 0
    assert _snapshot(stopped_flow) == before


def test_a_resume_mismatch_says_an_unset_key_as_a_job_file_does(stopped_flow, capsys, threads_kept):
    """It said "[clustering].method = None" (Python's word; a job file unsets a key with none)."""
    base = ["run", str(stopped_flow / "job.toml"), "--out", str(stopped_flow), "--resume", "--check"]
    assert main([*base, "--set", "clustering.method=none"]) == 2
    msg = _error(capsys, "run")
    assert "[clustering].method = none (unset) differs from the checkpoint's 'batched'" in msg and "None" not in msg
    assert main([*base, "--set", 'kernel.engine="numpy"']) == 2
    msg = _error(capsys, "run")
    assert "[kernel].engine = 'numpy' differs from the checkpoint's 'auto'" in msg and "None" not in msg


def test_a_resume_accepts_the_values_an_unset_key_means_and_refuses_others(stopped_flow, capsys, threads_kept):
    """The checkpoint's job leaves [kernel].engine and [geometry].test_seed unset (auto; seed + 1 = 1): --set of those
    very values was refused ("differs from the checkpoint's none (unset)"); another value still is, naming the key
    and the --set that matches. A long [job].description (text, which a resume may change) is accepted."""
    base = ["run", str(stopped_flow / "job.toml"), "--out", str(stopped_flow), "--resume", "--check"]
    before = _snapshot(stopped_flow)
    for same in ("kernel.engine=auto", "geometry.test_seed=1", "kernel.method=auto"):
        assert main([*base, "--set", same]) == 0, same
    capsys.readouterr()
    assert main([*base, "--set", "geometry.test_seed=2"]) == 2
    msg = _error(capsys, "run")
    assert "[geometry].test_seed = 2 differs from the checkpoint's 1" in msg and "--set geometry.test_seed=1" in msg
    assert main([*base, "--set", 'job.description="' + "x" * 200 + '"']) == 0
    assert _snapshot(stopped_flow) == before


# ---- command lines shown to users ---------------------------------------------------------------------------------
SETS = ['job.description="a b=c \u2603"', "flow.dt=6.5", "clustering.method='batched'"]


def test_submit_prints_a_command_line_that_the_shell_reads_back(tmp_path, capsys):
    """It printed `--set job.description="a b=c ☃"` unquoted: pasted, the shell took the quotes off and the
    command refused the value; an --out with a space or a quote split in two."""
    out = tmp_path / "o u't"
    assert main(["submit", str(QUICKSTART), "--out", str(out), "--executor", "local", "--check",
                 *(x for s in SETS for x in ("--set", s))]) == 0
    line = capsys.readouterr().out.strip()
    pasted = shlex.split(line.split(" task(s): ", 1)[1])
    assert pasted == ["hpcflow", "run", str(QUICKSTART), "--out", str(out), *(x for s in SETS for x in ("--set", s))]
    assert not out.exists()


def test_the_saved_job_header_names_the_overrides_as_the_shell_reads_them():
    from hpcflow.commands.run import saved_job

    _, cfg = registry.load(QUICKSTART, SETS, memory_check=False)
    text = saved_job(cfg, str(QUICKSTART), SETS)
    line = next(ln for ln in text.splitlines() if ln.startswith("# run with: "))
    assert shlex.split(line[len("# run with: "):]) == [x for s in SETS for x in ("--set", s)]
    assert tomllib.loads(text)["job"]["description"] == "a b=c \u2603"


# ---- hpcflow report and the environment ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("HPCFLOW_THREADS", "x"), ("HPCFLOW_QUIET", "yes"),
                                         ("HPCFLOW_THREADS", "9" * 5000)])
def test_report_refuses_the_environment_every_command_refuses(stopped_flow, tmp_path, monkeypatch, capsys, name,
                                                               value):
    """`hpcflow report` wrote its report under a HPCFLOW_THREADS or HPCFLOW_QUIET that every other command refuses
    (the README's table of bad input: the variable named, exit 2)."""
    monkeypatch.setenv(name, value)
    assert main(["report", str(stopped_flow), "--out", str(tmp_path / "report")]) == 2
    assert _error(capsys, "report").startswith(f"{name}=")
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("command, job_text, written", [
    ("nn", '[job]\nkind = "nn"\n', "checkpoint.pt"),
    ("run", flow_points(20, 10) + DELTA_FLOW, "checkpoint.h5")])
def test_a_checkpoint_seconds_out_of_range_says_what_the_key_does_in_words_that_read(tmp_path, capsys, command,
                                                                                       job_text, written):
    job = tmp_path / "job.toml"
    job.write_text(job_text)
    assert main([command, str(job), "--out", str(tmp_path / "out"), "--set", "checkpoint.seconds=-1"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"\[checkpoint\]\.seconds = -1\.0: must lie in [\[(]0, 1e\+09\] \(write DIR/"
                     + re.escape(written) + " also when this many seconds passed since the last one", err), err
    assert not (tmp_path / "out").exists()


def test_no_help_text_of_a_job_key_continues_a_sentence_it_is_not_printed_after():
    """A key's help is printed in parentheses after its range refusal ("must lie in [lo, hi] (help)"): it must read
    on its own, not continue another key's help ("and ...", "... and ...")."""
    import importlib

    from hpcflow.jobs.schema import Field

    starts = ("and ", "or ", "...", "but ")
    for kind, name in registry.KINDS.items():
        for section, fields in importlib.import_module(name).SCHEMA.items():
            for key, field in fields.items():
                if isinstance(field, Field) and field.help:
                    assert not field.help.startswith(starts), f"{kind} [{section}].{key}: {field.help!r}"


@pytest.mark.parametrize("raw, first", [("1e-3 2", "1e-3"), ("true false", "true"), ("[1, 2] 3", None),
                                        ("0.5\t0.7", "0.5")])
def test_a_set_value_of_two_values_is_said_so_not_a_string_to_quote(raw, first):
    """`--set flow.dt=1e-3 2` said "quote a string as flow.dt='"..."'", a string a number key refuses; the message
    now names the first value, which is accepted on its own."""
    with pytest.raises(ConfigError) as exc:
        registry.load(QUICKSTART, [f"flow.dt={raw}"])
    msg = str(exc.value)
    if first is None:  # "[1," is no value alone: the general hint stays
        assert "quote a string" in msg, msg
        return
    assert "more than one value" in msg and "quote a string" not in msg, msg
    fix = re.search(r"e\.g\. flow\.dt=(\S+)$", msg).group(1)
    assert fix == first
    if first != "true":
        registry.load(QUICKSTART, [f"flow.dt={fix}"], memory_check=False)


def _set_refused(*sets: str, job=QUICKSTART) -> str:
    """The one-line refusal of `job` with the --set values `sets` (registry.load, as every command loads a job)."""
    with pytest.raises(ConfigError) as exc:
        registry.load(job, list(sets), memory_check=False)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("chart", ["[-1,0]", "[0,-3]", "[0,5]"])
def test_a_chart_index_out_of_range_names_the_range_of_the_jobs_projective_space(chart):
    """The quintic lives in P^4: a chart's indices lie in [0, 4], a negative one as a too large one (the negative
    case said "must lie in [0, 17]", the bound of every dimension)."""
    msg = _set_refused(f"geometry.chart={chart}")
    assert "[geometry].chart" in msg and "[0, 4]" in msg and "P^4" in msg and "17" not in msg, msg
    assert msg.endswith(f"(from --set geometry.chart={chart})"), msg
    msg = _set_refused("geometry.dim=2", f"geometry.chart={chart}")  # the cubic threefold's P^3
    assert "[0, 3]" in msg and "P^3" in msg, msg


def test_a_cross_check_of_a_set_key_says_which_set_it_came_from():
    """n_train = 2 below the job's 4 clusters: the refusal names the --set that made it, as every other one does."""
    msg = _set_refused("geometry.n_train=2")
    assert "[clustering].n_clusters = 4" in msg and "[geometry].n_train = 2" in msg, msg
    assert msg.endswith("(from --set geometry.n_train=2)"), msg


def test_a_kind_changed_by_set_says_the_files_keys_belong_to_its_own_kind():
    """--set job.kind=nn on a flow job: the first key of the flow's that a network job does not take is refused,
    and the line says the kind changed and what to do (it said only "[geometry].n_test is an unknown key")."""
    msg = _set_refused("job.kind=nn")
    assert "[geometry].n_test is an unknown key" in msg and "'flow' job" in msg and "[job].kind = 'nn'" in msg, msg
    assert "job file of kind 'nn'" in msg and msg.endswith("(from --set job.kind=nn)"), msg
    msg = _set_refused("geometry.n_tset=5")  # a kind unchanged: no such words
    assert "[job].kind" not in msg, msg


@pytest.mark.parametrize("name, takes", [("delta", "no keys"), ("relu_ntk", "w_std (required), b_std (required)")])
def test_a_kernel_changed_by_set_names_every_key_it_does_not_take_in_one_line(name, takes):
    """The quickstart's Gaussian kernel switched to another (its required keys given): width, form and normalize are
    named together, with the --set values that unset them, which then load (it named only form: three tries)."""
    sets = [f"kernel.name={name}", *(["kernel.w_std=1.0", "kernel.b_std=1.0"] if name == "relu_ntk" else [])]
    msg = _set_refused(*sets)
    for key in ("width", "form", "normalize"):
        assert f"[kernel].{key}" in msg and f"--set kernel.{key}=none" in msg, msg
    assert takes in msg and msg.endswith(f"(from --set kernel.name={name})"), msg
    unset = re.search(r"\(or (--set .*?)\)", msg).group(1).split()[1::2]
    _, cfg = registry.load(QUICKSTART, [*sets, *unset], memory_check=False)
    assert cfg["kernel"]["name"] == name


@pytest.mark.parametrize("value", ["0", "-3", str(2**62 + 1)])
def test_an_integer_without_an_upper_bound_of_its_own_shows_the_common_limit_as_a_power(tmp_path, capsys, value):
    assert main(["nn", str(NN), "--out", str(tmp_path / "o"), "--set", f"training.batch_size={value}", "--check"]) == 2
    msg = _error(capsys, "nn")
    assert "must lie in [2, 2**62]" in msg and str(2**62) not in msg.replace(value, ""), msg
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_flow_jobs_batch_size_below_two_is_refused_with_the_real_bound(tmp_path, capsys, threads_kept, value):
    """[clustering].batch_size of a flow job: 0 and 1 are refused alike, the first message naming the bound that holds
    (a mini-batch of one point is refused by the clustering), so the value it suggests is one that runs."""
    out = tmp_path / "run"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--check", "--set", f"clustering.batch_size={value}"]) == 2
    err = _error(capsys, "run")
    assert f"[clustering].batch_size = {value}: must lie in [2, 2**62]" in err, err
    assert not out.exists()
