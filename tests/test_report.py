"""`hpcflow report`: detection, completeness, the key-numbers table, data-URI images decoding to PNGs, and the
HTML report opened in headless Chromium (a skip is a failure under HPCFLOW_CI=1)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis_runs import (PNG_MAGIC, ROOT, env, extended_copy, forced, interrupted_copy, make_study, md_rows,
                           run_dirs)
from hpcflow.checkpoint import PER_RANK_KEYS

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    """A report of every run kind, an interrupted run, an extended run and a directory without data."""
    base = tmp_path_factory.mktemp("report")
    interrupted, extended, empty = base / "interrupted", base / "extended", base / "empty"
    shutil.copytree(runs["flow"], interrupted)
    os.remove(interrupted / "summary.json")
    extended_copy(runs["flow_gauss"], extended, described=3)  # its 5 steps in checkpoint.h5, 3 in summary.json
    empty.mkdir()
    make_study(base / "tune", runs["flow"], [0.4, 2.0, 1.1])
    dirs = [runs[k] for k in ("flow", "flow_gauss", "noise", "scaling", "clustering", "nn", "local_limit")]
    dirs += [str(interrupted), str(extended), str(empty), str(base / "tune")]
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", *dirs, "--out", str(base / "out")], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {"out": base / "out", "stdout": proc.stdout, "dirs": dirs}


def images(html: str) -> list:
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", html)


def test_every_img_is_a_data_uri_png(report):
    from PIL import Image

    html = (report["out"] / "report.html").read_text()
    srcs = images(html)
    expected = {"sigma_history.png", "fig2_heatmaps.png", "fig3_noise.png", "fig3_scaling.png", "fig4_ntk.png",
                "fig4_width_sweep.png", "optuna_history.png", "optuna_importances.png", "optuna_slice.png"}
    alts = re.findall(r"<img alt=\"([^\"]*)\"", html)
    extra = set(alts) - expected  # per-rank cost figures of runs whose checkpoint records per-step figures
    assert expected <= set(alts) and all(a.startswith("per_rank_") for a in extra), alts
    assert len(srcs) == len(alts) == html.count("<img ")
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == PNG_MAGIC
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()
    assert "src=\"http" not in html and "href=\"http" not in html  # self-contained
    md = (report["out"] / "report.md").read_text()
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    assert linked == set(alts) and all((report["out"] / name).is_file() for name in linked)


def test_runs_table_numbers_and_status(report, runs):
    md = (report["out"] / "report.md").read_text()
    runs_section = md.split("## Runs")[1].split("\n## ")[0]
    rows = md_rows(runs_section)
    with open(os.path.join(runs["flow"], "summary.json")) as fh:
        s = json.load(fh)
    row = rows["flow"]
    assert row[1:3] == ["flow", "finished"] and row[3] == f"{s['n_train']} / {s['n_test']}" and row[4] == "delta"
    assert row[6] == f"{s['sigma_train_initial']:.4g} -> {s['sigma_train_final']:.4g}"
    assert float(row[8]) == pytest.approx(s["gain_train"], rel=1e-3)
    assert float(row[10]) == pytest.approx(s["wall_seconds"], rel=1e-3)
    assert rows["interrupted"][2].startswith("incomplete: no summary.json")
    assert rows["extended"][2].startswith("incomplete: checkpoint.h5 is at step 5 but summary.json describes step 3")
    assert "empty" not in rows
    # the study's row: its trials by state and best trial (make_study: values 0.4, 2.0, 1.1), whose run directory
    # (the flow run) gives the other numbers
    assert rows["tune"][1:3] == ["study", "3 trials: 3 complete; best trial 1 (the numbers of this row): value = 2"]
    assert rows["tune"][3:10] == row[3:10] and rows["tune"][10] == "-"
    assert rows["local_limit"][8].startswith("w=1: ")
    assert re.search(r"skipped \S*empty: holds none of", report["stdout"])
    # an incomplete run is drawn (marked) but stays out of Table 1
    table1 = md.split("## Table 1")[1].split("\n## ")[0]
    assert "| flow |" in table1 and "| flow_gauss |" in table1 and "interrupted" not in table1
    # the study's best trial, its run directory read; the study (table1_delta) named after its directory (tune)
    assert "| tune: table1_delta trial 1 | finished | delta |" in table1
    assert "interrupted [delta] (incomplete: no summary.json): sigma train" in md.split("## sigma histories")[1].split("\n## ")[0]


def test_completeness_contract(tmp_path, runs):
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "run"
    shutil.copytree(runs["flow"], d)
    assert completeness(d) == (True, "")
    with h5py.File(d / "checkpoint.h5", "a") as f:
        f.attrs["step"] = 6
    with open(d / "summary.json") as fh:
        s = json.load(fh)
    for step, complete in ((6, True), (4, False)):
        with open(d / "summary.json", "w") as fh:
            json.dump({**s, "checkpoint_step": step}, fh)
        assert completeness(d)[0] is complete
    (d / "summary.json").write_text("{cut short")
    where = os.path.abspath(d)  # beside a whole checkpoint.h5: --resume writes it again from the checkpoint
    assert completeness(d) == (False, "summary.json is not a JSON object (damaged); continue it with hpcflow run "
                                      f"{shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} "
                                      "--resume")
    os.remove(d / "summary.json")
    assert completeness(d)[0] is False and "no summary.json" in completeness(d)[1]
    # a checkpoint.h5 cut short (or not HDF5 at all) beside a finished summary: damaged, not finished
    shutil.copy(os.path.join(runs["flow"], "summary.json"), d / "summary.json")
    for cut in (os.path.getsize(d / "checkpoint.h5") // 2, 0):
        with open(d / "checkpoint.h5", "r+b") as fh:
            fh.truncate(cut)
        assert completeness(d) == (False, f"checkpoint.h5 unreadable (damaged); {forced(d)}")


def _drop_attr(f, name):
    del f.attrs[name]


#: how a finished flow's checkpoint.h5 is spoiled -> the phrase its runs-table status gives
SPOILED = {"no n_train": (lambda f: _drop_attr(f, "n_train"), "attribute n_train is missing"),
           "no test/g": (lambda f: f.pop("test/g"), "dataset test/g is missing"),
           "config cut": (lambda f: f.attrs.modify("config", "{cut"), "attribute 'config' is missing or not JSON"),
           "step past history": (lambda f: f.attrs.modify("step", 9), "dataset history/sigma_train holds 7 values, "
                                 "not 10 (one per step and step 0: attribute step = 9)"),
           "NaN in train/g": (lambda f: f["train/g"].__setitem__((2, 1, 1), np.nan),
                              "train/g holds a non-finite value (NaN or inf) at row 2, where the flow writes only "
                              "finite ones")}


def test_completeness_of_a_checkpoint_resume_refuses_names_why_in_a_phrase(tmp_path, runs):
    """A finished flow whose checkpoint.h5 opens but lacks an attribute or a metric dataset, holds a configuration
    that is no JSON, says more steps than its history holds, or holds NaN where a flow writes none is damaged (as
    --resume finds it), whatever its summary says; the reason is one phrase naming the entry."""
    from hpcflow.analysis.rundir import completeness

    for case, (spoil, phrase) in SPOILED.items():
        d = tmp_path / case.replace(" ", "_").replace("/", "_")
        shutil.copytree(runs["flow"], d)
        with h5py.File(d / "checkpoint.h5", "a") as f:
            spoil(f)
        assert completeness(d) == (False, f"checkpoint.h5 damaged: {phrase}; {forced(d)}"), case


def test_report_of_nothing_is_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", str(tmp_path / "empty"), "--out",
                           str(tmp_path / "out")], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nothing to report" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_directory_whose_run_a_killed_force_set_aside_names_that_folder_which_reports(tmp_path, runs, capsys):
    """A --force run killed before it wrote leaves DIR holding only DIR/.hpcflow.replaced-XXXX: "nothing to report"
    names that folder, and the folder given itself is reported as the run it holds."""
    import shutil

    from hpcflow.cli import main

    aside = tmp_path / "d" / ".hpcflow.replaced-k1ll"
    shutil.copytree(runs["flow"], aside)
    assert main(["report", str(tmp_path / "d"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to report" in err and str(aside) in err, err
    assert not (tmp_path / "r").exists()
    assert main(["report", str(aside), "--out", str(tmp_path / "r")]) == 0
    assert "checkpoint.h5" not in capsys.readouterr().err and (tmp_path / "r" / "report.html").is_file()


# ---- a real browser -------------------------------------------------------------------------------------
_MARKER = """<script>
window.addEventListener("load", function () {
  var ok = document.images.length > 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (!(im.complete && im.naturalWidth > 0)) ok = false;
  }
  document.body.setAttribute("data-images", (ok ? "loaded " : "broken ") + document.images.length);
});
</script>"""


def _chromium(*args, user_dir, timeout=90):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={user_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_report_opens_in_headless_chromium(report, tmp_path):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("HPCFLOW_CI") == "1":
            pytest.fail(f"{CHROMIUM} is missing under HPCFLOW_CI=1: .ci/run must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); the HTML was checked without a browser")
    from PIL import Image

    html = (report["out"] / "report.html").read_text()
    n_img = len(images(html))
    probe = report["out"] / "probe.html"
    probe.write_text(html.replace("</body>", _MARKER + "</body>"))
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), user_dir=tmp_path / "u1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-images="loaded {n_img}"' in dom.stdout, re.findall(r'data-images="[^"]*"', dom.stdout)
    shot = tmp_path / "shot.png"
    res = _chromium(f"--screenshot={shot}", "--window-size=1200,1600", (report["out"] / "report.html").as_uri(),
                    user_dir=tmp_path / "u2")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB"), dtype=float)
    assert px.shape[:2] == (1600, 1200)
    # not blank: many distinct colours and a sizeable fraction of non-white pixels (text, tables, plots)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50
    assert (px.min(axis=2) < 200).mean() > 0.02


def test_completeness_of_network_runs(tmp_path):
    """A network run is complete when summary.json describes checkpoint.pt's epoch and was not preempted."""
    import torch

    from hpcflow.analysis.rundir import completeness

    run = tmp_path / "nn"
    run.mkdir()
    # (the job's JSON text as every checkpoint.pt holds it: without it, --resume refuses the file)
    torch.save({"format": "x", "train": {"epoch": 4}, "config": json.dumps({"training": {"epochs": 4}})},
               run / "checkpoint.pt")
    (run / "summary.json").write_text(json.dumps({"status": "finished", "checkpoint_step": 4}))
    assert completeness(run) == (True, "")
    (run / "summary.json").write_text(json.dumps({"status": "finished", "checkpoint_step": 3}))
    ok, why = completeness(run)
    assert not ok and "epoch 4" in why and "--resume" in why
    (run / "summary.json").write_text(json.dumps({"status": "preempted", "checkpoint_step": 4}))
    assert not completeness(run)[0]


