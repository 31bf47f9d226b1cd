"""A network run's checkpoint.pt as the offline analysis reads it without torch (a laptop without it): its plain
entries as torch.load gives them, the epoch of an extended run killed mid-training, and a file that only torch reads
marked "status unknown", never passed off as finished."""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
import sys

import pytest

from analysis_runs import forced, md_rows, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _plain(obj, prefix=()):
    """(key path, value) of the str, int, float, bool and None values of nested dicts (str keys) and lists."""
    for key, value in obj.items() if isinstance(obj, dict) else enumerate(obj):
        if isinstance(obj, dict) and not isinstance(key, str):
            continue
        if isinstance(value, (dict, list)):
            yield from _plain(value, (*prefix, key))
        elif value is None or isinstance(value, (str, int, float)):
            yield (*prefix, key), value


def _resaved(src, dst, *, status=None, described=None, legacy=False):
    """A copy of network run `src` whose checkpoint.pt says `status` (written in torch's older format with legacy)
    and whose summary.json describes epoch `described`."""
    import torch

    shutil.copytree(src, dst)
    state = torch.load(dst / "checkpoint.pt", weights_only=True)
    if status is not None:
        state["status"] = status
    torch.save(state, dst / "checkpoint.pt", _use_new_zipfile_serialization=not legacy)
    if described is not None:
        s = json.loads((dst / "summary.json").read_text())
        (dst / "summary.json").write_text(json.dumps({**s, "checkpoint_step": described}))
    return dst


def test_the_entries_read_without_torch_are_those_torch_load_gives(runs):
    import os

    import torch

    from hpcflow.jobs.torch_file import plain_entries

    path = os.path.join(runs["nn"], "checkpoint.pt")
    expected = dict(_plain(torch.load(path, weights_only=True)))
    got = plain_entries(path)
    assert got == expected
    assert got[("train", "epoch")] == json.loads(got[("config",)])["training"]["epochs"]


def test_an_extended_network_run_killed_mid_training_is_incomplete_without_torch(tmp_path, runs, monkeypatch):
    """A finished run (summary.json at epoch 1) extended with --resume and killed at epoch 3: without torch its
    checkpoint.pt's epoch is still read, so the run is incomplete in its state, legend and runs-table row."""
    from hpcflow.analysis import histories
    from hpcflow.analysis.rundir import completeness
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = _resaved(runs["nn"], tmp_path / "ext", status="running", described=1)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(ImportError):
        importlib.import_module("torch")
    mark = "checkpoint.pt is at epoch 3 but summary.json describes epoch 1"
    ok, why = completeness(d)
    assert not ok and why.startswith(mark), why
    assert histories.load(d)["label"] == f"ext (incomplete: {mark})"
    assert row(detect(d))[2].startswith(f"incomplete: {mark}")


def test_a_checkpoint_only_torch_reads_is_status_unknown_without_torch(tmp_path, runs, monkeypatch):
    """checkpoint.pt in torch's older (not zip) format: torch reads its epoch (the run is finished); without torch
    the run's status is unknown, and a file neither reads is damaged; neither is called finished."""
    from hpcflow.analysis.rundir import completeness, run_state
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = _resaved(runs["nn"], tmp_path / "old", legacy=True)
    assert completeness(d) == (True, "")
    cut = shutil.copytree(d, tmp_path / "cut")
    with open(cut / "checkpoint.pt", "r+b") as fh:
        fh.truncate(100)
    where = os.path.abspath(cut)  # its fix: the file from a copy, or the job run again (the command to paste)
    assert completeness(cut) == (False, "status unknown: checkpoint.pt unreadable (damaged); restore it from a copy "
                                        "or rerun the job with --force: hpcflow nn "
                                        f"{shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} "
                                        "--force")
    monkeypatch.setitem(sys.modules, "torch", None)
    unknown = "status unknown: torch needed to read checkpoint.pt (pip install -e '.[nn]' in the hpcflow checkout)"
    assert completeness(d) == (False, unknown)
    assert run_state(d).note() == unknown and row(detect(d))[2] == unknown


def test_a_killed_network_run_says_its_epoch_and_its_row_the_job_of_its_checkpoint(tmp_path, runs, monkeypatch):
    """SIGKILL leaves a network run with checkpoint.pt alone (status "running", no nn.h5, no summary.json): it is
    interrupted at the checkpoint's epoch, a live one running at it, and its row has N train / val, the network and
    the ranks of the job the checkpoint holds, not '- / -' and 'network'; all without torch."""
    import os

    import torch

    from hpcflow.analysis.rundir import run_state
    from hpcflow.jobs import outlock
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = _resaved(runs["nn"], tmp_path / "killed", status="running")
    for name in ("summary.json", "nn.h5"):
        os.remove(d / name)
    state = torch.load(d / "checkpoint.pt", weights_only=True)
    cfg, epoch = json.loads(state["config"]), state["train"]["epoch"]
    monkeypatch.setitem(sys.modules, "torch", None)
    assert run_state(d).note() == f"incomplete: no summary.json, interrupted at epoch {epoch}"
    m, geo = cfg["model"], cfg["geometry"]
    assert row(detect(d))[3:6] == [f"{geo['n_train']} / {geo['n_val']}",
                                   f"network {m['depth']}x{m['width']} {m['activation']}", str(state["ranks"])]
    lock = outlock.acquire(d, command="hpcflow nn")
    try:
        note = run_state(d).note()
    finally:
        lock.release()
    assert note.startswith("running: hpcflow nn, pid ") and note.endswith(f", at epoch {epoch}"), note


