"""PointSet files that are malformed (attributes, dataset kinds, dtypes, shapes, values) raise InputFileError
naming the file and the attribute or dataset; a good file still loads exactly."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from hpcflow.errors import InputFileError, OutputPathError
from hpcflow.geometry import Hypersurface, PointSet


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ps") / "good.h5"
    Hypersurface.fermat(3).sample(40, seed=0).save(path)
    return path


def _attr(name, value):
    def mutate(f):
        f.attrs[name] = value
    return mutate


def _replace(name, fn):
    def mutate(f):
        data = fn(f[name][()])
        del f[name]
        f[name] = data
    return mutate


def _group(name):
    def mutate(f):
        del f[name]
        f.create_group(name)
    return mutate


def _set_entry(name, index, value):
    def mutate(f):
        data = f[name][()]
        data[index] = value
        f[name][...] = data
    return mutate


CASES = [
    ("manifold", _attr("manifold", "{not json")),
    ("manifold", _attr("manifold", "[1, 2]")),
    ("manifold", _attr("manifold", '{"monomials": [[5, 0, 0, 0, 0]]}')),
    ("manifold", _attr("manifold", '{"monomials": [[3, 0, 0, 0, 0]], "coefficients": [[1, 0]]}')),
    ("manifold", _attr("manifold", '{"monomials": "x", "coefficients": [[1, 0]]}')),
    ("seed", _attr("seed", "{")),
    ("n_dropped", _attr("n_dropped", -3)),
    ("n_dropped", _attr("n_dropped", "\"many\"")),
    ("points", _replace("points", lambda a: a.real)),
    ("points", _replace("points", lambda a: a[:, :4])),
    ("weights", _replace("weights", lambda a: a[:-1])),
    ("g_fs", _replace("g_fs", lambda a: a[:, :2, :2])),
    ("chart", _replace("chart", lambda a: a.astype(float))),
    ("chart", _group("chart")),
    ("points", _set_entry("points", (3, 2), np.nan)),
    ("weights", _set_entry("weights", 5, np.inf)),
    ("weights", _set_entry("weights", 5, -1.0)),
    ("omega2", _set_entry("omega2", 0, 0.0)),
    ("g_fs", _set_entry("g_fs", (1, 0, 0), np.nan)),
    ("chart", _set_entry("chart", (2, 0), 7)),
    ("chart", _set_entry("chart", (2, 1), -1)),
    ("points", _set_entry("points", (4, 3), 0.7 + 0.1j)),  # off the quintic
]


@pytest.mark.parametrize("name, mutate", CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_malformed_pointset_is_an_input_file_error_naming_file_and_dataset(tmp_path, good, name, mutate):
    path = tmp_path / "bad.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(InputFileError) as exc:
        PointSet.load(path)
    msg = str(exc.value)
    assert str(path) in msg and f"'{name}'" in msg and "\n" not in msg


def test_good_file_still_loads_exactly(good):
    ps = PointSet.load(good)
    with h5py.File(good) as f:
        assert np.array_equal(ps.points, f["points"][()]) and np.array_equal(ps.weights, f["weights"][()])
    assert len(ps) == 40 and np.isfinite(ps.sigma())


def test_save_refuses_directories_pseudo_files_and_empty_names_before_writing(tmp_path, good):
    ps = PointSet.load(good)
    (tmp_path / "d").mkdir()
    for target, words in ((tmp_path / "d", "directory"), ("", "empty"), ("/proc/self/x.h5", "/proc"),
                          (tmp_path / "missing" / "x.h5", "missing")):
        with pytest.raises(OutputPathError, match=words):
            ps.save(target, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and list((tmp_path / "d").iterdir()) == []


def test_save_over_an_existing_file_names_the_api_argument(tmp_path, good):
    """PointSet.save is API: an existing file is refused with the keyword that overwrites it (force=True), not the
    command line's --force; the file is kept as it was."""
    ps, target = PointSet.load(good), tmp_path / "x.h5"
    target.write_bytes(b"old")
    with pytest.raises(OutputPathError, match=r"exists; choose another path or pass force=True") as exc:
        ps.save(target)
    assert "--" not in str(exc.value) and target.read_bytes() == b"old"
    ps.save(target, force=True)
    assert len(PointSet.load(target)) == len(ps)
