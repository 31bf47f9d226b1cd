"""A noise scan or local_limit run whose data file is damaged (cut short) shows no gains in the runs table ('-', as a
damaged flow checkpoint: a scan's gains are those of its data file, not of summary.json), and is refused alone (exit
2, one line naming the file), as a damaged run of any other kind is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, md_rows, run_dirs

pytest.importorskip("matplotlib")

FILES = {"noise": "noise_scan.h5", "local_limit": "local_limit.h5"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _damaged(runs, kind, tmp_path) -> str:
    """A copy of the `kind` run whose data file is cut short at 3000 bytes (its summary.json whole)."""
    out = shutil.copytree(runs[kind], tmp_path / f"damaged_{kind}")
    os.truncate(os.path.join(out, FILES[kind]), 3000)
    return str(out)


def _report(*args):
    return subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)


def test_a_damaged_scan_files_row_shows_no_gains(runs, tmp_path):
    dirs = [_damaged(runs, kind, tmp_path) for kind in FILES]
    proc = _report(*dirs, runs["flow"], "--out", tmp_path / "R")
    assert proc.returncode == 0, proc.stderr
    rows = md_rows((tmp_path / "R" / "report.md").read_text())
    for kind, d in zip(FILES, dirs):
        row = rows[os.path.basename(d)]
        assert "damaged" in row[2] and FILES[kind] in row[2], row
        assert row[8:10] == ["-", "-"], row  # gain train, gain test or val


@pytest.mark.parametrize("kind", list(FILES))
def test_a_damaged_scan_alone_is_refused(runs, kind, tmp_path):
    d = _damaged(runs, kind, tmp_path)
    proc = _report(d, "--out", tmp_path / "R")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "nothing to report" in err and FILES[kind] in err, err
    assert not (tmp_path / "R").exists()