def test_an_extended_network_run_killed_midway_shows_its_checkpoint_history(tmp_path, runs):
    """A network run extended with --resume and killed after its last checkpoint (nn.h5 and summary.json still
    the first run's): its sigma-history line and row take sigma from checkpoint.pt, which torch reads, and the
    row's wall time is its legs' total."""
    import os

    import torch

    from hpcflow.cli import main
    from hpcflow.report.build import build_report

    d = tmp_path / "ext"
    shutil.copytree(runs["nn"], d)
    kept = {name: (d / name).read_bytes() for name in ("summary.json", "nn.h5")}
    assert main(["nn", str(d / "job.toml"), "--out", str(d), "--resume", "--set", "training.epochs=5", "--quiet"]) == 0
    for name, data in kept.items():  # what a SIGKILL after the last checkpoint leaves
        (d / name).write_bytes(data)
    state = torch.load(d / "checkpoint.pt", weights_only=True)
    st, sv = (state["train"]["history"][k].numpy() for k in ("sigma_train", "sigma_val"))
    assert len(st) == 6
    md = open(build_report([str(d)], tmp_path / "out")["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["ext"]
    assert row[2].startswith("incomplete: checkpoint.pt is at epoch 5 but summary.json describes epoch 3"), row
    assert row[6] == f"{st[0]:.4g} -> {st[-1]:.4g}" and row[7] == f"{sv[0]:.4g} -> {sv[-1]:.4g}", row
    assert row[10] == f"{sum(g['wall_seconds'] for g in state['legs']):.4g} (2 legs)", row
    assert f"sigma train {st[0]:.4g} -> {st[-1]:.4g}, validation {sv[0]:.4g} -> {sv[-1]:.4g} (5 epochs)" in md
    assert os.path.isfile(d / "nn.h5")


def test_without_torch_the_history_of_a_run_without_nn_h5_is_skipped_naming_the_install_line(tmp_path, runs,
                                                                                             monkeypatch):
    """A network run interrupted before nn.h5 has its sigma history in checkpoint.pt only: without torch the report
    skips its figure saying torch is needed and how to install it (it said 'ModuleNotFoundError')."""
    import os

    from hpcflow.report.build import build_report

    d = _resaved(runs["nn"], tmp_path / "cut", status="running")
    os.remove(d / "nn.h5")
    os.remove(d / "summary.json")  # written after nn.h5: with it, the run finished and its nn.h5 is missing
    monkeypatch.setitem(sys.modules, "torch", None)
    res = build_report([runs["flow"], str(d)], tmp_path / "out")
    assert [p for p, _ in res["skipped"]] == [str(d)]
    assert ("reading its training history needs torch; run pip install -e '.[nn]' in the hpcflow checkout"
            in res["skipped"][0][1])


@pytest.mark.parametrize("ended", ["preempted", "killed"])
def test_an_interrupted_network_run_whose_checkpoint_is_damaged_is_not_offered_a_resume(tmp_path, runs, ended):
    """A preempted run (summary.json says so) or a killed one (no summary.json) whose checkpoint.pt is truncated:
    --resume refuses that file, so its row says it is damaged and names --force, not "continue it with --resume"
    (what the row said); the same run with its checkpoint whole is offered the resume."""
    import os

    from hpcflow.analysis.rundir import completeness
    from hpcflow.cli import main
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = _resaved(runs["nn"], tmp_path / ended, status="running")
    if ended == "killed":
        os.remove(d / "summary.json")
    else:
        s = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**s, "status": "preempted"}))
    whole = completeness(d)
    assert not whole[0] and whole[1].endswith(f"continue it with hpcflow nn {d}/job.toml --out {d} --resume"), whole
    data = (d / "checkpoint.pt").read_bytes()
    (d / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    complete, reason = completeness(d)
    assert not complete and reason.endswith(f"; checkpoint.pt unreadable (damaged): {forced(d, 'nn')}"), reason
    mark = row(detect(d))[2]
    assert "--resume" not in mark and "damaged" in mark and mark.startswith("incomplete: "), mark
    assert main(["nn", str(d / "job.toml"), "--out", str(d), "--resume", "--quiet"]) == 2  # what the mark says
