"""sigma_history.py on a flow or network run directory whose data files are gone but whose summary.json is there (a
partial copy) says the run's files are missing and how to have them again, as table1.py and the report say it; it
said "no checkpoint.h5, nn.h5 or checkpoint.pt; pass the run directory of a flow or nn job", which it was given."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis_runs import forced, run_dirs

#: fixture run -> (its data files, what is said of them gone, its command), the rerun of its copy after it
LOST = {"flow": (("checkpoint.h5",), "the flow run's checkpoint.h5 is missing (its summary.json is there); restore "
                                     "it from a copy or ", "run"),
        "nn": (("nn.h5", "checkpoint.pt"), "the nn run's nn.h5 and checkpoint.pt are missing (its summary.json is "
                                           "there); restore them from a copy or ", "nn")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _lost(runs, tmp_path, run) -> str:
    d = tmp_path / f"{run}_copy"
    shutil.copytree(runs[run], d)
    for name in LOST[run][0]:
        os.remove(d / name)
    return str(d)


@pytest.mark.parametrize("run", sorted(LOST))
def test_sigma_history_says_the_runs_files_are_missing_as_the_report_does(runs, tmp_path, capsys, run):
    from hpcflow.analysis.script import main as script
    from hpcflow.report.detect import detect

    d = _lost(runs, tmp_path, run)
    said = LOST[run][1] + forced(d, LOST[run][2])
    assert detect(d).reason == said  # the report's row
    for given in ([d], [d, runs["flow_gauss"]]):
        capsys.readouterr()
        assert script("sigma_history", [*given, "--out", str(tmp_path / "f")]) == 2
        assert capsys.readouterr().err == f"sigma_history: error: {d}: {said}\n"


def test_table1_says_a_flow_runs_checkpoint_is_missing(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main as script

    d = _lost(runs, tmp_path, "flow")
    capsys.readouterr()
    assert script("table1", [d, "--out", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == f"table1: error: {d}: {LOST['flow'][1]}{forced(d)}\n"
