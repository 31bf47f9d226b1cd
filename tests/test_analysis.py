"""analysis/ scripts and hpcflow.analysis figures on small run directories: valid PNGs, drawn data equal to
the HDF5 data, printed numbers equal to independent recomputation, one-line errors for missing data."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from analysis_runs import (JOBS, assert_png, diverged_run, extended_copy, find_line, interrupted_copy, lines_of,
                           make_study, md_rows, run_dirs, script)

pytest.importorskip("matplotlib")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def h5(path, *names):
    with h5py.File(path, "r") as f:
        return [f[n][()] for n in names]


def in_process(capsys, name, *args) -> subprocess.CompletedProcess:
    """analysis/NAME.py's work (each script is `sys.exit(hpcflow.analysis.script.main(NAME))`) in this process, for
    tests of what it reads and draws: its status and what it printed, as `script` gives them, without a start-up of
    Python, Matplotlib and torch (each script runs as users run it in the tests of its own figures)."""
    from hpcflow.analysis.script import main

    capsys.readouterr()
    status = main(name, [str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([name, *map(str, args)], status, out, err)


# ---- each script writes a PNG, prints numbers that match the HDF5 data ----------------------------------
def test_every_hdf5_file_a_job_writes_states_its_conventions(runs):
    """README: every HDF5 file carries a `conventions` attribute (what its datasets mean, their normalisation)."""
    files = [os.path.join(d, n) for d in runs.values() for n in sorted(os.listdir(d)) if n.endswith(".h5")]
    assert {os.path.basename(f) for f in files} >= {"checkpoint.h5", "noise_scan.h5", "distances.h5",
                                                      "fig2_distances.h5", "nn.h5", "local_limit.h5"}
    for path in files:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("conventions")
            assert isinstance(text, str) and len(text) > 40, path


def test_every_kind_summary_records_its_status_and_ranks(runs):
    """README: summary.json, written last, holds `status` and `ranks` whatever the kind (a script filtering runs
    on s["status"] == "finished" needs it in every one); each fixture run finished on one process."""
    from hpcflow.jobs.registry import KINDS

    summaries = {}
    for path in runs.values():
        with open(os.path.join(path, "summary.json"), encoding="utf-8") as fh:
            s = json.load(fh)
        summaries[s["kind"]] = s
    assert set(summaries) == set(KINDS)
    for kind, s in summaries.items():
        assert (s.get("status"), s.get("ranks")) == ("finished", 1), kind


def test_fig2_script_and_heatmaps_equal_hdf5(runs, tmp_path):
    from hpcflow.analysis import fig2

    proc = script("fig2_heatmaps", runs["clustering"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_png(tmp_path / "fig2_heatmaps.png")
    path = os.path.join(runs["clustering"], "fig2_distances.h5")
    fig = fig2.plot(fig2.load(runs["clustering"]))
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    for img, mat in zip(images, h5(path, "distance", "distance_batched", "distance_full")):
        np.testing.assert_array_equal(np.asarray(img), mat)
    assert len(images) == 3
    with h5py.File(path, "r") as f:
        sil = {k: float(f.attrs[k]) for k in ("silhouette_batched", "silhouette_full", "silhouette_birch")}
    assert f"silhouette {sil['silhouette_batched']:.3f}" in fig.axes[1].get_title()
    assert f"silhouette {sil['silhouette_full']:.3f}" in fig.axes[2].get_title()
    printed = dict(re.findall(r"(silhouette_\w+): (-?[0-9.]+)", proc.stdout))
    assert {k: float(v) for k, v in printed.items()} == pytest.approx(sil, abs=5e-5)
    # the summary's silhouettes (written by the job itself) agree
    with open(os.path.join(runs["clustering"], "summary.json")) as fh:
        assert json.load(fh)["silhouette_full"] == pytest.approx(sil["silhouette_full"], rel=1e-12)


def test_fig3_noise_lines_equal_hdf5(runs, tmp_path):
    from hpcflow.analysis import fig3_noise

    proc = script("fig3_noise", runs["noise"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_png(tmp_path / "fig3_noise.png")
    dist, gain, sigma0 = h5(os.path.join(runs["noise"], "noise_scan.h5"), "table/mean_distance_to_nearest_train",
                            "table/gain", "scale_1/sigma_test")
    fig = fig3_noise.plot([fig3_noise.load(runs["noise"])])
    find_line(fig.axes[0], dist, gain)
    # the gain of a level is sigma_FS / sigma_final of its own sigma history
    assert gain[1] == pytest.approx(sigma0[0] / sigma0[-1], rel=1e-12)
    printed = [float(g) for g in re.findall(r"gain=([0-9.e+-]+)", proc.stdout)]
    np.testing.assert_allclose(printed, gain, rtol=5e-4)
    # d_nn (the drawn axis) is the mean FS distance to the nearest train point: recomputed by brute force
    from hpcflow.geometry import fs_distance

    pts, train_pts = h5(os.path.join(runs["noise"], "noise_scan.h5"), "scale_2/points", "scale_0/points")
    d_nn = fs_distance(pts, train_pts).min(axis=1).mean()
    assert d_nn == pytest.approx(dist[2], rel=1e-6)
    assert "delta" in proc.stdout


def loglog_fit(n, d):
    """(a, b) of log d = log a + b log N from the closed-form normal equations of a straight-line fit."""
    x, y = np.log(np.asarray(n, float)), np.log(np.asarray(d, float))
    b = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    return np.exp(y.mean() - b * x.mean()), b


def test_fig3_scaling_slope_equals_independent_fit(runs, tmp_path):
    from hpcflow.analysis import fig3_scaling

    proc = script("fig3_scaling", runs["scaling"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_png(tmp_path / "fig3_scaling.png")
    path = os.path.join(runs["scaling"], "distances.h5")
    n, dmin, dmean, dmax = h5(path, "table/n", "table/min", "table/mean", "table/max")
    ax = fig3_scaling.plot(fig3_scaling.load(runs["scaling"])).axes[0]
    for d in (dmin, dmean, dmax):
        find_line(ax, n, d)
    a, b = loglog_fit(n, dmean)
    m = re.search(r"fit mean: a=([0-9.e+-]+) b=([0-9.e+-]+)", proc.stdout)
    assert float(m.group(1)) == pytest.approx(a, rel=1e-3) and float(m.group(2)) == pytest.approx(b, rel=1e-3)
    # the fit over N >= fit_from (the job's asymptotic regime): numpy's polyfit on that subset
    a_sub, b_sub = loglog_fit(n[n >= 100], dmean[n >= 100])
    m = re.search(r"fit mean \(N >= 100\): a=([0-9.e+-]+) b=([0-9.e+-]+)", proc.stdout)
    assert float(m.group(1)) == pytest.approx(a_sub, rel=1e-3) and float(m.group(2)) == pytest.approx(b_sub, rel=1e-3)
    # the job's own fit (stored in the file) agrees
    with h5py.File(path, "r") as f:
        stored = json.loads(f.attrs["fits"])["mean"]
    assert stored["b"] == pytest.approx(b, rel=1e-9)
    # the drawn fit and paper lines are a N^b and 0.968 N^-0.184 on their own x grid
    curves = [(lx, ly) for lx, ly in lines_of(ax) if len(lx) == 50]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[0][1], a * curves[0][0] ** b, rtol=1e-9)
    np.testing.assert_allclose(curves[1][1], 0.968 * curves[1][0] ** -0.184, rtol=1e-12)


def test_fig4_histograms_and_curves_equal_hdf5(runs, tmp_path):
    from scipy.stats import wasserstein_distance

    from hpcflow.analysis import fig4

    proc = script("fig4_ntk", runs["nn"], "--out", tmp_path, "--spectrum", "train")  # (the default: the paper's
    assert proc.returncode == 0, proc.stderr  # train x test spectrum, test_analysis_fig4_spectrum.py)
    assert_png(tmp_path / "fig4_ntk.png")
    assert_png(tmp_path / "fig4_width_sweep.png")
    path = os.path.join(runs["nn"], "nn.h5")
    spec, w, fro = h5(path, "ntk/spectrum", "ntk/wasserstein", "ntk/rel_frobenius")
    fig = fig4.plot(fig4.load(runs["nn"], "train"))
    stairs = fig.axes[0].patches
    assert len(stairs) == 2
    for patch, epoch in zip(stairs, (0, len(spec) - 1)):
        counts, edges, _ = patch.get_data()
        np.testing.assert_array_equal(counts, np.histogram(spec[epoch], bins=edges)[0])
        assert counts.sum() == spec.shape[1]  # every eigenvalue falls in a bin
    epochs = np.arange(len(spec))
    find_line(fig.axes[1], epochs, w)
    find_line(fig.axes[2], epochs, fro)
    # the stored Wasserstein distance is scipy's between the last and first pooled spectra
    assert w[-1] == pytest.approx(wasserstein_distance(spec[-1], spec[0]), rel=1e-12)
    printed = float(re.search(r"Wasserstein distance to epoch 0 of the symmetrised train x train blocks' spectrum "
                              r"\(last epoch\): ([0-9.e+-]+)", proc.stdout).group(1))
    assert printed == pytest.approx(w[-1], rel=1e-3)
    width, rf, sv = h5(path, "width_sweep/width", "width_sweep/rel_frobenius_final", "width_sweep/sigma_val_final")
    sweep = fig4.plot_sweep(fig4.load_sweep(runs["nn"]))
    find_line(sweep.axes[0], width, rf)
    find_line(sweep.axes[1], width, sv)


def test_table1_gains_equal_recomputation_from_hdf5(runs, tmp_path):
    proc = script("table1", runs["flow"], runs["flow_gauss"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "table1.md").read_text()
    assert md.count("\n") == 4 and "| delta |" in md and "| gaussian |" in md and "0.1583" in md
    for name, kernel in (("flow", "delta"), ("flow_gauss", "gaussian")):
        st, se = h5(os.path.join(runs[name], "checkpoint.h5"), "history/sigma_train", "history/sigma_test")
        m = re.search(rf"{name} \[{kernel}\]: gain train ([0-9.e+-]+), gain test ([0-9.e+-]+)", proc.stdout)
        assert float(m.group(1)) == pytest.approx(st[0] / st[-1], rel=1e-5)
        assert float(m.group(2)) == pytest.approx(se[0] / se[-1], rel=1e-5)
        with open(os.path.join(runs[name], "summary.json")) as fh:
            assert json.load(fh)["gain_train"] == pytest.approx(float(m.group(1)), rel=1e-5)


def test_table1_prints_its_cells_as_text_and_writes_them_as_markdown(runs, tmp_path):
    """The terminal showed table1.md's HTML entities ('~1e6 / &lt;=5', a run 'a&lt;b&amp;c'): they belong in the
    markdown file alone, which a markdown renderer reads back to the same text; a '<' that opens no markup ('<=5')
    is written as it is."""
    from hpcflow.analysis.table1 import md_uncell

    run = tmp_path / "a<b&c"
    shutil.copytree(runs["flow"], run)
    proc = script("table1", run, "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    printed = md_rows(proc.stdout)["a<b&c"]
    assert "&lt;" not in proc.stdout and "&amp;" not in proc.stdout
    assert printed[-1] == "~1e6 / <=5"
    written = md_rows((tmp_path / "figs" / "table1.md").read_text())
    assert list(written) == ["a&lt;b&amp;c"] and written["a&lt;b&amp;c"][-1] == "~1e6 / <=5"
    assert [md_uncell(c) for c in written["a&lt;b&amp;c"]] == printed


def test_sigma_history_lines_equal_hdf5_and_per_rank(runs, tmp_path):
    from hpcflow.analysis import histories

    dist = tmp_path / "dist"
    shutil.copytree(runs["flow"], dist)
    rng = np.random.default_rng(0)
    steps = len(h5(dist / "checkpoint.h5", "history/dt")[0])
    secs, comm = rng.uniform(0.1, 1, (steps, 3)), rng.integers(0, 10**6, (steps, 3)).astype(float)
    with h5py.File(dist / "checkpoint.h5", "a") as f:
        for name, values in (("history/step_seconds", secs), ("history/comm_bytes", comm)):
            if name in f:  # a run that recorded its own per-rank figures: replace them by 3 known ranks
                del f[name]
            f[name] = values
    proc = script("sigma_history", runs["flow"], dist, runs["nn"], "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    for name in ("sigma_history.png", "per_rank_dist.png"):
        assert_png(tmp_path / "figs" / name)
    assert (tmp_path / "figs" / "per_rank_flow.png").exists()  # every flow run records its per-step figures
    loaded = [histories.load(p) for p in (runs["flow"], dist, runs["nn"])]
    ax, per_epoch = histories.plot(loaded).axes  # flow steps, then the network's epochs on a panel of their own
    st, se = h5(os.path.join(runs["flow"], "checkpoint.h5"), "history/sigma_train", "history/sigma_test")
    find_line(ax, np.arange(len(st)), st)
    find_line(ax, np.arange(len(se)), se)
    nt, nv = h5(os.path.join(runs["nn"], "nn.h5"), "history/sigma_train", "history/sigma_val")
    find_line(per_epoch, np.arange(len(nt)), nt)
    find_line(per_epoch, np.arange(len(nv)), nv)
    assert ax.get_yscale() == per_epoch.get_yscale() == "log" and per_epoch.get_xlabel() == "epoch"
    per_rank = histories.plot_per_rank(loaded[1])
    assert [ax.get_ylabel() for ax in per_rank.axes] == ["step time [s]", "bytes received"]  # flow_step counts those
    for r in range(3):
        find_line(per_rank.axes[0], np.arange(1, steps + 1), secs[:, r])
        find_line(per_rank.axes[1], np.arange(1, steps + 1), comm[:, r])
    only_bytes = {k: v for k, v in loaded[1].items() if k != "step_seconds"}
    (ax,) = histories.plot_per_rank(only_bytes).axes
    find_line(ax, np.arange(1, steps + 1), comm[:, 2])


@pytest.fixture(scope="module")
def unfinished(runs, tmp_path_factory):
    """{name: run directory} of flow runs that did not finish: interrupted (no summary.json; SIGTERM, or killed:
    SIGKILL), extended then interrupted (checkpoint past the summary), diverged (a real run, exit 3)."""
    base = tmp_path_factory.mktemp("unfinished")
    return {"interrupted": interrupted_copy(runs["flow"], base / "interrupted"),
            "killed": interrupted_copy(runs["flow"], base / "killed", status="running"),
            "extended": extended_copy(runs["flow"], base / "extended", described=3),
            "diverged": diverged_run(base)}


def test_table1_and_sigma_history_mark_runs_that_did_not_finish(runs, unfinished, tmp_path, capsys):
    from hpcflow.analysis import histories

    steps = len(h5(os.path.join(runs["flow"], "checkpoint.h5"), "history/sigma_train")[0]) - 1
    with open(os.path.join(unfinished["diverged"], "summary.json")) as fh:
        div = json.load(fh)
    div_steps = len(h5(os.path.join(unfinished["diverged"], "checkpoint.h5"), "history/sigma_train")[0]) - 1
    assert div["status"] == "diverged" and div_steps == 1 and div["stopped"].startswith("step 2: ")
    marks = {"flow": None,
             "interrupted": f"incomplete: no summary.json, preempted at step {steps}",
             "killed": f"incomplete: no summary.json, interrupted at step {steps}",
             "extended": f"incomplete: checkpoint.h5 is at step {steps} but summary.json describes step 3",
             "diverged": f"diverged after step 1; {div['stopped']}"}
    dirs = [runs["flow"], *unfinished.values()]
    proc = in_process(capsys, "table1", *dirs, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = md_rows((tmp_path / "table1.md").read_text())
    assert (tmp_path / "table1.md").read_text().startswith("| run | status |")
    hist = in_process(capsys, "sigma_history", *dirs, "--out", tmp_path / "sh")
    assert hist.returncode == 0, hist.stderr
    legends = [t.get_text().replace("\n", " ")  # (an entry over 60 characters is wrapped at a space)
               for t in histories.plot([histories.load(d) for d in dirs]).axes[0].get_legend().get_texts()]
    for name, mark in marks.items():
        assert rows[name][1] == (mark or "finished")
        tag = f"{name} [delta]" + (f" ({mark})" if mark else "")
        assert re.search(rf"^{re.escape(tag)}: gain train", proc.stdout, flags=re.M), proc.stdout
        assert re.search(rf"^{re.escape(tag)}: sigma train", hist.stdout, flags=re.M), hist.stdout
        assert f"{tag} train" in legends
    assert rows["diverged"][8] == "1" and rows["interrupted"][8] == str(steps)
    from hpcflow.analysis.rundir import run_state

    loose = shutil.copy(os.path.join(unfinished["killed"], "checkpoint.h5"), tmp_path / "copy.h5")  # no run dir
    assert run_state(loose).note() == f"incomplete: interrupted at step {steps}"


def test_noise_scan_records_and_marks_flows_that_stopped(runs, tmp_path, capsys):
    """Flows of a noise scan that stop for a numerical reason are written into noise_scan.h5 (steps, reason,
    status), the job ends with exit status 3 naming the scales, its summary's status is "diverged", and
    fig3_noise marks exactly those points; a scan that ran through is unmarked."""
    from hpcflow.analysis import fig3_noise

    stopped, proc = diverged_run(tmp_path, "noise", with_proc=True)
    path = os.path.join(stopped, "noise_scan.h5")
    with h5py.File(path, "r") as f:
        steps, why = f["table/steps_taken"][()], [v.decode() for v in f["table/stopped"][()]]
        gain, scales = f["table/gain"][()], f["table/scale"][()]
        hists = [f[f"scale_{i}/sigma_test"][()] for i in range(len(gain))]
        attrs = dict(f.attrs)
    assert [len(h) - 1 for h in hists] == list(steps) == [1, 1, 1]  # one step each, as the histories show
    assert all(w.startswith("step 2: no dt >= 2 keeps all metrics positive definite") for w in why), why
    np.testing.assert_allclose(gain, [h[0] / h[-1] for h in hists], rtol=1e-12)  # the last finite step's gain
    with open(os.path.join(stopped, "summary.json")) as fh:
        s = json.load(fh)
    assert s["status"] == attrs["status"] == "diverged" and s["stopped"] == attrs["stopped"]
    assert s["stopped"].startswith("the flows of 3 of 3 scales stopped (scale 0: step 2: ")
    assert all(f"scale {x:g}: {w}" in s["stopped"] for x, w in zip(scales, why))
    err = proc.stderr.strip().splitlines()
    assert err[-1] == f"hpcflow run: stopped: {s['stopped']}; outputs are in {stopped}", err
    printed = [x for x in proc.stdout.splitlines() if x.startswith("noise_scan: scale=")]
    assert len(printed) == 3 and all(x.endswith(f"(flow stopped after step 1: {w})") for x, w in zip(printed, why))
    with h5py.File(os.path.join(runs["noise"], "noise_scan.h5"), "r") as f:
        assert [v.decode() for v in f["table/stopped"][()]] == ["", "", ""] and f.attrs["status"] == "finished"
        assert [len(f[f"scale_{i}/sigma_test"][()]) - 1 for i in range(3)] == list(f["table/steps_taken"][()]) == [4] * 3
    with open(os.path.join(runs["noise"], "summary.json")) as fh:
        assert json.load(fh)["status"] == "finished"
    proc = in_process(capsys, "fig3_noise", runs["noise"], stopped, "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    ok, bad = [x for x in lines if x.startswith("noise [")], [x for x in lines if x.startswith("diverged_noise [")]
    assert len(ok) == len(bad) == 3 and not any("stopped" in x for x in ok)
    assert all(x.endswith(f"(flow stopped after step 1: {w})") for x, w in zip(bad, why)), bad
    fig = fig3_noise.plot([fig3_noise.load(runs["noise"]), fig3_noise.load(stopped)])
    crosses = [l for l in fig.axes[0].get_lines() if l.get_marker() == "x"]
    dist = h5(path, "table/mean_distance_to_nearest_train")[0]
    assert len(crosses) == 1 and np.array_equal(crosses[0].get_xdata(), dist)
    assert np.array_equal(crosses[0].get_ydata(), gain)
    from hpcflow.report.build import collect
    from hpcflow.report.runs_table import markdown

    rows = md_rows(markdown(collect([runs["noise"], stopped]).infos))
    # the status cell says the one reason of the three scales once, naming them (the summary says it per scale)
    grouped = s["stopped"].split(" (scale ")[0] + f" (scales {', '.join(f'{x:g}' for x in scales)}: {why[0]});"
    assert len(set(why)) == 1 and s["stopped"].count(why[0]) == 3
    assert rows["noise"][2] == "finished" and rows["diverged_noise"][2] == f"diverged: {grouped}" + \
        s["stopped"].rsplit(");", 1)[1]


def test_noise_scan_levels_left_without_test_points_have_no_gain_and_exit_3(tmp_path, capsys):
    """One Newton step cannot project noised points back onto X: every level but zero noise is left without test
    points. The scan used to end in a ZeroDivisionError traceback; now those levels flow the train points alone,
    have gain NaN with the reason, and the job writes everything and exits 3 naming them."""
    from hpcflow.analysis import fig3_noise
    from hpcflow.cli import main

    job = tmp_path / "noise.toml"
    job.write_text(JOBS["noise"][1])
    out = tmp_path / "few"
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "noise.max_newton=1"]) == 3
    err = capsys.readouterr().err
    with h5py.File(out / "noise_scan.h5", "r") as f:
        why, gain = [v.decode() for v in f["table/stopped"][()]], f["table/gain"][()]
        test0, train = f["scale_0/sigma_test"][()], [f[f"scale_{i}/sigma_train"][()] for i in range(3)]
        n_points = [len(f[f"scale_{i}/points"][()]) for i in range(3)]
    assert n_points == [80, 0, 0] and why[0] == "" and gain[0] == pytest.approx(test0[0] / test0[-1], rel=1e-12)
    assert np.isnan(gain[1:]).all() and all(w.startswith("no test gain: 0 of 80 test points left (80 failed the "
                                                          "projection onto X") for w in why[1:]), why
    for t in train[1:]:  # the train points flowed all the same
        np.testing.assert_array_equal(t, train[0])
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "diverged" and s["stopped"].startswith("2 of 3 scales have no test gain (scale 0.01: no "
                                                                  "test gain: 0 of 80")
    assert "scale 0:" not in s["stopped"] and f"hpcflow run: stopped: {s['stopped']}" in err
    lines = fig3_noise.numbers([fig3_noise.load(out)])
    assert lines[0].endswith("gain=" + f"{gain[0]:.4g}") and all(x.endswith(f"gain=nan ({w})")
                                                                   for x, w in zip(lines[1:], why[1:])), lines


def test_noise_scans_of_older_versions_are_not_called_finished(runs, tmp_path):
    """A noise scan written before table/stopped and the summary status existed: a level whose history reached
    [flow].steps ran through; a level that ended early is "status unknown" in fig3_noise's lines, its figure and
    the report's runs table (they used to show every such run as finished)."""
    from hpcflow.analysis import fig3_noise
    from hpcflow.report.build import collect
    from hpcflow.report.runs_table import markdown

    old = tmp_path / "old"
    shutil.copytree(runs["noise"], old)
    with h5py.File(old / "noise_scan.h5", "a") as f:
        for name in ("table/stopped", "table/steps_taken"):
            del f[name]
        for name in ("status", "stopped"):
            del f.attrs[name]
        hist = f["scale_2/sigma_test"][()]
        del f["scale_2/sigma_test"]
        f["scale_2/sigma_test"] = hist[:3]  # its flow ended after step 2 of 4
    s = json.loads((old / "summary.json").read_text())
    for key in ("status", "stopped"):
        s.pop(key)
    s["table"][2]["steps_taken"] = 2
    (old / "summary.json").write_text(json.dumps(s))
    lines = fig3_noise.numbers([fig3_noise.load(old)])
    assert not any("(" in x for x in lines[:2]), lines
    assert lines[2].endswith("(status unknown: noise_scan.h5 has no table/stopped record (written by an older "
                             "hpcflow); its flow ended after step 2 of 4)"), lines
    circled = [l for l in fig3_noise.plot([fig3_noise.load(old)]).axes[0].get_lines() if l.get_marker() == "o"
               and l.get_linestyle() == "None"]
    assert len(circled) == 1 and list(circled[0].get_xdata()) == [h5(old / "noise_scan.h5",
                                                                     "table/mean_distance_to_nearest_train")[0][2]]
    row = md_rows(markdown(collect([str(old)]).infos))["old"]
    assert row[2] == ("status unknown: summary.json records no status (written by an older hpcflow); the flows of "
                      "scales 0.1 ended before step 4"), row
    s["table"][2]["steps_taken"] = 4  # every flow took its steps: finished, and said how that is known
    (old / "summary.json").write_text(json.dumps(s))
    assert md_rows(markdown(collect([str(old)]).infos))["old"][2] == ("finished (no status recorded; every flow "
                                                                     "took its 4 steps)")
    with h5py.File(old / "noise_scan.h5", "a") as f:  # no history either: nothing says how the levels ended
        for i in range(3):
            del f[f"scale_{i}/sigma_test"]
    assert all(x.endswith(f"({fig3_noise.UNKNOWN})") for x in fig3_noise.numbers([fig3_noise.load(old)]))


