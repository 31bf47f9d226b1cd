"""Output file names up to the directory's NAME_MAX bytes are written (the temporary's name is cut to fit); a longer
one is refused in one line before any work, by `hpcflow sample --out` and PointSet.save alike, and so is a directory
name that `hpcflow run --out` (its --check too) or `hpcflow submit`'s logs folder would create."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow import atomic
from hpcflow.atomic import TMP_MARK, atomic_file
from hpcflow.cli import main
from hpcflow.errors import OutputPathError
from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.jobs.output import is_debris
from jobtexts import DELTA_FLOW


def _name_max(directory) -> int:
    return os.pathconf(directory, "PC_NAME_MAX")


def _longest(directory, char: str, suffix: str = "") -> str:
    """The longest name of repeated `char` then `suffix` that fits NAME_MAX bytes (UTF-8, as Linux stores names)."""
    room = _name_max(directory) - len(suffix.encode())
    return char * (room // len(char.encode())) + suffix


@pytest.mark.parametrize("char", ["y", "é", "€"])
def test_a_name_of_name_max_bytes_is_written_and_its_temporary_fits(tmp_path, char):
    name = _longest(tmp_path, char, ".json")
    assert len(os.fsencode(name)) > _name_max(tmp_path) - 22  # a temporary of the whole name would not fit
    path = tmp_path / name
    temps = {atomic._tmp_name(str(path)) for _ in range(20)}
    assert len(temps) == 20  # unique
    for tmp in temps:
        head, tail = os.path.split(tmp)
        assert head == str(tmp_path) and is_debris(tail) and len(os.fsencode(tail)) <= _name_max(tmp_path)
        kept = tail[1:tail.rindex(TMP_MARK)]  # as much of the name as fits beside the mark and 16 hex digits
        assert name.startswith(kept) and len(kept.encode()) > _name_max(tmp_path) - 22 - len(char.encode())
        tail.encode("utf-8")  # cut at a character: no lone byte of a multi-byte one
    with atomic_file(path, "w") as fh:
        fh.write("whole")
    assert path.read_text() == "whole" and os.listdir(tmp_path) == [name]


def _sample(cwd, *args):
    return subprocess.run([sys.executable, "-m", "hpcflow", "sample", "--n", "10", "--seed", "0", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_sample_cli_writes_a_long_valid_name(tmp_path):
    name = "y" * 245 + ".h5"
    r = _sample(tmp_path, "--quiet", "--out", name)
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path) == [name]
    want = Hypersurface.fermat(3).sample(10, seed=0).points
    np.testing.assert_array_equal(PointSet.load(tmp_path / name).points, want)


@pytest.mark.parametrize("extra", [1, 40])
def test_sample_cli_refuses_a_name_longer_than_name_max_before_sampling(tmp_path, extra):
    name = "y" * (_name_max(tmp_path) + extra - 3) + ".h5"
    r = _sample(tmp_path, "--out", name)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"{_name_max(tmp_path) + extra} bytes long" in lines[0] and "shorter name" in lines[0], r.stderr
    assert r.stdout == "" and os.listdir(tmp_path) == []  # nothing sampled, nothing written


def test_pointset_save_refuses_a_name_longer_than_name_max_and_writes_the_longest(tmp_path):
    ps = Hypersurface.fermat(3).sample(20, seed=0)
    long = tmp_path / ("é" * (_name_max(tmp_path) // 2) + ".h5")  # fewer characters than NAME_MAX, more bytes
    assert len(long.name) < _name_max(tmp_path) < len(os.fsencode(long.name))
    with pytest.raises(OutputPathError) as exc:
        ps.save(long)
    assert "\n" not in str(exc.value) and "shorter name" in str(exc.value)
    assert os.listdir(tmp_path) == []
    fits = tmp_path / _longest(tmp_path, "é", ".h5")
    ps.save(fits)
    assert os.listdir(tmp_path) == [fits.name]
    np.testing.assert_array_equal(PointSet.load(fits).points, ps.points)


#: a flow job of a few steps (its run is refused before it starts, or its --check accepts it)
FLOW_JOB = '[job]\nkind = "flow"\n[geometry]\nn_train = 80\nn_test = 40\n' + DELTA_FLOW


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(FLOW_JOB)
    return p


@pytest.mark.parametrize("where", ["out", "out/in"])
def test_run_check_refuses_an_out_name_longer_than_name_max_as_the_run_does(tmp_path, job, capsys, where):
    """An --out with a new directory name over NAME_MAX (as the last name or one before it): the run and its --check
    refuse it alike, one line naming --out, its length and the fix, exit 2, nothing created. --check accepted it."""
    long = "y" * (_name_max(tmp_path) + 5)
    out = tmp_path / where.replace("out", long)
    for check in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--quiet", *check]) == 2
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1 and captured.out == "", captured
        assert lines[0] == (f"hpcflow run: error: --out {out}: a directory name in it is {_name_max(tmp_path) + 5} "
                            f"bytes long, more than the {_name_max(tmp_path)} that directory {tmp_path} takes; "
                            "give --out a shorter path"), lines[0]
    assert os.listdir(tmp_path) == ["job.toml"]


def test_run_check_takes_an_out_name_of_name_max_bytes(tmp_path, job, capsys):
    out = tmp_path / _longest(tmp_path, "é") / "x"  # fewer characters than NAME_MAX, as many bytes (or one less)
    assert main(["run", str(job), "--out", str(out), "--check"]) == 0, capsys.readouterr().err
    assert os.listdir(tmp_path) == ["job.toml"]


@pytest.mark.parametrize("extra", [4, 0])
def test_submit_refuses_a_default_logs_folder_longer_than_name_max_before_queueing(tmp_path, job, capsys, extra):
    """--out of NAME_MAX - 4 .. NAME_MAX bytes is a valid name, but the default --logs (--out then _logs) is not:
    refused in one line naming --logs, --out and the fix, exit 2, --check too, nothing written or queued. submitit's
    mkdir of the folder ended in an OSError traceback (exit 1) and --check called the submission valid."""
    out = tmp_path / ("d" * (_name_max(tmp_path) - extra))
    logs = f"{out}_logs"
    for check in (["--check"], []):
        assert main(["submit", str(job), "--out", str(out), "--executor", "local", *check]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        assert captured.err.rstrip("\n") == (
            f"hpcflow submit: error: --logs {logs}: a directory name in it is {len(os.path.basename(logs))} bytes "
            f"long, more than the {_name_max(tmp_path)} that directory {tmp_path} takes; give --logs a shorter path "
            "(not given: --logs defaults to --out followed by _logs)"), captured.err
    assert os.listdir(tmp_path) == ["job.toml"]
    shorter = tmp_path / "logs"
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--logs", str(shorter), "--check"]) == 0
    assert os.listdir(tmp_path) == ["job.toml"]


def test_an_analysis_output_of_a_long_name_removes_the_cut_temporary_a_killed_write_left(tmp_path):
    from hpcflow.analysis.owned import record_name, write_owned

    name = _longest(tmp_path, "f", ".png")
    room = _name_max(tmp_path) - len(f".{TMP_MARK}{'0' * 16}")
    debris = tmp_path / f".{name[:room]}{TMP_MARK}{'3a' * 8}"  # a write of `name` killed before its rename
    debris.write_bytes(b"partial")
    other = tmp_path / f".{name[:room - 1]}x{TMP_MARK}{'3a' * 8}"  # another file's: stays
    other.write_bytes(b"partial")

    def write(open_):
        with open_(tmp_path / name, "wb") as fh:
            fh.write(b"png")

    write_owned(tmp_path, record_name("fig"), [name], write)
    assert (tmp_path / name).read_bytes() == b"png"
    assert not debris.exists() and other.exists()
