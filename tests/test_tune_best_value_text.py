"""`hpcflow tune`'s closing line ('best trial N: value ...') and best.toml's header show the best trial's value as
its per-trial line does: 4 significant digits, more only where another trial's value would read the same."""

from __future__ import annotations

import re

import pytest

from hpcflow.cli import main
from hpcflow.tune import study as studies
from test_tune_records import _job  # tests/ is on sys.path


@pytest.mark.parametrize("values, best, shown", [
    ([1.2345678, 0.5, 0.25], 0, "1.235"),  # no other value reads 1.235
    ([0.5, 1.2345671, 1.2345678], 2, "1.234568"),  # 1.2345671 reads the same to 6 digits
])
def test_the_closing_line_and_best_toml_show_the_value_as_the_trials_line(tmp_path, monkeypatch, capsys, values,
                                                                           best, shown):
    given = iter(values)
    monkeypatch.setattr(studies.objectives, "from_summary", lambda name, summary: next(given))
    job, out = _job(tmp_path), tmp_path / "s"
    capsys.readouterr()
    assert main(["tune", str(job), "--trials", "3", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"^hpcflow tune: trial {best} COMPLETE value={re.escape(shown)} ", text, re.M), text
    assert f"hpcflow tune: best trial {best}: value {shown}, params " in text, text
    header = (out / "best.toml").read_text()
    assert f": trial {best}, log_gain_test = {shown}\n" in header, header
