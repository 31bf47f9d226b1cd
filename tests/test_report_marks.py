"""What a report says of each run: a network run whose nn.h5 is damaged is incomplete with its checkpoint's history
and the --resume that writes nn.h5 again from its checkpoint (--force where checkpoint.pt is damaged too), an extended network run killed before its new nn.h5 has its Fig. 4 marked
incomplete, every figure of one run among several names it, a damaged run alone is refused naming its file, names that
markdown or HTML would read are escaped, and the axes of one-point histories, heatmaps, noise scans and width sweeps
show what they hold."""

from __future__ import annotations

import html
import os
import re
import shutil

import numpy as np
import pytest

from analysis_runs import forced, md_rows, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _cut(path) -> None:
    """Truncate file `path` to half its size (a crash, a full disk or a partial copy)."""
    os.truncate(path, os.path.getsize(path) // 2)


def _runs_rows(md: str) -> dict:
    return md_rows(md.split("## Runs")[1].split("\n## ")[0])


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}")[1].split("\n## ")[0]


def _damaged_nn(d) -> str:
    """The reason of a finished network run in `d` whose nn.h5 is damaged: its checkpoint.pt holds the whole trained
    state, so the advice is the --resume that writes nn.h5 again (it was "rerun the job with --force", a retraining)."""
    return f"nn.h5 unreadable (damaged); write it again with hpcflow nn {d / 'job.toml'} --out {d} --resume"


def test_a_network_run_with_a_damaged_nn_h5_is_incomplete_and_its_history_is_its_checkpoints(tmp_path, runs):
    import torch

    from hpcflow.analysis import histories
    from hpcflow.analysis.rundir import completeness
    from hpcflow.report.build import build_report

    d = tmp_path / "cut"
    shutil.copytree(runs["nn"], d)
    _cut(d / "nn.h5")
    assert completeness(d) == (False, _damaged_nn(d))
    hist = torch.load(d / "checkpoint.pt", weights_only=True)["train"]["history"]
    st, sv = (hist[k].numpy() for k in ("sigma_train", "sigma_val"))
    loaded = histories.load(d)
    assert loaded["file"] == os.path.join(d, "checkpoint.pt")
    np.testing.assert_array_equal(loaded["train"], st)
    np.testing.assert_array_equal(loaded["test"], sv)
    assert loaded["label"] == f"cut (incomplete: {_damaged_nn(d)})"  # with its fix, as the README and its row say
    res = build_report([runs["flow"], str(d)], tmp_path / "out")
    # its Fig. 4 is not drawn (its NTK is in the damaged nn.h5 alone), as for a missing nn.h5
    assert res["skipped"] == [(str(d), f"Fig. 4: metric-NTK evolution: not drawn: {_damaged_nn(d)}")], res["skipped"]
    md = open(res["md"], encoding="utf-8").read()
    row = _runs_rows(md)["cut"]
    assert row[2].startswith(f"incomplete: {_damaged_nn(d)}"), row
    assert row[6] == f"{st[0]:.4g} -> {st[-1]:.4g}" and row[7] == f"{sv[0]:.4g} -> {sv[-1]:.4g}", row
    assert f"cut (incomplete: {_damaged_nn(d)}): sigma train {st[0]:.4g} -> {st[-1]:.4g}" in md
    assert "## Fig. 4" not in md  # no section: its NTK is in the damaged nn.h5 alone


def test_the_advised_resume_writes_a_damaged_nn_h5_again_and_the_run_is_whole(tmp_path, runs, capsys):
    """The command the report advises for a finished run's damaged nn.h5, run as it reads, makes nn.h5 whole again
    (the report then says "finished"); --resume refused it ("rerun the job with --force")."""
    import shlex

    from hpcflow.analysis.rundir import completeness
    from hpcflow.cli import main
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = tmp_path / "cut"
    shutil.copytree(runs["nn"], d)
    _cut(d / "nn.h5")
    advised = completeness(d)[1].split("write it again with ")[1]
    argv = shlex.split(advised)
    assert argv[:2] == ["hpcflow", "nn"], advised
    capsys.readouterr()
    assert main([*argv[1:], "--quiet"]) == 0
    assert "nn.h5 damaged in a finished run" in capsys.readouterr().out
    assert completeness(d) == (True, "") and row(detect(d))[2] == "finished"


