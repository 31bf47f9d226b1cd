"""The fixes that the analysis names are actions that work: a study trial's lost data file is restored from a copy
or, without one, had again as the study allows (its "or" was followed by a description of the trial); a clustering
run made with [quality].fig2 = false is rerun with --set quality.fig2=true into its --out with --force (without it,
`hpcflow run` refuses the --out), or into another --out."""

from __future__ import annotations

import os
import shutil

from hpcflow.cli import main
from test_clustering_job import _write
from test_tune_records import _job, _tune


def test_a_trials_missing_checkpoint_is_restored_from_a_copy_or_had_again_as_the_study_allows(tmp_path, capsys):
    from hpcflow.analysis.script import main as script
    from hpcflow.report.detect import detect

    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    trial = out / "trials" / "0000"
    os.remove(trial / "checkpoint.h5")
    rerun = f"hpcflow run {trial / 'job.toml'} --out {tmp_path / 's_0000'}"
    said = (f"the flow run's checkpoint.h5 is missing (its summary.json is there); restore it from a copy; without a "
            f"copy: it is trial 0 of the study in {out}, complete and not retried by the study; --force is refused "
            f"inside a study: rerun its job.toml into an --out outside it: `{rerun}`")
    assert detect(trial).reason == said
    capsys.readouterr()
    assert script("table1", [str(trial), "--out", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == f"table1: error: {trial}: {said}\n"
    assert main([*rerun.split()[1:], "--quiet"]) == 0  # the action works


def test_fig2_of_a_run_without_fig2_names_a_rerun_that_works(tmp_path, capsys):
    from hpcflow.analysis.script import main as script

    out = tmp_path / "run"
    assert main(["run", _write(tmp_path, n=60, k=3, b=30, extra="[quality]\nfig2 = false\n"), "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert script("fig2_heatmaps", [str(out), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    again = f"hpcflow run {out / 'job.toml'} --out {out} --set quality.fig2=true --force"
    assert err.count("\n") == 1 and f"(`{again}`), or into another --out" in err, err
    shutil.copytree(out, tmp_path / "copy")
    capsys.readouterr()
    assert main([*again.split()[1:-1], "--quiet"]) == 2  # without --force: the --out holds results
    assert "pass --force" in capsys.readouterr().err
    assert main([*again.split()[1:], "--quiet"]) == 0
    assert script("fig2_heatmaps", [str(out), "--out", str(tmp_path / "figs")]) == 0
    other = tmp_path / "other"
    assert main(["run", str(tmp_path / "copy" / "job.toml"), "--out", str(other), "--set", "quality.fig2=true",
                 "--quiet"]) == 0
    assert script("fig2_heatmaps", [str(other), "--out", str(tmp_path / "figs2")]) == 0
