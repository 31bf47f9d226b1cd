"""Fig. 4 of a network whose nn.h5 reads but is damaged (a NaN where a run writes finite values) carried the run's
'incomplete' mark in its titles but not in its captions in report.md and report.html, which named the run as if it
were finished; the captions carry it now, as its sigma histories' do. A network run preempted after its training (in
its width sweep or kernel flow: summary.json "preempted" at checkpoint_step = epochs, no nn.h5 yet) whose job draws
Fig. 4: the skipped list says why Fig. 4 is not drawn, as for a finished run whose nn.h5 is missing."""

from __future__ import annotations

import json
import os
import re
import shutil

import h5py
import pytest

from analysis_runs import run_dirs

MARK = "damaged (incomplete: nn.h5 damaged)"


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_the_captions_of_fig4_of_a_damaged_nn_h5_carry_its_mark_as_its_titles_do(tmp_path, runs):
    from hpcflow.report.build import build_report

    d = tmp_path / "damaged"
    shutil.copytree(runs["nn"], d)
    with h5py.File(d / "nn.h5", "a") as f:
        f["history/loss"][0] = float("nan")
    res = build_report([str(d)], tmp_path / "r")
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    with open(res["html"], encoding="utf-8") as fh:
        page = fh.read()
    section = md.split("## Fig. 4")[1].split("\n## ")[0]
    assert re.findall(r"^\*(.*)\*$", section, re.M) == [MARK, MARK], section  # the NTK and the width sweep
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page)
    assert captions.count(MARK) == 3, captions  # Fig. 4's two, and the per-rank figure's
    from PIL import Image

    for name in ("fig4_ntk.png", "fig4_width_sweep.png"):
        with Image.open(tmp_path / "r" / name) as im:
            assert "(incomplete: nn.h5 damaged)" in im.text["Title"], im.text["Title"]


def test_a_network_stopped_after_training_says_why_fig4_is_not_drawn(runs, tmp_path):
    from hpcflow.report.build import build_report

    d = tmp_path / "stopped_in_kernel_flow"
    shutil.copytree(runs["nn"], d)
    for name in ("nn.h5", "model.pt", "model.pt.json"):
        if os.path.exists(d / name):
            os.remove(d / name)
    s = json.loads((d / "summary.json").read_text())  # as hpcflow.nn.job._stop_point writes it
    s = {k: v for k, v in s.items() if k not in ("width_sweep", "kernel_flow")}
    s.update(status="preempted", checkpoint_step=s["epochs"])
    (d / "summary.json").write_text(json.dumps(s))
    res = build_report([str(d)], str(tmp_path / "R"))
    fig4 = [r for p, r in res["skipped"] if p == str(d) and r.startswith("Fig. 4")]
    assert len(fig4) == 1 and "not drawn" in fig4[0] and "nn.h5" in fig4[0] and "--resume" in fig4[0], res["skipped"]


def test_a_network_stopped_in_its_training_is_not_said_to_have_stopped_after_it(runs, tmp_path):
    """summary.json's "epochs" counts the epochs done (at a stop in training: its checkpoint_step too); the job's
    [training].epochs says whether training was over."""
    from hpcflow.report.build import build_report

    d = tmp_path / "stopped_in_training"
    shutil.copytree(runs["nn"], d)
    for name in ("nn.h5", "model.pt", "model.pt.json"):
        if os.path.exists(d / name):
            os.remove(d / name)
    s = json.loads((d / "summary.json").read_text())
    s = {k: v for k, v in s.items() if k not in ("width_sweep", "kernel_flow")}
    s["config"]["training"]["epochs"] = 100  # the job asks for 100; the run stopped at epoch 2
    s.update(status="preempted", checkpoint_step=2, epochs=2)
    (d / "summary.json").write_text(json.dumps(s))
    res = build_report([str(d)], str(tmp_path / "R"))
    fig4 = [r for p, r in res["skipped"] if p == str(d) and r.startswith("Fig. 4")]
    assert len(fig4) == 1, res["skipped"]
    assert "after its training" not in fig4[0]
    assert "no nn.h5 yet: the run was interrupted in its training (epoch 2 of 100), before it wrote it" in fig4[0]
