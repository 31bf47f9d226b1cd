"""The scripts in analysis/ and `hpcflow report` stopped while they write their figures: a full disk (ENOSPC) ends
them with one line naming the file and status 5, SIGTERM with `NAME: stopped by SIGTERM` and status 143; an --out
they created (with its missing parents) is removed, and no temporary of an atomic write is left, in a new --out or
an earlier one."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs
from hpcflow.atomic import TMP_MARK

pytest.importorskip("matplotlib")

#: `python -c DRIVER K ARGS`: the script or `hpcflow report` ARGS, sent SIGTERM once its K-th figure is in its temporary
DRIVER = """
import signal, sys
from matplotlib.figure import Figure
save, calls = Figure.savefig, []
def savefig(self, *args, **kw):
    save(self, *args, **kw)
    calls.append(1)
    if len(calls) == int(sys.argv[1]):
        signal.raise_signal(signal.SIGTERM)
Figure.savefig = savefig
if sys.argv[2] == "report":
    from hpcflow.cli import main
    sys.exit(main(sys.argv[2:]))
from hpcflow.analysis.script import main
sys.exit(main(sys.argv[2], sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _debris(directory) -> list:
    return [n for n in os.listdir(directory) if TMP_MARK in n]


def _full_disk_at(monkeypatch, k: int) -> None:
    """The k-th figure written from here on fails as on a full disk, after part of its bytes."""
    from matplotlib.figure import Figure

    save, calls = Figure.savefig, []

    def savefig(self, fh, *args, **kw):
        calls.append(1)
        if len(calls) == k:
            fh.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(self, fh, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)


@pytest.mark.parametrize("tool", ["fig3_scaling", "sigma_history", "report"])
def test_a_full_disk_is_one_line_exit_5_and_a_new_out_is_removed(runs, tmp_path, capsys, monkeypatch, tool):
    """ENOSPC on the last figure (sigma_history's and the report's second, after sigma_history.png): the scripts
    ended in a traceback (exit 1), and every tool left the --out it created holding what it had written. Now: one
    line naming the file and the reason, status 5, the --out and its parent that the call created gone."""
    from hpcflow.analysis.script import main
    from hpcflow.cli import main as hpcflow

    out = tmp_path / "new" / "figs"
    if tool == "report":
        _full_disk_at(monkeypatch, 2)
        status, prefix, failed = hpcflow(["report", runs["flow"], "--out", str(out)]), "hpcflow report", "per_rank.png"
    else:
        run, failed = {"fig3_scaling": ("scaling", "fig3_scaling.png"), "sigma_history": ("flow", "per_rank.png")}[tool]
        _full_disk_at(monkeypatch, 2 if tool == "sigma_history" else 1)
        status, prefix = main(tool, [runs[run], "--out", str(out)]), tool
    err = capsys.readouterr().err
    assert status == 5
    assert err == (f"{prefix}: error: cannot write {out / failed} (No space left on device); free space on its file "
                   "system, then run it again\n"), err
    assert os.listdir(tmp_path) == []


def test_a_full_disk_in_an_earlier_out_keeps_its_other_files_and_leaves_no_temporary(runs, tmp_path, capsys,
                                                                                      monkeypatch):
    """In an --out that holds the script's earlier output and a file of the user's, a --force call whose second
    figure meets a full disk ends with status 5 and leaves no temporary; the user's file stays, and the next call
    replaces what the record lists."""
    from hpcflow.analysis.script import main

    out = tmp_path / "figs"
    assert main("sigma_history", [runs["flow"], "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    with monkeypatch.context() as m:
        _full_disk_at(m, 2)
        assert main("sigma_history", [runs["flow"], "--out", str(out), "--force"]) == 5
    assert _debris(out) == [] and (out / "notes.txt").read_text() == "mine"
    assert main("sigma_history", [runs["flow"], "--out", str(out), "--force"]) == 0
    assert sorted(os.listdir(out)) == [".hpcflow_sigma_history.json", "notes.txt", "per_rank.png", "sigma_history.png"]


def _stopped(k: int, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, str(k), *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("tool", ["sigma_history", "report"])
def test_sigterm_while_writing_is_one_line_143_and_a_new_out_is_removed(runs, tmp_path, tool):
    """SIGTERM with the second figure in its temporary: the script died silently (the signal's default action),
    leaving the --out with its first figure and the temporary; the report said its line and status 143 but left the
    --out it created with its record and first figure. Now both say the line, exit 143 and leave nothing."""
    out = tmp_path / "new" / "figs"
    if tool == "report":
        proc, prefix = _stopped(2, "report", runs["flow"], "--out", out), "hpcflow report"
    else:
        proc, prefix = _stopped(2, tool, runs["flow"], "--out", out), tool
    assert proc.returncode == 143, (proc.returncode, proc.stderr)
    assert proc.stderr == f"{prefix}: stopped by SIGTERM\n", proc.stderr
    assert os.listdir(tmp_path) == []


def test_sigterm_in_an_earlier_out_leaves_no_temporary_and_force_removes_an_older_one(runs, tmp_path):
    """SIGTERM during a --force call into an --out with the script's earlier output: status 143 and no temporary
    left. A temporary that a killed call left (SIGKILL: no handler runs) is removed by the next call."""
    from hpcflow.analysis.script import main

    out = tmp_path / "figs"
    assert main("sigma_history", [runs["flow"], "--out", str(out)]) == 0
    proc = _stopped(2, "sigma_history", runs["flow"], "--out", out, "--force")
    assert proc.returncode == 143 and proc.stderr == "sigma_history: stopped by SIGTERM\n", proc.stderr
    assert _debris(out) == []
    killed = out / f".per_rank.png{TMP_MARK}0123456789abcdef"
    killed.write_bytes(b"\x89PNG partial")
    assert main("sigma_history", [runs["flow"], "--out", str(out), "--force"]) == 0
    assert sorted(os.listdir(out)) == [".hpcflow_sigma_history.json", "per_rank.png", "sigma_history.png"]


@pytest.mark.parametrize("tool", ["sigma_history", "fig3_scaling", "report"])
def test_a_full_disk_in_an_existing_out_removes_what_the_call_wrote_so_the_advised_rerun_works(runs, tmp_path, capsys,
                                                                                             monkeypatch, tool):
    """An --out that exists (empty, or holding a file of the user's): the call that met a full disk left its first
    figure and its record there, and the rerun its message advises was refused ("exists (an earlier ... output);
    pass --force"). Now the directory is left as it was, and the same call run again writes its result."""
    from hpcflow.analysis.script import main
    from hpcflow.cli import main as hpcflow

    out = tmp_path / "figs"
    out.mkdir()
    if tool != "report":  # the report refuses an --out of other files without --force
        (out / "notes.txt").write_text("mine")
    before = sorted(os.listdir(out))
    run = {"sigma_history": "flow", "fig3_scaling": "scaling", "report": "flow"}[tool]

    def call():
        if tool == "report":
            return hpcflow(["report", runs[run], "--out", str(out)])
        return main(tool, [runs[run], "--out", str(out)])

    with monkeypatch.context() as m:
        _full_disk_at(m, 1 if tool == "fig3_scaling" else 2)
        assert call() == 5
    assert "free space on its file system, then run it again" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == before
    assert call() == 0, capsys.readouterr().err
    assert {"sigma_history": "sigma_history.png", "fig3_scaling": "fig3_scaling.png",
            "report": "report.md"}[tool] in os.listdir(out)


def test_a_full_disk_in_an_earlier_out_keeps_the_earlier_record_of_files_it_did_not_replace(runs, tmp_path, capsys,
                                                                                            monkeypatch):
    """An --out with an earlier sigma_history output of two runs (three figures): a --force call on one run fails on
    its second figure; the earlier figure it does not write stays listed, and a --force rerun removes it as before."""
    import shutil

    from hpcflow.analysis.script import main

    out = tmp_path / "figs"
    other = tmp_path / "other"
    shutil.copytree(runs["flow"], other)
    assert main("sigma_history", [runs["flow"], str(other), "--out", str(out)]) == 0
    earlier = sorted(os.listdir(out))
    assert len([n for n in earlier if n.startswith("per_rank_")]) == 2, earlier
    with monkeypatch.context() as m:
        _full_disk_at(m, 2)
        assert main("sigma_history", [runs["flow"], "--out", str(out), "--force"]) == 5
    assert set(os.listdir(out)) <= set(earlier) and _debris(out) == []
    capsys.readouterr()
    assert main("sigma_history", [runs["flow"], "--out", str(out), "--force"]) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out)) == [".hpcflow_sigma_history.json", "per_rank.png", "sigma_history.png"]


def _files(directory) -> dict:
    """{name: bytes} of the files in `directory`."""
    return {n: (directory / n).read_bytes() for n in sorted(os.listdir(directory))}


@pytest.mark.parametrize("fails_at", ["per_rank.png", "report.html"])
def test_a_failed_rewrite_of_a_report_leaves_the_earlier_report_whole(runs, tmp_path, capsys, monkeypatch, fails_at):
    """A report of one run written over an earlier report of two, whose second figure (per_rank.png) or report.html
    meets a full disk: the earlier report.md was left beside the new sigma_history.png (old text, new figures) and the
    new per_rank.png beside the earlier per_rank_*.png; with report.html failing, a new report.md beside the earlier
    report.html. Now every file is written to a temporary and renamed into place once all are written: the failed
    call leaves the earlier report as it was, byte for byte, and the same call made again replaces it whole."""
    import shutil

    from hpcflow.cli import main as hpcflow
    from hpcflow.report import documents

    out, other = tmp_path / "rep", tmp_path / "other"
    shutil.copytree(runs["flow"], other)
    assert hpcflow(["report", runs["flow"], str(other), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    assert {"per_rank_flow.png", "per_rank_other.png", "sigma_history.png", "report.md"} <= set(before), before
    shown = documents.shown

    def full_at_html(text):  # the page's text, written into report.html's file
        if text.startswith("<!DOCTYPE html>"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return shown(text)

    with monkeypatch.context() as m:
        if fails_at == "report.html":
            m.setattr(documents, "shown", full_at_html)
        else:
            _full_disk_at(m, 2)  # sigma_history.png, then per_rank.png
        assert hpcflow(["report", runs["flow"], "--out", str(out), "--force"]) == 5
    assert f"cannot write {out / fails_at} (No space left on device)" in capsys.readouterr().err
    assert _files(out) == before
    assert hpcflow(["report", runs["flow"], "--out", str(out), "--force"]) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out)) == [".hpcflow_report.json", "notes.txt", "per_rank.png", "report.html",
                                       "report.md", "sigma_history.png"]
    assert "other" not in (out / "report.md").read_text()


def test_a_failed_figure_of_a_script_rewrite_leaves_its_earlier_figures_whole(runs, tmp_path, capsys, monkeypatch):
    """sigma_history.py --force of one run over its output of two, failing at its second figure: sigma_history.png
    was already the new one beside the earlier per_rank_*.png; now the earlier output stays as it was."""
    import shutil

    from hpcflow.analysis.script import main

    out, other = tmp_path / "figs", tmp_path / "other"
    shutil.copytree(runs["flow"], other)
    assert main("sigma_history", [runs["flow"], str(other), "--out", str(out)]) == 0
    before = _files(out)
    with monkeypatch.context() as m:
        _full_disk_at(m, 2)
        assert main("sigma_history", [runs["flow"], "--out", str(out), "--force"]) == 5
    capsys.readouterr()
    assert _files(out) == before
