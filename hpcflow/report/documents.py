"""report.md (PNG files beside it) and report.html (self-contained: PNGs as data URIs)."""

from __future__ import annotations

import base64
import html
import os
import re
from urllib.parse import quote

from hpcflow.analysis.figure import png_bytes
from hpcflow.analysis.rundir import DATA_FILES, shown
from hpcflow.analysis.table1 import md_inline, md_uncell, one_line
from hpcflow.analysis.owned import listed, own, record_name, refuse_not_own, write_owned
from hpcflow.atomic import TMP_MARK
from hpcflow.jobs.outlock import LOCK_NAME
from hpcflow.errors import UserError
from hpcflow.report import runs_table

TITLE = "hpcflow report"


def _md_table_to_html(md: str) -> str:
    """A GitHub markdown table (as written by hpcflow.analysis / runs_table) as an HTML table, in a block that scrolls
    sideways where the table is wider than the window (a phone, a narrow window: the page itself stays its width)."""
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]  # an escaped '\|' is text
            for line in md.strip().splitlines()]
    head, body = rows[0], [r for r in rows[2:]]
    th = "".join(f"<th>{_cell(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<div class=\"wide\"><table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>"


def _cell(cell: str) -> str:
    """A markdown table cell (`md_cell`, `md_name`) as HTML: its code spans, delimited by the cell's own backticks as
    report.md renders them, as <code> elements; the rest text, escaped. A backtick the cell holds as an entity (a
    run's name: `md_name`) is text, as in report.md."""
    parts = re.split(r"(`[^`]+`)", cell)
    return "".join(f"<code>{html.escape(md_uncell(part[1:-1]))}</code>" if i % 2 else html.escape(md_uncell(part))
                   for i, part in enumerate(parts))


def _inline(text: str) -> str:
    """`text` (a skip reason) as HTML on one line (`one_line`, as report.md writes it): escaped, its markdown code
    spans (balanced backtick pairs, as report.md renders them: `hpcflow run ... --resume`) as <code> elements; a lone
    backtick stays literal."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(one_line(text)))


def _md_code(text: str) -> str:
    """`text` (a path) as a markdown code span on one line (`one_line`), whatever backticks it holds: fenced by a
    run of backticks longer than any inside, with a space inside each fence where the text begins or ends with one
    (CommonMark takes one such space off)."""
    text = one_line(text)
    fence = "`" * (max(map(len, re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown(report, pngs: dict) -> str:
    parts = [f"# {TITLE}\n", "## Runs\n", runs_table.markdown(report.infos)]
    if report.skipped:
        parts += ["\nSkipped:\n"] + [f"- {_md_code(p)}: {one_line(r)}" for p, r in report.skipped] + [""]
    for sec in report.sections:
        parts.append(f"\n## {sec.title}\n")
        parts += [text for text in sec.texts.values()]
        if sec.lines:
            parts.append(_md_block(sec.lines))
        parts += [_image(name, sec.captions.get(name)) for name in sec.figures if name in pngs]
    if report.provenance:
        parts += ["\n## Provenance\n", f"{_made(report.provenance)}, from the inputs:\n",
                  _md_block(report.provenance["inputs"])]
    return "\n".join(parts)


def _made(made: dict) -> str:
    """'hpcflow VERSION, generated DATE TIME UTC' of a report's provenance (`build.provenance`)."""
    return f"hpcflow {made['version']}, generated {made['generated']}"


def _md_block(lines) -> str:
    """A section's printed `lines` as a fenced markdown code block, each on one line (`one_line`: a run's name with a
    line break would read as two lines), fenced by more backticks than any run of them inside (which would end it)."""
    text = "\n".join(map(one_line, lines))
    fence = "`" * max(3, max(map(len, re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}\n{text}\n{fence}\n"


def _image(name: str, caption: str | None = None) -> str:
    """The markdown line of PNG file `name`: its link percent-encoded (a space, a parenthesis ends a CommonMark link
    target), its alt text literal (`md_inline`); the run it shows (`caption`) in italics on the line below."""
    return f"![{md_inline(name)}]({quote(name)})\n" + (f"\n*{md_inline(caption)}*\n" if caption else "")


#: the page laid out at the device's width (a phone's too), not at a desktop's shrunk to fit
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


def html_page(report, pngs: dict) -> str:
    css = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
           ".wide{overflow-x:auto;max-width:100%}"
           "td,th{border:1px solid #aaa;padding:3px 6px;font-size:13px}img{max-width:100%;display:block;margin:1em 0}"
           "pre{background:#f4f4f4;padding:.5em;white-space:pre-wrap}")
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\">{VIEWPORT}<title>{TITLE}</title><style>{css}</style>"
             f"</head><body><h1>{TITLE}</h1><h2>Runs</h2>", _md_table_to_html(runs_table.markdown(report.infos))]
    if report.skipped:
        parts.append("<p>Skipped:</p><ul>" + "".join(f"<li><code>{html.escape(one_line(p))}</code>: {_inline(r)}</li>"
                                                     for p, r in report.skipped) + "</ul>")
    for sec in report.sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts += [_md_table_to_html(text) for text in sec.texts.values()]
        if sec.lines:
            parts.append("<pre>" + html.escape("\n".join(map(one_line, sec.lines))) + "</pre>")
        for name in sec.figures:
            if name in pngs:
                data = base64.b64encode(pngs[name]).decode("ascii")
                img = f"<img alt=\"{html.escape(name)}\" src=\"data:image/png;base64,{data}\">"
                caption = sec.captions.get(name)
                parts.append(f"<figure>{img}<figcaption>{html.escape(one_line(caption))}</figcaption></figure>"
                             if caption else img)
    if report.provenance:
        parts.append(f"<h2>Provenance</h2><p>{html.escape(_made(report.provenance))}, from the inputs:</p><pre>"
                     + html.escape("\n".join(map(one_line, report.provenance["inputs"]))) + "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


#: what a report writes besides its PNGs
REPORT_FILES = ("report.md", "report.html")
#: the report's list of the files it wrote, each with its SHA-256 (null while being written): an earlier report in
#: --out is replaced where its files are unchanged since, or, under --force, wherever the list names them (`owned`)
MANIFEST = record_name("report")


def _entries(out) -> list:
    """The entries of directory `out` but the debris of interrupted atomic writes and the lock file of a report that
    writes there (or was killed there: `hpcflow.jobs.outlock`), sorted; [] when it is missing."""
    if not os.path.isdir(out):
        return []
    return sorted(n for n in os.listdir(out) if not (n.startswith(".") and TMP_MARK in n) and n != LOCK_NAME)


def foreign(out) -> str | None:
    """The first entry of directory `out` that is not a file an earlier hpcflow report wrote there, unchanged, with
    why ("PATH was changed after ..."); None when there is none (an empty or missing directory too)."""
    names = [n for n in _entries(out) if n != MANIFEST]
    if not names:
        return None
    files = listed(out, MANIFEST)
    if files is None:
        data = [n for n in names if n in DATA_FILES]  # a run directory given as --out: its data file said first
        return (f"{out} holds files that are not an hpcflow report's (such as {os.path.join(out, (data or names)[0])}; "
                f"a report lists its own in {MANIFEST}, which reports of hpcflow versions before it lack)")
    mine = set(own(out, files))
    for name in names:
        if name not in files:
            return f"{os.path.join(out, name)} was not written by the hpcflow report there"
        if name not in mine:
            return f"{os.path.join(out, name)} was changed after the hpcflow report there wrote it"
    return None


def check_out(out, *, force: bool = False) -> None:
    """Refuse (UserError, before any work) an --out that cannot be a directory to write into (`writable_dir`: a
    file, under /proc, /sys or /dev, unwritable or not creatable), one where report.md or report.html is a directory,
    or a directory holding anything but the unchanged files of an earlier hpcflow report (`foreign`), unless force."""
    from hpcflow.analysis.script import check_names
    from hpcflow.jobs.output import writable_dir

    writable_dir(out)
    check_names(out, [*REPORT_FILES, MANIFEST])
    if force:  # a file of the user's under a report file's name is never replaced
        refuse_not_own(out, REPORT_FILES, MANIFEST, tool="an hpcflow report")
        return
    why = foreign(out)
    if why:
        raise UserError(f"--out {out}: {why}; choose another --out or pass --force to write the report among its "
                        "files")


def write(report, out) -> dict:
    """Write the PNGs, report.md, report.html and MANIFEST into `out` (`owned.write_owned`): every file is written to
    a temporary and renamed into place only once all are written, so a write that fails (a full disk) or is stopped
    leaves an earlier report whole, its report.md and report.html beside the figures they show, never beside
    another call's; once placed, an earlier report's files that this one does not write are removed where they are
    unchanged, so none is left behind unreferenced; any other file stays, and one under a name this report writes
    that it did not write is refused (OutputPathError, before anything is written). Their paths, the skipped
    directories and what it did to an earlier report there (`owned.write_owned`'s 'replaced' and 'removed')."""
    from hpcflow.analysis.script import check_names

    figures = [name for sec in report.sections for name in sec.figures]
    new = [*figures, *REPORT_FILES]
    check_names(out, [*REPORT_FILES, MANIFEST, *figures])
    refuse_not_own(out, new, MANIFEST, tool="an hpcflow report")
    paths = {"md": os.path.join(out, "report.md"), "html": os.path.join(out, "report.html")}

    def write_files(open_):  # (each file renamed into place once all are written: `owned.write_owned`)
        pngs = {}
        for sec in report.sections:
            for name, fig in sec.figures.items():
                with open_(os.path.join(out, name)) as fh:
                    if name not in pngs:  # (drawn once where two sections show one figure)
                        pngs[name] = png_bytes(fig, os.path.join(out, name))
                    fh.write(pngs[name])
        for key, text in (("md", markdown(report, pngs)), ("html", html_page(report, pngs))):
            with open_(paths[key], "w") as fh:
                fh.write(shown(text))  # a path's bytes that are no UTF-8 as \xff

    earlier = write_owned(out, MANIFEST, new, write_files)
    return {**paths, "skipped": list(report.skipped), **earlier}
