"""`hpcflow report --out`: a directory is an earlier report only where it holds the files that report listed as written
(.hpcflow_report.json), unchanged; a file of the user's, also one linked from an edited report.md, is never removed."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from analysis_runs import run_dirs
from hpcflow.report.documents import MANIFEST


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _refused(capsys, args, named) -> None:
    """`hpcflow report ARGS` exits 2 with one line on stderr that names file `named` and --force."""
    from hpcflow.cli import main

    capsys.readouterr()
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(named) in err and "--force" in err, err


def _snapshot(out) -> dict:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _is_report(out) -> None:
    """`out` holds its manifest and exactly the files it lists, each with the SHA-256 it records."""
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert {p.name for p in out.iterdir()} == set(listed) | {MANIFEST}
    assert {"report.md", "report.html"} <= set(listed)
    assert all(hashlib.sha256((out / n).read_bytes()).hexdigest() == h for n, h in listed.items())


def test_a_png_the_user_linked_from_report_md_is_kept_and_the_rerun_refused(tmp_path, runs, capsys):
    """A PNG of the user's beside a report, linked from an appended line of its report.md, is no figure of the report:
    a rerun without --force is refused naming it (exit 2, nothing written or removed); --force keeps it."""
    from hpcflow.cli import main

    out = tmp_path / "R"
    assert main(["report", runs["flow"], "--out", str(out)]) == 0
    (out / "mine.png").write_bytes((out / "sigma_history.png").read_bytes())
    with open(out / "report.md", "a", encoding="utf-8") as fh:
        fh.write("\n![m](mine.png)\n")
    before = _snapshot(out)
    _refused(capsys, [runs["flow"], "--out", str(out)], out / "mine.png")
    assert _snapshot(out) == before
    assert main(["report", runs["flow"], "--out", str(out), "--force"]) == 0
    assert (out / "mine.png").read_bytes() == before["mine.png"]
    assert (out / "report.md").read_text(encoding="utf-8").count("mine.png") == 0
    _refused(capsys, [runs["flow"], "--out", str(out)], out / "mine.png")  # a report beside the user's file


@pytest.mark.parametrize("change", ["edit report.md", "replace a figure", "remove the manifest"])
def test_an_earlier_report_changed_since_it_was_written_is_refused_without_force(tmp_path, runs, capsys, change):
    """An edited report.md, a figure replaced by another PNG, a report without its manifest: refused in one line
    naming the file (exit 2, nothing written or removed), though every entry's name is one a report writes."""
    from hpcflow.cli import main

    out = tmp_path / "R"
    assert main(["report", runs["flow"], runs["noise"], "--out", str(out)]) == 0
    if change == "edit report.md":
        with open(out / "report.md", "a", encoding="utf-8") as fh:
            fh.write("\nmy notes\n")
        named = out / "report.md"
    elif change == "replace a figure":
        (out / "fig3_noise.png").write_bytes((out / "sigma_history.png").read_bytes())
        named = out / "fig3_noise.png"
    else:
        os.remove(out / MANIFEST)
        named = MANIFEST
    before = _snapshot(out)
    _refused(capsys, [runs["flow"], "--out", str(out)], named)
    assert _snapshot(out) == before


def test_a_report_stopped_half_way_is_replaced_without_force(tmp_path, runs, monkeypatch):
    """A report stopped after drawing its figures and before report.html is written (Ctrl-C) leaves the earlier report
    as it was (its files are renamed into place only once all are written), which the next report replaces without
    --force: the earlier report's figure that it does not draw is removed, the new ones listed."""
    from hpcflow.report import documents
    from hpcflow.report.build import build_report

    out = tmp_path / "R"
    build_report([runs["flow"], runs["scaling"]], out)
    assert (out / "fig3_scaling.png").is_file()

    def stop(*args, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(documents, "html_page", stop)
        with pytest.raises(KeyboardInterrupt):
            build_report([runs["flow"], runs["noise"]], out)
    # nothing of the stopped report is left: the earlier one is whole, and the next report replaces it
    assert (out / "fig3_scaling.png").is_file() and not (out / "fig3_noise.png").exists()
    assert "fig3_noise.png" not in json.loads((out / ".hpcflow_report.json").read_text())["files"]
    build_report([runs["flow"], runs["noise"]], out)
    _is_report(out)
    names = {p.name for p in out.iterdir()}
    assert "fig3_noise.png" in names and "fig3_scaling.png" not in names


@pytest.mark.parametrize("name", ["report.md", "sigma_history.png"])
def test_force_refuses_a_file_of_the_users_under_a_report_files_name(tmp_path, runs, capsys, name):
    """--force replaces only what an earlier report wrote (.hpcflow_report.json): a file of the user's named as a
    report file (report.md, a figure) is refused in one line naming it (exit 2), and nothing is written or lost."""
    out = tmp_path / "R"
    out.mkdir()
    (out / name).write_bytes(b"the user's own")
    before = _snapshot(out)
    _refused(capsys, [runs["flow"], "--out", str(out), "--force"], out / name)
    assert _snapshot(out) == before
