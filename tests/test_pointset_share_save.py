"""PointSet.save of each rank's rows of a set (shares of layout "share", parts of a whole set, sets of other draws)
at 1 and 2 ranks writes a file that PointSet.load reads on every rank, whose @seed, @drawn_n and @drawn_rows name
rows of one draw that are the file's rows: checked here by drawing that draw again in this process (X.sample with the
file's seed, size and chart) and indexing it. Rows of several draws are saved with no seed and no drawn rows."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.parallel.decompose import share
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "share_save_checks.py")
X = Hypersurface.fermat(3)
#: the draw (n, seed, chart) of each case of tests/mpi/share_save_checks.py; None: the ranks' parts are of other draws
DRAWS = {"share_selected": (40, 0, None), "share_head": (40, 0, None), "whole_split": (30, 5, None),
         "whole_split_reversed": (30, 5, None), "chart_share": (30, 2, (0, 1)), "root_tail": (30, 3, None),
         "own_draws": None}


@pytest.fixture(scope="module", params=[1, 2])
def saved(request, tmp_path_factory):
    ranks = request.param
    out = tmp_path_factory.mktemp(f"share_save_{ranks}")
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(["timeout", "100", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(out)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    outs = [json.loads((out / f"rank_{k}.json").read_text()) for k in range(ranks)]
    assert [o["rank"] for o in outs] == list(range(ranks))
    return ranks, out, outs


@pytest.mark.parametrize("case", [k for k, v in DRAWS.items() if v is not None])
def test_saved_rows_are_the_rows_of_the_draw_the_file_names(saved, case):
    ranks, out, outs = saved
    n, seed, chart = DRAWS[case]
    draw = X.sample(n, seed=seed, chart=chart)  # the draw again, in this process
    with h5py.File(out / f"{case}.h5", "r") as f:
        points = f["points"][()]
        assert json.loads(f.attrs["seed"]) == seed
        assert json.loads(f.attrs.get("sampled_chart", "null")) == (None if chart is None else list(chart))
        if "drawn_n" in f.attrs:
            assert int(f.attrs["drawn_n"]) == n
            rows = np.concatenate([np.arange(a, b) for a, b in json.loads(f.attrs["drawn_rows"])] or [[]])
        else:
            rows = np.arange(n)  # a whole draw
    assert rows.size == len(points) == sum(o[case]["len"] for o in outs)
    np.testing.assert_array_equal(points, draw.points[rows.astype(np.int64)])
    for o in outs:  # every rank loaded the file, with the provenance it says
        seed_back, drawn_back, length = o[case]["loaded"] if isinstance(o[case]["loaded"], list) else \
            pytest.fail(o[case]["loaded"])
        assert seed_back == seed and length == rows.size
        assert (drawn_back is None and rows.tolist() == list(range(n))) or drawn_back == [n, rows.tolist()]


def test_a_share_names_its_rows_of_the_draw(saved):
    """Rank r's share of the 40-point draw is rows share(40, R, r) of it, and so are its subsets' rows."""
    ranks, _, outs = saved
    for r, o in enumerate(outs):
        lo, hi = share(40, ranks, r)
        assert o["share_head"]["mine"] == [40, list(range(lo, lo + 3))]


def test_parts_of_different_draws_are_saved_without_seed_or_drawn_rows(saved):
    ranks, out, outs = saved
    parts = [X.sample(20 + 5 * r, seed=r)[2:12] for r in range(ranks)]
    with h5py.File(out / "own_draws.h5", "r") as f:
        np.testing.assert_array_equal(f["points"][()], np.concatenate([p.points for p in parts]))
        if ranks == 1:
            assert json.loads(f.attrs["seed"]) == 0 and json.loads(f.attrs["drawn_rows"]) == [[2, 12]]
        else:  # rows of the 20-point draw of seed 0 and of the 25-point draw of seed 1: no seed reproduces them
            assert json.loads(f.attrs["seed"]) is None and "drawn_n" not in f.attrs and "drawn_rows" not in f.attrs
    assert all(o["own_draws"]["loaded"] == ([0, [20, list(range(2, 12))], 10] if ranks == 1 else [None, None, 20])
               for o in outs)
    assert PointSet.load(out / "own_draws.h5").seed == (0 if ranks == 1 else None)
