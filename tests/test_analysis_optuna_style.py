"""Optuna's views set their ggplot style for the whole process (plt.style.use), so the figures drawn after them in
one report (the sigma histories, the per-rank cost) came out in that style only where a study was reported beside the
runs. The style is now the view's alone: another figure's PNG is the same with and without a study, and the view is
still written in Optuna's style."""

from __future__ import annotations

import pytest

from analysis_runs import make_study, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.fixture
def default_style():
    """The test under matplotlib's default settings, put back after it."""
    import matplotlib.style

    with matplotlib.style.context("default"):
        yield


def test_a_study_in_the_report_leaves_the_other_figures_as_they_are(tmp_path, runs, default_style):
    from hpcflow.report.build import build_report

    make_study(tmp_path / "tune", runs["flow"], [0.4, 2.0, 1.1])
    alone = build_report([runs["flow"]], tmp_path / "alone")
    beside = build_report([str(tmp_path / "tune"), runs["flow"]], tmp_path / "beside")
    assert (tmp_path / "beside" / "optuna_history.png").is_file()  # the study was drawn, before the histories
    for name in ("sigma_history.png", "per_rank.png"):
        assert (tmp_path / "alone" / name).read_bytes() == (tmp_path / "beside" / name).read_bytes(), name
    assert alone["skipped"] == beside["skipped"] == []


def test_the_view_keeps_its_style_and_the_process_its_own(tmp_path, default_style):
    import matplotlib
    import optuna
    from matplotlib.colors import to_hex

    from hpcflow.analysis import optuna_view
    from hpcflow.analysis.figure import save_png

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    before = dict(matplotlib.rcParams)
    fig = optuna_view.plot(study, "history")
    assert dict(matplotlib.rcParams) == before
    assert to_hex(fig.axes[0].get_facecolor()) == "#e5e5e5"  # ggplot's grey panel, as Optuna draws it
    save_png(fig, tmp_path / "history.png")
    assert dict(matplotlib.rcParams) == before
