"""Run directory names holding a line break or backticks: the break ended the row of the runs table and of Table 1 in
report.md and report.html (`<tr><td>n</td></tr><tr><td>ame…`), and two backticks in a name made a code span
(<code>). Now a break is written as the two characters \\n, on the row's one line, in the tables, the Skipped list,
the captions and the printed lines, and a name's backticks are text."""

from __future__ import annotations

import re
import shutil

import pytest

from analysis_runs import md_rows, run_dirs

BREAK, TICKS, EMPTY = "n\name", "a`b`c", "e`\nf"


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    from hpcflow.report.build import build_report

    base = tmp_path_factory.mktemp("odd")
    for name in (BREAK, TICKS):
        shutil.copytree(runs["flow"], base / name)
    (base / EMPTY).mkdir()  # no data: a skip
    res = build_report([str(base / n) for n in (BREAK, TICKS, EMPTY)], base / "r")
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    with open(res["html"], encoding="utf-8") as fh:
        page = fh.read()
    return {"md": md, "html": page, "base": base}


def _section(md: str, title: str) -> str:
    return md.split(title)[1].split("\n## ")[0]


@pytest.mark.parametrize("title, columns", [("## Runs", 11), ("## Table 1", 12)])
def test_every_row_of_the_markdown_tables_is_one_line_naming_its_run_as_written(report, title, columns):
    section = _section(report["md"], title)
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert len(table) == 4, table  # header, rule, one row per run
    from hpcflow.analysis.table1 import md_uncell

    rows = md_rows(section)
    assert sorted(map(md_uncell, rows)) == sorted(["n\\name", TICKS]), rows
    assert all(len(cells) == columns for cells in rows.values()), rows
    assert all("finished" in cells[1:3] for cells in rows.values()), rows


def test_every_row_of_the_html_tables_is_one_row_and_a_names_backticks_are_text(report):
    page = report["html"]
    tables = re.findall(r"<table>.*?</table>", page, re.S)
    assert len(tables) == 2, len(tables)
    for table in tables:
        names = re.findall(r"<tr><td>([^<]*)</td>", table)
        assert sorted(names) == sorted(["n\\name", TICKS]), names
        assert table.count("<tr>") == 3 and "\n" not in table
    assert "<code>b</code>" not in page


def test_the_skipped_list_captions_and_printed_lines_keep_one_line_each(report):
    md, page, base = report["md"], report["html"], report["base"]
    shown = str(base / "e`\\nf")
    skipped = [line for line in _section(md, "## Runs").splitlines() if line.startswith("- ")]
    assert len(skipped) == 1 and skipped[0].startswith(f"- ``{shown}``: holds none of "), skipped
    assert f"<li><code>{shown}</code>: holds none of " in page
    lines = _section(md, "## sigma histories").split("```")[1].strip().splitlines()
    assert sorted(line.split(" [")[0] for line in lines) == sorted(["n\\name", TICKS]), lines
    assert "<figcaption>n\\name [delta]</figcaption>" in page
