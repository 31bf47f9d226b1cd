"""Fig. 4 of a network whose nn.h5 reads but is damaged (a NaN where a run writes finite values) carried the run's
'incomplete' mark in its titles but not in its captions in report.md and report.html, which named the run as if it
were finished; the captions carry it now, as its sigma histories' do."""

from __future__ import annotations

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
