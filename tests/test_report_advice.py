"""The advice `hpcflow report` and the run readers give for a run that is not whole is the command that mends it,
and mends it: a garbled summary.json beside a whole checkpoint is written again by --resume (no step run), not
thrown away with the run by --force."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_garbled_summary_beside_a_whole_checkpoint_is_mended_by_the_resume_it_names(runs, tmp_path):
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "run"
    shutil.copytree(runs["flow"], d)
    good = (d / "summary.json").read_text()
    (d / "summary.json").write_text("{cut short")
    where = os.path.abspath(d)
    command = f"hpcflow run {shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} --resume"
    complete, reason = completeness(d)
    assert not complete
    assert reason == f"summary.json is not a JSON object (damaged); continue it with {command}"
    assert "--force" not in reason
    argv = shlex.split(command)
    proc = subprocess.run([sys.executable, "-m", "hpcflow", *argv[1:]], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert completeness(d) == (True, "")
    import json

    mine, its = json.loads((d / "summary.json").read_text()), json.loads(good)
    assert mine["checkpoint_step"] == its["checkpoint_step"] and mine["sigma_train_final"] == its["sigma_train_final"]
