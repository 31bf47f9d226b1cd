"""The runs table's ranks cell of a run resumed at another rank count names every leg's count in order ("2→1" for a
run started on 2 ranks and extended on 1), for flow and network runs alike, as summary.json's `legs` record them;
a run resumed at the same count shows that count, a leg recorded without its count shows '?', and a study's row shows
its best trial's. The per-rank figure's caption names the count its left-out steps or epochs ran at, a network's too
(from its checkpoint.pt's legs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

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


def _hpcflow(ranks: int, *args) -> None:
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    p = subprocess.run([*launch, sys.executable, "-m", "hpcflow", *map(str, args), "--quiet"], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]


def _legs(run_dir) -> list:
    return [g["ranks"] for g in json.loads((run_dir / "summary.json").read_text())["legs"]]


def test_a_run_resumed_at_another_rank_count_shows_each_legs_count(tmp_path):
    (tmp_path / "flow.toml").write_text(FLOW)
    (tmp_path / "nn.toml").write_text(NN)
    flow, net, same = tmp_path / "flow", tmp_path / "net", tmp_path / "same"
    _hpcflow(2, "run", tmp_path / "flow.toml", "--out", flow)
    _hpcflow(1, "run", tmp_path / "flow.toml", "--out", flow, "--resume", "--set", "flow.steps=3")
    _hpcflow(2, "nn", tmp_path / "nn.toml", "--out", net)
    _hpcflow(1, "nn", tmp_path / "nn.toml", "--out", net, "--resume", "--set", "training.epochs=2")
    _hpcflow(1, "run", tmp_path / "flow.toml", "--out", same)
    _hpcflow(1, "run", tmp_path / "flow.toml", "--out", same, "--resume", "--set", "flow.steps=3")
    assert _legs(flow) == _legs(net) == [2, 1] and _legs(same) == [1, 1]  # what the runs recorded
    unknown = tmp_path / "unknown"  # its first leg run before legs were recorded: a count of unknown value
    unknown.mkdir()
    for name in ("checkpoint.h5", "job.toml"):
        (unknown / name).write_bytes((flow / name).read_bytes())
    s = json.loads((flow / "summary.json").read_text())
    s["legs"][0]["ranks"] = None
    (unknown / "summary.json").write_text(json.dumps(s))
    make_study(tmp_path / "tune", str(net), [0.4, 2.0])  # a study whose best trial's run is `net`

    p = subprocess.run([sys.executable, "-m", "hpcflow", "report", str(flow), str(net), str(same), str(unknown),
                        str(tmp_path / "tune"), "--out", str(tmp_path / "rep")], cwd=ROOT, env=env(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = md_rows((tmp_path / "rep" / "report.md").read_text().split("## Runs")[1].split("\n## ")[0])
    ranks = {name: rows[name][5] for name in ("flow", "net", "same", "unknown", "tune")}
    assert ranks == {"flow": "2→1", "net": "2→1", "same": "1", "unknown": "?→1", "tune": "2→1"}, ranks
    captions = re.findall(r"^\*(.+)\*$", (tmp_path / "rep" / "report.md").read_text(), flags=re.M)
    per_rank = {c.split(" ")[0]: c.replace("\\", "") for c in captions if " ran at " in c}  # '\[': markdown's
    # the network's legs come from its checkpoint.pt (nn.h5 records none): epoch 1 ran on 2 ranks, epoch 2 on 1
    flow = "[delta] (flow steps 1-2 ran at 2 ranks (this run resumed them at 1): not shown)"
    assert per_rank == {"flow": f"flow {flow}", "unknown": f"unknown {flow}",  # (its checkpoint.h5 knows the count)
                        "net": "net (epoch 1 ran at 2 ranks (this run resumed it at 1): not shown)"}, per_rank


def test_a_network_of_three_legs_names_the_count_each_left_out_epoch_ran_at(tmp_path):
    """A network trained on 2 ranks (epoch 1), resumed on 1 (epoch 2) and on 2 (epoch 3): the per-rank note read
    'epochs 1-2 ran at 1 rank', where its legs record epoch 1 on 2 ranks (its row dropped by the resume on 1)."""
    from hpcflow.analysis.histories import load, per_rank_note

    (tmp_path / "nn.toml").write_text(NN)
    net = tmp_path / "net"
    _hpcflow(2, "nn", tmp_path / "nn.toml", "--out", net)
    _hpcflow(1, "nn", tmp_path / "nn.toml", "--out", net, "--resume", "--set", "training.epochs=2")
    _hpcflow(2, "nn", tmp_path / "nn.toml", "--out", net, "--resume", "--set", "training.epochs=3")
    legs = json.loads((net / "summary.json").read_text())["legs"]
    assert [(g["from_step"], g["to_step"], g["ranks"]) for g in legs] == [(0, 1, 2), (1, 2, 1), (2, 3, 2)], legs
    assert per_rank_note(load(str(net))) == ("epoch 1 ran at 2 ranks but was not recorded (dropped by a resume at "
                                             "another rank count); epoch 2 ran at 1 rank (this run resumed it at 2): "
                                             "not shown")
