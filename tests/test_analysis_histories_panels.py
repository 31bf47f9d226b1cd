"""The sigma histories and per-rank figures of runs of mixed units and rank counts: a network's epochs on a panel of
their own (they shared the flow steps' axis, a line at its left edge), a run resumed at another rank count says
which steps its per-rank figure leaves out, and a one-rank run's figure draws no all-zero communication panel."""

from __future__ import annotations

import numpy as np

from analysis_runs import find_line


def _flow(steps=600, label="flow"):
    sigma = np.geomspace(0.4, 1e-4, steps + 1)
    return {"x": np.arange(steps + 1), "train": sigma, "test": sigma * 2, "unit": "flow step", "label": label}


def _nn(epochs=3):
    sigma = np.array([0.35, 0.34, 0.33, 0.32][:epochs + 1])
    return {"x": np.arange(epochs + 1), "train": sigma, "test": sigma * 1.1, "unit": "epoch", "label": "net"}


def test_network_epochs_and_flow_steps_are_drawn_on_panels_of_their_own():
    from hpcflow.analysis import histories

    flow, nn = _flow(), _nn()
    fig = histories.plot([flow, nn])
    panels = {ax.get_xlabel(): ax for ax in fig.axes}
    assert set(panels) == {"flow step", "epoch"}, list(panels)
    find_line(panels["flow step"], flow["x"], flow["train"])
    find_line(panels["epoch"], nn["x"], nn["train"])
    find_line(panels["epoch"], nn["x"], nn["test"])
    low, high = panels["epoch"].get_xlim()
    assert low <= 0 and 3 <= high < 4, (low, high)  # the 3 epochs span the panel
    # a network's dashed curve is sigma_val, of its validation points (it was labelled "test")
    assert [line.get_label() for line in panels["epoch"].get_lines()] == ["net train", "net validation"]
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert legend == ["flow train", "flow test", "net train", "net validation"], legend  # one legend, in order given
    assert histories.numbers([flow, nn])[1] == "net: sigma train 0.35 -> 0.32, validation 0.385 -> 0.352 (3 epochs)"
    assert panels["epoch"].get_yscale() == panels["flow step"].get_yscale() == "log"
    one = histories.plot([_flow(label="a"), _flow(label="b")])  # one unit: one panel, as before
    assert len(one.axes) == 1 and one.axes[0].get_xlabel() == "flow step"


def test_the_y_scales_hold_the_curves_of_both_panels():
    """Flow sigma 0.3-0.1 and a network's 1e-2-1e-3: each panel's y range holds its curves (the epoch panel took the
    flow panel's range, drawn first, and showed nothing)."""
    from hpcflow.analysis import histories

    flow = {"x": np.arange(11), "train": np.geomspace(0.3, 0.1, 11), "test": np.geomspace(0.33, 0.11, 11),
            "unit": "flow step", "label": "flow"}
    net = {"x": np.arange(4), "train": np.geomspace(1e-2, 1e-3, 4), "test": np.geomspace(1.2e-2, 1.2e-3, 4),
           "unit": "epoch", "label": "net"}
    for runs in ([flow, net], [net, flow]):
        fig = histories.plot(runs)
        fig.canvas.draw()
        for ax in fig.axes:
            low, high = ax.get_ylim()
            for line in ax.get_lines():
                y = np.asarray(line.get_ydata(), dtype=float)
                assert low <= y.min() and y.max() <= high, (line.get_label(), y.min(), y.max(), low, high)


def _panel_runs(flow_end: float):
    """A flow run whose sigma falls from 0.37 to `flow_end` and a network's 0.35 -> 0.33 (3 epochs)."""
    flow = {"x": np.arange(41), "train": np.geomspace(0.37, flow_end, 41), "test": np.geomspace(0.36, 0.26, 41),
            "unit": "flow step", "label": "flow"}
    net = {"x": np.arange(4), "train": np.linspace(0.35, 0.33, 4), "test": np.linspace(0.36, 0.345, 4),
           "unit": "epoch", "label": "net"}
    return [flow, net]


