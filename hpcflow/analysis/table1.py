"""Table 1 (sec. 3.2): hyper-parameters and train/test gains per kernel, ours beside the paper's.

Reads flow run directories (checkpoint.h5: its job configuration and history/sigma_train, sigma_test), or the
best trial's run directory of an Optuna study (user attribute `run_dir`). Gains = sigma(step 0 = FS) /
sigma(last step), recomputed from the checkpoint's histories. A run that did not finish (interrupted, extended
and interrupted, diverged, stopped) is marked in the status column and the printed lines (rundir.RunState).
"""

from __future__ import annotations

import html
import math
import os
import re

from hpcflow.analysis.roundoff import at_roundoff, roundoff_note
from hpcflow.analysis.rundir import (CHECKPOINT, NN, SUMMARY, MissingData, data_file, label, lost_data, read_attrs,
                                     read_datasets, read_summary, run_dir_of, run_state, unread_checkpoint)
from hpcflow.analysis.study import best_run_dirs, is_study, load_study

HINT = ("pass the run directory of a flow job (hpcflow run jobs/table1_gaussian.toml --out DIR) or the directory of a "
        "flow job's study (hpcflow tune)")
#: the paper's Table 1 (points, learning rate, sigma, sigma_b, sigma_w) and its gains (Fig. 3 left at distance 0
#: for train, sec. 3.2 text for test: "failed to achieve a gain of more than ~5 in the test loss")
PAPER = {
    "relu_ntk": {"points": 2500, "lr": 0.1, "hyper": "sigma_b=80.52, sigma_w=5.716", "gains": "~5 / <=5"},
    "gaussian": {"points": 2500, "lr": 0.1583, "hyper": "sigma=30.0", "gains": "~1e6 / <=5"},
    "delta": {"points": 1000, "lr": 0.3162, "hyper": "-", "gains": "~1e6 / <=5"},
}
HYPER_KEYS = ("width", "form", "normalize", "w_std", "b_std", "depth", "sigma_w", "amplitude")


#: configuration entries a row reads: section -> {key: (accepted types, required)}
CONFIG = {"kernel": {"name": (str, True)}, "geometry": {"n_train": (int, True), "n_test": (int, False)},
          "flow": {"dt": ((int, float), True), "loss": (str, False)}}


class NoJob(MissingData):
    """Neither checkpoint.h5's `config` attribute nor summary.json holds the job a row reads: a damaged file.
    `phrase`: what is wrong, without the file's path and the fix (a row's status)."""

    def __init__(self, message: str, *, phrase: str):
        super().__init__(message)
        self.phrase = phrase


def _config(run_dir, ckpt) -> tuple[dict, str]:
    """(the job configuration, the fault of checkpoint.h5's): the configuration of checkpoint.h5's `config`
    attribute, whose histories give the row's steps and gains (the data file is the run's record: a summary.json of
    another job, or of an earlier leg, does not describe them), and fault ''; else, where that attribute is missing,
    no JSON table, or lacks a section or key that a row reads or holds it of the wrong type (a damaged file), that of
    summary.json, and the phrase saying what of the attribute is wrong ("attribute 'config' [kernel] is missing").
    NoJob naming both files and the entries when neither holds the job."""
    cfg = read_attrs(ckpt, hint=HINT).get("config")
    if not (fault := _job_fault(cfg)):
        return cfg, ""
    fault = f"attribute 'config' {fault}"
    summary = read_summary(run_dir)
    cfg = (summary or {}).get("config")
    if not (other := _job_fault(cfg)):
        return cfg, fault
    other = f"{SUMMARY}'s config {other}" if summary is not None else f"no {SUMMARY} holds the job"
    raise NoJob(f"{ckpt}: {fault}, and {other}; {HINT}", phrase=f"{CHECKPOINT} damaged: {fault}, and {other}")