def test_a_damaged_nn_h5_beside_a_damaged_checkpoint_pt_is_advised_a_rerun(tmp_path, runs):
    """Where checkpoint.pt is cut short too, nothing holds the trained state: the advice stays --force."""
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "both"
    shutil.copytree(runs["nn"], d)
    _cut(d / "nn.h5")
    _cut(d / "checkpoint.pt")
    assert completeness(d) == (False, f"nn.h5 unreadable (damaged); {forced(d, 'nn')}")


def test_fig4_of_an_extended_network_run_killed_before_its_new_nn_h5_is_marked_incomplete(tmp_path, runs):
    """Extended with --resume to 5 epochs and killed after its last checkpoint (nn.h5 and summary.json still the
    first run's): Fig. 4 and the width sweep are the old nn.h5's, marked as its sigma histories are."""
    from hpcflow.analysis import fig4
    from hpcflow.cli import main
    from hpcflow.report.build import collect

    d = tmp_path / "ext"
    shutil.copytree(runs["nn"], d)
    kept = {name: (d / name).read_bytes() for name in ("summary.json", "nn.h5")}
    assert main(["nn", str(d / "job.toml"), "--out", str(d), "--resume", "--set", "training.epochs=5", "--quiet"]) == 0
    for name, data in kept.items():
        (d / name).write_bytes(data)
    mark = "incomplete: checkpoint.pt is at epoch 5 but summary.json describes epoch 3"
    data = fig4.load(d)
    assert data["note"].startswith(mark), data["note"]
    assert fig4.plot(data)._suptitle.get_text().startswith(f"Fig. 4: metric-NTK evolution ({mark}")
    assert f"({mark}" in fig4.plot_sweep(data)._suptitle.get_text()
    whole = fig4.load(runs["nn"])
    assert whole["note"] == "" and fig4.plot(whole)._suptitle.get_text() == "Fig. 4: metric-NTK evolution"
    report = collect([str(d)])
    sec = next(s for s in report.sections if s.title.startswith("Fig. 4"))
    assert sec.lines[0].startswith(f"ext: {mark}"), sec.lines
    history = next(s for s in report.sections if s.title == "sigma histories")
    assert f"ext ({mark}" in history.lines[0]
    for fig in sec.figures.values():
        assert f"({mark}" in fig._suptitle.get_text()


def test_each_figure_of_one_run_among_several_names_it_in_its_title_and_caption(tmp_path, runs):
    from hpcflow.report.build import build_report, collect

    twin = tmp_path / "twin"
    shutil.copytree(runs["nn"], twin)
    res = build_report([runs["nn"], str(twin), runs["clustering"]], tmp_path / "out")
    md = open(res["md"], encoding="utf-8").read()
    page = open(res["html"], encoding="utf-8").read()
    sections = {s.title: s for s in collect([runs["nn"], str(twin), runs["clustering"]]).sections}
    fig4 = sections["Fig. 4: metric-NTK evolution"]
    expected = {"fig4_ntk_nn.png": "nn", "fig4_ntk_twin.png": "twin", "fig4_width_sweep_nn.png": "nn",
                "fig4_width_sweep_twin.png": "twin"}
    assert fig4.captions == expected
    for name, run in expected.items():
        assert fig4.figures[name]._suptitle.get_text().startswith(f"{run}: "), name
        alt = name.replace("_", "\\_")  # markdown's emphasis character, literal
        assert f"![{alt}]({name})\n\n*{run}*\n" in md
    heat = sections["Fig. 2: FS distance heatmaps"]
    assert {n: f._suptitle.get_text() for n, f in heat.figures.items()} == {"fig2_heatmaps.png": "clustering"}
    shown = [s.captions[n] for s in sections.values() for n in s.figures if n in s.captions]
    assert shown[-4:] == ["nn", "nn", "twin", "twin"] and "clustering" in shown  # Fig. 4 of each run, in order
    assert [html.unescape(c.split("</figcaption>")[0]) for c in page.split("<figcaption>")[1:]] == shown


def test_a_report_of_a_damaged_run_alone_is_refused_naming_the_file(tmp_path, runs):
    from hpcflow.errors import UserError
    from hpcflow.report.build import build_report

    cut = tmp_path / "cut"
    shutil.copytree(runs["flow"], cut)
    _cut(cut / "checkpoint.h5")
    with pytest.raises(UserError) as err:  # a damaged file as the only input: exit 2 in one line, nothing written
        build_report([str(cut)], tmp_path / "out")
    assert f"{cut / 'checkpoint.h5'}: not a readable HDF5 file" in str(err.value) and "--force" in str(err.value)
    assert not (tmp_path / "out").exists()
    res = build_report([str(cut), runs["flow_gauss"]], tmp_path / "out2")  # beside a good run: its row says so
    rows = _runs_rows(open(res["md"], encoding="utf-8").read())
    assert rows["cut"][2] == f"incomplete: checkpoint.h5 unreadable (damaged); {forced(cut)}"


