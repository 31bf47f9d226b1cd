"""report.md (PNG files beside it) and report.html (self-contained: PNGs as data URIs)."""

from __future__ import annotations

import base64
import html
import os
import re
from urllib.parse import quote, unquote

from hpcflow.analysis.figure import save_png
from hpcflow.atomic import TMP_MARK, atomic_file
from hpcflow.errors import UserError
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
        parts += [_image(name) for name in sec.figures if name in pngs]
    return "\n".join(parts)


def _image(name: str) -> str:
    """The markdown line of PNG file `name`: its link percent-encoded (a space, a parenthesis ends a CommonMark link
    target), its alt text with brackets escaped; `earlier_figures` reads the name back."""
    alt = name.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"![{alt}]({quote(name)})\n"


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


#: what a report writes besides its PNGs (an earlier report in --out is recognised by them and replaced)
REPORT_FILES = ("report.md", "report.html")


def earlier_figures(out) -> list | None:
    """The PNG names an earlier report in directory `out` refers to; None when `out` holds anything else (a file
    of the user's, another program's output); [] for a missing or empty directory."""
    if not os.path.isdir(out):
        return []
    names = [n for n in os.listdir(out) if not (n.startswith(".") and TMP_MARK in n)]
    if not names:
        return []
    figures = _own_figures(out)
    if figures is None or set(names) - set(REPORT_FILES) - set(figures):
        return None
    return figures


def _own_figures(out) -> list | None:
    """The PNG names that the hpcflow report.md in directory `out` links to (files of that report, whatever else
    the directory holds); None when `out` holds no readable hpcflow report.md."""
    try:
        with open(os.path.join(out, "report.md"), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith(f"# {TITLE}\n"):
        return None
    # the figure lines of `_image` (of an older report: its target not encoded): the target after the last "]("
    figures = [unquote(t) for t in re.findall(r"^!\[.*\]\((.+\.png)\)$", text, flags=re.M)]
    return [name for name in figures if "/" not in name]


def check_out(out, *, force: bool = False) -> None:
    """Refuse (UserError, before any work) an --out that cannot be a directory to write into (`writable_dir`: a
    file, under /proc, /sys or /dev, unwritable or not creatable), one where report.md or report.html is a directory,
    or a directory holding anything but an earlier hpcflow report, unless force."""
    from hpcflow.analysis.script import check_names
    from hpcflow.jobs.output import writable_dir

    writable_dir(out)
    check_names(out, REPORT_FILES)
    if not force and earlier_figures(out) is None:
        raise UserError(f"--out {out} holds files that are not an hpcflow report; choose another --out or pass "
                        "--force to write the report among them")


def write(report, out) -> dict:
    """Write the PNGs, report.md and report.html into `out` (an earlier report's figures that this one does not
    draw are removed, among other files under --force too, so none is left behind unreferenced); their paths and the
    skipped directories."""
    from hpcflow.analysis.script import check_names, make_dir

    check_names(out, [*REPORT_FILES, *(name for sec in report.sections for name in sec.figures)])
    old = _own_figures(out) or []
    make_dir(out)
    pngs = {}
    for sec in report.sections:
        for name, fig in sec.figures.items():
            pngs[name] = _png_bytes(save_png(fig, os.path.join(out, name)))
    paths = {"md": os.path.join(out, "report.md"), "html": os.path.join(out, "report.html")}
    for key, text in (("md", markdown(report, pngs)), ("html", html_page(report, pngs))):
        with atomic_file(paths[key], "w") as fh:
            fh.write(text)
    for name in set(old) - set(pngs):
        try:
            os.unlink(os.path.join(out, name))
        except OSError:
            pass
    return {**paths, "skipped": list(report.skipped)}