def _job_fault(cfg) -> str:
    """What of job configuration `cfg` keeps a row from reading it: 'is missing or not a JSON table', '[SECTION] is
    missing', '[SECTION] is not a table', '[SECTION].KEY = V is missing or of the wrong type' (CONFIG); '' where it
    holds all a row reads."""
    if not isinstance(cfg, dict):
        return "is missing or not a JSON table"
    for section, keys in CONFIG.items():
        table = cfg.get(section)
        if not isinstance(table, dict):
            return f"[{section}] is {'missing' if table is None else 'not a table'}"
        for key, (types, required) in keys.items():
            value = table.get(key)
            if (value is None and required) or (value is not None and (
                    isinstance(value, bool) or not isinstance(value, types))):
                return f"[{section}].{key} = {value!r} is missing or of the wrong type"
    return ""


def load_row(run_dir, *, name: str | None = None) -> dict:
    """One table row of a flow run: kernel, hyper-parameters and gains recomputed from the histories."""
    if os.path.isfile(os.path.join(os.fspath(run_dir), NN)):
        raise MissingData(f"{run_dir} is a network run (nn.h5); Table 1 compares kernel flows: {HINT}")
    if lost := lost_data(run_dir, ("flow",)):  # a flow run's directory without its data file: a copy
        raise MissingData(lost)
    ckpt = data_file(run_dir, CHECKPOINT, hint=HINT)
    names = ("history/sigma_train", "history/sigma_test")
    h = read_datasets(ckpt, names, hint=HINT, ndim=dict.fromkeys(names, 1))
    cfg, fault = _config(run_dir, ckpt)
    st, se = h["history/sigma_train"], h["history/sigma_test"]
    kernel = cfg["kernel"]
    status = run_state(run_dir).note() or "finished"
    if fault and "attribute 'config'" not in status:  # (its reason may say it already: --resume refuses the file)
        status = f"incomplete: {CHECKPOINT} damaged: {fault} (the row's job is summary.json's)"
    return {"run": name or label(run_dir), "status": status, "kernel": kernel["name"],
            "n_train": cfg["geometry"]["n_train"],
            "n_test": cfg["geometry"].get("n_test"), "dt": cfg["flow"]["dt"], "loss": cfg["flow"].get("loss"),
            "steps": len(st) - 1, "hyper": ", ".join(f"{k}={kernel[k]}" for k in HYPER_KEYS if kernel.get(k) is not None),
            **_gains("train", st, cfg["geometry"]["n_train"]), **_gains("test", se, cfg["geometry"].get("n_test"))}


def _gains(which: str, sigma, n=None) -> dict:
    """{'gain_WHICH': sigma[0] / sigma[-1], 'gain_WHICH_why': ''} of the sigma history of the train or test points;
    a NaN gain where the history is empty or its first or last sigma is NaN (a flow without test points records
    NaN: no reason given, the table's '-' says it), and where that sigma is <= 0 or infinite, with the reason: a
    sigma is a finite positive mean, so such a value is a damaged file (its row's status says so) and its ratio no
    gain (a negative "gain", or a division by 0 and NumPy's warning)."""
    none = {f"gain_{which}": float("nan"), f"gain_{which}_why": ""}
    ends = [(step, float(sigma[step])) for step in (0, len(sigma) - 1)] if len(sigma) else []
    if not ends or any(math.isnan(value) for _, value in ends):
        return none
    for step, value in ends:
        if not (math.isfinite(value) and value > 0):
            why = "not > 0" if value <= 0 else "not finite"
            return {**none, f"gain_{which}_why": f"sigma_{which} {value:g} at step {step}, {why}"}
    # a last sigma at float64 round-off over its n points: the gain is the rounding's, said beside it
    why = roundoff_note(ends[-1][1]) if at_roundoff(ends[-1][1], n) else ""
    return {f"gain_{which}": float(sigma[0] / sigma[-1]), f"gain_{which}_why": why}


