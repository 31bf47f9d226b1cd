"""One judgement per run: the data file (checkpoint.h5, noise_scan.h5) is the truth, and a summary.json that disagrees
with it, or holds a status that no hpcflow writes, makes the run incomplete in the runs table, Table 1 and the
printed lines alike, with the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis_runs import JOBS, ROOT, env, forced, make_study, md_rows, run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _runs_rows(md: str) -> dict:
    return md_rows(md.split("## Runs")[1].split("\n## ")[0])


def _edit_summary(run_dir, **changes) -> None:
    path = os.path.join(run_dir, "summary.json")
    with open(path, encoding="utf-8") as fh:
        s = json.load(fh)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({**s, **changes}, fh)


def _report(paths, out):
    from hpcflow.report.build import build_report

    res = build_report(list(map(str, paths)), out)
    with open(res["md"], encoding="utf-8") as fh:
        return res, fh.read()


def test_a_summary_status_outside_the_schema_is_damaged_in_the_runs_table_and_table1(tmp_path, runs):
    """summary.json `status` edited to 5: the runs table showed "5" and Table 1 "finished". Now both call the run
    incomplete, naming the status and the fix; Table 1 of the report leaves it out as it does every incomplete run."""
    from hpcflow.analysis.table1 import load_row

    d = tmp_path / "edited"
    shutil.copytree(runs["flow"], d)
    _edit_summary(d, status=5)
    _res, md = _report([runs["flow_gauss"], d], tmp_path / "out")
    status = _runs_rows(md)["edited"][2]
    assert status.startswith("incomplete: summary.json status '5' is none of finished, "), status
    assert status.endswith(f"; {forced(d)}"), status
    table1 = md.split("## Table 1")[1].split("\n## ")[0]
    assert "| flow_gauss |" in table1 and "| edited |" not in table1
    row = load_row(d)["status"]  # analysis/table1.py's status column
    assert row.startswith("incomplete: summary.json status '5' is none of"), row


def test_a_preempted_checkpoint_under_a_finished_summary_is_incomplete_and_resume_continues_it(tmp_path, runs):
    """checkpoint.h5 @status "preempted" at the step that summary.json, saying "finished", describes: the report
    showed the run finished. Now it is incomplete, the checkpoint's word first, and the fix it names (--resume) is
    accepted and leaves a run that the report calls finished."""
    d = tmp_path / "pre"
    shutil.copytree(runs["flow"], d)
    with h5py.File(d / "checkpoint.h5", "a") as f:
        f.attrs["status"] = "preempted"
        step = int(f.attrs["step"])
    _res, md = _report([runs["flow_gauss"], d], tmp_path / "out")
    status = _runs_rows(md)["pre"][2]
    assert status.startswith(f"incomplete: summary.json says 'finished' but checkpoint.h5 says 'preempted' at step "
                             f"{step}"), status
    assert status.endswith(f"continue it with hpcflow run {d}/job.toml --out {d} --resume"), status
    assert (f"pre [delta] (incomplete: summary.json says 'finished' but checkpoint.h5 says 'preempted' at step {step}):"
            in md)  # the sigma histories' line
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(d / "job.toml"), "--out", str(d), "--resume",
                           "--quiet"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    _res, md = _report([runs["flow_gauss"], d], tmp_path / "again")
    assert _runs_rows(md)["pre"][2] == "finished"


def test_a_noise_scan_whose_gain_is_not_finite_is_damaged_in_its_row(tmp_path, runs):
    """A noise scan whose table/gain holds NaN without a reason was skipped as damaged by Fig. 3, yet its row said
    "finished". Now its row says noise_scan.h5 is damaged, with the reader's reason."""
    d = tmp_path / "nan_scan"
    shutil.copytree(runs["noise"], d)
    with h5py.File(d / "noise_scan.h5", "a") as f:
        gain = f["table/gain"][()]
        gain[1] = np.nan
        f["table/gain"][...] = gain
    res, md = _report([runs["flow"], d], tmp_path / "out")
    status = _runs_rows(md)["nan_scan"][2]
    assert status.startswith("incomplete: noise_scan.h5 damaged: dataset 'table/gain' holds nan at level 1"), status
    assert status.endswith(f"; {forced(d)}"), status
    assert [p for p, _ in res["skipped"]] == [str(d)]
    assert _runs_rows(md)["flow"][2] == "finished"