def test_run_names_that_markdown_or_html_would_read_are_escaped(tmp_path, runs):
    from hpcflow.report.build import build_report

    name = "a|b <i>x & y"
    d = tmp_path / name
    shutil.copytree(runs["flow"], d)
    res = build_report([str(d), runs["flow_gauss"]], tmp_path / "out")
    md = open(res["md"], encoding="utf-8").read()
    cell = "a\\|b &lt;i>x &amp; y"
    for table in (md.split("## Runs")[1], _section(md, "Table 1: hyper-parameters and gains")):
        line = next(x for x in table.splitlines() if x.startswith("| a"))
        assert line.startswith(f"| {cell} | "), line
        assert line.count("|") - line.count("\\|") == table.splitlines()[2].count("|")  # cells as many as the head's
    assert "<i>" not in re.sub(r"```.*?```", "", md, flags=re.S)  # literal in code blocks alone
    assert "\n*a\\|b &lt;i>x &amp; y \\[delta\\]*\n" in md  # its per-rank figure's caption
    page = open(res["html"], encoding="utf-8").read()
    assert page.count(f"<td>{html.escape(name)}</td>") == 2  # its runs-table and Table 1 cells
    assert "<i>" not in page
    from hpcflow.analysis.table1 import md_cell, md_uncell

    assert md_cell(name) == cell and md_uncell(cell) == name


def test_markdown_markup_in_a_run_name_is_literal_in_table_cells():
    from hpcflow.analysis.table1 import md_cell, md_uncell

    name = "_a_ *b* [l](u) ~~s~~ d\\ e\\|f relu_ntk [kernel] `code`"
    cell = md_cell(name)
    assert md_uncell(cell) == name
    plain = cell.replace("\\|", "")  # the table's own escape of '|'
    for markup in ("_a_", "*b*", "[l](u)", "~~s~~", "\\"):  # emphasis, link, strike-through, escape: none left
        assert markup not in plain, (markup, cell)
    for plain_text in ("relu_ntk", "[kernel]", "`code`"):  # nothing marked, or (a code span) only the font
        assert plain_text in cell, (plain_text, cell)
    assert md_cell("~1e6") == "~1e6"  # one '~' strikes nothing through


def test_a_one_point_history_is_drawn_with_markers():
    from hpcflow.analysis import histories

    one = {"x": np.arange(1), "train": np.array([0.5]), "test": np.array([0.4]), "unit": "flow step", "label": "one",
           "step_seconds": np.array([[0.1, 0.2]])}
    many = {**one, "x": np.arange(3), "train": np.array([0.5, 0.4, 0.3]), "test": np.array([0.4, 0.3, 0.2]),
            "label": "many"}
    fig = histories.plot([one, many])
    markers = {line.get_label(): line.get_marker() for line in fig.axes[0].get_lines()}
    assert markers == {"one train": "o", "one test": "o", "many train": "None", "many test": "None"}
    per_rank = histories.plot_per_rank(one)
    assert [line.get_marker() for line in per_rank.axes[0].get_lines()] == ["o", "o"]


def test_fig2_heatmaps_average_entries_that_share_a_pixel():
    """1000 x 1000 entries on a few hundred pixels: a pixel shows the mean of its entries, not one picked out of them
    (which hides the blocks of the clustered orderings under noise at the documented --dpi). A checkerboard of 0 and
    pi/2 is then drawn in the colour of pi/4 (viridis' green 145 of 255), not in that of 0 (1) or pi/2 (231)."""
    import math

    from hpcflow.analysis import fig2

    board = np.indices((1000, 1000)).sum(axis=0) % 2 * (math.pi / 2)
    fig = fig2.plot({"matrices": {name: board for name, _, _ in fig2.PANELS}, "silhouette": {}})
    fig.set_dpi(50)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    x0, y0, x1, y1 = fig.axes[0].get_window_extent().extents
    height = rgba.shape[0]
    inner = rgba[int(height - y1) + 5:int(height - y0) - 5, int(x0) + 5:int(x1) - 5, 1].astype(float)
    assert inner.size > 10000 and np.mean((inner > 100) & (inner < 190)) > 0.95, np.percentile(inner, [5, 50, 95])



