"""What the analysis scripts and `hpcflow report` write into --out: refused before anything is written where a file's
name is a directory there, whole when the reader of their printed lines goes away, one file per run."""

from __future__ import annotations

import os

import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.mark.parametrize("command, name", [("table1", "table1.md"), ("sigma_history", "sigma_history.png"),
                                           ("report", "report.html"), ("report", "report.md"),
                                           ("report", "sigma_history.png")])
def test_an_output_name_that_is_a_directory_is_one_line_exit_2_before_anything_is_written(runs, tmp_path, capsys,
                                                                                          command, name):
    from hpcflow.analysis.script import main as script_main
    from hpcflow.cli import main

    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    args = [runs["flow"], "--out", str(out)]
    status = main(["report", *args, "--force"]) if command == "report" else script_main(command, args)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and f"{out / name} is a directory" in err, err
    assert os.listdir(out) == [name] and os.listdir(out / name) == []


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_script_whose_reader_closed_the_pipe_writes_its_files_and_exits_0(runs, tmp_path, unbuffered):
    """`table1.py RUN --out F | head -1`: the table is written to F, no BrokenPipeError traceback, exit 0."""
    import subprocess
    import sys

    from analysis_runs import ROOT, env

    out = tmp_path / "f"
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "analysis", "table1.py"), runs["flow"], "--out",
                             str(out)], cwd=ROOT, env={**env(), "PYTHONUNBUFFERED": unbuffered}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err
    assert (out / "table1.md").read_text().startswith("| run | status |")


def test_runs_of_one_base_name_get_a_figure_each_and_the_runs_table_names_in_legends_and_rows(runs, tmp_path):
    """Runs c/x/a, c/y/a and c/a_0: the per-rank figures were per_rank_a_0.png (twice) and per_rank_a_1.png, the
    legends and Table 1 said 'a' twice; each run now has its own figure, and the names the runs table gives them
    (x/a, y/a, a_0) in every legend, row and printed line."""
    import shutil

    from analysis_runs import md_rows, script
    from hpcflow.analysis.products import PRODUCTS
    from hpcflow.report.build import build_report

    dirs = [tmp_path / "c" / "x" / "a", tmp_path / "c" / "y" / "a", tmp_path / "c" / "a_0"]
    for d in dirs:
        shutil.copytree(runs["flow"], d)
    names = [os.path.join("x", "a"), os.path.join("y", "a"), "a_0"]
    out = tmp_path / "f"
    proc = script("sigma_history", *dirs, "--out", out)
    assert proc.returncode == 0, proc.stderr
    per_rank = sorted(p.name for p in out.iterdir() if p.name.startswith("per_rank"))
    assert len(per_rank) == 3 and [line.split(" [")[0] for line in proc.stdout.splitlines()[:3]] == names, per_rank
    prod = PRODUCTS["sigma_history"](list(map(str, dirs)))
    assert sorted(fig._suptitle.get_text() for name, fig in prod.figures.items() if name in per_rank) == sorted(
        f"per-rank cost: {n} [delta]" for n in names)
    legend = [t.get_text() for t in prod.figures["sigma_history.png"].axes[0].get_legend().get_texts()]
    assert legend == [f"{n} [delta] {part}" for n in names for part in ("train", "test")]
    assert [r[0] for r in md_rows(PRODUCTS["table1"](list(map(str, dirs))).texts["table1.md"]).values()] == names
    md = open(build_report(dirs, tmp_path / "r")["md"], encoding="utf-8").read()
    assert list(md_rows(md.split("## Runs")[1].split("\n## ")[0])) == names
    assert list(md_rows(md.split("## Table 1")[1].split("\n## ")[0])) == names
    assert len([p for p in os.listdir(tmp_path / "r") if p.startswith("per_rank")]) == 3


def test_run_names_with_a_parenthesis_space_bracket_or_bar_keep_the_report_and_tables_whole(runs, tmp_path):
    """Runs named 'run (copy)', 'live run', 'x]y' and 'a|b': the same report written twice into one --out is
    replaced (an earlier report was not recognised by its figure lines, and refused); every figure link is a
    CommonMark link target (no space or parenthesis: percent-encoded) naming a file written; Table 1 and the runs
    table keep their columns ('|' in a name shifted them)."""
    import re
    import shutil
    from urllib.parse import unquote

    from analysis_runs import md_rows
    from hpcflow.cli import main

    dirs = [runs["flow"]]
    for name in ("run (copy)", "live run", "x]y", "a|b"):
        shutil.copytree(runs["flow"], tmp_path / "runs" / name)
        dirs.append(str(tmp_path / "runs" / name))
    out = tmp_path / "rep"
    assert main(["report", *dirs, "--out", str(out)]) == 0
    assert main(["report", *dirs, "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    links = [line for line in md.splitlines() if line.startswith("![")]
    pngs = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    targets = [re.fullmatch(r"!\[(?:[^\[\]\\]|\\.)*\]\(([^\s()<>]+)\)", line) for line in links]
    assert all(targets), links
    assert sorted(unquote(t.group(1)) for t in targets) == pngs and len(pngs) == 1 + len(dirs)
    for section, columns in (("## Runs", 11), ("## Table 1", 12)):
        rows = md_rows(md.split(section)[1].split("\n## ")[0])
        assert sorted(rows) == sorted(["flow", "run (copy)", "live run", "x]y", "a\\|b"]), rows
        assert all(len(cells) == columns for cells in rows.values()), rows


def test_without_matplotlib_table1_is_written_and_figures_are_one_line_naming_the_fix(runs, tmp_path):
    """matplotlib hidden (a sitecustomize on the path): table1.py, which draws nothing, writes its table; a script
    that draws and hpcflow report refuse in one line naming the install line, exit 2, nothing written (both ended in
    an ImportError traceback)."""
    import subprocess
    import sys

    from analysis_runs import ROOT, env

    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    e = {**env(), "PYTHONPATH": f"{shim}{os.pathsep}{ROOT}"}

    def run(*args):
        return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=e, capture_output=True, text=True,
                              timeout=120)

    proc = run(os.path.join(ROOT, "analysis", "table1.py"), runs["flow"], "--out", tmp_path / "t")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert (tmp_path / "t" / "table1.md").read_text().startswith("| run | status |")
    for args, out in (((os.path.join(ROOT, "analysis", "sigma_history.py"),), tmp_path / "s"),
                      (("-m", "hpcflow", "report"), tmp_path / "r")):
        proc = run(*args, runs["flow"], "--out", out)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "needs matplotlib" in proc.stderr and "pip install matplotlib" in proc.stderr and not out.exists()
