"""A finished run whose data file is gone (a partial copy back from a cluster): a network run with checkpoint.pt but
no nn.h5 is marked finished with nn.h5 missing and the command that writes it again, in its row, its sigma
histories and in place of its Fig. 4, and fig4_ntk.py says so; a run of any other kind without its data file is
skipped, naming the file."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis_runs import forced, md_rows, run_dirs

#: fixture run -> the data files its directory holds, which summary.json names the run of
DATA = {"flow": ("checkpoint.h5",), "noise": ("noise_scan.h5",), "local_limit": ("local_limit.h5",),
        "scaling": ("distances.h5",), "clustering": ("fig2_distances.h5",), "nn": ("nn.h5", "checkpoint.pt")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _without_nn_h5(runs, tmp_path) -> str:
    d = tmp_path / "copied"
    shutil.copytree(runs["nn"], d)
    os.remove(d / "nn.h5")
    return str(d)


def _fix(d) -> str:
    return f"write it again with hpcflow nn {os.path.join(d, 'job.toml')} --out {d} --resume"


def test_a_finished_network_run_without_nn_h5_is_marked_in_its_row_histories_and_figures(runs, tmp_path):
    """It was listed as plain "finished" with no word on its missing Fig. 4."""
    from hpcflow.report.build import build_report

    d = _without_nn_h5(runs, tmp_path)
    mark = f"nn.h5 missing: {_fix(d)}"
    res = build_report([d, runs["nn"]], tmp_path / "out")
    md = open(res["md"], encoding="utf-8").read()
    rows = md_rows(md.split("## Runs")[1].split("\n## ")[0])
    assert rows["copied"][2] == f"finished; {mark}", rows["copied"]
    assert rows["nn"][2] == "finished", rows["nn"]
    assert (d, f"Fig. 4: metric-NTK evolution: not drawn: {mark}") in res["skipped"], res["skipped"]
    history = md.split("## sigma histories")[1].split("\n## ")[0]
    assert f"copied (finished; {mark}): sigma train" in history, history
    assert "per_rank_copied.png" in history  # drawn from checkpoint.pt's history
    fig4 = md.split("## Fig. 4")[1].split("\n## ")[0]
    assert "*nn*" in fig4 and "copied" not in fig4, fig4  # the whole run's Fig. 4 alone


def test_fig4_ntk_of_a_finished_run_without_nn_h5_says_it_is_missing_not_interrupted(runs, tmp_path):
    from hpcflow.analysis import fig4
    from hpcflow.analysis.rundir import MissingData

    d = _without_nn_h5(runs, tmp_path)
    with pytest.raises(MissingData) as err:
        fig4.load(d)
    msg = str(err.value)
    assert "interrupted" not in msg, msg
    assert msg == (f"{d}: no nn.h5: the run ended (finished), but its nn.h5 is missing from the directory (a partial "
                   f"copy?); {_fix(d)}, then draw Fig. 4")


@pytest.mark.parametrize("run", sorted(DATA))
def test_a_run_whose_data_file_is_gone_is_skipped_naming_the_file(runs, tmp_path, run):
    """README: one whose summary.json names a run whose data file is gone says which file is missing."""
    from hpcflow.report.detect import detect

    d = tmp_path / run
    shutil.copytree(runs[run], d)
    for name in DATA[run]:
        os.remove(d / name)
    info = detect(d)
    files = " and ".join(DATA[run])
    assert info.kind is None, info
    assert info.reason.startswith(f"the {detect(runs[run]).kind} run's {files} "
                                  f"{'are' if len(DATA[run]) > 1 else 'is'} missing"), info.reason
    assert info.reason.endswith(f" or {forced(d, 'nn' if run == 'nn' else 'run')}"), info.reason


def test_without_torch_a_finished_run_without_nn_h5_is_not_called_damaged(runs, tmp_path, monkeypatch):
    """Its history is in checkpoint.pt alone, which torch reads: without torch its row said "incomplete:
    checkpoint.pt damaged (...needs torch...); rerun the job with --force"; now its row keeps the missing nn.h5 and
    the skipped list names what to install."""
    import sys

    from hpcflow.report.build import build_report

    d = _without_nn_h5(runs, tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)
    res = build_report([d, runs["flow"]], tmp_path / "out")
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert rows["copied"][2] == f"finished; nn.h5 missing: {_fix(d)}", rows["copied"]
    hint = "needs torch; run pip install -e '.[nn]' in the hpcflow checkout"
    assert any(p == d and hint in r for p, r in res["skipped"]), res["skipped"]


def test_the_advised_command_writes_nn_h5_again_and_the_mark_goes(runs, tmp_path):
    import subprocess
    import sys

    from analysis_runs import ROOT, env
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = _without_nn_h5(runs, tmp_path)
    argv = _fix(d).removeprefix("write it again with hpcflow ").split()
    proc = subprocess.run([sys.executable, "-m", "hpcflow", *argv, "--quiet"], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(os.path.join(d, "nn.h5"))
    assert row(detect(d))[2] == "finished"


@pytest.mark.parametrize("nn_h5", ["missing", "damaged"])
def test_a_run_whose_checkpoint_fails_its_crc_is_advised_a_rerun_not_the_resume_that_refuses_it(runs, tmp_path, nn_h5):
    """checkpoint.pt with one flipped low mantissa bit (finite values, its zip CRC-32 failing), nn.h5 missing or
    damaged: `hpcflow nn --resume` refuses such a checkpoint, so the row advises the rerun, not that resume."""
    from test_tune_nn_h5 import _flip_low_bit

    from hpcflow.report.build import build_report

    d = _without_nn_h5(runs, tmp_path)
    if nn_h5 == "damaged":
        with open(os.path.join(d, "nn.h5"), "wb") as f:
            f.write(b"\0" * 700)
    _flip_low_bit(os.path.join(d, "checkpoint.pt"))
    res = build_report([d, runs["flow"]], tmp_path / "out")
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert "--resume" not in rows["copied"][2] and rows["copied"][2].endswith(forced(d, "nn")), rows["copied"]


@pytest.mark.parametrize("nn_h5", ["not written", "damaged"])
def test_a_trained_run_whose_checkpoint_fails_its_crc_is_advised_a_rerun_not_the_resume_that_refuses_it(runs, tmp_path,
                                                                                                       capsys, nn_h5):
    """checkpoint.pt of status "trained" (the run killed after its training, before its outputs: nn.h5 not written
    and no summary.json, or nn.h5 damaged) with one flipped low mantissa bit, its zip CRC-32 failing: the row and
    fig4_ntk.py advised `hpcflow nn --resume`, which refuses such a checkpoint (exit status 2). Now they name the
    failing entry and advise the rerun."""
    import subprocess
    import sys

    import torch
    from test_tune_nn_h5 import _flip_low_bit

    from analysis_runs import ROOT, env
    from hpcflow.analysis.script import main as script
    from hpcflow.report.build import build_report

    d = tmp_path / "trained"
    shutil.copytree(runs["nn"], d)
    pt = os.path.join(d, "checkpoint.pt")
    state = torch.load(pt, map_location="cpu", weights_only=True)
    torch.save({**state, "status": "trained"}, pt)
    if nn_h5 == "damaged":
        with open(d / "nn.h5", "wb") as f:
            f.write(b"\0" * 700)
    else:
        os.remove(d / "nn.h5")
        os.remove(d / "summary.json")
    entry = _flip_low_bit(pt)
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "nn", str(d / "job.toml"), "--out", str(d), "--resume",
                           "--quiet"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "CRC-32" in proc.stderr, proc.stderr  # the resume refuses it
    res = build_report([d, runs["flow"]], tmp_path / "out")
    status = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])["trained"][2]
    assert status.endswith(f"; checkpoint.pt fails its CRC-32 check ({entry}); {forced(d, 'nn')}"), status
    assert "--resume" not in status, status
    if nn_h5 == "not written":
        capsys.readouterr()
        assert script("fig4_ntk", [str(d), "--out", str(tmp_path / "f")]) == 2
        err = capsys.readouterr().err
        assert f"checkpoint.pt fails its CRC-32 check ({entry}); {forced(d, 'nn')}, then draw Fig. 4\n" in err, err
        assert "--resume" not in err, err