def test_a_study_of_network_trials_gets_its_optuna_figures_and_no_table_1(tmp_path, runs):
    """No Table 1 for network trials; the study's row has its best trial's numbers, as a flow study's has: the
    network of the job (SMALL_NET: 2x8 gelu) and sigma_train at epoch 0 and last (nn.h5) with their gain."""
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    study = tmp_path / "tune_nn"
    shutil.copytree(runs["nn"], study / "trials" / "0000")
    make_study(study, str(study / "trials" / "0000"), [1.0, 2.0])
    assert detect(study).products == ("optuna_view",)
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", str(study), "--out", str(tmp_path / "out")],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "skipped" not in proc.stdout, proc.stdout + proc.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Optuna study" in md and "## Table 1" not in md
    assert (tmp_path / "out" / "optuna_history.png").read_bytes()[:8] == PNG_MAGIC
    cells = md_rows(md.split("## Runs")[1].split("\n## ")[0])["tune_nn"]
    with h5py.File(study / "trials" / "0000" / "nn.h5", "r") as f:
        st = f["history/sigma_train"][()]
    assert cells[4] == "network 2x8 gelu" and cells[6] == f"{st[0]:.4g} -> {st[-1]:.4g}", cells
    assert float(cells[8]) == pytest.approx(st[0] / st[-1], rel=1e-3)
    assert cells[3:10] == row(detect(study / "trials" / "0000"))[3:10] and cells[10] == "-"


