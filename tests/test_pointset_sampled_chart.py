"""`hpcflow sample --chart I J` records the chart restriction as @sampled_chart = [I, J], so that the file's @seed and
@sampled_chart reproduce its points; a file without it (every chart, or older) loads as before, and one whose rows
contradict it is refused."""

import json

import h5py
import numpy as np
import pytest

from hpcflow.errors import InputFileError
from hpcflow.geometry import Hypersurface, PointSet


def _sample(out, *args):
    from hpcflow.cli import main

    assert main(["sample", "--n", "40", "--threads", "1", "--quiet", "--out", str(out), *args]) == 0


def test_the_recorded_seed_and_chart_reproduce_the_points(tmp_path, capsys):
    _sample(tmp_path / "c.h5", "--seed", "5", "--chart", "1", "3")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        seed, chart = json.loads(f.attrs["seed"]), json.loads(f.attrs["sampled_chart"])
    assert (seed, chart) == (5, [1, 3])
    again = Hypersurface.fermat(3).sample(40, seed=seed, chart=tuple(chart), threads=1)
    ps = PointSet.load(tmp_path / "c.h5")
    np.testing.assert_array_equal(ps.points, again.points)
    assert ps.sampled_chart == (1, 3) and (ps.chart == [1, 3]).all()
    assert ps[3:9].sampled_chart == (1, 3) and PointSet.concatenate([ps[:5], ps[5:]]).sampled_chart == (1, 3)
    _sample(tmp_path / "all.h5", "--seed", "5")
    with h5py.File(tmp_path / "all.h5", "r") as f:
        assert "sampled_chart" not in f.attrs
    assert PointSet.load(tmp_path / "all.h5").sampled_chart is None
    capsys.readouterr()


@pytest.mark.parametrize("value, words", [
    ("[0, 2]", "has row 0 in chart (1, 3), while attribute 'sampled_chart' says"),
    ("[1, 1]", "attribute 'sampled_chart' = [1, 1] is not a chart of the manifold"),
    ("7", "attribute 'sampled_chart' = 7 is not a chart"),
    ("{bad", "attribute 'sampled_chart' is not valid JSON")])
def test_a_chart_the_rows_contradict_or_no_chart_is_refused(tmp_path, capsys, value, words):
    _sample(tmp_path / "c.h5", "--seed", "5", "--chart", "1", "3")
    with h5py.File(tmp_path / "c.h5", "r+") as f:
        f.attrs["sampled_chart"] = value
    with pytest.raises(InputFileError, match=f"^{tmp_path / 'c.h5'}: .*") as err:
        PointSet.load(tmp_path / "c.h5")
    assert words in str(err.value), err.value
    capsys.readouterr()


def test_a_file_without_chart_or_with_an_empty_one_loads(tmp_path, capsys):
    _sample(tmp_path / "c.h5", "--chart", "1", "3")
    for value in (None, "[]", "null"):
        with h5py.File(tmp_path / "c.h5", "r+") as f:
            if value is None:
                del f.attrs["sampled_chart"]
            else:
                f.attrs["sampled_chart"] = value
        assert PointSet.load(tmp_path / "c.h5").sampled_chart is None
    capsys.readouterr()


@pytest.mark.parametrize("value", ["affine patch", "[0, 1]", np.array([0, 1])])
def test_a_user_attribute_named_chart_is_kept_as_it_was(tmp_path, value):
    """A file saved with attrs={'chart': ...} (a name free for the user's notes, before and now) loads, with no chart
    restriction and its points: such files were refused as a damaged restriction ('chart' is not valid JSON)."""
    ps = Hypersurface.fermat(3).sample(30, seed=1, threads=1)
    ps.save(tmp_path / "u.h5", attrs={"chart": value})
    back = PointSet.load(tmp_path / "u.h5")
    assert back.sampled_chart is None
    np.testing.assert_array_equal(back.points, ps.points)
    with h5py.File(tmp_path / "u.h5", "r") as f:
        np.testing.assert_array_equal(np.asarray(f.attrs["chart"]), np.asarray(value))


def test_save_refuses_rows_outside_its_chart_and_attrs_naming_chart(tmp_path):
    ps = Hypersurface.fermat(3).sample(30, seed=2, threads=1)
    ps.sampled_chart = (0, 1)
    assert not (ps.chart == [0, 1]).all()
    with pytest.raises(ValueError, match="dataset 'chart' has row .* while attribute 'sampled_chart' says every point"):
        ps.save(tmp_path / "p.h5")
    ps.sampled_chart = None
    with pytest.raises(ValueError, match="the name 'sampled_chart'"):
        ps.save(tmp_path / "p.h5", attrs={"sampled_chart": "[0, 1]"})
    assert not (tmp_path / "p.h5").exists()


def test_an_api_draw_kept_to_a_chart_records_it(tmp_path, capsys):
    """X.sample(n, chart=(I, J)) records the chart as the command does: saved, its @seed and @sampled_chart give the
    points of `hpcflow sample --seed s --chart I J` again."""
    ps = Hypersurface.fermat(3).sample(40, seed=5, chart=(1, 3), threads=1)
    assert ps.sampled_chart == (1, 3)
    ps.save(tmp_path / "api.h5")
    with h5py.File(tmp_path / "api.h5", "r") as f:
        assert (json.loads(f.attrs["seed"]), json.loads(f.attrs["sampled_chart"])) == (5, [1, 3])
    back = PointSet.load(tmp_path / "api.h5")
    assert back.sampled_chart == (1, 3) and (back.chart == [1, 3]).all()
    _sample(tmp_path / "cli.h5", "--seed", "5", "--chart", "1", "3")
    np.testing.assert_array_equal(PointSet.load(tmp_path / "cli.h5").points, back.points)
    assert Hypersurface.fermat(3).sample(40, seed=5, threads=1).sampled_chart is None
    capsys.readouterr()
