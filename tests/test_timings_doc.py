"""Run times the docs quote for a command are a range on a named machine that holds the wall times measured for it
(the 2-core AMD EPYC of BENCHMARKS.md, idle or shared with other jobs), not one number from a single quiet run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (file, a phrase that locates the quoted time, wall seconds measured on the 2-core AMD EPYC: BENCHMARKS.md's row
#: and runs on 2026-12-06 with the machine shared)
MEASURED = [
    ("jobs/local_limit.toml", "Runs in about", (3.7, 7.8, 12.5)),
    ("jobs/table1_relu_deep.toml", "RESULTS.md). About", (15.1, 21.65, 38.0)),
    ("README.md", "for s in range(16)]))\"`", (11.9, 30.0)),
]


def _quoted(text: str, anchor: str) -> tuple:
    """(low, high, the text after them) of the first "A-B s" (or "A–B s") after `anchor`."""
    at = text.index(anchor)
    m = re.search(r"(\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?) s\b(.{0,120})", text[at:at + 300], flags=re.S)
    assert m, f"no range of seconds after {anchor!r}: {text[at:at + 200]!r}"
    return float(m.group(1)), float(m.group(2)), " ".join(m.group(3).replace("#", " ").split())


@pytest.mark.parametrize("name, anchor, walls", MEASURED, ids=[m[0] for m in MEASURED])
def test_a_quoted_run_time_is_a_range_holding_the_measured_ones_on_a_named_machine(name, anchor, walls):
    low, high, after = _quoted((ROOT / name).read_text(encoding="utf-8"), anchor)
    assert all(low <= w <= high for w in walls), f"{name}: {low}-{high} s, measured {walls}"
    assert "2 shared cores" in after and "AMD EPYC" in after, f"{name}: no machine named after the range: {after!r}"
