"""PointSet.intersections (and other_charts, with a chart): the sampler's counts of a whole draw. A subset cannot know
how many intersection points its own rows were sampled among: None (but for the whole draw in order); a file keeps
them as @intersections / @other_charts, and a file without them (older, or of a subset) loads None."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import InputFileError
from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.geometry.sampling import LINES_PER_BATCH

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def drawn():
    X = Hypersurface.fermat(3)
    return X.sample(60, seed=2, threads=1), X.sample(40, seed=2, threads=1, chart=(1, 3))


def test_a_draw_counts_whole_batches_of_intersection_points(drawn):
    every, chart = drawn
    per_batch = LINES_PER_BATCH * 5  # a quintic's line meets X in 5 points
    for ps in (every, chart):
        assert ps.intersections > 0 and ps.intersections % per_batch == 0
        assert ps.intersections >= len(ps) + ps.n_dropped
    assert every.other_charts is None
    assert chart.intersections >= len(chart) + chart.n_dropped + chart.other_charts
    # about 1 in 20 charts: nearly all of one batch's points lie in other charts
    assert chart.other_charts > 0.8 * chart.intersections


def test_a_subset_has_no_counts_and_the_whole_draw_keeps_them(drawn):
    for ps in drawn:
        mask = np.zeros(len(ps), dtype=bool)
        mask[::3] = True
        for sub in (ps[:5], ps[3], ps[[0, 2]], ps[mask], ps.subset([1, 4]), ps[::-1],
                    PointSet.concatenate([ps[:10], ps[10:]]), PointSet.concatenate([ps, ps])):
            assert sub.intersections is None and sub.other_charts is None
        for whole in (ps[:], PointSet.concatenate([ps]), PointSet.concatenate([ps, ps[:0]])):
            assert (whole.intersections, whole.other_charts) == (ps.intersections, ps.other_charts)


def test_the_counts_round_trip_through_a_file(drawn, tmp_path):
    for k, ps in enumerate(drawn):
        ps.save(tmp_path / f"{k}.h5")
        back = PointSet.load(tmp_path / f"{k}.h5")
        assert (back.intersections, back.other_charts) == (ps.intersections, ps.other_charts)
        assert type(back.intersections) is int
        ps[2:].save(tmp_path / f"sub{k}.h5")
        with h5py.File(tmp_path / f"sub{k}.h5") as f:
            assert "intersections" not in f.attrs and "other_charts" not in f.attrs
        back = PointSet.load(tmp_path / f"sub{k}.h5")
        assert back.intersections is None and back.other_charts is None


def test_a_file_written_before_the_counts_loads_none(drawn, tmp_path):
    drawn[1].save(tmp_path / "old.h5")
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        del f.attrs["intersections"], f.attrs["other_charts"]
    back = PointSet.load(tmp_path / "old.h5")
    assert back.intersections is None and back.other_charts is None and len(back) == 40


@pytest.mark.parametrize("name, value, said", [
    ("intersections", -1, "must be an integer >= 0"), ("intersections", 1.5, "must be an integer >= 0"),
    ("intersections", "many", "must be an integer >= 0"), ("intersections", 10, "fewer than the 40 points"),
    ("other_charts", -2, "must be an integer >= 0"), ("other_charts", 10**7, "fewer than the 40 points"),
    ("drawn_n", 50, "a subset cannot know")])
def test_a_file_with_counts_its_rows_contradict_is_refused(drawn, tmp_path, name, value, said):
    path = tmp_path / "bad.h5"
    drawn[1].save(path)
    with h5py.File(path, "r+") as f:
        if name == "drawn_n":  # (a subset's file: rows 0..39 of 50)
            f.attrs["drawn_rows"] = "[[0, 40]]"
        f.attrs[name] = value
    with pytest.raises(InputFileError) as exc:
        PointSet.load(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and said in msg, msg


def test_the_counts_are_reserved_names(drawn, tmp_path):
    for name in ("intersections", "other_charts"):
        with pytest.raises(ValueError, match=f"the name '{name}'"):
            drawn[0].save(tmp_path / "x.h5", attrs={name: 3})
    assert os.listdir(tmp_path) == []


def test_hpcflow_sample_under_mpi_writes_the_counts_of_one_rank(tmp_path, capsys):
    """Rank 0 gathers the whole draw (layout "root"): the file has the counts a one-rank run writes."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    args = ["sample", "--n", "300", "--seed", "5", "--chart", "0", "2", "--threads", "1", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one.h5")]) == 0
    capsys.readouterr()
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "hpcflow", *args, "--out", str(tmp_path / "two.h5")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    one, two = (PointSet.load(tmp_path / f"{k}.h5") for k in ("one", "two"))
    assert one.intersections is not None and one.other_charts is not None
    assert (two.intersections, two.other_charts) == (one.intersections, one.other_charts)
    assert f"of the {one.intersections} intersection points sampled, {one.other_charts} lie" in r.stdout