def test_a_diverged_run_is_reported_and_an_unreadable_checkpoint_skipped(tmp_path, runs):
    """A flow that diverged at its first step (exit 3, 0 steps, empty per-rank tables) is reported with its one
    sigma point; a truncated checkpoint.h5 among the runs is a row that says so and one skipped entry (its sigma
    histories not drawn, as a damaged nn.h5's Fig. 4 is listed), and the rest is still reported."""
    from hpcflow.cli import main
    from hpcflow.report.build import build_report

    job = tmp_path / "job.toml"
    shutil.copy(os.path.join(ROOT, "jobs", "quickstart.toml"), job)
    diverged = tmp_path / "diverged"
    sets = ["geometry.n_train=200", "geometry.n_test=50", "clustering.batch_size=100", "flow.dt=1e6",
            "flow.max_halvings=0"]
    assert main(["run", str(job), "--out", str(diverged), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 3
    with h5py.File(diverged / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 0 and f["history/step_seconds"].shape[0] == 0
    cut = tmp_path / "cut"
    shutil.copytree(runs["flow"], cut)
    with open(cut / "checkpoint.h5", "r+b") as fh:
        fh.truncate(os.path.getsize(cut / "checkpoint.h5") // 2)
    res = build_report([runs["flow"], str(diverged), str(cut)], tmp_path / "out")
    assert res["skipped"] == [(str(cut), "sigma histories: not drawn: checkpoint.h5 unreadable (damaged); "
                                         + forced(cut))], res["skipped"]
    md = open(res["md"], encoding="utf-8").read()
    # the runs table calls it damaged (its summary.json alone would say finished)
    cut_row = next(r for r in md.splitlines() if r.startswith("| cut |"))
    assert f"| incomplete: checkpoint.h5 unreadable (damaged); {forced(cut)} |" in cut_row
    with open(diverged / "summary.json") as fh:
        stopped = json.load(fh)["stopped"]
    assert stopped.startswith("step 1: ")
    mark = f"diverged after step 0; {stopped}"
    assert f"diverged [gaussian] ({mark}): sigma train" in md and "(0 flow steps)" in md
    # Table 1 keeps the diverged run, marked in its status column (a finished run says so)
    table1 = md.split("## Table 1")[1].split("\n## ")[0]
    assert f"| diverged | {mark} | gaussian |" in table1 and "| flow | finished | delta |" in table1


def test_report_out_replaces_an_earlier_report_and_refuses_other_files_without_force(tmp_path, runs, capsys):
    """An --out holding an earlier report is replaced, its figures that the new report does not draw removed; one
    holding a file of the user's is refused in one line (exit 2, before any work, the file kept) unless --force."""
    from hpcflow.cli import main

    out = tmp_path / "rep"
    assert main(["report", runs["flow"], runs["noise"], "--out", str(out)]) == 0
    first = sorted(p.name for p in out.iterdir())
    assert "fig3_noise.png" in first
    assert main(["report", runs["flow"], "--out", str(out)]) == 0  # the earlier report is replaced
    again = sorted(p.name for p in out.iterdir())
    assert "fig3_noise.png" not in again and set(again) < set(first)
    md = (out / "report.md").read_text()
    assert all(f"({name})" in md for name in again if name.endswith(".png"))
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["report", runs["flow"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--force" in err
    assert main(["report", runs["flow"], "--out", str(out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"


def test_a_forced_report_among_other_files_removes_the_earlier_reports_figures_and_keeps_the_others(tmp_path, runs):
    """--force over an earlier report beside a file of the user's removes the earlier report's figures that the new
    one does not draw and keeps the user's files (a PNG too): the directory is a report again once they are gone."""
    from hpcflow.cli import main
    from hpcflow.report.documents import MANIFEST

    out = tmp_path / "rep"
    assert main(["report", runs["flow"], runs["noise"], "--out", str(out)]) == 0
    first = {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")
    (out / "mine.png").write_bytes(b"not drawn by a report")
    assert main(["report", runs["flow"], "--out", str(out), "--force"]) == 0
    md = (out / "report.md").read_text()
    drawn = set(re.findall(r"^!\[[^\]]*\]\(([^)]+)\)$", md, flags=re.M))
    left = {p.name for p in out.iterdir()}
    assert "fig3_noise.png" in first - drawn  # the earlier report drew a figure that the new one does not
    assert left == drawn | {"report.md", "report.html", MANIFEST, "notes.txt", "mine.png"}, left
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine.png").read_bytes() == b"not drawn by a report"
    os.remove(out / "notes.txt")
    os.remove(out / "mine.png")
    assert main(["report", runs["flow"], "--out", str(out)]) == 0  # an hpcflow report alone again


def test_a_network_run_interrupted_before_nn_h5_is_reported_incomplete_with_its_history(tmp_path, runs):
    """A preempted network run holds checkpoint.pt and summary.json (status "preempted") but no nn.h5 yet: it is
    reported as incomplete with the sigma histories its checkpoint holds, not skipped."""
    import torch

    from hpcflow.report.build import build_report

    d = tmp_path / "cut"
    shutil.copytree(runs["nn"], d)
    os.remove(d / "nn.h5")
    with open(d / "summary.json") as fh:
        s = json.load(fh)
    with open(d / "summary.json", "w") as fh:
        json.dump({**s, "status": "preempted"}, fh)
    hist = torch.load(d / "checkpoint.pt", weights_only=True)["train"]["history"]
    res = build_report([str(d)], tmp_path / "out")
    # its summary describes every epoch (stopped after training): Fig. 4 alone waits for the nn.h5 a resume writes
    assert [r.split(": not drawn: ")[0] for _, r in res["skipped"]] == ["Fig. 4: metric-NTK evolution"], res
    md = open(res["md"], encoding="utf-8").read()
    epochs = len(hist["sigma_val"]) - 1
    line = next(x for x in md.splitlines() if x.startswith(f"cut (incomplete: preempted at epoch {epochs}): sigma train"))
    assert f"{float(hist['sigma_train'][0]):.4g} -> {float(hist['sigma_train'][-1]):.4g}" in line
    sv = hist["sigma_val"]
    assert f"validation {float(sv[0]):.4g} -> {float(sv[-1]):.4g} ({epochs} epochs)" in line  # its validation sigma
    # its row in the runs table: sigma_train at epoch 0 from checkpoint.pt (its summary has the final one only)
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["cut"]
    st0, st = float(hist["sigma_train"][0]), s["sigma_train_final"]
    assert "sigma_train_initial" not in s and row[2].startswith("incomplete: preempted")
    assert row[6] == f"{st0:.4g} -> {st:.4g}" and float(row[8]) == pytest.approx(st0 / st, rel=1e-3), row


def test_a_flow_run_preempted_before_its_summary_had_numbers_shows_its_checkpoint_sigmas(tmp_path, runs):
    """SIGTERM leaves a flow's summary.json with its status and checkpoint step but no sigma (and a kill, none at
    all): the runs table takes sigma at step 0 and at the checkpoint's step from checkpoint.h5, marked incomplete."""
    from hpcflow.report.build import collect
    from hpcflow.report.runs_table import markdown

    d = tmp_path / "pre"
    shutil.copytree(runs["flow"], d)
    s = json.loads((d / "summary.json").read_text())
    kept = ("kernel", "kernel_params", "steps", "dt", "loss", "chart", "ranks", "n_train", "n_test", "config", "kind")
    (d / "summary.json").write_text(json.dumps({**{k: s[k] for k in kept if k in s}, "status": "preempted",
                                                "checkpoint_step": s["checkpoint_step"]}))
    killed = tmp_path / "killed"
    shutil.copytree(d, killed)
    os.remove(killed / "summary.json")
    with h5py.File(d / "checkpoint.h5", "r") as f:
        st, se = f["history/sigma_train"][()], f["history/sigma_test"][()]
    rows = md_rows(markdown(collect([str(d), str(killed)]).infos))
    for name in ("pre", "killed"):
        row = rows[name]
        assert row[2].startswith("incomplete: ") and row[6] == f"{st[0]:.4g} -> {st[-1]:.4g}", row
        assert row[7] == f"{se[0]:.4g} -> {se[-1]:.4g}" and float(row[9]) == pytest.approx(se[0] / se[-1], rel=1e-3)



def test_a_local_limit_run_is_listed_and_a_network_row_has_its_initial_train_sigma(tmp_path, runs):
    """A local_limit run (no figure of its own) is a row of the runs table, not skipped, and a report of it alone
    is written; a network row shows sigma_train at epoch 0 (nn.h5) and the train gain, which summary.json lacks."""
    from hpcflow.report.build import build_report

    ll = runs["local_limit"]
    res = build_report([ll, runs["nn"]], tmp_path / "out")
    assert res["skipped"] == []
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert rows["local_limit"][:5] == ["local_limit", "local_limit", "finished", "80 / 40", "gaussian"]
    # its key numbers: train and test gain (sigma at step 0 / at the last step) at the widest and narrowest of its
    # widths [1.0, 0.1], from the sigma histories of local_limit.h5
    with h5py.File(os.path.join(ll, "local_limit.h5"), "r") as f:
        hist = {k: [f[f"width_{i}/sigma_{k}"][()] for i in (0, 1)] for k in ("train", "test")}
    for col, key in ((8, "train"), (9, "test")):
        cell = re.fullmatch(r"w=1: (\S+); w=0\.1: (\S+)", rows["local_limit"][col])
        assert cell, rows["local_limit"][col]
        for got, h in zip(cell.groups(), hist[key]):
            assert float(got) == pytest.approx(h[0] / h[-1], rel=1e-3), (key, cell.group(0))
    with h5py.File(os.path.join(runs["nn"], "nn.h5"), "r") as f:
        st = f["history/sigma_train"][()]
    with open(os.path.join(runs["nn"], "summary.json")) as fh:
        s = json.load(fh)
    assert "sigma_train_initial" not in s and s["sigma_train_final"] == pytest.approx(st[-1], rel=1e-12)
    assert rows["nn"][6] == f"{st[0]:.4g} -> {st[-1]:.4g}"
    assert float(rows["nn"][8]) == pytest.approx(st[0] / st[-1], rel=1e-3)
    alone = build_report([ll], tmp_path / "out_ll")  # the runs table is something to report
    assert "| local_limit | local_limit |" in open(alone["md"], encoding="utf-8").read()


def test_a_study_row_counts_trials_by_state_and_names_the_best(tmp_path, runs):
    """Trials complete, pruned and failed are counted by state; the best trial (value 2.0) is named with the
    study's objective; a study without a completed trial has counts alone and no numbers."""
    from optuna.trial import TrialState

    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    study = make_study(tmp_path / "tune", runs["flow"], [0.4, 2.0, 1.1])
    for state in (TrialState.FAIL, TrialState.PRUNED, TrialState.FAIL):
        study.tell(study.ask(), state=state)
    study.set_user_attr("hpcflow_job", {"objective": "log_gain_test"})  # what hpcflow tune records
    cells = row(detect(tmp_path / "tune"))
    assert cells[2] == ("6 trials: 3 complete, 1 pruned, 2 failed; best trial 1 (the numbers of this row): "
                        "log_gain_test = 2")
    assert cells[3:10] == row(detect(runs["flow"]))[3:10]
    failed = make_study(tmp_path / "none", runs["flow"], [])
    failed.tell(failed.ask(), state=TrialState.FAIL)
    assert row(detect(tmp_path / "none"))[2:] == ["1 trial: 1 failed", "- / -", "-", "-", "-", "-", "-", "-", "-"]
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "study.journal").write_text("")
    assert row(detect(tmp_path / "blank"))[2].startswith("unreadable: ") and "study.journal is an empty file" in row(
        detect(tmp_path / "blank"))[2]


def _with_summary(src, dst, **changes) -> str:
    """A copy of run directory `src` whose summary.json has `changes` (a None value removes the key)."""
    shutil.copytree(src, dst)
    s = json.loads((dst / "summary.json").read_text())
    s.update(changes)
    (dst / "summary.json").write_text(json.dumps({k: v for k, v in s.items() if v is not None}))
    return str(dst)


def test_wall_time_of_a_resumed_run_is_its_legs_total_with_the_leg_count(tmp_path, runs):
    """A flow extended with --resume (two legs) shows the whole run's cost, the earlier leg's recorded seconds plus
    the last run's, and its leg count; so does a network run's summary of two legs; a summary written before legs
    were recorded shows its wall_seconds; a leg of unknown time is named, as the total leaves it out."""
    from hpcflow.cli import main
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = tmp_path / "resumed"
    shutil.copytree(runs["flow"], d)
    assert main(["run", str(d / "job.toml"), "--out", str(d), "--resume", "--set", "flow.steps=8", "--quiet"]) == 0
    s = json.loads((d / "summary.json").read_text())
    assert [(g["from_step"], g["to_step"]) for g in s["legs"]] == [(0, 6), (6, 8)]
    total = s["legs"][0]["wall_seconds"] + s["wall_seconds"]
    assert total > 1.2 * s["wall_seconds"]  # the last leg alone is visibly less
    cell = re.fullmatch(r"(\S+) \(2 legs\)", row(detect(d))[10])
    assert cell and float(cell.group(1)) == pytest.approx(total, rel=1e-3), row(detect(d))[10]
    nn = json.loads(open(os.path.join(runs["nn"], "summary.json")).read())
    first = nn["legs"][0]
    legs = [first, {**first, "from_step": first["to_step"], "to_step": first["to_step"] + 1, "wall_seconds": 2.5}]
    two = _with_summary(runs["nn"], tmp_path / "nn2", legs=legs, wall_seconds=2.5,
                        wall_seconds_total=first["wall_seconds"] + 2.5)
    assert row(detect(two))[10] == f"{first['wall_seconds'] + 2.5:.4g} (2 legs)"
    old = _with_summary(d, tmp_path / "old", legs=None, wall_seconds_total=None)
    assert row(detect(old))[10] == f"{s['wall_seconds']:.4g}"
    untimed = [{**s["legs"][0], "wall_seconds": None}, s["legs"][1]]
    v1 = _with_summary(d, tmp_path / "v1", legs=untimed, wall_seconds_total=s["wall_seconds"])
    assert row(detect(v1))[10] == f"{s['wall_seconds']:.4g} (2 legs, 1 of unknown time)"


def test_a_checkpoint_that_resume_refuses_is_damaged_in_the_runs_table_table1_and_figures(tmp_path, runs, capsys):
    """A finished run whose checkpoint.h5 lacks a dataset, or was replaced by another HDF5 file (a point set), is
    refused by --resume; the report agrees: its row and Table 1 status say damaged and why, not finished, the
    sigma-history legend marks the run it still draws, the point set is skipped there, Table 1 leaves both out."""
    from hpcflow.analysis import histories, table1
    from hpcflow.cli import main
    from hpcflow.report.build import build_report

    no_dt, other = tmp_path / "no_dt", tmp_path / "other"
    for d in (no_dt, other):
        shutil.copytree(runs["flow"], d)
    with h5py.File(no_dt / "checkpoint.h5", "a") as f:
        del f["history/dt"]
    assert main(["sample", "--n", "50", "--out", str(tmp_path / "points.h5"), "--quiet"]) == 0
    shutil.copy(tmp_path / "points.h5", other / "checkpoint.h5")
    capsys.readouterr()
    for d in (no_dt, other):
        assert main(["run", str(d / "job.toml"), "--out", str(d), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dataset history/dt is missing" in err and "not an hpcflow flow checkpoint (attribute kind)" in err
    res = build_report([runs["flow"], str(no_dt), str(other)], tmp_path / "out")
    md = open(res["md"], encoding="utf-8").read()
    rows = md_rows(md.split("## Runs")[1].split("\n## ")[0])
    mark = "incomplete: checkpoint.h5 damaged: dataset history/dt is missing"
    assert rows["no_dt"][2] == f"{mark}; {forced(no_dt)}"
    assert rows["other"][2] == ("incomplete: checkpoint.h5 damaged: not an hpcflow flow checkpoint (attribute kind); "
                                + forced(other))
    assert rows["flow"][2] == "finished"
    t1 = md.split("## Table 1")[1].split("\n## ")[0]
    assert "| flow | finished |" in t1 and "| no_dt |" not in t1 and "| other |" not in t1
    assert [p for p, why in res["skipped"]] == [str(other)] and "sigma histories" in res["skipped"][0][1]
    assert histories.load(no_dt)["label"] == f"no_dt [delta] ({mark})"
    assert table1.load_row(no_dt)["status"] == mark


def test_a_killed_flow_run_shows_n_kernel_and_ranks_from_its_checkpoint(tmp_path, runs):
    """SIGKILL leaves a flow without summary.json: its row takes N train / test, the kernel and the ranks from
    checkpoint.h5's attributes (n_train, n_test, config, ranks), not '-' or one rank."""
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    killed = interrupted_copy(runs["flow"], tmp_path / "killed", status="running")
    with h5py.File(os.path.join(killed, "checkpoint.h5"), "a") as f:
        f.attrs["ranks"] = 2  # as a run on two ranks writes it, with a column per rank in its per-rank histories
        for key in PER_RANK_KEYS:
            if f"history/{key}" in f:
                one = f[f"history/{key}"][()]
                del f[f"history/{key}"]
                f[f"history/{key}"] = np.concatenate([one, one], axis=1)
        n_train, n_test = f["train/g"].shape[0], f["test/g"].shape[0]  # the metrics it holds, one per point
    cells = row(detect(killed))
    assert cells[2].startswith("incomplete: no summary.json") and cells[3:6] == [f"{n_train} / {n_test}", "delta", "2"]


def test_runs_with_one_base_name_get_rows_told_apart_and_a_directory_given_twice_one_row(tmp_path, runs):
    """x/run and y/run were two rows both named 'run'; the same directory given twice (also as another spelling of
    its path) was two rows and its figures drawn twice."""
    from hpcflow.report.build import build_report

    for sub in ("x", "y"):
        shutil.copytree(runs["flow"], tmp_path / sub / "run")
    again = str(tmp_path / "x" / ".." / "x" / "run")
    res = build_report([tmp_path / "x" / "run", tmp_path / "y" / "run", again], tmp_path / "out")
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert sorted(rows) == [os.path.join("x", "run"), os.path.join("y", "run")], rows
    assert rows[os.path.join("x", "run")][1:] == rows[os.path.join("y", "run")][1:]  # copies: the same numbers
    assert [r for _, r in res["skipped"]] == ["given twice: reported once"]
    one = build_report([runs["flow"]], tmp_path / "out1")  # a base name alone stays the row's name
    assert list(md_rows(open(one["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])) == [
        os.path.basename(runs["flow"])]


def test_a_run_given_as_dot_or_dot_dot_is_named_after_the_directory_they_stand_for(tmp_path, runs, monkeypatch):
    """'.' and '..' name the directory they stand for in the runs table, Table 1, legends and per-rank titles; they
    were all labelled '.'."""
    from hpcflow.analysis import histories
    from hpcflow.report.build import build_report

    run = tmp_path / "myrun"
    shutil.copytree(runs["flow"], run)
    (run / "sub").mkdir()
    for cwd, given in ((run, "."), (run / "sub", "..")):
        monkeypatch.chdir(cwd)
        md = open(build_report([given], tmp_path / f"out{len(given)}")["md"], encoding="utf-8").read()
        assert list(md_rows(md.split("## Runs")[1].split("\n## ")[0])) == ["myrun"], given
        assert list(md_rows(md.split("## Table 1")[1].split("\n## ")[0])) == ["myrun"], given
        assert histories.load(given)["label"].startswith("myrun ["), given
        assert histories.plot_per_rank(histories.load(given))._suptitle.get_text().startswith("per-rank cost: myrun [")


@pytest.mark.parametrize("ended", ["running", "preempted"])
def test_a_preempted_run_resumed_and_killed_shows_its_progress_in_the_runs_table_as_in_table1(tmp_path, runs, ended):
    """Preempted at step 3 (summary.json), resumed and killed at step 6 (checkpoint.h5 status 'running'): the runs
    table said 'preempted (summary status)' without step 6 where Table 1 and the legend say 'preempted,
    interrupted at step 6'. The runs table says what they say, then how to continue."""
    from hpcflow.analysis import histories, table1
    from hpcflow.report.build import build_report

    d = tmp_path / "p"
    shutil.copytree(runs["flow"], d)
    with open(d / "summary.json") as fh:
        s = json.load(fh)
    with open(d / "summary.json", "w") as fh:
        json.dump({**s, "status": "preempted", "checkpoint_step": 3, "steps_taken": 3}, fh)
    with h5py.File(d / "checkpoint.h5", "a") as f:
        f.attrs["status"] = ended
        step = int(f.attrs["step"])
        assert step == f["history/sigma_train"].shape[0] - 1 > 3  # further on than the summary's step 3
    mark = f"incomplete: preempted, interrupted at step {step}" if ended == "running" else \
        f"incomplete: preempted at step {step}"
    assert table1.load_row(d)["status"] == mark and histories.load(d)["label"] == f"p [delta] ({mark})"
    md = open(build_report([str(d)], tmp_path / "out")["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["p"]
    assert row[2] == f"{mark}; continue it with hpcflow run {d}/job.toml --out {d} --resume", row


def test_a_given_path_that_does_not_exist_is_refused_before_any_work(tmp_path, runs):
    """A mistyped DIR was listed as 'skipped: does not exist' under exit 0; it is a one-line error naming it (exit 2)
    and no report is written. A file given as DIR is refused alike; a directory without a run stays a skip."""
    out = tmp_path / "R"
    typo = tmp_path / "typo_dir"
    afile = tmp_path / "summary.json"
    afile.write_text("{}")
    for bad, words in ((typo, "does not exist"), (afile, "not a directory")):
        proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", runs["flow"], str(bad), "--out", str(out)],
                              cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stdout + proc.stderr
        assert f"{bad}: {words}" in proc.stderr and not out.exists() and proc.stdout == ""


@pytest.mark.parametrize("args, said", [((), ""), (("--bogus",), "unrecognized arguments: --bogus")])
def test_under_mpiexec_rank_0_alone_reports_and_speaks_and_every_rank_exits_with_its_status(tmp_path, runs, args,
                                                                                          said):
    """At 2 ranks the report is written once (one 'skipped' and one 'wrote' line; every rank wrote it, at the same
    time into one folder) and argparse's error is one line (one per rank); each rank exits with rank 0's status."""
    from test_parallel import each_rank_status, rank_statuses

    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-m", "hpcflow", "report", runs["flow"], str(tmp_path / "empty"), "--out",
           str(tmp_path / "out"), *args]
    proc = subprocess.run(["timeout", "120", *each_rank_status(tmp_path / "status", 2, cmd)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=150)
    status = 2 if said else 0
    assert rank_statuses(tmp_path / "status", 2) == [status, status] and proc.returncode == status, proc.stderr
    if said:
        assert proc.stderr.count("\n") == 1 and f"hpcflow report: error: {said}" in proc.stderr, proc.stderr
        assert proc.stdout == "" and not (tmp_path / "out").exists()
        return
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("hpcflow report: skipped ") and "empty" in lines[0], proc.stdout
    assert lines[1] == f"hpcflow report: wrote {tmp_path / 'out' / 'report.html'} and {tmp_path / 'out' / 'report.md'}"
    assert proc.stderr == "" and (tmp_path / "out" / "report.md").read_text().startswith("# hpcflow report\n")


def test_an_extended_run_killed_midway_shows_its_checkpoint_numbers_in_the_runs_table(tmp_path, runs):
    """A finished run extended with --resume and killed after its last checkpoint (summary.json still the first
    run's): its row takes sigma, gains and wall time (both legs) from checkpoint.h5, as its sigma-history line and
    Table 1 row do, not the older summary's beside an 'incomplete' status."""
    from hpcflow.analysis import table1
    from hpcflow.cli import main
    from hpcflow.report.build import build_report

    d = tmp_path / "ext"
    shutil.copytree(runs["flow"], d)
    first = (d / "summary.json").read_text()
    assert main(["run", str(d / "job.toml"), "--out", str(d), "--resume", "--set", "flow.steps=9", "--quiet"]) == 0
    (d / "summary.json").write_text(first)  # what a SIGKILL after the last checkpoint leaves
    with h5py.File(d / "checkpoint.h5", "a") as f:
        f.attrs["status"] = "running"
        st, se = f["history/sigma_train"][()], f["history/sigma_test"][()]
        legs = json.loads(f.attrs["legs"])
    assert len(st) == 10 and json.loads(first)["sigma_train_final"] != pytest.approx(st[-1])
    md = open(build_report([str(d)], tmp_path / "out")["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["ext"]
    assert row[2].startswith("incomplete: checkpoint.h5 is at step 9 but summary.json describes step 6"), row
    assert row[6] == f"{st[0]:.4g} -> {st[-1]:.4g}" and row[7] == f"{se[0]:.4g} -> {se[-1]:.4g}", row
    assert float(row[8]) == pytest.approx(st[0] / st[-1], rel=1e-3)
    assert float(row[9]) == pytest.approx(se[0] / se[-1], rel=1e-3)
    assert len(legs) == 2 and row[10] == f"{sum(g['wall_seconds'] for g in legs):.4g} (2 legs)", row
    assert f"sigma train {st[0]:.4g} -> {st[-1]:.4g}, test {se[0]:.4g} -> {se[-1]:.4g} (9 flow steps)" in md
    t1 = table1.load_row(d)
    assert t1["steps"] == 9 and t1["gain_train"] == pytest.approx(st[0] / st[-1], rel=1e-12)


def test_a_study_whose_trials_all_were_pruned_or_failed_is_a_row_and_table1_says_why(tmp_path, runs, capsys):
    """A study without a completed trial (every trial diverged, pruned, or failed): the report lists it with its
    trials by state, its figures skipped (it said 'nothing to report', exit 2); table1.py says there is no completed
    trial and how many of each state, not to pass a tune directory, which it was given."""
    from optuna.trial import TrialState

    from hpcflow.analysis.script import main as script_main
    from hpcflow.cli import main

    study = make_study(tmp_path / "M", runs["flow"], [])
    for state in (TrialState.PRUNED, TrialState.PRUNED, TrialState.FAIL):
        study.tell(study.ask(), state=state)
    assert main(["report", str(tmp_path / "M"), "--out", str(tmp_path / "R")]) == 0
    md = (tmp_path / "R" / "report.md").read_text()
    assert md_rows(md.split("## Runs")[1].split("\n## ")[0])["M"][1:3] == ["study", "3 trials: 2 pruned, 1 failed"]
    capsys.readouterr()
    assert script_main("table1", [str(tmp_path / "M"), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no completed trial (trials: 2 pruned, 1 failed)" in err, err
    assert "holding study.journal" not in err and not (tmp_path / "t").exists()


def test_an_empty_study_alone_or_a_study_name_that_no_study_holds_is_one_line_exit_2(tmp_path, runs, capsys):
    """A study with no trial is nothing to report (exit 2, as a directory without data); --study NAME that none of
    the studies given holds is refused naming it (it was a row 'unreadable ... fix --study', exit 0)."""
    from hpcflow.cli import main

    make_study(tmp_path / "E", runs["flow"], [])
    make_study(tmp_path / "S", runs["flow"], [0.5])
    capsys.readouterr()
    assert main(["report", str(tmp_path / "E"), "--out", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to report" in err and "holds no trial" in err, err
    assert main(["report", str(tmp_path / "S"), "--study", "nosuch", "--out", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--study nosuch" in err and "no study 'nosuch'" in err, err
    assert not (tmp_path / "R").exists()


def test_a_study_whose_journal_is_an_empty_file_is_said_so_as_tune_says_it(tmp_path, runs, capsys):
    """A tune directory whose study.journal was emptied (a copy cut short) was reported as 'the storage holds no
    study': the report names the file that study.json records and says to restore it, as `hpcflow tune` does."""
    from hpcflow.cli import main

    make_study(tmp_path / "T", runs["flow"], [0.5])
    (tmp_path / "T" / "study.json").write_text(json.dumps({"job": "x.toml", "overrides": [], "storage":
                                                           "study.journal", "study": "table1_delta"}))
    (tmp_path / "T" / "study.journal").write_bytes(b"")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "T"), "--out", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err
    journal = tmp_path / "T" / "study.journal"
    assert err.count("\n") == 1 and (f"{tmp_path / 'T'}: its storage {journal}, which study.json names, is an empty "
                                     "file; restore it (from a backup)") in err, err
    assert "holds no study" not in err and not (tmp_path / "R").exists()