def test_fig2_heatmaps_smaller_than_their_panel_keep_the_zero_diagonal():
    """200 x 200 entries on more pixels (--dpi 110): each entry is drawn as it is, so the diagonal's exact 0 keeps
    the colour of 0 (viridis' green 1 of 255) beside entries of pi/2 (231). The smoothing filter that averages
    entries sharing a pixel also spread the off-diagonal entries over the diagonal when the matrix was upsampled:
    a minority of its cells kept the colour of 0."""
    import math

    from hpcflow.analysis import fig2

    n = 200
    mat = np.full((n, n), math.pi / 2)
    np.fill_diagonal(mat, 0.0)
    fig = fig2.plot({"matrices": {name: mat for name, _, _ in fig2.PANELS}, "silhouette": {}})
    fig.set_dpi(110)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    height = rgba.shape[0]
    for ax in fig.axes[:3]:
        x0, y0, x1, y1 = ax.get_window_extent().extents
        assert x1 - x0 > n and y1 - y0 > n, (x0, y0, x1, y1)  # upsampled
        centre = (np.arange(n) + 0.5) / n  # of cell (i, i), the first row at the top
        cols = (x0 + centre * (x1 - x0)).astype(int)
        rows = (height - (y1 - centre * (y1 - y0))).astype(int)
        green = rgba[rows, cols, 1].astype(float)
        assert np.mean(green < 8) > 0.95, np.percentile(green, [5, 50, 95])
        beside = rgba[rows[10:-10], cols[10:-10] + int((x1 - x0) / n * 5), 1].astype(float)  # 5 cells right
        assert np.all(beside > 200), np.percentile(beside, [5, 50, 95])

def _shown_ticks(ax) -> list:
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo <= t <= hi]


def test_noise_scan_ticks_leave_out_decades_in_the_linear_part_of_the_axis():
    """The smallest distance (the symlog axis's linear threshold) 0.009: 0.001 would sit a ninth of a decade from 0."""
    from hpcflow.analysis import fig3_noise

    scan = {"distance": np.array([0.0, 0.009, 0.09, 0.45]), "gain": np.array([2.8, 2.8, 2.3, 0.4]),
            "kernel": "delta", "label": "ns"}
    ax = fig3_noise.plot([scan]).axes[0]
    assert ax.get_xscale() == "symlog"
    assert _shown_ticks(ax) == pytest.approx([0.0, 0.01, 0.1], rel=1e-12)


def test_width_sweep_labels_every_width(runs):
    from hpcflow.analysis import fig4

    data = fig4.load_sweep(runs["nn"])
    fig = fig4.plot_sweep(data)
    widths = list(data["width_sweep/width"])
    for ax in fig.axes:
        assert _shown_ticks(ax) == widths
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{w:g}" for w in widths]
        assert list(ax.get_xticks(minor=True)) == []


def test_a_run_directory_as_out_is_called_a_folder_of_other_files(tmp_path, runs):
    from hpcflow.errors import UserError
    from hpcflow.report.build import build_report

    d = tmp_path / "flow"
    shutil.copytree(runs["flow"], d)
    with pytest.raises(UserError) as err:
        build_report([str(d)], str(d))
    msg = str(err.value)
    assert f"{d} holds files that are not an hpcflow report's (such as {d / 'checkpoint.h5'};" in msg, msg
    assert "choose another --out" in msg
    assert sorted(os.listdir(d)) == sorted(os.listdir(runs["flow"]))


def test_fig4_ntk_of_a_damaged_nn_h5_gives_the_fix_its_row_gives(tmp_path, runs):
    """fig4_ntk.py on a finished network run whose nn.h5 is cut short advised "rerun that job with --force" (a
    retraining), while its row and legend advise the --resume that writes nn.h5 again from checkpoint.pt."""
    from analysis_runs import script

    d = tmp_path / "cut"
    shutil.copytree(runs["nn"], d)
    _cut(d / "nn.h5")
    proc = script("fig4_ntk", d, "--out", tmp_path / "f")
    assert proc.returncode == 2, proc.stderr
    fix = _damaged_nn(d).split("; ")[1]
    # its directory holds its job.toml and summary.json: the run wrote it, said plainly (no "if ...; else ...")
    assert proc.stderr.endswith(f": the file is damaged; {fix}\n") and "--force" not in proc.stderr, proc.stderr
    assert "else" not in proc.stderr and "if the run wrote it" not in proc.stderr
