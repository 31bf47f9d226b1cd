"""The advice for a damaged run directory outside a study names the command that reruns its job, not only the words
"rerun the job with --force": the report's row gives `hpcflow run DIR/job.toml --out DIR --force` with the paths
absolute and quoted for a shell, and that command, run as printed from another folder, makes the run whole again."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from analysis_runs import env, md_rows, run_dirs

WORDS = "rerun the job with --force: "


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_the_printed_command_reruns_a_damaged_flow_run(tmp_path, runs):
    from hpcflow.analysis.rundir import completeness
    from hpcflow.report.build import build_report

    d = tmp_path / "cut run's copy"  # a space and a quote: the command is pasted into a shell as printed
    shutil.copytree(runs["flow"], d)
    with open(d / "checkpoint.h5", "r+b") as fh:
        fh.truncate(os.path.getsize(d / "checkpoint.h5") // 2)
    res = build_report([str(d), runs["flow_gauss"]], tmp_path / "report")
    with open(res["md"], encoding="utf-8") as fh:
        status = md_rows(fh.read().split("## Runs")[1].split("\n## ")[0])[d.name][2]
    assert status.startswith(f"incomplete: checkpoint.h5 unreadable (damaged); {WORDS}"), status
    assert "\n" not in status
    argv = shlex.split(status.split(WORDS, 1)[1])
    assert argv == ["hpcflow", "run", str(d / "job.toml"), "--out", str(d), "--force"], argv
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "hpcflow", *argv[1:], "--quiet"], cwd=elsewhere, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert completeness(d) == (True, "")


def test_a_network_run_is_rerun_with_hpcflow_nn(tmp_path, runs):
    """nn.h5 and checkpoint.pt both cut short: nothing holds the trained state, and the rerun is `hpcflow nn`'s."""
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "net"
    shutil.copytree(runs["nn"], d)
    for name in ("nn.h5", "checkpoint.pt"):
        with open(d / name, "r+b") as fh:
            fh.truncate(os.path.getsize(d / name) // 2)
    complete, reason = completeness(d)
    assert not complete and reason.startswith(f"nn.h5 unreadable (damaged); {WORDS}"), reason
    assert shlex.split(reason.split(WORDS, 1)[1]) == ["hpcflow", "nn", str(d / "job.toml"), "--out", str(d),
                                                       "--force"], reason


def test_a_directory_without_its_job_toml_keeps_the_words(tmp_path, runs):
    """No job.toml, no command to print: the reason says there is no job to rerun, as it did."""
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "nojob"
    shutil.copytree(runs["flow"], d)
    os.remove(d / "job.toml")
    with open(d / "checkpoint.h5", "r+b") as fh:
        fh.truncate(os.path.getsize(d / "checkpoint.h5") // 2)
    complete, reason = completeness(d)
    assert not complete and "holds no job.toml" in reason and "hpcflow run" not in reason, reason
