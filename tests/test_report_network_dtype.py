"""The runs table's kernel cell of a network says float32 where the network trained in float32: a float32 and a
float64 network of the same shape had the same cell, the dtype only in summary.json's config and model.pt.json."""

from hpcflow.report.detect import RunInfo
from hpcflow.report.runs_table import row


def _cell(dtype, kind="nn"):
    model = {"depth": 3, "width": 32, "activation": "gelu", **({"dtype": dtype} if dtype else {})}
    summary = {"status": "finished", "config": {"model": model}, "ranks": 1}
    if kind == "study":
        summary["study"] = {"best_kind": "nn", "states": {"COMPLETE": 1}, "trials": 1}
    return row(RunInfo(path="/x/run", kind=kind, complete=True, reason="", summary=summary))[4]


def test_a_float32_network_is_labelled_and_a_float64_one_is_not():
    assert _cell("float32") == "network 3x32 gelu float32"
    assert _cell("float64") == "network 3x32 gelu"
    assert _cell(None) == "network 3x32 gelu"  # (a config without the key: the default, float64)
    assert _cell("float32", kind="study") == "network 3x32 gelu float32"  # a study of float32 network trials