def test_a_distance_scaling_run_whose_mean_distance_is_nan_is_damaged_in_its_row(tmp_path, runs):
    """A distances.h5 with NaN in table/mean was fitted to a=nan b=nan, drawn and printed, its row "finished". Now Fig. 3
    right refuses it and its row says distances.h5 is damaged, naming the dataset; the other run stays finished."""
    d = tmp_path / "nan_scaling"
    shutil.copytree(runs["scaling"], d)
    with h5py.File(d / "distances.h5", "a") as f:
        f["table/mean"][1] = np.nan
    res, md = _report([runs["flow"], d], tmp_path / "out")
    status = _runs_rows(md)["nan_scaling"][2]
    assert status.startswith("incomplete: distances.h5 damaged (Fig. 3 right"), status
    assert "dataset 'table/mean' holds nan at row 1" in status and "a=nan" not in md, status
    assert [p for p, _ in res["skipped"]] == [str(d)]
    assert _runs_rows(md)["flow"][2] == "finished"


@pytest.mark.parametrize("kind, data_file", [("noise", "noise_scan.h5"), ("nn", "nn.h5")])
def test_a_finished_summary_over_a_diverged_data_file_is_inconsistent(tmp_path, runs, kind, data_file):
    """A noise scan or network run whose data file says "diverged" (`@status`) under a summary.json saying
    "finished" was shown finished. Now its row says they disagree, naming the file and the fix: for a noise scan,
    whose data file holds the run, a rerun; for a network run, whose checkpoint.pt holds it (status "finished"), its
    nn.h5 is damaged and `hpcflow nn --resume` writes it again (the row said to rerun the job with --force)."""
    d = tmp_path / f"{kind}_edited"
    shutil.copytree(runs[kind], d)
    with h5py.File(d / data_file, "a") as f:
        f.attrs["status"] = "diverged"
    _res, md = _report([runs["flow"], d], tmp_path / "out")
    status = _runs_rows(md)[d.name][2]
    if kind == "nn":
        assert status == ("incomplete: nn.h5 damaged (attribute status = 'diverged', where checkpoint.pt says "
                          f"'finished'); write it again with hpcflow nn {d / 'job.toml'} --out {d} --resume"), status
        return
    assert status == (f"incomplete: summary.json says 'finished' but {data_file} says 'diverged' (inconsistent: "
                      f"{data_file} holds the run); {forced(d)}"), status


def _checkpoint_sigmas(run_dir):
    """σ_train, σ_test per step as checkpoint.h5 holds them, and its step."""
    with h5py.File(os.path.join(run_dir, "checkpoint.h5"), "r") as f:
        return f["history/sigma_train"][()], f["history/sigma_test"][()], int(f.attrs["step"])


def test_a_summary_of_another_run_is_inconsistent_and_the_row_shows_the_checkpoints_numbers(tmp_path, runs):
    """The Gaussian job run again with another seed, and the first run's summary.json copied over its own: the runs
    table showed the first run's sigmas and gains, "finished", while Table 1 and the sigma histories showed the
    second's. Now the row names the configurations' first difference and the fix, and its numbers are those of its
    checkpoint.h5."""
    from hpcflow.analysis.table1 import load_row

    job, d = tmp_path / "gauss.toml", tmp_path / "seed4"
    job.write_text(JOBS["flow_gauss"][1])
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(d), "--quiet", "--set",
                           "geometry.seed=4"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shutil.copy(os.path.join(runs["flow_gauss"], "summary.json"), d / "summary.json")
    st, se, step = _checkpoint_sigmas(d)
    own = _checkpoint_sigmas(runs["flow_gauss"])[0]
    assert f"{st[0] / st[-1]:.4g}" != f"{own[0] / own[-1]:.4g}"  # the two runs' gains tell them apart
    _res, md = _report([runs["flow_gauss"], d], tmp_path / "out")
    rows = _runs_rows(md)
    assert rows["flow_gauss"][2] == "finished"  # its own summary: consistent
    row = rows["seed4"]
    assert row[2] == ("incomplete: summary.json's config says [geometry].seed = 3 but checkpoint.h5's says "
                      f"[geometry].seed = 4 at step {step} (inconsistent: checkpoint.h5 holds the run); {forced(d)}"),\
        row[2]
    assert row[3:5] == ["100 / 60", "gaussian"], row
    assert row[6:10] == [f"{st[0]:.4g} -> {st[-1]:.4g}", f"{se[0]:.4g} -> {se[-1]:.4g}", f"{st[0] / st[-1]:.4g}",
                         f"{se[0] / se[-1]:.4g}"], row
    assert "| seed4 |" not in md.split("## Table 1")[1].split("\n## ")[0]  # left out, as every incomplete run
    assert load_row(d)["status"].startswith("incomplete: summary.json's config says [geometry].seed = 3 but")


