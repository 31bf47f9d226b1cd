"""Output file names up to the directory's NAME_MAX bytes are written (the temporary's name is cut to fit); a longer
one is refused in one line before any work, by `hpcflow sample --out` and PointSet.save alike."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow import atomic
from hpcflow.atomic import TMP_MARK, atomic_file
from hpcflow.errors import OutputPathError
from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.jobs.output import is_debris


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
