"""report.md (PNG files beside it) and report.html (self-contained: PNGs as data URIs)."""

from __future__ import annotations

import base64
import html
import os

from hpcflow.analysis.figure import save_png
from hpcflow.atomic import atomic_file
from hpcflow.report import runs_table

TITLE = "hpcflow report"


def _md_table_to_html(md: str) -> str:
    """A GitHub markdown table (as written by hpcflow.analysis / runs_table) as an HTML table."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.strip().splitlines()]
    head, body = rows[0], [r for r in rows[2:]]
    th = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _png_bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def markdown(report, pngs: dict) -> str:
    parts = [f"# {TITLE}\n", "## Runs\n", runs_table.markdown(report.infos)]
    if report.skipped:
        parts += ["\nSkipped:\n"] + [f"- `{p}`: {r}" for p, r in report.skipped] + [""]
    for sec in report.sections:
        parts.append(f"\n## {sec.title}\n")
        parts += [text for text in sec.texts.values()]
        if sec.lines:
            parts.append("```\n" + "\n".join(sec.lines) + "\n```\n")
        parts += [f"![{name}]({name})\n" for name in sec.figures if name in pngs]
    return "\n".join(parts)


def html_page(report, pngs: dict) -> str:
    css = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
           "td,th{border:1px solid #aaa;padding:3px 6px;font-size:13px}img{max-width:100%;display:block;margin:1em 0}"
           "pre{background:#f4f4f4;padding:.5em;white-space:pre-wrap}")
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{TITLE}</title><style>{css}</style>"
             f"</head><body><h1>{TITLE}</h1><h2>Runs</h2>", _md_table_to_html(runs_table.markdown(report.infos))]
    if report.skipped:
        parts.append("<p>Skipped:</p><ul>" + "".join(f"<li><code>{html.escape(p)}</code>: {html.escape(r)}</li>"
                                                     for p, r in report.skipped) + "</ul>")
    for sec in report.sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts += [_md_table_to_html(text) for text in sec.texts.values()]
        if sec.lines:
            parts.append("<pre>" + html.escape("\n".join(sec.lines)) + "</pre>")
        for name in sec.figures:
            if name in pngs:
                data = base64.b64encode(pngs[name]).decode("ascii")
                parts.append(f"<img alt=\"{html.escape(name)}\" src=\"data:image/png;base64,{data}\">")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write(report, out) -> dict:
    """Write the PNGs, report.md and report.html into `out`; their paths and the skipped directories."""
    os.makedirs(out, exist_ok=True)
    pngs = {}
    for sec in report.sections:
        for name, fig in sec.figures.items():
            pngs[name] = _png_bytes(save_png(fig, os.path.join(out, name)))
    paths = {"md": os.path.join(out, "report.md"), "html": os.path.join(out, "report.html")}
    for key, text in (("md", markdown(report, pngs)), ("html", html_page(report, pngs))):
        with atomic_file(paths[key], "w") as fh:
            fh.write(text)
    return {**paths, "skipped": list(report.skipped)}
