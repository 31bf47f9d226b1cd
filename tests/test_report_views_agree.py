"""The scripts and the report agree on what they show: a run given twice is read once, a flow without test points
has no test gain ('-') in Table 1 as in the runs table, the sigma histories' legend covers no curve, and a directory
holding a study and a run's files says that the run is not reported."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from analysis_runs import JOBS, ROOT, env, make_study, md_rows, run_dirs, script

#: a value printed as nan (a word: "Provenance" and paths may hold the letters)
NAN = re.compile(r"\bnan\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_table1_reads_a_run_given_twice_once(tmp_path, runs):
    """`table1.py r1 r1` listed the run twice; `hpcflow report` reports it once. Now the script too (by its resolved
    path: 'r1' and 'r1/' are one), saying so on stderr."""
    proc = script("table1", runs["flow"], runs["flow"] + "/", "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    rows = md_rows((tmp_path / "figs" / "table1.md").read_text())
    assert list(rows) == ["flow"], rows
    assert proc.stderr == f"table1: {runs['flow']}/ given twice: read once\n", proc.stderr


def test_sigma_history_says_a_run_directory_given_with_its_data_file_is_read_once(tmp_path, runs):
    """`sigma_history.py r1/checkpoint.h5 r1` read the run once, silently, where table1.py says so. Now it says so in
    table1's words, its output that of the run given alone; a network's nn.h5 and checkpoint.pt given without their
    directory are read together, no repeat."""
    flow, nn = runs["flow"], runs["nn"]
    alone = script("sigma_history", flow, "--out", tmp_path / "alone")
    both = script("sigma_history", os.path.join(flow, "checkpoint.h5"), flow, "--out", tmp_path / "both")
    assert alone.returncode == both.returncode == 0, both.stderr
    assert both.stderr == f"sigma_history: {flow} given twice: read once\n", both.stderr
    assert both.stdout.replace("both", "OUT") == alone.stdout.replace("alone", "OUT")
    files = script("sigma_history", os.path.join(nn, "nn.h5"), os.path.join(nn, "checkpoint.pt"), nn, "--out",
                   tmp_path / "nn")
    assert files.returncode == 0, files.stderr
    assert files.stderr == (f"sigma_history: {os.path.join(nn, 'checkpoint.pt')} given twice: read once\n"
                            f"sigma_history: {nn} given twice: read once\n"), files.stderr  # all three: one run
    files = script("sigma_history", os.path.join(nn, "nn.h5"), os.path.join(nn, "checkpoint.pt"), "--out",
                   tmp_path / "nn_files")
    assert files.returncode == 0 and files.stderr == "", files.stderr


@pytest.fixture(scope="module")
def no_test(tmp_path_factory):
    """The run directory of the small flow job with n_test = 0."""
    base = tmp_path_factory.mktemp("no_test_run")
    job, out = base / "flow.toml", base / "no_test"
    job.write_text(JOBS["flow"][1])
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--quiet", "--set",
                           "geometry.n_test=0"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_flow_without_test_points_has_no_test_gain_in_table1_as_in_the_runs_table(tmp_path, no_test):
    """n_test = 0: Table 1 showed the test gain 'nan', the runs table '-'. Now '-' in both, and in the printed line."""
    from hpcflow.report.build import build_report

    out = no_test
    res = build_report([str(out)], tmp_path / "report")
    md = open(res["md"], encoding="utf-8").read()
    runs_row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["no_test"]
    table1_row = md_rows(md.split("## Table 1")[1].split("\n## ")[0])["no_test"]
    assert runs_row[9] == "-" and table1_row[10] == "-", (runs_row, table1_row)
    assert float(table1_row[9]) == pytest.approx(float(runs_row[8]), rel=1e-3)  # the train gain is there in both
    proc = script("table1", out, "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    assert "no_test [delta]: gain train " in proc.stdout and "gain test -\n" in proc.stdout, proc.stdout
    assert not NAN.search(proc.stdout)


def test_sigma_history_prints_no_test_sigmas_for_a_flow_without_test_points(tmp_path, no_test, runs):
    """n_test = 0: sigma_history.py printed 'test nan -> nan' where Table 1 and the runs table show '-'. Now 'test -',
    in the report's printed line too; a run with test points keeps its numbers."""
    from hpcflow.report.build import build_report

    proc = script("sigma_history", no_test, runs["flow"], "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "sigma train" in line]
    assert lines[0].startswith("no_test [delta]: sigma train ") and lines[0].endswith(", test - (6 flow steps)"), lines
    assert lines[1].startswith("flow [delta]: ") and ", test 0." in lines[1] and not NAN.search(proc.stdout), lines
    res = build_report([str(no_test)], tmp_path / "report")
    md = open(res["md"], encoding="utf-8").read()
    assert ", test - (6 flow steps)" in md and not NAN.search(md), NAN.search(md)


def test_the_sigma_history_legend_covers_no_curve(tmp_path, runs):
    """The legend sat on the curves where runs' names are long ('best' finds no free corner). Now it is beside the
    axes: no point of any curve (each segment sampled in display coordinates) lies under it, and it lies within
    the figure."""
    from hpcflow.analysis import histories

    long = tmp_path / "flow_resumed_on_the_second_cluster_after_its_preemption_with_more_steps"
    shutil.copytree(runs["flow"], long)
    fig = histories.plot([histories.load(d) for d in (runs["flow"], runs["flow_gauss"], runs["nn"], str(long))])
    fig.canvas.draw()
    ax = fig.axes[-1]  # the legend beside the last panel (the network's epochs)
    box = ax.get_legend().get_window_extent()
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    t = np.linspace(0.0, 1.0, 200)[:, None]
    for line in [line for panel in fig.axes for line in panel.get_lines()]:
        xy = line.axes.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
        for a, b in zip(xy[:-1], xy[1:]):
            pts = a + t * (b - a)
            under = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
            assert not under.any(), line.get_label()


def test_a_directory_holding_a_study_and_a_run_says_the_run_is_not_reported(tmp_path, runs):
    """A directory with study.journal and a flow run's checkpoint.h5 was reported as the study alone, silently. Now
    the skipped list names the run's file and the fix."""
    from hpcflow.report.build import build_report

    both = tmp_path / "both"
    shutil.copytree(runs["flow"], both)
    make_study(both, runs["flow"], [0.4, 2.0])
    res = build_report([str(both)], tmp_path / "report")
    assert res["skipped"] == [(str(both), "also holds checkpoint.h5 (another run's), not reported: the directory is "
                                          "reported as a study (study.journal); move the other run's files into a "
                                          "directory of their own and report that")], res["skipped"]
    md = open(res["md"], encoding="utf-8").read()
    assert md_rows(md.split("## Runs")[1].split("\n## ")[0])["both"][1] == "study"
    assert os.path.isfile(both / "checkpoint.h5")