def _study_label(path, study_name: str) -> str:
    """A study's name in the table, prefixed by its directory's when they differ: two directories of one job file
    hold studies of one default name (the job file's stem), whose rows must not read alike."""
    path = os.fspath(path)
    if "://" in path:
        return study_name
    where = label(os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else path)  # a journal: its directory's
    return study_name if where == study_name else f"{where}: {study_name}"


def _inside(run_dir, study_dir) -> bool:
    """Whether `run_dir` is a trial's directory of study directory `study_dir` (`jobs.output.enclosing_study`)."""
    from hpcflow.jobs.output import enclosing_study

    study = enclosing_study(run_dir)
    return study is not None and os.path.realpath(study) == os.path.realpath(study_dir)


def load(paths, *, study_name: str | None = None, names=None) -> list:
    """Rows of every flow run directory (one path, or a list; `names`: the rows' names, one per path, else each
    directory's base name); a study contributes its best trial's run directory, which, given itself beside the study
    where it is one of the study's trials (inside its directory), is that row, once."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    damaged = {p: unread_checkpoint(p) for p in paths if not is_study(p)}
    marked = len(paths) > 1 and not all(damaged.get(p) for p in paths)  # alone, the run's reader refuses it
    best, inside = {}, set()  # a study -> its label and best trials' (number, run directory); those inside it
    for p in paths:
        if is_study(p):
            study, base = load_study(p, study_name)
            best[p] = _study_label(p, study.study_name), best_run_dirs(study, base, p)
            inside |= {os.path.realpath(rd) for _, rd in best[p][1] if _inside(rd, base)}
    rows = []
    for p, name in zip(paths, names or [None] * len(paths)):
        if p not in best and len(paths) > 1 and os.path.realpath(run_dir_of(p) or p) in inside:
            continue  # a study's best trial's directory given beside the study: its row is the study's, once
        if marked and damaged.get(p):  # a row with its mark and no numbers: the others are read
            rows.append({"run": name or label(p), "status": damaged[p], "damaged": True})
        elif p in best:
            where, trials = best[p]
            rows += [load_row(rd, name=f"{where} trial {n}") for n, rd in trials]
        elif len(paths) > 1:  # a checkpoint.h5 whose job no file holds: a row with its mark, as a damaged one's
            try:
                rows.append(load_row(p, name=name))
            except NoJob as exc:
                rows.append({"run": name or label(p), "status": f"incomplete: {exc.phrase}", "damaged": True})
        else:
            rows.append(load_row(p, name=name))
    return rows


def _entities(text) -> str:
    """`text` with '&' and the '<' that could open markup as HTML entities: markdown renders inline HTML (a run named
    '<i>' would turn italic) and autolinks ('<a@b.c>'), each a '<' followed by a letter, '/', '!' or '?' or closed
    by a later '>'; another '<' opens nothing and stays, as the terminal shows it ('~1e6 / <=5'). '>' alone starts no
    tag, and stays ('0.4 -> 0.3')."""
    text = str(text).replace("&", "&amp;")
    return re.sub(r"<(?=[A-Za-z/!?]|[^>]*>)", "&lt;", text, flags=re.S)


#: markdown's emphasis, strike-through, link and escape characters, which a table cell holds as entities (a code span
#: stays one: a status cell shows its command as code, and in a name it only changes the font)
_MARKUP = {c: f"&#{ord(c)};" for c in "\\*_~]"}


def one_line(text) -> str:
    """`text` with its line breaks as the two characters \\n (\\r): a break would end a markdown table row (its
    cells spilling into a row of their own), a list item or an emphasis, and a run directory's name may hold one."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


