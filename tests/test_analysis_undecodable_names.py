"""A run directory whose name holds a byte that is not UTF-8 (b'bad\\xff', which Python holds as 'bad\\udcff') is
drawn and written with that byte shown as the four characters \\xff: matplotlib cannot draw the lone surrogate (a
TypeError in every figure script and `hpcflow report`), and a text file written as UTF-8 cannot hold it (a
UnicodeEncodeError writing table1.md)."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis_runs import make_study, md_rows, run_dirs, script

RAW = os.fsdecode(b"bad\xff")  # the name as os.listdir gives it
SHOWN = "bad\\xff"  # as it is drawn and written


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _copy(runs, kind, where) -> str:
    dst = os.path.join(os.fspath(where), RAW)
    shutil.copytree(runs[kind], dst)
    return dst


def test_shown_escapes_the_bytes_of_a_name_that_are_not_utf8():
    from hpcflow.analysis.rundir import label, shown

    assert shown(os.fsdecode(b"a\xff\xfeb")) == "a\\xff\\xfeb"
    assert shown("plain $name é") == "plain $name é"
    assert label(os.path.join("x", RAW)) == SHOWN
    shown(os.fsdecode(b"a\x80")).encode("utf-8")  # writable as UTF-8


@pytest.mark.parametrize("product, kind, png", [
    ("sigma_history", "flow", "sigma_history.png"), ("fig3_noise_scan", "noise", "fig3_noise.png"),
    ("fig2_heatmaps", "clustering", "fig2_heatmaps.png"), ("fig3_distance_scaling", "scaling", "fig3_scaling.png"),
    ("fig4_ntk", "nn", "fig4_ntk.png")])
def test_every_figure_of_a_run_with_such_a_name_is_drawn_naming_it_escaped(runs, tmp_path, product, kind, png):
    from hpcflow.analysis import products
    from hpcflow.analysis.figure import save_png

    run = _copy(runs, kind, tmp_path)
    fig = getattr(products, product)([run]).figures[png]
    save_png(fig, tmp_path / png)  # drawn
    texts = [fig._suptitle.get_text() if fig._suptitle is not None else ""]
    texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert any(SHOWN in t for t in texts), texts
    assert not any(RAW in t for t in texts), texts


def test_table1_writes_and_prints_the_row_of_such_a_run(runs, tmp_path):
    run = _copy(runs, "flow", tmp_path)
    proc = script("table1", run, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "out" / "table1.md", encoding="utf-8") as fh:  # strict UTF-8
        rows = md_rows(fh.read())
    assert list(rows) == ["bad&#92;xff"], rows  # the markdown cell of 'bad\xff' (its backslash an entity)
    assert f"{SHOWN} [delta]: gain train" in proc.stdout, proc.stdout


def test_sigma_history_script_draws_such_a_run(runs, tmp_path):
    run = _copy(runs, "flow", tmp_path)
    proc = script("sigma_history", run, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert os.path.isfile(tmp_path / "out" / "sigma_history.png")


def test_a_study_in_a_directory_of_such_a_name_is_drawn(runs, tmp_path):
    from hpcflow.analysis import products
    from hpcflow.analysis.figure import save_png

    study_dir = os.path.join(os.fspath(tmp_path), RAW)
    make_study(study_dir, runs["flow"], [0.1, 0.5, 0.3, 0.2])
    prod = products.optuna_study([study_dir])
    for name, fig in prod.figures.items():
        save_png(fig, tmp_path / name)
    assert any(SHOWN in fig._suptitle.get_text() for fig in prod.figures.values() if fig._suptitle is not None) or \
        any(SHOWN in c for c in prod.captions.values()), prod.captions


def test_the_report_of_such_runs_is_written_in_utf8(runs, tmp_path):
    from hpcflow.report.build import build_report

    where = tmp_path / "in"
    paths = [_copy(runs, "flow", where / "a"), _copy(runs, "noise", where / "b")]
    res = build_report(paths, tmp_path / "rep")
    with open(res["md"], encoding="utf-8") as fh:  # strict UTF-8
        md = fh.read()
    assert {"a/bad&#92;xff", "b/bad&#92;xff"} <= set(md_rows(md)), list(md_rows(md))
    with open(res["html"], encoding="utf-8") as fh:
        assert "<td>a/bad\\xff</td>" in fh.read()
