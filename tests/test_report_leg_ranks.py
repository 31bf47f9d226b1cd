"""The runs table's ranks cell of a run resumed at another rank count names every leg's count in order ("2→1" for a
run started on 2 ranks and extended on 1), for flow and network runs alike, as summary.json's `legs` record them;
a run resumed at the same count shows that count, a leg recorded without its count shows '?', and a study's row shows
its best trial's. The per-rank figure's note names the count its left-out steps or epochs ran at, a network's too
(from its checkpoint.pt's legs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, make_study, md_rows
from jobtexts import NN_POINTS, SMALL_NET, flow_points
from test_parallel import mpiexec

FLOW = flow_points(120, 60) + """[kernel]
name = "delta"
[flow]
dt = 1.0
steps = 2
loss = "ultralocal"
"""
NN = NN_POINTS + SMALL_NET + """[training]
epochs = 1
batch_size = 50
threads = 1
[ntk]
enabled = false
"""


SEQUENCE = os.path.join(os.path.dirname(__file__), "mpi", "cli_sequence.py")


def _hpcflow(ranks: int, *groups) -> None:
    """The command groups (hpcflow ARGS each) one after the other in one process (tests/mpi/cli_sequence.py: one
    start-up of Python, MPI and torch), on `ranks` ranks."""
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    args = [a for group in groups for a in ("--next", *map(str, group), "--quiet")][1:]
    p = subprocess.run([*launch, sys.executable, SEQUENCE, *args], cwd=ROOT, env=env(), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count(" status 0\n") == len(groups), p.stdout[-2000:]  # every command ran, and ended with 0


def _legs(run_dir) -> list:
    return [g["ranks"] for g in json.loads((run_dir / "summary.json").read_text())["legs"]]


@pytest.fixture(scope="module")
def legs(tmp_path_factory):
    """A flow run and a network run started on 2 ranks and extended on 1, and a flow run started and extended on 1
    (the runs of each rank count in one launch)."""
    tmp = tmp_path_factory.mktemp("legs")
    (tmp / "flow.toml").write_text(FLOW)
    (tmp / "nn.toml").write_text(NN)
    flow, net, same = tmp / "flow", tmp / "net", tmp / "same"
    _hpcflow(2, ("run", tmp / "flow.toml", "--out", flow), ("nn", tmp / "nn.toml", "--out", net))
    _hpcflow(1, ("run", tmp / "flow.toml", "--out", flow, "--resume", "--set", "flow.steps=3"),
             ("nn", tmp / "nn.toml", "--out", net, "--resume", "--set", "training.epochs=2"),
             ("run", tmp / "flow.toml", "--out", same),
             ("run", tmp / "flow.toml", "--out", same, "--resume", "--set", "flow.steps=3"))
    return tmp


def test_a_run_resumed_at_another_rank_count_shows_each_legs_count(legs, tmp_path, capsys):
    from hpcflow.cli import main

    flow, net, same = legs / "flow", legs / "net", legs / "same"
    assert _legs(flow) == _legs(net) == [2, 1] and _legs(same) == [1, 1]  # what the runs recorded
    unknown = tmp_path / "unknown"  # its first leg run before legs were recorded: a count of unknown value
    unknown.mkdir()
    for name in ("checkpoint.h5", "job.toml"):
        (unknown / name).write_bytes((flow / name).read_bytes())
    s = json.loads((flow / "summary.json").read_text())
    s["legs"][0]["ranks"] = None
    (unknown / "summary.json").write_text(json.dumps(s))
    make_study(tmp_path / "tune", str(net), [0.4, 2.0])  # a study whose best trial's run is `net`

    status = main(["report", str(flow), str(net), str(same), str(unknown), str(tmp_path / "tune"), "--out",
                   str(tmp_path / "rep")])
    assert status == 0, capsys.readouterr().err[-2000:]
    rows = md_rows((tmp_path / "rep" / "report.md").read_text().split("## Runs")[1].split("\n## ")[0])
    ranks = {name: rows[name][5] for name in ("flow", "net", "same", "unknown", "tune")}
    assert ranks == {"flow": "2→1", "net": "2→1", "same": "1", "unknown": "?→1", "tune": "2→1"}, ranks
    from hpcflow.analysis.histories import load, per_rank_note

    # the per-rank figures say what they leave out under them (their captions name the run alone); the network's
    # legs come from its checkpoint.pt (nn.h5 records none): epoch 1 ran on 2 ranks, epoch 2 on 1
    notes = {name: per_rank_note(load(str(d))) for name, d in (("flow", flow), ("unknown", unknown), ("net", net))}
    note = "flow steps 1-2 ran at 2 ranks (this run resumed at 1 rank): not shown"
    assert notes == {"flow": note, "unknown": note,  # (its checkpoint.h5 knows the count)
                     "net": "epoch 1 ran at 2 ranks (this run resumed at 1 rank): not shown"}, notes


def test_a_network_of_three_legs_names_the_count_each_left_out_epoch_ran_at(legs, tmp_path):
    """A network trained on 2 ranks (epoch 1), resumed on 1 (epoch 2) and on 2 (epoch 3): the per-rank note read
    'epochs 1-2 ran at 1 rank', where its legs record epoch 1 on 2 ranks (its row dropped by the resume on 1)."""
    from hpcflow.analysis.histories import load, per_rank_note

    net = tmp_path / "net"
    shutil.copytree(legs / "net", net)  # epoch 1 on 2 ranks, epoch 2 on 1
    _hpcflow(2, ("nn", legs / "nn.toml", "--out", net, "--resume", "--set", "training.epochs=3"))
    got = json.loads((net / "summary.json").read_text())["legs"]
    assert [(g["from_step"], g["to_step"], g["ranks"]) for g in got] == [(0, 1, 2), (1, 2, 1), (2, 3, 2)], got
    assert per_rank_note(load(str(net))) == ("epoch 1 ran at 2 ranks but was not recorded (dropped by a resume at "
                                             "another rank count); epoch 2 ran at 1 rank (this run resumed at 2 "
                                             "ranks): not shown")