def test_a_gain_edited_in_summary_json_is_inconsistent_and_the_row_shows_the_checkpoints_gain(tmp_path, runs):
    """summary.json gain_train edited to 999: the runs table showed 999. Now the row shows the gain of the checkpoint's
    history and says which figure disagrees; an untouched run of the same report stays finished."""
    d = tmp_path / "edited_gain"
    shutil.copytree(runs["flow_gauss"], d)
    _edit_summary(d, gain_train=999.0)
    st, _se, step = _checkpoint_sigmas(d)
    _res, md = _report([runs["flow_gauss"], d], tmp_path / "out")
    rows = _runs_rows(md)
    assert rows["flow_gauss"][2] == "finished"
    assert rows["edited_gain"][2] == (f"incomplete: summary.json says gain_train = 999 but checkpoint.h5's history "
                                      f"gives {st[0] / st[-1]:.6g} at step {step} (inconsistent: checkpoint.h5 holds "
                                      f"the run); {forced(d)}"), rows["edited_gain"][2]
    assert rows["edited_gain"][8] == f"{st[0] / st[-1]:.4g}" == rows["flow_gauss"][8]


def test_a_summary_of_another_job_at_another_step_is_inconsistent_not_a_run_to_resume(tmp_path, runs):
    """The delta job run again with 8 steps and another seed, and the first run's summary.json (6 steps, seed 0)
    copied over its own: the report called it an interrupted or extended run to continue with --resume, which refuses
    the other seed. Now the row names the first difference beyond what --resume may change, and the fix; a summary
    of the same job at another step (the steps alone differ) stays an interrupted run to resume."""
    job, d = tmp_path / "delta.toml", tmp_path / "seed5"
    job.write_text(JOBS["flow"][1])
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(d), "--quiet", "--set",
                           "flow.steps=8", "--set", "geometry.seed=5"], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shutil.copy(os.path.join(runs["flow"], "summary.json"), d / "summary.json")
    same = tmp_path / "steps_only"
    shutil.copytree(d, same)
    with open(os.path.join(runs["flow"], "summary.json"), encoding="utf-8") as fh:
        config = json.load(fh)["config"]
    _edit_summary(same, config={**config, "geometry": {**config["geometry"], "seed": 5}})
    _res, md = _report([runs["flow"], d, same], tmp_path / "out")
    rows = _runs_rows(md)
    assert rows["seed5"][2] == ("incomplete: summary.json's config says [geometry].seed = 0 but checkpoint.h5's says "
                                "[geometry].seed = 5 at step 8 (inconsistent: checkpoint.h5 holds the run); "
                                + forced(d)), rows["seed5"][2]
    assert rows["steps_only"][2].startswith("incomplete: checkpoint.h5 is at step 8 but summary.json describes step 6"
                                            ), rows["steps_only"][2]
    assert rows["steps_only"][2].endswith(f"continue it with hpcflow run {same}/job.toml --out {same} --resume)"), \
        rows["steps_only"][2]


