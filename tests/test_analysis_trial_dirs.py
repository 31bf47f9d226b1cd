"""A study's trials are read from its own run directories only, and only when they hold that trial's run: a copy of
a study directory without its trials/ is no run directory (it was read from the original's path, which may hold
another study's trials by then), and a trial directory holding another trial's run is refused by name."""

from __future__ import annotations

import os
import re
import shutil

import h5py
import pytest

from analysis_runs import md_rows
from jobtexts import DELTA_FLOW, GAUSSIAN_KERNEL, flow_points

pytest.importorskip("matplotlib")

#: two jobs of one [tune] seed: their trials of one number draw the same points, not the same settings
DELTA = flow_points(60, 60) + DELTA_FLOW + """[tune]
sampler = "random"
seed = 5
[tune.space]
"flow.dt" = {low = 0.01, high = 3.0, log = true}
"""
GAUSSIAN = DELTA.replace('[kernel]\nname = "delta"\n', GAUSSIAN_KERNEL) + '"kernel.width" = {low = 0.01, high = 1.0}\n'


def _tune(tmp_path, text, out, **kw):
    from hpcflow.tune.study import optimize

    job = tmp_path / f"{os.path.basename(out)}_{len(text)}.toml"
    job.write_text(text)
    return optimize(str(job), trials=2, out=str(out), log=lambda *_: None, **kw)


def _table1(capsys, study, out):
    from hpcflow.analysis.script import main

    capsys.readouterr()
    rc = main("table1", [str(study), "--out", str(out)])
    return rc, capsys.readouterr()


def _gain(run_dir) -> float:
    with h5py.File(os.path.join(run_dir, "checkpoint.h5"), "r") as f:
        st = f["history/sigma_train"][()]
    return float(st[0] / st[-1])


def _printed_gain(out: str) -> float:
    return float(re.search(r"gain train ([0-9.e+-]+)", out).group(1))


def test_a_copied_study_without_its_trials_reads_no_other_directory(tmp_path, capsys):
    """S2, a copy of S1 without trials/: Table 1 and the report say trial N has no run directory, while S1 is intact
    and once S1 holds another study (same seed, other settings); then S2/trials holding that study's trials are
    refused, naming the setting that differs. S1's own row is read from its own trials."""
    from hpcflow.analysis.study import best_run_dirs, load_study
    from hpcflow.cli import main

    s1, s2 = tmp_path / "S1", tmp_path / "S2"
    _tune(tmp_path, GAUSSIAN, s1)
    shutil.copytree(s1, s2)
    shutil.rmtree(s2 / "trials")
    rc, cap = _table1(capsys, s2, tmp_path / "t")
    best = load_study(s2)[0].best_trial.number
    assert rc == 2 and cap.out == "", cap.out
    assert cap.err.count("\n") == 1 and f"trial {best}: no run directory {s2 / 'trials' / f'{best:04d}'}" in cap.err
    shutil.rmtree(s1)
    _tune(tmp_path, DELTA, s1)  # another study where S2's trials were written
    rc, cap = _table1(capsys, s2, tmp_path / "t")
    assert rc == 2 and "no run directory" in cap.err and "[delta]" not in cap.out, cap.out
    assert main(["report", str(s2), str(s1), "--out", str(tmp_path / "R")]) == 0
    rows = md_rows((tmp_path / "R" / "report.md").read_text().split("## Runs")[1].split("\n## ")[0])
    assert f"(trial {best}: no run directory {s2 / 'trials' / f'{best:04d}'})" in rows["S2"][2], rows["S2"]
    assert rows["S2"][3:10] == ["- / -", "-", "-", "-", "-", "-", "-"]  # no numbers of S1's trial
    (n1, rd1), = best_run_dirs(*load_study(s1))
    assert rd1 == str(s1 / "trials" / f"{n1:04d}")
    rc, cap = _table1(capsys, s1, tmp_path / "t")
    assert rc == 0 and _printed_gain(cap.out) == pytest.approx(_gain(rd1), rel=1e-5)
    shutil.copytree(s1 / "trials", s2 / "trials")  # the other study's trials, of the same numbers and seeds
    rc, cap = _table1(capsys, s2, tmp_path / "t")
    assert rc == 2 and cap.err.count("\n") == 1, cap.err
    assert f"trial {best}: its run directory {s2 / 'trials' / f'{best:04d}'} holds another trial's run (" in cap.err
    assert "where trial" in cap.err and "drew " in cap.err


def test_a_url_storage_reads_trials_where_they_were_written_and_refuses_a_swapped_one(tmp_path, capsys,
                                                                                        monkeypatch):
    """A storage given as a URL: the trials are read in the study directory they were written in (user attribute
    study_dir); two trial directories swapped there are refused by their point seeds, not read as each other."""
    from hpcflow.analysis.study import best_run_dirs, load_study

    url = f"sqlite:///{tmp_path / 'q.db'}"
    _tune(tmp_path, GAUSSIAN, tmp_path / "A", storage=url)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    (n, rd), = best_run_dirs(*load_study(url))
    assert rd == str(tmp_path / "A" / "trials" / f"{n:04d}")
    rc, cap = _table1(capsys, url, tmp_path / "t")
    assert rc == 0 and _printed_gain(cap.out) == pytest.approx(_gain(rd), rel=1e-5)
    trials = tmp_path / "A" / "trials"
    os.rename(trials / "0000", trials / "x")
    os.rename(trials / "0001", trials / "0000")
    os.rename(trials / "x", trials / "0001")
    rc, cap = _table1(capsys, url, tmp_path / "t")
    assert rc == 2 and cap.err.count("\n") == 1 and "point seeds [" in cap.err, cap.err
    assert f"trial {n}: its run directory {rd} holds another trial's run" in cap.err
