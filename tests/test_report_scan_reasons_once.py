"""A noise scan whose levels failed for one reason says it once in its runs-table status, with the scales it applies
to (it was said once per scale: ~1,700 characters for 8 scales); distinct reasons each once, in order."""

from __future__ import annotations

from hpcflow.report.detect import RunInfo
from hpcflow.report.runs_table import row

WHY = ("no test gain: 0 of 1000 test points left (1000 failed the projection onto X; sigma needs >= 2), raise "
       "[noise].max_newton or lower the scale")
OTHER = "sigma not finite after step 4"


def _scan(reasons: dict) -> dict:
    table = [{"scale": scale, "gain_train": 58.9, "gain": None if why else 58.9, "stopped": why, "steps_taken": 10}
             for scale, why in reasons.items()]
    said = [f"scale {scale:g}: {why}" for scale, why in reasons.items() if why]
    stopped = (f"{len(said)} of {len(table)} scales have no test gain ({'; '.join(said)}); their test points are "
               "missing")
    return {"kind": "noise_scan", "status": "diverged", "stopped": stopped, "table": table}


def test_one_reason_of_many_scales_is_said_once():
    s = _scan({0.0: "", 0.0003: WHY, 0.001: WHY, 0.003: WHY, 1.0: WHY})
    status = row(RunInfo("NS", "noise_scan", True, "", s, ("fig3_noise",), name="NS"))[2]
    assert status == (f"diverged: 4 of 5 scales have no test gain (scales 0.0003, 0.001, 0.003, 1: {WHY}); their "
                      "test points are missing"), status


def test_distinct_reasons_are_each_said_once():
    s = _scan({0.0: "", 0.01: OTHER, 0.1: WHY, 0.3: WHY})
    status = row(RunInfo("NS", "noise_scan", True, "", s, ("fig3_noise",), name="NS"))[2]
    assert status.count(WHY) == 1 and status.count(OTHER) == 1, status
    assert f"(scale 0.01: {OTHER}; scales 0.1, 0.3: {WHY})" in status, status


def test_both_lists_of_a_scan_with_stopped_flows_and_levels_without_test_gain_say_each_reason_once():
    """A scan whose summary names flows that stopped and levels without a test gain (`common.stops_status`: two lists
    in one line) says each list's reasons once (only the first list was grouped)."""
    from hpcflow.experiments.common import stops_status

    rows = [{"scale": x, "numerical_stop": bool(why), "no_test_gain": why == WHY, "stopped": why, "steps_taken": 10,
             "gain_train": 58.9, "gain": None if why else 58.9}
            for x, why in {0.0: "", 0.01: OTHER, 0.03: OTHER, 0.1: WHY, 0.3: WHY}.items()]
    s = {"kind": "noise_scan", "table": rows, **stops_status(rows, "scale")}
    assert s["stopped"].count(OTHER) == 2 and s["stopped"].count(WHY) == 2  # the summary: once per scale
    status = row(RunInfo("NS", "noise_scan", True, "", s, ("fig3_noise",), name="NS"))[2]
    assert status.count(OTHER) == 1 and status.count(WHY) == 1, status
    assert f"(scales 0.01, 0.03: {OTHER})" in status and f"(scales 0.1, 0.3: {WHY})" in status, status