def test_a_study_whose_best_trial_has_an_inconsistent_summary_is_marked_and_shows_its_checkpoints_numbers(tmp_path,
                                                                                                          runs):
    """The best trial's run directory with summary.json gain_train edited to 999: the study's row showed 999 as the
    study's best run, unmarked, while that run's own row called it inconsistent. Now the study's row says its best
    trial's run is incomplete with the same reason, and shows the gain of the run's checkpoint.h5."""
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = tmp_path / "best"
    shutil.copytree(runs["flow"], d)
    _edit_summary(d, gain_train=999.0)
    st, _se, step = _checkpoint_sigmas(d)
    make_study(tmp_path / "tune", str(d), [0.4, 2.0])
    own = row(detect(d))
    why = (f"summary.json says gain_train = 999 but checkpoint.h5's history gives {st[0] / st[-1]:.6g} at step {step} "
           f"(inconsistent: checkpoint.h5 holds the run); {forced(d)}")
    assert own[2] == f"incomplete: {why}", own[2]
    cells = row(detect(tmp_path / "tune"))
    assert cells[2] == f"2 trials: 2 complete; best trial 1 (the numbers of this row): value = 2; its run is " \
                      f"incomplete: {why}", cells[2]
    assert cells[8] == f"{st[0] / st[-1]:.4g}" == own[8], cells
    assert cells[3:10] == own[3:10]
    untouched = row(detect(runs["flow"]))  # a consistent best trial: unmarked, its summary's numbers
    make_study(tmp_path / "tune_ok", runs["flow"], [0.4, 2.0])
    ok = row(detect(tmp_path / "tune_ok"))
    assert ok[2] == "2 trials: 2 complete; best trial 1 (the numbers of this row): value = 2", ok[2]
    assert ok[3:10] == untouched[3:10]


def _checkpoint_pt_config(run_dir) -> dict:
    """The job a network run's checkpoint.pt holds, as torch loads it."""
    import torch

    state = torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=True)
    return json.loads(state["config"])


def test_a_network_summary_of_another_job_is_inconsistent_not_finished_nor_a_run_to_resume(tmp_path, runs):
    """A network run's summary.json whose config is another job's ([geometry].seed edited): its row said "finished",
    or, with nn.h5 gone and the summary "preempted", advised the --resume that refuses another job; a study whose best
    trial it is showed it unmarked. Now each names the first difference with checkpoint.pt's job at its epoch (3, the
    job's [training].epochs) and the rerun; a config that differs in [training].epochs and [checkpoint] alone, which
    `hpcflow nn --resume` may change, stays finished."""
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    config = _checkpoint_pt_config(runs["nn"])
    seed = config["geometry"]["seed"]
    other = {**config, "geometry": {**config["geometry"], "seed": seed + 1}}
    finished, preempted, resumable = (tmp_path / n for n in ("other_job", "other_preempted", "resumable"))
    for d in (finished, preempted, resumable):
        shutil.copytree(runs["nn"], d)
    _edit_summary(finished, config=other)
    os.remove(preempted / "nn.h5")
    _edit_summary(preempted, config=other, status="preempted")
    _edit_summary(resumable, config={**config, "training": {**config["training"], "epochs": 7},
                                     "checkpoint": {"every": 1, "seconds": 60.0}})
    _res, md = _report([runs["flow"], finished, preempted, resumable], tmp_path / "out")
    rows = _runs_rows(md)
    why = (f"summary.json's config says [geometry].seed = {seed + 1} but checkpoint.pt's says [geometry].seed = {seed} "
           "at epoch 3 (inconsistent: checkpoint.pt holds the run); ")
    assert rows["other_job"][2] == f"incomplete: {why}{forced(finished, 'nn')}", rows["other_job"][2]
    assert rows["other_preempted"][2] == f"incomplete: {why}{forced(preempted, 'nn')}", rows["other_preempted"][2]
    assert rows["resumable"][2] == "finished", rows["resumable"][2]
    make_study(tmp_path / "tune", str(finished), [0.4, 2.0])
    cells = row(detect(tmp_path / "tune"))
    assert cells[2] == ("2 trials: 2 complete; best trial 1 (the numbers of this row): value = 2; its run is "
                        f"incomplete: {why}{forced(finished, 'nn')}"), cells[2]