def test_sigma_history_of_hdf5_files_and_per_rank_cost_of_a_network_run(runs, tmp_path, capsys):
    """The HDF5 file itself may be passed (the scripts' help): by its own name it stands for its run directory,
    renamed it is read by its datasets; a network run's per-rank seconds in collectives (epochs, ranks) get a
    per-rank figure; a path that does not exist is called so."""
    from hpcflow.analysis import histories
    from hpcflow.analysis.script import main

    nn2 = tmp_path / "nn2"
    shutil.copytree(runs["nn"], nn2)
    epochs = len(h5(nn2 / "nn.h5", "history/epoch_seconds")[0])
    comm = np.random.default_rng(1).uniform(0.01, 1.0, (epochs, 2))  # two ranks' seconds in collectives
    with h5py.File(nn2 / "nn.h5", "a") as f:
        del f["history/comm_seconds"]
        f["history/comm_seconds"] = comm
    renamed = tmp_path / "copy.h5"
    shutil.copy(os.path.join(runs["flow"], "checkpoint.h5"), renamed)
    ckpt = os.path.join(runs["flow"], "checkpoint.h5")
    assert main("sigma_history", [runs["flow"], "--out", str(tmp_path / "a")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert main("sigma_history", [ckpt, str(nn2 / "nn.h5"), str(renamed), "--out", str(tmp_path / "b")]) == 0
    by_file = capsys.readouterr().out
    assert line.startswith("flow [delta]: sigma train") and by_file.splitlines()[0] == line
    st = h5(ckpt, "history/sigma_train")[0]
    assert f"copy.h5 [delta]: sigma train {st[0]:.4g} -> {st[-1]:.4g}" in by_file
    assert_png(tmp_path / "b" / "per_rank_nn2.png")
    (ax,) = histories.plot_per_rank(histories.load(nn2 / "nn.h5")).axes
    for r in range(2):
        find_line(ax, np.arange(1, epochs + 1), comm[:, r])
    assert ax.get_xlabel() == "epoch"
    assert main("sigma_history", [str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert "nope: no such run directory or file" in capsys.readouterr().err


def test_a_network_run_is_one_run_with_its_per_rank_figure_from_nn_h5_or_checkpoint_pt(runs, tmp_path, capsys):
    """checkpoint.pt holds train.history.comm_seconds (epochs, ranks), yet alone it drew no per-rank figure; its nn.h5
    and checkpoint.pt given together were two runs (two curves, per_rank_RUN_0/1.png, one of them missing). A run's
    files are one run: one curve pair, one per_rank.png, drawn from whichever file the run is read from."""
    torch = pytest.importorskip("torch")
    from hpcflow.analysis import histories

    run = tmp_path / "nn_run"
    shutil.copytree(runs["nn"], run)
    epochs = len(h5(run / "nn.h5", "history/epoch_seconds")[0])
    rng = np.random.default_rng(2)
    in_h5, in_pt = rng.uniform(0.01, 1.0, (epochs, 2)), rng.uniform(1.0, 2.0, (epochs, 2))  # told apart by range
    with h5py.File(run / "nn.h5", "a") as f:
        del f["history/comm_seconds"]
        f["history/comm_seconds"] = in_h5
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["train"]["history"]["comm_seconds"] = torch.from_numpy(in_pt)
    torch.save(state, run / "checkpoint.pt")
    for given, comm in (([run / "checkpoint.pt"], in_pt), ([run / "nn.h5", run / "checkpoint.pt"], in_h5),
                        ([run, run / "nn.h5"], in_h5)):
        out = tmp_path / f"figs{len(given)}{given[0].name}"
        proc = in_process(capsys, "sigma_history", *given, "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in out.iterdir()) == [".hpcflow_sigma_history.json", "per_rank.png",
                                                         "sigma_history.png"], given
        assert [line.split(":")[0] for line in proc.stdout.splitlines() if "sigma train" in line] == ["nn_run"]
        (ax,) = histories.plot_per_rank(histories.load(given)).axes
        for r in range(2):
            find_line(ax, np.arange(1, epochs + 1), comm[:, r])


def test_the_same_directory_twice_is_read_once(runs, tmp_path):
    """The second figure of a directory given twice used to overwrite the first (two figures then, stem_LABEL_0 and
    _1, of one run); now the directory is read once, as `hpcflow report` reports it once, and stderr says so."""
    proc = script("fig3_scaling", runs["scaling"], runs["scaling"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hpcflow_fig3_scaling.json", "fig3_scaling.png"]
    assert proc.stderr == f"fig3_scaling: {runs['scaling']} given twice: read once\n", proc.stderr


@pytest.mark.parametrize("name, kind, data_file", [("fig2_heatmaps", "clustering", "fig2_distances.h5"),
                                                     ("fig3_noise", "noise", "noise_scan.h5"),
                                                     ("fig3_scaling", "scaling", "distances.h5")])
def test_a_run_directory_and_its_data_file_are_read_once(runs, tmp_path, capsys, name, kind, data_file):
    """A run directory and its own data file given together were read as two runs: every printed line twice and two
    figures of one run; now they are one run, read once, and stderr says so."""
    from hpcflow.analysis.script import main

    alone = tmp_path / "alone"
    assert main(name, [runs[kind], "--out", str(alone)]) == 0
    once = capsys.readouterr().out.replace(str(alone), "OUT")
    both = tmp_path / "both"
    given = os.path.join(runs[kind], data_file)
    assert main(name, [runs[kind], given, "--out", str(both)]) == 0
    out, err = capsys.readouterr()
    assert out.replace(str(both), "OUT") == once
    assert err == f"{name}: {given} given twice: read once\n", err
    assert sorted(p.name for p in both.iterdir()) == sorted(p.name for p in alone.iterdir()) == [
        f".hpcflow_{name}.json", f"{name}.png"]


# ---- Optuna study ---------------------------------------------------------------------------------------
def test_optuna_view_and_table1_from_study(runs, tmp_path, capsys):
    importlib.import_module("matplotlib")  # Optuna's matplotlib visualisation needs it (and imports without it)

    from hpcflow.analysis import optuna_view
    from hpcflow.analysis.study import load_study

    values = [0.3, 1.7, 0.9, 1.2, 0.5]
    make_study(tmp_path / "tune", os.path.relpath(runs["flow"], tmp_path / "tune"), values)
    proc = script("optuna_view", tmp_path / "tune", "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    for view in ("history", "importances", "slice"):
        assert_png(tmp_path / "figs" / f"optuna_{view}.png")
    assert "best trial 1: value 1.7" in proc.stdout
    study, _ = load_study(tmp_path / "tune")
    ax = optuna_view.plot(study, "history").axes[0]
    ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    np.testing.assert_allclose(np.sort(ys), np.sort(values))
    # Table 1 from the study: the best trial's run directory (relative to the study directory)
    proc = in_process(capsys, "table1", tmp_path / "tune", "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    st = h5(os.path.join(runs["flow"], "checkpoint.h5"), "history/sigma_train")[0]
    m = re.search(r"table1_delta trial 1 \[delta\]: gain train ([0-9.e+-]+)", proc.stdout)
    assert float(m.group(1)) == pytest.approx(st[0] / st[-1], rel=1e-5)


def test_table1_rows_of_two_studies_of_one_name_name_their_directories(runs, tmp_path):
    """Two study directories of one job file hold studies of one name (the default: the job file's stem); each
    row names its directory, and a study named as its directory keeps the plain name."""
    from hpcflow.analysis import table1

    for d in ("first", "table1_delta"):
        make_study(tmp_path / d, os.path.relpath(runs["flow"], tmp_path / d), [0.3, 1.7])
    rows = table1.load([tmp_path / "first", tmp_path / "table1_delta", tmp_path / "first" / "study.journal"])
    assert [r["run"] for r in rows] == ["first: table1_delta trial 1", "table1_delta trial 1",
                                        "first: table1_delta trial 1"]


@pytest.mark.parametrize("dpi", ["5", "100000"])
def test_a_dpi_out_of_range_is_one_line_exit_2_before_drawing(runs, tmp_path, capsys, dpi):
    """A resolution whose pixels cannot be held (10^5 dpi: a MemoryError traceback) is refused like one too small."""
    from hpcflow.analysis.script import main

    assert main("sigma_history", [runs["flow"], "--out", str(tmp_path / "figs"), "--dpi", dpi]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--dpi {dpi} is out of range; use 10 to 1200" in err, err
    assert not (tmp_path / "figs").exists()


# ---- missing data, bare axes ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, needs", [("fig2_heatmaps", "fig2_distances.h5"), ("fig3_noise", "noise_scan.h5"),
                                         ("fig3_scaling", "distances.h5"), ("fig4_ntk", "nn.h5"),
                                         ("table1", "checkpoint.h5"), ("sigma_history", "checkpoint.h5, nn.h5 or checkpoint.pt"),
                                         ("optuna_view", "study.journal")])
def test_directory_without_data_one_line_exit_2(tmp_path, capsys, name, needs):
    from hpcflow.analysis.script import main

    (tmp_path / "empty").mkdir()
    assert main(name, [str(tmp_path / "empty"), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needs in err and err.startswith(f"{name}: error:")
    assert not (tmp_path / "figs").exists()


@pytest.mark.parametrize("where", ["proc", "under_a_file", "a_file", "empty"])
def test_invalid_out_is_one_line_exit_2_before_any_input_is_read(tmp_path, capsys, where):
    """An --out that cannot be a directory is refused first: the inputs (here: a directory that does not exist)
    are not even looked at, and nothing is created."""
    from hpcflow.analysis.script import main as script_main
    from hpcflow.cli import main as cli_main

    (tmp_path / "afile").write_text("mine")
    out = {"proc": "/proc/hpcflow_figs", "under_a_file": str(tmp_path / "afile" / "figs"),
           "a_file": str(tmp_path / "afile"), "empty": ""}[where]
    missing = str(tmp_path / "no_such_run")
    for name in ("table1", "sigma_history", "fig3_noise"):
        assert script_main(name, [missing, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"{name}: error: ") and "--out" in err, err
        assert "no_such_run" not in err
    assert cli_main(["report", missing, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "no_such_run" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and (tmp_path / "afile").read_text() == "mine"


def test_a_path_that_does_not_exist_is_called_so(tmp_path, capsys):
    """optuna_view and hpcflow report say that a path does not exist (not "no study.journal", "not a directory",
    which describe a path that is there); one line, exit 2, nothing written."""
    from hpcflow.analysis.script import main as script_main
    from hpcflow.cli import main as cli_main

    missing, afile = str(tmp_path / "nosuch"), tmp_path / "afile"
    afile.write_text("mine")
    assert script_main("optuna_view", [missing, "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"optuna_view: error: {missing}: does not exist; ") and err.count("\n") == 1, err
    assert cli_main(["report", missing, str(afile), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: does not exist; {afile}: not a directory" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_study_flag_without_a_study_input_is_one_line_exit_2_before_any_work(tmp_path, capsys, runs):
    """--study NAME where no input is a study went unused (exit 0): table1.py, optuna_view.py and hpcflow report say
    it applies to study inputs alone, the scripts that read no study do not take it; nothing written. With a study
    among the inputs it still chooses the study."""
    from hpcflow.analysis.script import main as script_main
    from hpcflow.cli import main as cli_main

    out = tmp_path / "f"
    for name in ("table1", "optuna_view"):
        assert script_main(name, [runs["flow"], "--out", str(out), "--study", "nonexistent"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{name}: error: --study nonexistent: ") and err.count("\n") == 1, err
        assert "applies only to study inputs" in err
    assert cli_main(["report", runs["flow"], "--out", str(out), "--study", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--study nope: the option applies only to study inputs" in err and err.count("\n") == 1, err
    for name in ("fig2_heatmaps", "fig3_noise", "fig3_scaling", "fig4_ntk", "sigma_history"):
        with pytest.raises(SystemExit) as exc:
            script_main(name, [runs["clustering"], "--out", str(out), "--study", "x"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "unrecognized arguments: --study x" in err and err.count("\n") == 1, err
    assert not out.exists()
    make_study(tmp_path / "tune", runs["flow"], [0.4, 2.0])
    assert script_main("table1", [runs["flow"], str(tmp_path / "tune"), "--out", str(out), "--study",
                                  "table1_delta"]) == 0
    assert "| tune: table1_delta trial 1 |" in (out / "table1.md").read_text()


def _positional_help(capsys, name) -> str:
    from hpcflow.analysis.script import main as script_main

    with pytest.raises(SystemExit) as exc:
        script_main(name, ["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    return " ".join(text.split("positional arguments:")[1].split("options:")[0].split())


@pytest.mark.parametrize("name", ["fig2_heatmaps", "fig3_noise", "fig3_scaling", "fig4_ntk", "sigma_history", "table1"])
def test_each_scripts_help_names_the_data_files_it_reads_and_they_are_read(runs, tmp_path, capsys, name):
    """Each script's --help names its inputs (every script said 'run directories (or the HDF5 file itself)'):
    each data file its help names, passed itself, is read (exit 0)."""
    from hpcflow.analysis.script import main as script_main

    said = _positional_help(capsys, name)
    files = re.findall(r"\b\w+\.(?:h5|pt)\b", said)
    assert files, said
    for i, file in enumerate(files):
        path = next(os.path.join(d, file) for d in runs.values() if os.path.isfile(os.path.join(d, file)))
        assert script_main(name, [path, "--out", str(tmp_path / str(i))]) == 0, (file, capsys.readouterr().err)


def test_optuna_view_help_names_studies_not_hdf5_files_and_reads_what_it_names(runs, tmp_path, capsys):
    """optuna_view.py's input is a study: its help said 'run directories (or the HDF5 file itself)'. The tune
    directory, journal file and storage URL its help names are read."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from hpcflow.analysis.script import main as script_main

    said = _positional_help(capsys, "optuna_view")
    assert "HDF5" not in said and "run director" not in said, said
    assert all(words in said for words in ("tune directories", "journal files", "storage URLs")), said
    study = make_study(tmp_path / "tune", runs["flow"], [0.4, 2.0, 1.1])
    url = f"sqlite:///{tmp_path / 'study.db'}"
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "tune" / "study.journal")))
    optuna.copy_study(from_study_name=study.study_name, from_storage=journal, to_storage=url)
    for i, given in enumerate([tmp_path / "tune", tmp_path / "tune" / "study.journal", url]):
        assert script_main("optuna_view", [str(given), "--out", str(tmp_path / f"f{i}")]) == 0, given


@pytest.mark.parametrize("args", [["RUN"], ["RUN", "--out", "F", "--dpi", "x"], ["--out", "F"], ["RUN", "--outt", "F"]])
def test_command_line_syntax_errors_are_one_line_exit_2(tmp_path, capsys, args):
    """README (bad input): command-line syntax gets argparse's one line and exit 2, as from hpcflow itself (the
    scripts printed the usage lines first)."""
    from hpcflow.analysis.script import main as script_main

    args = [str(tmp_path / a) if a in ("RUN", "F") else a for a in args]
    with pytest.raises(SystemExit) as exc:
        script_main("sigma_history", args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("sigma_history.py: error: ") and err.count("\n") == 1, err
    assert "sigma_history.py --help" in err and not any(tmp_path.iterdir())


def test_table1_takes_no_dpi(runs, tmp_path, capsys):
    """table1 writes text only: --dpi is a syntax error (one line, exit 2) rather than an option that does nothing."""
    from hpcflow.analysis.script import main as script_main

    with pytest.raises(SystemExit) as exc:
        script_main("table1", [runs["flow"], "--out", str(tmp_path / "t"), "--dpi", "80"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "--dpi" in err, err
    assert not (tmp_path / "t").exists()
    assert script_main("table1", [runs["flow"], "--out", str(tmp_path / "t")]) == 0


def test_missing_dataset_is_named(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main

    broken = tmp_path / "broken"
    shutil.copytree(runs["flow"], broken)
    with h5py.File(broken / "checkpoint.h5", "a") as f:
        del f["history/sigma_test"]
    for name in ("table1", "sigma_history"):
        assert main(name, [runs["flow"], str(broken), "--out", str(tmp_path / "figs")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'history/sigma_test'" in err and str(broken) in err
    assert not (tmp_path / "figs").exists()  # nothing written when one input lacks its data


def _replace(path, name, value):
    with h5py.File(path, "a") as f:
        del f[name]
        f[name] = value


def _del_dataset(path, name):
    with h5py.File(path, "a") as f:
        del f[name]


def _set_value(path, name, index, value):
    with h5py.File(path, "a") as f:
        f[name][index] = value


def _set_attr(path, key, value):
    with h5py.File(path, "a") as f:
        f.attrs[key] = value


def _del_attr(path, key):
    with h5py.File(path, "a") as f:
        del f.attrs[key]


def _edit_attr_config(path, **sections):
    """The root attribute `config` of HDF5 file `path` with `sections` replaced (None: removed)."""
    with h5py.File(path, "a") as f:
        cfg = {**json.loads(f.attrs["config"]), **sections}
        f.attrs["config"] = json.dumps({k: v for k, v in cfg.items() if v is not None}, sort_keys=True)


def _edit_config(run_dir, **sections):
    with open(os.path.join(run_dir, "summary.json")) as fh:
        s = json.load(fh)
    s["config"] = {**s["config"], **sections}
    for key in [k for k, v in sections.items() if v is None]:
        del s["config"][key]
    with open(os.path.join(run_dir, "summary.json"), "w") as fh:
        json.dump(s, fh)


def _edit_job(path, **sections):
    """The job configuration of flow data file `path` (checkpoint.h5, which Table 1 reads it from) and of its
    summary.json (which then still records it) with `sections` replaced (None: removed)."""
    _edit_attr_config(path, **sections)
    _edit_config(os.path.dirname(path), **sections)


#: (fixture run, file, how it is spoiled, scripts that read it, words the error must hold)
MALFORMED = {
    "empty_history": ("flow", "checkpoint.h5", lambda p: _replace(p, "history/sigma_train", np.zeros(0)),
                      ("table1", "sigma_history"), "dataset 'history/sigma_train' is empty"),
    "2d_history": ("flow", "checkpoint.h5", lambda p: _replace(p, "history/sigma_test", np.ones((3, 2))),
                   ("table1", "sigma_history"), "dataset 'history/sigma_test' has shape (3, 2)"),
    "text_history": ("flow", "checkpoint.h5", lambda p: _replace(p, "history/sigma_train", "abc"),
                     ("table1", "sigma_history"), "dataset 'history/sigma_train' holds"),
    "no_geometry": ("flow", "checkpoint.h5", lambda p: _edit_job(p, geometry=None),
                    ("table1",), "config [geometry] is missing"),
    "kernel_string": ("flow", "checkpoint.h5", lambda p: _edit_job(p, kernel="gaussian"),
                      ("table1",), "config [kernel] is not a table"),
    "fig2_1d": ("clustering", "fig2_distances.h5", lambda p: _replace(p, "distance", np.ones(5)),
                ("fig2_heatmaps",), "dataset 'distance' has shape (5,)"),
    "fig2_not_square": ("clustering", "fig2_distances.h5", lambda p: _replace(p, "distance_full", np.ones((5, 4))),
                        ("fig2_heatmaps",), "dataset 'distance_full' has shape (5, 4), not that of a square"),
    "fig2_sizes": ("clustering", "fig2_distances.h5", lambda p: _replace(p, "distance", np.zeros((10, 10))),
                   ("fig2_heatmaps",), "different numbers of points ('distance' 10, 'distance_batched' "),
    "fig2_silhouette_text": ("clustering", "fig2_distances.h5", lambda p: _set_attr(p, "silhouette_full", "high"),
                             ("fig2_heatmaps",), "attribute 'silhouette_full' = 'high' is not a number"),
    "ntk_empty": ("nn", "nn.h5", lambda p: _replace(p, "ntk/spectrum", np.zeros((0, 810))),
                  ("fig4_ntk",), "dataset 'ntk/spectrum' is empty"),
    # the fixture's 3 epochs and [ntk].n_train_points = 4: (E+1, 81 P) = (4, 324) (docs/outputs.md)
    "ntk_narrow": ("nn", "nn.h5", lambda p: _replace(p, "ntk/spectrum", np.ones((4, 5))),
                   ("fig4_ntk",), "dataset 'ntk/spectrum' has shape (4, 5), not (E+1, 81 P) = (4, 324)"),
    "ntk_other_probes": ("nn", "nn.h5", lambda p: [_replace(p, "ntk/spectrum", np.ones((4, 243))),
                                                   _del_dataset(p, "ntk/points_train")],
                         ("fig4_ntk",), "dataset 'ntk/spectrum' has shape (4, 243), not (E+1, 81 P) = (4, 324)"),
    "ntk_nan": ("nn", "nn.h5", lambda p: _set_value(p, "ntk/spectrum", (1, 7), np.nan),
                ("fig4_ntk",), "dataset 'ntk/spectrum' holds a non-finite value (NaN or inf) at epoch 1"),
    "noise_config_text": ("noise", "noise_scan.h5", lambda p: _set_attr(p, "config", "not json"),
                          ("fig3_noise",), "attribute 'config' is not a JSON object"),
    "noise_config_list": ("noise", "noise_scan.h5", lambda p: _set_attr(p, "config", "[1, 2]"),
                          ("fig3_noise",), "attribute 'config' is not a JSON object"),
    "noise_config_missing": ("noise", "noise_scan.h5", lambda p: _del_attr(p, "config"),
                             ("fig3_noise",), "attribute 'config' is missing"),
    "noise_kernel_string": ("noise", "noise_scan.h5", lambda p: _edit_attr_config(p, kernel="delta"),
                            ("fig3_noise",), "config [kernel] is not a table"),
    "noise_no_flow": ("noise", "noise_scan.h5", lambda p: _edit_attr_config(p, flow=None),
                      ("fig3_noise",), "config [flow] is missing"),
    "noise_kernel_unnamed": ("noise", "noise_scan.h5", lambda p: _edit_attr_config(p, kernel={"width": 0.1}),
                             ("fig3_noise",), "config [kernel].name = None is missing or not a string"),
    "noise_lengths": ("noise", "noise_scan.h5", lambda p: _replace(p, "table/gain", np.ones(2)),
                      ("fig3_noise",), "different lengths"),
    "one_size": ("scaling", "distances.h5",
                 lambda p: [_replace(p, f"table/{k}", np.ones(1)) for k in ("n", "min", "mean", "max")],
                 ("fig3_scaling",), "needs two or more positive sizes"),
    "noise_gain_nan": ("noise", "noise_scan.h5", lambda p: _set_value(p, "table/gain", (1,), np.nan),
                       ("fig3_noise",), "dataset 'table/gain' holds nan at level 1, whose flow ran through"),
    "noise_gain_negative": ("noise", "noise_scan.h5", lambda p: _set_value(p, "table/gain", (1,), -2.0),
                            ("fig3_noise",), "dataset 'table/gain' holds -2.0 at level 1, not a gain > 0"),
    "noise_gain_zero": ("noise", "noise_scan.h5", lambda p: _set_value(p, "table/gain", (2,), 0.0),
                        ("fig3_noise",), "dataset 'table/gain' holds 0.0 at level 2, not a gain > 0"),
    "noise_distance_negative": ("noise", "noise_scan.h5",
                                lambda p: _set_value(p, "table/mean_distance_to_nearest_train", (1,), -0.05),
                                ("fig3_noise",), "dataset 'table/mean_distance_to_nearest_train' holds -0.05 at row 1, "
                                "not a finite FS distance in [0, pi/2]"),
    "noise_source_beyond_pi_2": ("noise", "noise_scan.h5",
                                 lambda p: _set_value(p, "table/mean_distance_to_source", (2,), 1.6),
                                 ("fig3_noise",), "dataset 'table/mean_distance_to_source' holds 1.6 at row 2, "
                                 "not a finite FS distance in [0, pi/2]"),
    "noise_distance_nan_with_gain": ("noise", "noise_scan.h5",
                                     lambda p: _set_value(p, "table/mean_distance_to_nearest_train", (1,), np.nan),
                                     ("fig3_noise",), "dataset 'table/mean_distance_to_nearest_train' holds nan at "
                                     "row 1"),
    "noise_scale_negative": ("noise", "noise_scan.h5", lambda p: _set_value(p, "table/scale", (1,), -0.01),
                             ("fig3_noise",), "dataset 'table/scale' holds -0.01 at row 1, not a finite noise scale"),
    "noise_steps_nan": ("noise", "noise_scan.h5", lambda p: _replace(p, "table/steps_taken", [4.0, np.nan, 4.0]),
                        ("fig3_noise",), "dataset 'table/steps_taken' holds nan, not a whole number of steps"),
    "noise_steps_half": ("noise", "noise_scan.h5", lambda p: _replace(p, "table/steps_taken", [4.0, 2.5, 4.0]),
                         ("fig3_noise",), "dataset 'table/steps_taken' holds 2.5, not a whole number of steps"),
    "scaling_fit_from_text": ("scaling", "distances.h5", lambda p: _edit_attr_config(p, scaling={"fit_from": "abc"}),
                              ("fig3_scaling",), "config [scaling].fit_from = 'abc' is not a whole number >= 0"),
    "scaling_fit_from_inf": ("scaling", "distances.h5", lambda p: _edit_attr_config(p, scaling={"fit_from": 1e400}),
                             ("fig3_scaling",), "config [scaling].fit_from = inf is not a whole number >= 0"),
    "scaling_fit_from_half": ("scaling", "distances.h5", lambda p: _edit_attr_config(p, scaling={"fit_from": 100.5}),
                              ("fig3_scaling",), "config [scaling].fit_from = 100.5 is not a whole number >= 0"),
    "scaling_list": ("scaling", "distances.h5", lambda p: _edit_attr_config(p, scaling=[1]),
                     ("fig3_scaling",), "config [scaling] is not a table"),
    "scaling_config_list": ("scaling", "distances.h5", lambda p: _set_attr(p, "config", "[1]"),
                            ("fig3_scaling",), "attribute 'config' is not a JSON object"),
    "scaling_mean_nan": ("scaling", "distances.h5", lambda p: _set_value(p, "table/mean", (1,), np.nan),
                         ("fig3_scaling",), "dataset 'table/mean' holds nan at row 1, not a finite distance > 0"),
    "scaling_max_inf": ("scaling", "distances.h5", lambda p: _set_value(p, "table/max", (3,), np.inf),
                        ("fig3_scaling",), "dataset 'table/max' holds inf at row 3, not a finite distance > 0"),
    "scaling_min_zero": ("scaling", "distances.h5", lambda p: _set_value(p, "table/min", (0,), 0.0),
                         ("fig3_scaling",), "dataset 'table/min' holds 0.0 at row 0, not a finite distance > 0"),
}


#: summary.json's config spoiled alone: no longer its checkpoint.h5's, whose config Table 1 reads: the report's row
#: and Table 1's call the run inconsistent, naming the first entry where the two differ
INCONSISTENT = {"no_geometry": ({"geometry": None}, "summary.json's config has no [geometry] but checkpoint.h5's says "
                                "[geometry] = a table"),
                "kernel_string": ({"kernel": "gaussian"}, "summary.json's config says [kernel] = \"gaussian\" but "
                                  "checkpoint.h5's says [kernel] = a table")}


@pytest.mark.parametrize("case", sorted(INCONSISTENT))
def test_a_spoiled_summary_config_alone_leaves_table1_the_checkpoints_row(runs, tmp_path, capsys, case):
    from hpcflow.analysis.script import main
    from hpcflow.report.build import collect

    sections, why = INCONSISTENT[case]
    bad = tmp_path / case
    shutil.copytree(runs["flow"], bad)
    _edit_config(str(bad), **sections)
    assert main("table1", [str(bad), "--out", str(tmp_path / "figs")]) == 0
    row = md_rows((tmp_path / "figs" / "table1.md").read_text())[case]
    assert row[1].startswith(f"incomplete: {why} at step ") and row[2] == "delta", row  # the checkpoint's kernel
    (info,) = collect([str(bad)]).infos
    assert info.status.startswith(f"incomplete: {why} at step "), info.status


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_data_is_one_line_exit_2_naming_file_and_dataset(runs, tmp_path, capsys, case):
    """Present but malformed datasets or configuration (empty, wrong dimension, text, a missing or non-table
    section): one line naming the file and the entry, exit 2, nothing written; `hpcflow report` skips them."""
    from hpcflow.analysis.script import main
    from hpcflow.report.build import collect

    kind, name, spoil, scripts, words = MALFORMED[case]
    bad = tmp_path / case
    shutil.copytree(runs[kind], bad)
    spoil(str(bad / name))
    for script_name in scripts:
        assert main(script_name, [str(bad), "--out", str(tmp_path / "figs")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and str(bad / name) in err, err
    assert not (tmp_path / "figs").exists()
    report = collect([str(bad)])  # no traceback: the directory's products are skipped with the same reason
    assert any(words in why for _, why in report.skipped), report.skipped


def test_table1_of_a_network_run_says_so(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main

    assert main("table1", [runs["flow"], runs["nn"], "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{runs['nn']} is a network run (nn.h5)" in err
    assert not (tmp_path / "figs").exists()


def test_bare_axes_fail():
    from hpcflow.analysis.figure import new_figure, save_png

    fig, (ax,) = new_figure()
    with pytest.raises(AssertionError):
        lines_of(ax)
    with pytest.raises(AssertionError):
        find_line(ax, [0, 1], [0, 1])
    with pytest.raises(ValueError, match="bare axes"):
        save_png(fig, "/nonexistent/never.png")
    ax.plot([0, 1], [1, 0])
    with pytest.raises(AssertionError):
        find_line(ax, [0, 1], [0, 1])


def test_table1_load_and_histories_plot_take_one_run_as_well_as_a_list(runs):
    """From Python, one run directory (str or os.PathLike) or one `histories.load` result is one run, as the other
    modules' load(run_dir) take one: not an iteration over the characters of a path or the keys of a dict."""
    import pathlib

    from hpcflow.analysis import histories, table1

    (row,) = table1.load([runs["flow"]])
    sigma = h5(os.path.join(runs["flow"], "checkpoint.h5"), "history/sigma_train")[0]
    assert row["gain_train"] == pytest.approx(sigma[0] / sigma[-1], rel=1e-15)
    assert table1.load(str(runs["flow"])) == table1.load(pathlib.Path(runs["flow"])) == [row]
    run = histories.load(runs["flow"])
    one, listed = histories.plot(run), histories.plot([run])
    drawn = [[(x.tolist(), y.tolist()) for x, y in lines_of(fig.axes[0])] for fig in (one, listed)]
    assert drawn[0] == drawn[1] and (list(range(len(sigma))), sigma.tolist()) in drawn[0]
    assert histories.numbers(run) == histories.numbers([run]) and len(histories.numbers(run)) == 1


def test_the_width_sweep_of_a_run_without_ntk_is_drawn(runs, tmp_path, capsys):
    """A network job with [ntk] disabled and a [width_sweep] writes width_sweep/* and no ntk group: fig4_ntk.py and
    the report draw its sweep (they refused it: "no dataset 'ntk/spectrum'")."""
    from hpcflow.analysis.products import PRODUCTS
    from hpcflow.report.build import build_report

    d = tmp_path / "no_ntk"
    shutil.copytree(runs["nn"], d)
    with h5py.File(d / "nn.h5", "a") as f:
        del f["ntk"]  # as such a job writes it
    proc = in_process(capsys, "fig4_ntk", d, "--out", tmp_path / "f")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [".hpcflow_fig4_ntk.json", "fig4_width_sweep.png"]
    assert_png(tmp_path / "f" / "fig4_width_sweep.png")
    width, rf, sv = h5(d / "nn.h5", "width_sweep/width", "width_sweep/rel_frobenius_final", "width_sweep/sigma_val_final")
    sweep = PRODUCTS["fig4_ntk"]([str(d)]).figures["fig4_width_sweep.png"]
    find_line(sweep.axes[0], width, rf)
    find_line(sweep.axes[1], width, sv)
    res = build_report([str(d)], tmp_path / "r")
    assert res["skipped"] == [] and (tmp_path / "r" / "fig4_width_sweep.png").is_file()
    assert "(fig4_width_sweep.png)" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/nonexist.db", "sqlite:///nonexist.db"])
def test_a_sqlite_url_of_no_file_is_refused_without_creating_it(tmp_path, capsys, monkeypatch, url):
    """optuna_view.py sqlite:///nonexist.db exited 2 ("holds no study") but left a new nonexist.db behind: nothing
    is written on a refusal. A study in an existing SQLite file is still read."""
    import optuna

    from hpcflow.analysis.script import main

    monkeypatch.chdir(tmp_path)  # a relative URL's file is in the current directory
    url = url.format(tmp=tmp_path)
    assert main("optuna_view", [url, "--out", str(tmp_path / "F")]) == 2
    assert sorted(os.listdir(tmp_path)) == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nonexist.db does not exist" in err, err
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/there.db")
    for x in (0.5, 1.5):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions={
            "x": optuna.distributions.FloatDistribution(0, 2)}, value=x * x))
    assert main("optuna_view", [f"sqlite:///{tmp_path}/there.db", "--out", str(tmp_path / "F")]) == 0
    assert (tmp_path / "F" / "optuna_history.png").is_file()
