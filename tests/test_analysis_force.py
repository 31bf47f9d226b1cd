"""The analysis scripts' --out: an earlier call's outputs (recorded in FIGDIR/.hpcflow_NAME.json) are refused
without --force, replaced with it (those the new call does not draw removed), and a file of the user's under an
output's name is never replaced; a second writer into an --out in use (another script, a report, a run: its lock,
hpcflow.jobs.outlock) is refused in one line naming it, before any work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs

SCRIPTS = ("sigma_history", "table1", "fig2_heatmaps", "fig3_noise", "fig3_scaling", "fig4_ntk", "optuna_view")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _files(out) -> dict:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _one_line_exit_2(capsys, status, named) -> None:
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and str(named) in err, err


def test_an_earlier_output_is_refused_without_force_and_replaced_with_it(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    assert main("table1", [runs["flow"], "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    _one_line_exit_2(capsys, main("table1", [runs["flow"], runs["flow_gauss"], "--out", str(out)]), out / "table1.md")
    assert _files(out) == before
    assert main("table1", [runs["flow"], runs["flow_gauss"], "--out", str(out), "--force"]) == 0
    assert (out / "table1.md").read_bytes() != before["table1.md"] and (out / "notes.txt").read_text() == "mine"


def test_force_removes_the_earlier_calls_figures_the_new_one_does_not_draw(runs, tmp_path):
    """sigma_history.py of one run writes per_rank.png, of two runs per_rank_NAME.png each: under --force the one of
    the earlier call does not stay beside them."""
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    assert main("sigma_history", [runs["flow"], "--out", str(out)]) == 0
    first = set(_files(out))
    assert "per_rank.png" in first
    assert main("sigma_history", [runs["flow"], runs["flow_gauss"], "--out", str(out), "--force"]) == 0
    names = set(_files(out))
    assert "per_rank.png" not in names and {"per_rank_flow.png", "per_rank_flow_gauss.png"} <= names, names


def test_force_refuses_a_file_of_the_users_under_an_outputs_name(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    out.mkdir()
    (out / "table1.md").write_text("my table")
    _one_line_exit_2(capsys, main("table1", [runs["flow"], "--out", str(out), "--force"]), out / "table1.md")
    assert _files(out) == {"table1.md": b"my table"}


def _script(name, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "analysis", f"{name}.py"), *map(str, args)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_into_an_out_another_writer_holds_is_refused_before_any_work(runs, tmp_path, name):
    """Two writers into one --out (two scripts, a script beside hpcflow report) removed each other's temporaries
    and mixed their files and records: a script now holds --out's lock, as a report does, and one started while
    another holds it says who, in one line (exit 2), and writes nothing; the holder's files stay as they were."""
    from hpcflow.jobs.outlock import LOCK_NAME, acquire
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    assert main("table1", [runs["flow"], "--out", str(out)]) == 0  # the holder's earlier output
    before = _files(out)
    lock = acquire(str(out), command="hpcflow report")
    try:
        proc = _script(name, runs["flow"], "--out", out, "--force")
        during = _files(out)
    finally:
        lock.release()
    err = proc.stderr
    assert proc.returncode == 2 and err.count("\n") == 1, (proc.returncode, err)
    assert err.startswith(f"{name}: error: --out {out} is in use by hpcflow report (pid {os.getpid()} "), err
    assert proc.stdout == "" and set(during) == {*before, LOCK_NAME}, (proc.stdout, sorted(during))
    assert {n: during[n] for n in before} == before and _files(out) == before


def test_a_refused_script_leaves_no_out_and_none_is_refused_by_its_own_lock(runs, tmp_path):
    """The lock is the script's own while it runs: its --out, also a run directory it reads, is not taken for a
    live run's (a table row "running: table1.py"), and one it created is removed again where the call fails."""
    from hpcflow.analysis.script import main

    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", runs["flow"], str(copy)], check=True)
    assert main("table1", [str(copy), "--out", str(copy)]) == 0
    table = (copy / "table1.md").read_text()
    assert "| run | finished |" in table and "running" not in table, table
    assert not (copy / ".hpcflow.lock").exists()
    new = tmp_path / "new" / "deep"
    assert main("table1", [str(tmp_path / "nothing"), "--out", str(new)]) == 2
    assert not (tmp_path / "new").exists()
