"""The figures are drawn on Agg canvases whatever MPLBACKEND says: a name matplotlib does not know (a typo, or
Jupyter's `module://matplotlib_inline.backend_inline` outside Jupyter) ended `hpcflow report` and every figure script
in matplotlib's ValueError traceback at its import (exit 1). The variable is left as the user set it for child
processes, and a caller whose pyplot already runs another backend keeps it and its open figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, make_study, md_rows, run_dirs

BAD = ("bogus", "module://matplotlib_inline.backend_inline")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _run(argv, backend):
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env={**env(), "MPLBACKEND": backend},
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("backend", BAD)
def test_the_report_is_written_under_a_backend_matplotlib_does_not_know(tmp_path, runs, backend):
    make_study(tmp_path / "tune", runs["flow"], [0.4, 2.0, 1.1])  # Optuna's views draw with pyplot
    out = tmp_path / "report"
    proc = _run(["-m", "hpcflow", "report", runs["flow"], str(tmp_path / "tune"), "--out", str(out)], backend)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    md = (out / "report.md").read_text()
    assert md_rows(md.split("## Runs")[1].split("\n## ")[0])["flow"][2] == "finished"
    assert (out / "sigma_history.png").is_file() and (out / "optuna_history.png").is_file()


def test_the_figure_scripts_draw_under_a_backend_matplotlib_does_not_know(tmp_path, runs):
    make_study(tmp_path / "tune", runs["flow"], [0.4, 2.0, 1.1])
    for script, path, png in (("sigma_history", runs["flow"], "sigma_history.png"),
                              ("optuna_view", str(tmp_path / "tune"), "optuna_history.png")):
        out = tmp_path / script
        proc = _run([os.path.join("analysis", f"{script}.py"), path, "--out", str(out)], BAD[0])
        assert proc.returncode == 0, (script, proc.stderr)
        assert (out / png).is_file(), script


CHILD = """
import os, subprocess, sys
from hpcflow.analysis.figure import require_matplotlib
require_matplotlib()
import matplotlib
print(repr(os.environ.get("MPLBACKEND")))
print(subprocess.run([sys.executable, "-c", "import os; print(repr(os.environ.get('MPLBACKEND')))"],
                     capture_output=True, text=True).stdout.strip())
print(matplotlib.rcParams._get("backend"))
"""


@pytest.mark.parametrize("backend, kept", [(BAD[0], False), ("svg", True)])
def test_the_variable_is_left_to_child_processes_and_a_known_backend_kept(backend, kept):
    """The variable is taken away for matplotlib's import alone: this process and its children still see it; a
    backend matplotlib knows is its rcParams['backend'], as its import would have made it."""
    proc = _run(["-c", CHILD], backend)
    assert proc.returncode == 0, proc.stderr
    mine, child, rc_backend = proc.stdout.splitlines()
    assert mine == child == repr(backend)
    assert (rc_backend == backend) is kept, rc_backend


CALLER = """
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
mine = plt.figure()
plt.plot([0, 1], [1, 0])
study = optuna.create_study(direction="maximize")
study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
from hpcflow.analysis import optuna_view
fig = optuna_view.plot(study, "history")
print(plt.get_backend(), plt.fignum_exists(mine.number), len(fig.axes), len(plt.get_fignums()))
"""


def test_a_caller_whose_pyplot_runs_another_backend_keeps_it_and_its_figures():
    """Optuna's views selected Agg with matplotlib.use, which switched the caller's pyplot over and closed its open
    figures; now the caller's backend and figure stay, and the view is drawn all the same (pyplot forgets it)."""
    proc = subprocess.run([sys.executable, "-c", CALLER], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["svg", "True", "1", "1"], proc.stdout
