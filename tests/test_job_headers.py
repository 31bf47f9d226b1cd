"""The header comments of the shipped job files: values they quote from other job files are those files' values,
and the run-time line does not split a sentence."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOBS = sorted((ROOT / "jobs").glob("*.toml"))


def header(path: Path) -> list[str]:
    """The comment lines above the first table, without their '#'."""
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("["):
            break
        lines.append(line[1:].strip() if line.startswith("#") else line.strip())
    return lines


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_a_quoted_dt_is_the_dt_of_the_job_file_it_names_and_lies_in_the_search_space(path):
    text = " ".join(header(path))
    job = tomllib.loads(path.read_text())
    space = job.get("tune", {}).get("space", {}).get("flow.dt")
    for name, value in re.findall(r"jobs/(\w+)\.toml[:( ]+dt = ([0-9.eE+-]+)", text):
        quoted = float(value.rstrip("."))
        other = tomllib.loads((ROOT / "jobs" / f"{name}.toml").read_text())
        assert other["flow"]["dt"] == quoted, f"{path.name} quotes dt = {value} for jobs/{name}.toml"
        if space is not None:
            assert space["low"] <= quoted <= space["high"], f"{path.name}: dt = {value} outside [tune.space]"


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_the_run_time_line_follows_a_whole_sentence(path):
    lines = header(path)
    for i, line in enumerate(lines):
        if line.startswith("Runs in") and i > 0:
            assert lines[i - 1].endswith((".", ":", ";")), f"{path.name}: '{line}' splits '{lines[i - 1]}'"
