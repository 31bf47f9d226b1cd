"""report.html on a narrow screen (a phone, a narrow window): laid out at the device's width (the viewport meta
element), each table in a block that scrolls sideways, so that a wide runs table does not widen the page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


class _Page(HTMLParser):
    """The meta elements of <head>, the classes of the elements around each <table>, and the <style> text."""

    def __init__(self):
        super().__init__()
        self.stack, self.metas, self.tables, self.style, self._in_style = [], [], [], "", False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta":
            self.metas.append((attrs, [t for t, _ in self.stack]))
            return
        if tag == "table":
            self.tables.append([(t, a.get("class")) for t, a in self.stack])
        self._in_style = tag == "style"
        self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag == "meta":
            return
        while self.stack:
            if self.stack.pop()[0] == tag:
                break
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def _overflow(style: str, cls: str) -> str | None:
    rule = re.search(r"\." + re.escape(cls) + r"\{([^}]*)\}", style)
    found = rule and re.search(r"overflow-x:\s*(\w+)", rule.group(1))
    return found.group(1) if found else None


def test_report_html_has_a_viewport_and_every_table_scrolls_in_its_own_block(tmp_path, runs):
    from hpcflow.report import build_report

    out = tmp_path / "R"
    build_report([runs["flow"], runs["flow_gauss"], runs["noise"]], out)
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    viewports = [(a, where) for a, where in page.metas if a.get("name") == "viewport"]
    assert len(viewports) == 1 and "head" in viewports[0][1], page.metas
    content = {k.strip(): v.strip() for k, v in (kv.split("=") for kv in viewports[0][0]["content"].split(","))}
    assert content == {"width": "device-width", "initial-scale": "1"}, content
    assert len(page.tables) >= 2, page.tables  # the runs table and Table 1
    for around in page.tables:
        tag, cls = around[-1]
        assert tag == "div" and cls and _overflow(page.style, cls) == "auto", (around, page.style)
