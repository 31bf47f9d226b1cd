"""The sampler's lines about a chart with few points advise raising or lowering max_batches: `hpcflow sample` takes
it as --max-batches (an integer >= 1, default the sampler's 100000; a bad value is refused in one line, exit 2,
before any work), and the lines name that option."""

from __future__ import annotations

import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface

#: the Fermat quintic with one tiny coefficient: its chart (0, 4) holds next to no points
SMALL = Hypersurface.from_monomials(np.eye(5, dtype=np.int64) * 5, [1, 1, 1, 1, 1e-6])


def _sample(tmp_path, *extra) -> int:
    """hpcflow sample's exit status (argparse's refusals end in SystemExit)."""
    try:
        return _main(tmp_path, *extra)
    except SystemExit as exc:
        return exc.code


def _main(tmp_path, *extra) -> int:
    return main(["sample", "--n", "1000", "--seed", "0", "--threads", "1", "--quiet", "--out",
                 str(tmp_path / "p.h5"), *extra])


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many", str(2**70)])
def test_a_bad_max_batches_is_refused_in_one_line(tmp_path, capsys, value):
    assert _sample(tmp_path, f"--max-batches={value}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-batches" in err and "unrecognized" not in err, err
    assert not (tmp_path / "p.h5").exists()


def test_max_batches_bounds_the_batches_and_the_refusal_names_the_option(tmp_path, capsys):
    """Chart (0, 1) holds ~1/20 of a batch's ~10000 points: 2 batches cannot give 1000 of them, 100000 can."""
    assert _sample(tmp_path, "--chart", "0", "1", "--max-batches", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in 2 batches" in err and "--max-batches" in err, err
    assert not (tmp_path / "p.h5").exists()
    assert _sample(tmp_path, "--chart", "0", "1") == 0
    assert (tmp_path / "p.h5").exists()


def test_the_slow_chart_note_names_the_option(capsys):
    """A chart no point lies in, asked for few points: the sampling goes on to max_batches and says so once, with
    the fix of a lower max_batches, which hpcflow sample sets with --max-batches."""
    with pytest.raises(ConfigError, match="--max-batches"):
        SMALL.sample(10, seed=0, chart=(0, 4), max_batches=30, threads=1)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("chart (0, 4): only ")]
    assert len(notes) == 1 and "lower max_batches (hpcflow sample: --max-batches)" in notes[0], notes
