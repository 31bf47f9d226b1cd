"""report.html renders the markdown code spans of its runs table and Skipped list as <code> elements, as report.md
shows them; it showed their backticks literally."""

from __future__ import annotations

import re


def _report():
    from hpcflow.report.build import Report
    from hpcflow.report.detect import RunInfo

    status = "preempted at step 5 of 10: continue it with `hpcflow run d/job.toml --out d --resume`"
    info = RunInfo("d", "flow", False, "preempted", status=status, name="d")
    odd = RunInfo("e", "flow", False, "x", status="`a<b & c` and a lone ` backtick", name="e")
    skipped = [("f", "sigma histories: torch is needed: `pip install torch`, then rerun")]
    return Report([info, odd], skipped=skipped)


def test_code_spans_of_cells_and_skip_reasons_are_code_elements_in_the_html():
    from hpcflow.report.documents import html_page, markdown

    report = _report()
    page = html_page(report, {})
    assert "`" not in page.replace("a lone ` backtick", ""), re.findall(r".{40}`.{40}", page)
    assert "<td>preempted at step 5 of 10: continue it with <code>hpcflow run d/job.toml --out d --resume</code>" \
           "</td>" in page
    assert "<td><code>a&lt;b &amp; c</code> and a lone ` backtick</td>" in page  # escaped inside the code element
    assert "<li><code>f</code>: sigma histories: torch is needed: <code>pip install torch</code>, then rerun</li>" \
           in page
    md = markdown(report, {})  # report.md keeps its code spans
    assert "`hpcflow run d/job.toml --out d --resume`" in md and "`pip install torch`" in md
