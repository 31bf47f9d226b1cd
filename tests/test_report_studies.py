"""Several studies in one report: each study's Optuna figures are titled and captioned with its directory's name
(two studies of one Optuna name told apart), and a view skipped for one of them is said among that study's lines."""

from __future__ import annotations

import re

from analysis_runs import make_study


def _studies(tmp_path) -> list:
    """Two tune directories holding studies of one Optuna name ('table1_delta'): alpha of three trials, beta of one
    (its importances view needs two: skipped)."""
    make_study(tmp_path / "alpha", "trials/0000", [0.4, 2.0, 1.1])
    make_study(tmp_path / "beta", "trials/0000", [0.7])
    return [str(tmp_path / "alpha"), str(tmp_path / "beta")]


def test_each_studys_figures_are_titled_with_its_directory_and_the_skipped_view_is_in_its_lines(tmp_path):
    """The figures were titled with Optuna's generic titles ('Optimization History Plot') alone, and the line
    'skipped importances: ...' stood between the studies' blocks, naming neither directory."""
    from hpcflow.analysis.products import optuna_study

    prod = optuna_study(_studies(tmp_path))
    assert set(prod.captions) == set(prod.figures), (prod.captions, prod.figures)
    for file, fig in prod.figures.items():
        who = "alpha" if "alpha" in file else "beta"
        assert prod.captions[file] == who, (file, prod.captions[file])
        titles = [t.get_text() for t in (fig._suptitle, *(a.title for a in fig.axes),
                                         *(a._left_title for a in fig.axes)) if t is not None and t.get_text()]
        assert titles and all(t.startswith(f"{who}: ") for t in titles), (file, titles)
    skipped = [line for line in prod.lines if "skipped importances" in line]
    assert len(skipped) == 1 and skipped[0].startswith("beta: skipped importances: "), prod.lines
    beta = [i for i, line in enumerate(prod.lines) if line.startswith("beta: ")]
    assert beta == list(range(beta[0], len(prod.lines))), prod.lines  # beta's lines together, after alpha's
    assert all(line.startswith("alpha: ") for line in prod.lines[:beta[0]]), prod.lines


def test_report_captions_each_optuna_figure_with_its_study_directory_in_html_and_markdown(tmp_path):
    """report.html had a bare <img alt="optuna_alpha_history.png"> per figure, report.md no caption."""
    from hpcflow.report import build_report

    paths = build_report(_studies(tmp_path), str(tmp_path / "R"))
    html = open(paths["html"], encoding="utf-8").read()
    md = open(paths["md"], encoding="utf-8").read()
    figures = re.findall(r'<figure><img alt="(optuna_[^"]+)" src="[^"]+"><figcaption>([^<]*)</figcaption></figure>',
                         html)
    assert len(figures) == 5, figures  # alpha: history, importances, slice; beta: history, slice
    assert all(caption == ("alpha" if "alpha" in name else "beta") for name, caption in figures), figures
    assert not re.search(r'(?<!<figure>)<img alt="optuna_', html)
    for name, caption in figures:
        alt = re.escape(name.replace("_", "\\_"))
        assert re.search(rf"!\[{alt}\]\({re.escape(name)}\)\n\n\*{caption}\*\n", md), name
    assert "beta: skipped importances: " in md and "beta: skipped importances: " in html
