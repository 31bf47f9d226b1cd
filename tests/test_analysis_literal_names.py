"""Run names, paths and a study's names are drawn as written: a '$' pair in a run directory's name is no mathtext
(it crashed every figure script and `hpcflow report` with matplotlib's parser error), and the figure's texts read
back the name itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from analysis_runs import ROOT, env, run_dirs, script

NAME = "a$\\frac{$b"  # a '$' pair around a TeX command: mathtext refuses it


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _as_drawn(text) -> str:
    """What matplotlib draws for Text `text`: its string after mathtext's preprocessing (a parse error for a '$'
    pair it cannot parse)."""
    s, math = text._preprocess_math(text.get_text())
    assert math is False, text.get_text()  # drawn as plain text
    return s


def _copy(runs, kind, where) -> str:
    dst = os.path.join(where, NAME)
    shutil.copytree(runs[kind], dst)
    return dst


@pytest.mark.parametrize("name, kind", [("sigma_history", "flow"), ("fig3_noise", "noise"),
                                        ("fig2_heatmaps", "clustering"), ("fig3_scaling", "scaling")])
def test_a_dollar_pair_in_a_run_name_is_drawn_literally_by_the_scripts(runs, tmp_path, name, kind):
    run = _copy(runs, kind, tmp_path / "dl")
    proc = script(name, run, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "mathtext" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert any(f.endswith(".png") for f in os.listdir(tmp_path / "out"))


def test_the_sigma_history_legend_and_titles_say_the_name_as_written(runs, tmp_path):
    from hpcflow.analysis import products
    from hpcflow.analysis.figure import save_png

    run = _copy(runs, "flow", tmp_path)
    prod = products.sigma_history([run])
    fig = prod.figures["sigma_history.png"]
    legend = [_as_drawn(t) for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0].startswith(NAME + " ") and legend[0].endswith(" train"), legend
    per_rank = prod.figures["per_rank.png"]
    save_png(per_rank, tmp_path / "per_rank.png")
    assert _as_drawn(per_rank._suptitle) == f"per-rank cost: {legend[0].removesuffix(' train')}"
    from PIL import Image

    with Image.open(tmp_path / "per_rank.png") as im:  # the file's Title text: the name as written too
        assert im.text["Title"] == per_rank._suptitle.get_text()


def test_a_figure_per_run_is_titled_with_the_name_as_written(runs, tmp_path):
    from hpcflow.analysis import products
    from hpcflow.analysis.figure import save_png

    run = _copy(runs, "scaling", tmp_path)
    fig = products.fig3_distance_scaling([run]).figures["fig3_scaling.png"]
    save_png(fig, tmp_path / "f.png")
    assert _as_drawn(fig._suptitle).split(": ")[0] == NAME


def test_the_report_of_runs_named_with_a_dollar_pair_is_written(runs, tmp_path):
    dl = tmp_path / "dl"
    for kind in ("flow", "noise", "nn"):
        shutil.copytree(runs[kind], dl / f"{kind}{NAME}")
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", *sorted(map(str, dl.iterdir())), "--out",
                           str(tmp_path / "rep")], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    pngs = [f for f in os.listdir(tmp_path / "rep") if f.endswith(".png")]
    assert any(f.startswith("sigma_history") for f in pngs) and any(f.startswith("fig3_noise") for f in pngs), pngs


def test_a_studys_parameter_names_and_choices_are_drawn_as_written(tmp_path):
    """Parameter names label the slice plot's axes and the importances' bars; a categorical parameter's choices
    are its tick labels."""
    from hpcflow.analysis.figure import save_png
    from hpcflow.analysis.optuna_view import plot

    space = {"x$\\frac{$": FloatDistribution(0.1, 1.0), "c$\\frac{$": CategoricalDistribution(["p$\\frac{$q", "r"])}
    study = optuna.create_study(study_name="s$\\frac{$", direction="maximize")
    for i, (x, c) in enumerate([(0.2, "r"), (0.5, "p$\\frac{$q"), (0.9, "r"), (0.3, "p$\\frac{$q")]):
        study.add_trial(optuna.trial.create_trial(params={"x$\\frac{$": x, "c$\\frac{$": c}, distributions=space,
                                                  value=float(i)))
    for view in ("history", "importances", "slice"):
        fig = plot(study, view)
        save_png(fig, tmp_path / f"{view}.png")  # drawn: the tick labels are made
    drawn = {_as_drawn(t) for ax in fig.axes for t in [*ax.get_xticklabels(), *ax.get_yticklabels()]}
    assert repr("p$\\frac{$q") in drawn, drawn  # the choice's tick label (as Optuna writes it: its repr)
    xlabels = {_as_drawn(ax.xaxis.label) for ax in fig.axes}
    assert {"x$\\frac{$", "c$\\frac{$"} <= xlabels, xlabels


def test_a_star_in_a_run_name_is_no_emphasis_in_report_md(runs, tmp_path):
    """report.md wrote a run named 'a*b*c' bare in its table cells, which markdown renders as a<em>b</em>c; its
    captions escaped it. Now no cell of the run holds a bare '*', and report.html's cell reads the name itself."""
    import re

    from analysis_runs import md_rows
    from hpcflow.report.build import build_report

    name = "a*b*c"
    shutil.copytree(runs["flow"], tmp_path / name)
    res = build_report([str(tmp_path / name)], tmp_path / "rep")
    md = open(res["md"], encoding="utf-8").read()
    cells = [line for line in md.splitlines() if line.startswith("| a")]
    assert len(cells) == 2 and not any(re.search(r"(?<!\\)\*", line) for line in cells), cells  # runs table, Table 1
    assert "a&#42;b&#42;c" in md_rows(md)
    html = open(res["html"], encoding="utf-8").read()
    assert html.count(f"<td>{name}</td>") == 2, re.findall(r"<td>a[^<]*</td>", html)
