"""The quickstart job's run time, as its header and README's table of jobs state it, is one measured figure."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: "~N s of run", "~M s with ... start-up": the run's wall_seconds and the command's whole time
FIGURES = re.compile(r"~(\d+(?:\.\d+)?) s of run.*?~(\d+(?:\.\d+)?) s with[^.;|]*start-up", re.S)


def _figures(text: str) -> tuple:
    found = FIGURES.search(text)
    assert found, text[:400]
    return found.groups()


def test_the_quickstart_header_and_the_readme_state_the_same_time():
    """The header said ~6 s / ~12 s while README said ~3 s / ~8 s for the same job and command."""
    with open(os.path.join(ROOT, "jobs", "quickstart.toml"), encoding="utf-8") as fh:
        header = "".join(line[1:] for line in fh if line.startswith("#"))
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        row = next(line for line in fh if line.startswith("| `jobs/quickstart.toml` |"))
    assert _figures(header) == _figures(row), (header, row)
