"""A job file or --out whose name is not UTF-8 (a Latin-1 name on a cluster: os.fsdecode gives one lone surrogate per
such byte) runs and is recorded: summary.json names the path (JSON's \\udcXX, read back as the same str), DIR/job.toml
is UTF-8 that tomllib reads, its header names the path in ANSI-C quotes that bash turns back into the same bytes, and
a --resume keeps naming the first run's file. The run used to finish, then fail writing job.toml (UnicodeEncodeError,
exit 1), leaving a checkpoint without job.toml and summary.json. A --set value that is not UTF-8 is refused before
any work, as a job file that is not UTF-8 is."""

import json
import os
import shlex
import subprocess
import sys
import tomllib

import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

LATIN1 = os.fsdecode(b"caf\xe9")  # "cafe" with e-acute in Latin-1: not UTF-8


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


def bash_word(word: str) -> bytes:
    """The bytes bash makes of one shell word as it was printed (`word` unquoted by the shell itself)."""
    return subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout


@pytest.mark.parametrize("verb, text, first, more", [
    ("run", flow_points(60, 20) + DELTA_FLOW, "flow.steps=2", "flow.steps=3"),
    ("nn", NN_POINTS + SMALL_NET + TINY_TRAINING, "training.epochs=1", "training.epochs=2"),
])
def test_a_job_file_and_out_that_are_not_utf8_run_and_are_recorded(tmp_path, verb, text, first, more):
    job, out = os.path.join(tmp_path, f"job {LATIN1}.toml"), os.path.join(tmp_path, f"out{LATIN1}")
    with open(job, "w", encoding="utf-8") as fh:
        fh.write(text)
    assert main([verb, job, "--out", out, "--quiet", "--set", first]) == 0
    assert main([verb, job, "--out", out, "--quiet", "--resume", "--set", more]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted([f"job {LATIN1}.toml", f"out{LATIN1}"])
    with open(os.path.join(out, "summary.json"), "rb") as fh:
        raw = fh.read()
    summary = json.loads(raw.decode("utf-8"))
    assert os.fsencode(summary["job_file"]) == os.fsencode(str(tmp_path)) + b"/job caf\xe9.toml", summary["job_file"]
    assert summary["overrides"] == [first]
    assert summary["resumed_with"] == [{"job_file": summary["job_file"], "overrides": [more]}]
    with open(os.path.join(out, "job.toml"), "rb") as fh:
        saved = fh.read().decode("utf-8")  # strict: valid UTF-8
    assert tomllib.loads(saved)["job"]["kind"] == ("flow" if verb == "run" else "nn")
    header = [line for line in saved.splitlines() if line.startswith("#")]
    lead, resumed = header[0].split(" the validated configuration of ", 1)[1], header[2]
    assert bash_word(lead) == os.fsencode(job), header
    assert resumed.startswith("# resumed from "), header
    assert bash_word(resumed[len("# resumed from "):].partition(" with: ")[0]) == os.fsencode(job), header


def test_a_set_value_that_is_not_utf8_is_refused_before_any_work(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(flow_points(60, 20) + DELTA_FLOW)
    assert main(["run", str(job), "--out", str(out), "--set", f'job.description="{LATIN1}"']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set" in err[0] and "not UTF-8" in err[0], err
    err[0].encode("utf-8")
    assert not out.exists()


@pytest.mark.parametrize("word", [f"/data/{LATIN1} it's\\.toml", "two\nlines\x01", os.fsdecode(b"\xff\xfe")])
def test_a_shown_command_line_is_one_utf8_line_that_bash_splits_back(word):
    """`shell_line`'s line of a word that is not UTF-8 or holds a control character: one line of valid UTF-8 (shlex
    quoting left the lone surrogates, which no UTF-8 output takes, or a raw line break) that bash splits back into
    the same bytes."""
    from hpcflow.jobs.shell import shell_line

    line = shell_line(["hpcflow", "run", word, "--out", "plain dir"])
    assert "\n" not in line
    line.encode("utf-8")
    got = subprocess.run(["bash", "-c", f'for w in {line}; do printf "%s\\0" "$w"; done'], capture_output=True,
                         check=True).stdout
    assert got.split(b"\0")[:-1] == [b"hpcflow", b"run", os.fsencode(word), b"--out", b"plain dir"]


def test_a_plain_word_is_quoted_as_before():
    from hpcflow.jobs.shell import shell_line

    argv = ["hpcflow", "run", "a b.toml", "--set", 'job.description="x y"', "caf\u00e9", "tab\there"]
    assert shell_line(argv) == shlex.join(argv)


def test_a_header_with_a_byte_that_is_not_utf8_is_written_as_valid_toml():
    from hpcflow.jobs.toml_out import dumps

    text = dumps({"job": {"kind": "flow"}}, header=f"made from /x/{LATIN1}.toml")
    assert text.splitlines()[0] == "# made from /x/caf\\xe9.toml"
    assert tomllib.loads(text.encode("utf-8").decode("utf-8")) == {"job": {"kind": "flow"}}


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_name_that_is_not_utf8_printed_to_a_strict_stdout_is_escaped(tmp_path, encoding):
    """The line naming a written file whose name is not UTF-8 reaches a stdout that encodes strictly (an en_US.UTF-8
    locale, PYTHONIOENCODING) with the byte as \\xNN, and the command ends 0: it ended with a UnicodeEncodeError
    traceback and status 1 once its file was written."""
    out = os.path.join(tmp_path, f"points {LATIN1}.h5")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "sample", "--n", "10", "--out", out], capture_output=True,
                       env=dict(os.environ, PYTHONIOENCODING=encoding, HPCFLOW_THREADS="1"), timeout=120)
    assert (r.returncode, r.stderr) == (0, b""), r.stderr
    assert r.stdout.decode("ascii").splitlines()[-1].split() == ["written", os.path.join(str(tmp_path), "points"),
                                                                 "caf\\xe9.h5"]
    assert os.path.isfile(out)


def test_a_study_in_an_out_not_in_utf8_advises_lines_a_shell_splits_back(tmp_path):
    """best.toml's "Run:" line names an --out that is not UTF-8 so that bash gives back its bytes (it showed
    'out\\xe9_best' in plain quotes, which names another file), and the refusal of a second study into that --out
    advises a --study that the shell splits back into the study's name ('x y', not two words). The program prints
    to a stdout that encodes strictly."""
    from test_tune_records import JOB as TUNE_JOB

    job, out = tmp_path / "tiny.toml", os.path.join(tmp_path, f"out{LATIN1}")
    job.write_text(TUNE_JOB, encoding="utf-8")
    env = dict(os.environ, PYTHONIOENCODING="utf-8", HPCFLOW_THREADS="1")
    tune = [sys.executable, "-m", "hpcflow", "tune", str(job), "--trials", "1", "--out", out, "--quiet"]
    r = subprocess.run([*tune, "--study", "x y"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "best.toml"), encoding="utf-8") as fh:
        run = next(line for line in fh if line.startswith("# Run: "))
    words = subprocess.run(["bash", "-c", f"printf '%s\\0' {run[len('# Run: '):]}"], capture_output=True,
                           check=True).stdout.split(b"\0")[:-1]
    assert words[-3:] == [os.fsencode(os.path.join(out, "best.toml")), b"--out", os.fsencode(out + "_best")]
    r = subprocess.run(tune, capture_output=True, text=True, env=env, timeout=300)
    err = r.stderr
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    advised = err[err.index("pass --study ") + len("pass --study "):].split(" to add")[0]
    assert bash_word(advised) == b"x y", err


def test_a_study_named_after_a_job_file_not_in_utf8_is_refused_before_any_work(tmp_path, capsys):
    """A study takes its job file's name: one that is not UTF-8 is refused in one line that says so and names
    --study (it was said to hold "a control character"), and no --out is made."""
    from test_tune_records import JOB as TUNE_JOB

    job, out = os.path.join(tmp_path, f"tiny{LATIN1}.toml"), tmp_path / "study"
    with open(job, "w", encoding="utf-8") as fh:
        fh.write(TUNE_JOB)
    assert main(["tune", job, "--trials", "1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "is not UTF-8" in err and "pass --study" in err, err
    assert not out.exists()


def test_a_one_line_error_names_a_path_not_in_utf8_with_its_byte_as_on_stdout(tmp_path):
    """stderr's one-line error shows a byte that is not UTF-8 as \\xNN, as stdout, the figures and the report do
    (Python's own stderr showed \\udcNN)."""
    job = os.path.join(tmp_path, f"job {LATIN1}.toml")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "run", job, "--out", str(tmp_path / "out")],
                       capture_output=True, env=dict(os.environ, HPCFLOW_THREADS="1"), timeout=120)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr
    assert b"job caf\\xe9.toml: job file does not exist" in r.stderr, r.stderr


def test_a_line_escaped_for_its_stream_and_refused_by_the_file_system_is_kept_as_refused():
    """A line its stream's encoding cannot write (a Greek sigma to a Latin-1 stdout) is written escaped; where the
    file system then refuses it (a full disk), the write goes to /dev/null and is kept as refused, for the command's
    one line and status 5, not a traceback."""
    import errno

    from hpcflow.cli import _ReaderGone

    with open("/dev/full", "w", encoding="latin-1", buffering=1) as raw:
        stream = _ReaderGone(raw)
        assert stream.write("\u03c3\n") == 2
        assert stream.refused is not None and stream.refused.errno == errno.ENOSPC
