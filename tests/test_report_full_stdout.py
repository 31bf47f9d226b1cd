"""`hpcflow report ... > /dev/full`: the report is written, its lines on stdout are not; the exit-5 line said only that
'the command ran to its end', where README promises the file the command wrote, which is complete. It names
REPORT_DIR/report.html now."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_report_whose_stdout_is_refused_names_the_report_it_wrote(tmp_path, runs):
    out = tmp_path / "r"
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC (Linux)
        proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", runs["flow"], "--out", str(out)], cwd=ROOT,
                              env=env(), stdout=full, stderr=subprocess.PIPE, text=True, timeout=180)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr == (f"hpcflow report: error: {out / 'report.html'} is complete; only its log on stdout could "
                           "not be written (No space left on device): free space on its file system, or send stdout "
                           "elsewhere\n"), proc.stderr
    assert (out / "report.html").stat().st_size > 0 and (out / "report.md").is_file()
