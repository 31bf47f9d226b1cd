"""report.md and report.html end with how the report was made: the hpcflow version, the time it was generated (UTC)
and its inputs as given, each as an absolute path, so that a report read later on a laptop says what it shows."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_both_documents_say_the_version_the_utc_time_and_the_absolute_inputs(tmp_path, runs, monkeypatch):
    import hpcflow
    from hpcflow.report import build_report

    parent, name = os.path.split(runs["flow"])
    monkeypatch.chdir(parent)  # one input given relative to the working directory
    before = datetime.now(timezone.utc).replace(microsecond=0)
    build_report([name, runs["noise"]], tmp_path / "R")
    after = datetime.now(timezone.utc)
    md = (tmp_path / "R" / "report.md").read_text(encoding="utf-8")
    page = (tmp_path / "R" / "report.html").read_text(encoding="utf-8")
    block = md.split("\n## Provenance\n")[1]
    said = re.search(r"hpcflow (\S+), generated (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", block)
    assert said and said.group(1) == hpcflow.__version__, block
    when = datetime.strptime(said.group(2), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    assert before <= when <= after, (before, when, after)
    assert f"```\n{os.path.join(parent, name)}\n{runs['noise']}\n```" in block, block
    assert f"<h2>Provenance</h2><p>{said.group(0)}, from the inputs:</p><pre>{os.path.join(parent, name)}\n" \
           f"{runs['noise']}</pre>" in page, page[-600:]