def test_panels_whose_sigmas_lie_orders_of_magnitude_apart_have_y_ranges_of_their_own():
    """A flow reaching 1e-16 beside a network's 0.35 -> 0.33: the network's panel spans its own sigmas (within a
    decade), not 16 decades in which they were a flat line; the flow's holds 1e-16. Runs whose sigmas lie within a
    decade of each other keep one scale."""
    from hpcflow.analysis import histories

    fig = histories.plot(_panel_runs(1e-16))
    fig.canvas.draw()
    flow_ax, net_ax = fig.axes[:2]
    assert net_ax.get_xlabel() == "epoch" and net_ax.get_yscale() == "log"
    low, high = net_ax.get_ylim()
    assert 0.0 < low <= 0.33 and 0.36 <= high and np.log10(high / low) < 1.0, (low, high)
    assert flow_ax.get_ylim()[0] <= 1e-16 and flow_ax.get_ylim()[1] >= 0.37, flow_ax.get_ylim()
    assert net_ax.get_ylabel() == flow_ax.get_ylabel() == "σ (eq. B.11)"
    close = histories.plot(_panel_runs(0.1))
    close.canvas.draw()
    assert close.axes[0].get_ylim() == close.axes[1].get_ylim()  # 0.37-0.1 beside 0.36-0.33: one scale


def _resumed():
    """A flow run of 600 steps, 580 at one rank, then resumed at two: rows 1-580 NaN."""
    secs = np.full((600, 2), np.nan)
    secs[580:] = 0.01
    comm = np.full((600, 2), np.nan)
    comm[580:] = [5544.0, 7920.0]
    legs = [{"from_step": 0, "to_step": 580, "ranks": 1}, {"from_step": 580, "to_step": 600, "ranks": 2}]
    return {**_flow(), "step_seconds": secs, "comm_bytes": comm, "legs": legs}


def test_a_run_resumed_at_another_rank_count_says_which_steps_its_per_rank_figure_leaves_out():
    from hpcflow.analysis import histories

    run = _resumed()
    note = histories.per_rank_note(run)
    assert note == "flow steps 1-580 ran at 1 rank (this run resumed at 2 ranks): not shown", note
    fig = histories.plot_per_rank(run)
    assert " ".join(fig._supxlabel.get_text().split()) == note
    assert histories.per_rank_note({**_flow(), "step_seconds": np.ones((600, 2))}) == ""


def _net_resumed(to_step: int):
    """A network of 3 epochs begun on 2 ranks, its first leg stopped after `to_step` whole epochs (within epoch
    `to_step` + 1 where the second leg's epoch 2 is NaN too) and resumed on 1 rank: comm_seconds (3, 1), rows 1-2
    NaN (nn.h5: a row is NaN where its epoch ran wholly or in part at another R)."""
    comm = np.zeros((3, 1))
    comm[:2] = np.nan
    legs = [{"from_step": 0, "to_step": to_step, "ranks": 2}, {"from_step": to_step, "to_step": 3, "ranks": 1}]
    return {**_nn(), "comm_seconds": comm, "legs": legs}


def test_a_network_resumed_at_another_rank_count_says_which_epochs_ran_at_which_count():
    """The note read 'epochs 1 ran at another rank count (this run resumed them at 1)': a network's loader kept no
    legs, and one epoch was plural. Now it names the count and the number of epochs, and an epoch that the first
    leg stopped within (begun on 2 ranks, finished on 1) as part of one."""
    from hpcflow.analysis import histories

    one = {**_net_resumed(1), "comm_seconds": np.array([[np.nan], [0.0], [0.0]])}
    assert histories.per_rank_note(one) == "epoch 1 ran at 2 ranks (this run resumed at 1 rank): not shown"
    two = "epochs 1-2 ran at 2 ranks (this run resumed at 1 rank): not shown"  # both whole at 2 ranks
    assert histories.per_rank_note(_net_resumed(2)) == two
    assert histories.per_rank_note(_net_resumed(1)) == ("epoch 1 and part of epoch 2 ran at 2 ranks (this run "
                                                        "resumed at 1 rank): not shown")
    begun = {**_net_resumed(0), "comm_seconds": np.array([[np.nan], [0.0], [0.0]])}  # stopped within epoch 1
    assert histories.per_rank_note(begun) == "part of epoch 1 ran at 2 ranks (this run resumed at 1 rank): not shown"
    flow = {**_flow(), "step_seconds": np.vstack([np.full((1, 2), np.nan), np.ones((599, 2))]),
            "legs": [{"from_step": 0, "to_step": 1, "ranks": 1}, {"from_step": 1, "to_step": 600, "ranks": 2}]}
    assert histories.per_rank_note(flow) == "flow step 1 ran at 1 rank (this run resumed at 2 ranks): not shown"