def md_cell(text) -> str:
    """`text` as a markdown table cell: on one line (`one_line`), '|' escaped (it would end the cell), '&', '<'
    (`_entities`) and markdown's markup characters (a run named '_a_' would turn italic, '[a](b)' a link; '_' inside
    a word as in 'relu_ntk', a lone '~' as in '~1e6' and brackets not followed by '(' as in '[kernel]' mark nothing
    and stay) as HTML entities; `md_uncell` reads it back. Its backticks stay: a status cell shows a command as a
    code span (`md_name` for a name, whose backticks are text)."""
    text = one_line(text)
    markup = r"[\\*]|\](?=\()|(?<![^\W_])_|_(?![^\W_])" + ("|~" if text.count("~") > 1 else "")
    return re.sub(markup, lambda m: _MARKUP[m.group()], _entities(text)).replace("|", "\\|")


def md_name(text) -> str:
    """A run's or study's name as a markdown table cell (`md_cell`), its backticks as HTML entities too: a name with
    two of them ('a`b`c') would show a code span."""
    return md_cell(text).replace("`", "&#96;")


def md_uncell(cell: str) -> str:
    """The text of a markdown table cell that `md_cell` wrote."""
    return html.unescape(cell.replace("\\|", "|"))


def md_inline(text) -> str:
    """`text` as literal markdown inline text on one line (`one_line`): HTML entities as `md_cell`, and markdown's
    emphasis, link and code characters backslash-escaped."""
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", _entities(one_line(text)))


def plain_cell(text) -> str:
    """`text` as a table cell printed to a terminal: on one line (`one_line`), '|' escaped (it would end the cell),
    no HTML entities."""
    return one_line(text).replace("|", "\\|")


def markdown(rows, *, entities: bool = True) -> str:
    """The table as GitHub markdown: our run's values, then the paper's, per kernel. `entities`: cells as `md_cell`
    writes them, for a markdown file (table1.md, report.md); False: as `plain_cell`, for the terminal."""
    cell = md_cell if entities else plain_cell
    name = md_name if entities else plain_cell
    head = ("| run | status | kernel | points (ours / paper) | dt (ours) / lr (paper) | loss | kernel parameters (ours) | "
            "paper | steps | gain train | gain test | paper gain train / test |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r.get("damaged"):
            lines.append("| " + " | ".join([name(r["run"]), *map(cell, [r["status"], *["-"] * 10])]) + " |")
            continue
        p = PAPER.get(r["kernel"], {"points": "-", "lr": "-", "hyper": "-", "gains": "-"})
        cells = [r["status"], r["kernel"], f"{r['n_train']} / {p['points']}", f"{r['dt']:g} / {p['lr']}",
                 r["loss"] or "-", r["hyper"] or "-", p["hyper"], str(r["steps"]), _gain(r, "train", ".4g"),
                 _gain(r, "test", ".4g"), p["gains"]]
        lines.append("| " + " | ".join([name(r["run"]), *map(cell, cells)]) + " |")
    return "\n".join(lines) + "\n"


def numbers(rows) -> list:
    """One line per row; a run that did not finish carries its status in parentheses."""
    out = []
    for r in rows:
        if r.get("damaged"):
            out.append(f"{r['run']} ({r['status']}): not read")
            continue
        mark = "" if r["status"] == "finished" else f" ({r['status']})"
        out.append(f"{r['run']} [{r['kernel']}]{mark}: gain train {_gain(r, 'train', '.6g')}, gain test "
                   f"{_gain(r, 'test', '.6g')}")
    return out


def _gain(row: dict, which: str, spec: str) -> str:
    """Row `row`'s train or test gain (`which`) as the table shows it; '-' where there is none (a flow without test
    points has no test gain), as in the report's runs table, with the reason where its sigma is not > 0
    (`_gains`): '- (sigma_train 0 at step 6, not > 0)'."""
    value, why = row[f"gain_{which}"], row.get(f"gain_{which}_why")
    if math.isfinite(value):
        return format(value, spec) + (f" ({why})" if why else "")  # (a sigma at float64 round-off)
    return f"- ({why})" if why else "-"
