"""The scripts in analysis/ check the environment as `hpcflow report` and every command do: a bad HPCFLOW_QUIET,
HPCFLOW_THREADS or BLAS/OpenMP thread count is one line naming the variable, exit status 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env

SCRIPTS = ("sigma_history", "table1", "fig2_heatmaps", "fig3_noise", "fig3_scaling", "fig4_ntk", "optuna_view")
BAD = [("HPCFLOW_QUIET", "2"), ("OMP_NUM_THREADS", "abc"), ("HPCFLOW_THREADS", "0")]


def _run(argv, **extra):
    e = {**env(), **extra}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=e, capture_output=True, text=True, timeout=120)


def _refusal(tmp_path, name, value) -> str:
    """`hpcflow report`'s line for variable `name` set to `value`, without its prefix."""
    report = _run(["-m", "hpcflow", "report", str(tmp_path / "nothing"), "--out", str(tmp_path / "rep")],
                  **{name: value})
    assert report.returncode == 2, report.stderr
    reason = report.stderr.removeprefix("hpcflow report: error: ")
    assert reason.startswith(f"{name}='{value}' "), report.stderr
    return reason


def _refused_alike(tmp_path, script, name, value, reason) -> None:
    out = tmp_path / f"figs_{script}"
    proc = _run([os.path.join("analysis", f"{script}.py"), str(tmp_path / "nothing"), "--out", str(out)],
                **{name: value})
    assert proc.returncode == 2, (script, proc.stderr)
    assert proc.stderr == f"{script}: error: {reason}", (script, proc.stderr)
    assert proc.stdout == "" and not out.exists()


@pytest.mark.parametrize("name, value", BAD)
def test_sigma_history_refuses_a_bad_variable_as_the_report_does(tmp_path, name, value):
    """sigma_history.py accepted HPCFLOW_QUIET=2, OMP_NUM_THREADS=abc and HPCFLOW_THREADS=0 and went on to read its
    inputs; `hpcflow report` refused each in one line. Now the same line, exit 2, before any input is read (the
    directory given does not exist) and nothing written."""
    _refused_alike(tmp_path, "sigma_history", name, value, _refusal(tmp_path, name, value))


def test_every_script_refuses_a_bad_variable_as_the_report_does(tmp_path):
    name, value = BAD[1]
    reason = _refusal(tmp_path, name, value)
    for script in SCRIPTS:
        _refused_alike(tmp_path, script, name, value, reason)