def _legs(*spans):
    """legs of (from_step, to_step, ranks)."""
    return [{"from_step": a, "to_step": b, "ranks": r} for a, b, r in spans]


def test_a_run_of_three_legs_names_the_count_each_left_out_step_ran_at():
    """A network run on 2 ranks (epochs 1-2), resumed on 1 (epoch 3) and on 2 (epoch 4): its rows 1-3 are NaN. The
    note read 'epochs 1-3 ran at 1 rank': epochs 1-2 ran at 2 ranks, as the last leg, and the resume on 1 rank
    dropped their rows. Each step is said by the leg whose span holds it."""
    from hpcflow.analysis import histories

    comm = np.vstack([np.full((3, 2), np.nan), [[0.01, 0.02]]])
    net = {**_nn(4), "x": np.arange(5), "train": np.linspace(0.4, 0.3, 5), "comm_seconds": comm,
           "legs": _legs((0, 2, 2), (2, 3, 1), (3, 4, 2))}
    assert histories.per_rank_note(net) == ("epochs 1-2 ran at 2 ranks but were not recorded (dropped by a resume "
                                            "at another rank count); epoch 3 ran at 1 rank (this run resumed at "
                                            "2 ranks): not shown")
    secs = np.vstack([np.full((5, 1), np.nan), [[0.01]]])  # a flow: 1 rank, 2 ranks, 1 rank again
    flow = {**_flow(6), "step_seconds": secs, "legs": _legs((0, 3, 1), (3, 5, 2), (5, 6, 1))}
    assert histories.per_rank_note(flow) == ("flow steps 1-3 ran at 1 rank but were not recorded (dropped by a "
                                             "resume at another rank count); flow steps 4-5 ran at 2 ranks (this "
                                             "run resumed at 1 rank): not shown")
    three = {**net, "comm_seconds": np.vstack([np.full((2, 2), np.nan), np.ones((2, 2))]),
             "legs": _legs((0, 1, 3), (1, 2, 1), (2, 4, 2))}  # each left-out epoch at a count of its own
    assert histories.per_rank_note(three) == ("epoch 1 ran at 3 ranks, epoch 2 at 1 rank (this run resumed at "
                                              "2 ranks): not shown")


def test_a_resumed_runs_per_rank_figure_says_it_once(monkeypatch, tmp_path):
    """The note is drawn under the figure (as analysis/sigma_history.py writes it); the report's caption names the
    run alone (it said the note a second time)."""
    from hpcflow.analysis import histories, products

    run = {**_resumed(), "label": "res"}
    monkeypatch.setattr(histories, "load", lambda group, name=None, mark="": run)
    prod = products.sigma_history([str(tmp_path / "res")])
    note = "flow steps 1-580 ran at 1 rank (this run resumed at 2 ranks): not shown"
    assert " ".join(prod.figures["per_rank.png"]._supxlabel.get_text().split()) == note
    assert prod.captions["per_rank.png"] == "res", prod.captions


def test_a_one_rank_runs_per_rank_figure_draws_no_all_zero_communication_panel():
    from hpcflow.analysis import histories

    flow = {**_flow(30), "step_seconds": np.full((30, 1), 0.02), "comm_bytes": np.zeros((30, 1))}
    fig = histories.plot_per_rank(flow)
    assert [ax.get_ylabel() for ax in fig.axes] == ["step time [s]"]
    assert "one rank: no communication" in fig._supxlabel.get_text()
    nn = {**_nn(), "comm_seconds": np.zeros((3, 1))}
    fig = histories.plot_per_rank(nn)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == ["one rank: no collectives"]  # what its zeros mean, said once
    assert fig._supxlabel is None
    two = {**_nn(), "comm_seconds": np.zeros((3, 2))}  # two ranks: their zeros are drawn
    assert len(histories.plot_per_rank(two).axes[0].get_lines()) == 2
