"""`hpcflow report --out R` holds R's lock (hpcflow.jobs.outlock) while it writes: a second report into R meanwhile
is refused in one line naming the first one's pid (exit 2), never written among the first one's files; the lock
file a killed report leaves is no file of another's to a later report. An analysis script holds its --out's lock
alike: a report into it meanwhile is refused, naming the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs
from hpcflow.report.documents import MANIFEST

pytest.importorskip("matplotlib")

HOLD = """
import sys
from hpcflow.jobs.outlock import acquire
lock = acquire(sys.argv[1], command="hpcflow report")
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _report(*args):
    return subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)


def test_a_report_into_an_out_another_report_holds_is_refused(runs, tmp_path):
    out = tmp_path / "R"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, env=env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = _report(runs["flow"], "--out", out)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err and "hpcflow report" in err, err
    assert "wrote" not in proc.stdout
    assert sorted(os.listdir(out)) == []  # nothing of the refused report's


def test_a_killed_reports_lock_file_does_not_refuse_the_next_report(runs, tmp_path):
    out = tmp_path / "R"
    first = _report(runs["flow"], "--out", out)
    assert first.returncode == 0, first.stderr
    (out / ".hpcflow.lock").write_text(json.dumps({"command": "hpcflow report", "pid": 1, "host": "h",
                                                   "since": "2026-01-01T00:00:00"}))  # no live holder
    again = _report(runs["flow"], "--out", out)
    assert again.returncode == 0, again.stderr
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert "report.html" in listed and ".hpcflow.lock" not in listed


def test_a_report_into_an_out_an_analysis_script_writes_is_refused(runs, tmp_path, monkeypatch, capsys):
    """`python analysis/sigma_history.py ... --out F` beside `hpcflow report ... --out F` removed each other's
    temporaries (a traceback, debris, a record naming files that are not there): while the script writes, the
    report is refused in one line naming it (exit 2), and the script's files and record are whole."""
    from hpcflow.analysis import script
    from hpcflow.analysis.owned import listed, own

    out = tmp_path / "F"
    seen = []
    real_write = script.write

    def write_beside_a_report(*args, **kwargs):  # a report started while the script is about to write
        seen.append(_report(runs["flow"], "--out", out))
        return real_write(*args, **kwargs)

    monkeypatch.setattr(script, "write", write_beside_a_report)
    assert script.main("sigma_history", [runs["flow"], "--out", str(out)]) == 0
    capsys.readouterr()
    [proc] = seen
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, proc.stderr)
    assert err.startswith(f"hpcflow report: error: --out {out} is in use by sigma_history.py (pid {os.getpid()} "), err
    assert "wrote" not in proc.stdout
    files = listed(out, ".hpcflow_sigma_history.json")
    assert sorted(os.listdir(out)) == sorted([".hpcflow_sigma_history.json", *files]), os.listdir(out)
    assert sorted(own(out, files)) == sorted(files) and "sigma_history.png" in files
