"""Build a report: detect each directory, run the applicable analysis products, write report.md/.html."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hpcflow.errors import InputFileError, UserError

#: product -> section title, in report order
SECTIONS = {
    "sigma_history": "sigma histories",
    "table1": "Table 1: hyper-parameters and gains",
    "fig2_heatmaps": "Fig. 2: FS distance heatmaps",
    "fig3_noise": "Fig. 3 left: gain versus distance (noise scan)",
    "fig3_scaling": "Fig. 3 right: distance scaling",
    "fig4_ntk": "Fig. 4: metric-NTK evolution",
    "optuna_view": "Optuna study",
}


@dataclass
class Section:
    title: str
    figures: dict  # file name -> Figure
    texts: dict  # file name -> markdown
    lines: list
    captions: dict = field(default_factory=dict)  # figure file name -> the run it shows


@dataclass
class Report:
    infos: list
    sections: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (path, one-line reason)
    provenance: dict = field(default_factory=dict)  # `provenance`: {'version', 'generated', 'inputs'}


def provenance(paths) -> dict:
    """What a report records of how it was made: {'version': hpcflow's, 'generated': now, UTC ('2026-12-06 10:15:02
    UTC'), 'inputs': the inputs as given, each as an absolute path (a storage URL as it is, its password masked)}."""
    from datetime import datetime, timezone

    from hpcflow import __version__
    from hpcflow.tune.storage import masked

    return {"version": __version__, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "inputs": [masked(p) if "://" in p else os.path.abspath(p) for p in map(os.fspath, paths)]}


def _run_product(name, paths, skipped, **kw):
    """PRODUCTS[name] on `paths`; a path whose data is missing is dropped (with its reason) and the rest rerun."""
    from hpcflow.analysis.products import PRODUCTS

    paths = list(paths)
    while paths:
        try:
            return PRODUCTS[name](paths, **kw)
        except UserError as exc:
            bad = []
            for p in paths:
                try:
                    PRODUCTS[name]([p], **kw)
                except UserError as one:
                    bad.append(p)
                    skipped.append((p, f"{SECTIONS[name]}: {' '.join(str(one).split())}"))
            if not bad:  # the paths fail only together: report it once for all
                skipped.append((", ".join(paths), f"{SECTIONS[name]}: {' '.join(str(exc).split())}"))
                return None
            paths = [p for p in paths if p not in bad]
    return None


def collect(paths, *, study_name=None) -> Report:
    """Detect every directory and draw every applicable figure; nothing is written. Each checkpoint is judged once
    (`judging_once`), though its row, Table 1 and the sigma histories each ask for its state, and a live run's data
    is read as it was when first read (`one_snapshot`): its row and its figures show one checkpoint."""
    from hpcflow.analysis.rundir import judging_once, one_snapshot
    from hpcflow.analysis.study import report_advice

    with judging_once(), report_advice(), one_snapshot():  # a study's messages advise what the report takes
        return _collect(paths, study_name=study_name)


def _collect(paths, *, study_name=None) -> Report:
    from hpcflow.analysis.rundir import names, once
    from hpcflow.report.detect import data_file_of, detect

    unique, twice = once(paths)  # a directory given twice (or by two spellings) is reported once
    report = Report([detect(p, study_name=study_name) for p in unique])
    _check_study(report.infos, study_name)  # before any figure is drawn
    report.skipped += [(p, "given twice: reported once") for p in twice]
    report.skipped += [(info.path, info.unreported) for info in report.infos if info.unreported]
    for info, name in zip(report.infos, names(unique)):
        info.name = name
    _trials_by_study(report.infos)
    named = {info.path: info.name for info in report.infos}  # the runs table's names, in every section too
    groups = {name: [] for name in SECTIONS}
    for info in report.infos:
        if info.kind is None:
            report.skipped.append((info.path, info.reason))
            continue
        for name in info.products:
            if name == "table1" and not info.complete:
                continue
            groups[name].append(info.path)
    report.skipped += [(info.path, f"{SECTIONS['fig4_ntk']}: not drawn: {info.fig4}")
                       for info in report.infos if info.fig4]  # a network run whose nn.h5 is gone, damaged or not yet
    # written: its row says so too
    refused = []  # (path, reason) of the runs a product could not read
    prods = {}
    for name in sorted(groups, key=lambda n: n in MARKED_AFTER):  # (a stable sort: SECTIONS' order otherwise)
        if groups[name]:
            marks = {p: f"incomplete: {data_file_of(p)} damaged" for p in _damaged(report.infos, refused)}
            prods[name] = _run_product(name, groups[name], refused, study_name=study_name, names=named,
                                       marks=marks if name in MARKED_AFTER else None)
    report.sections += [Section(SECTIONS[name], prod.figures, prod.texts, prod.lines, prod.captions)
                        for name, prod in sorted(prods.items(), key=lambda kv: list(SECTIONS).index(kv[0]))
                        if prod is not None]
    report.skipped += refused
    _mark_unread(report.infos, refused)
    _silhouettes_only(report)
    return report


def _trials_by_study(infos) -> None:
    """A run directory that lies inside a study directory reported beside it (a trial's, `DIR/trials/NNNN`) is named
    with that study's name, `STUDY/trials/NNNN`: its base name alone ('0003') does not say whose trial it is."""
    from hpcflow.jobs.output import enclosing_study

    studies = {os.path.realpath(i.path): i.name for i in infos if i.kind == "study"}
    for info in infos:
        study = enclosing_study(info.path) if info.kind not in (None, "study") and studies else None
        if study is not None and os.path.realpath(study) in studies:
            inside = os.path.relpath(os.path.realpath(info.path), os.path.realpath(study))
            info.name = f"{studies[os.path.realpath(study)]}/{inside}"


def _check_study(infos, study_name) -> None:
    """UserError where --study `study_name` names a study that none of the study directories among `infos` holds:
    each one's storage holds no study of that name (`hpcflow.analysis.study.NoSuchStudy`), or its study.json names
    another study (`study.other_study`: skipped beside a directory that holds it), each said with its path."""
    studies = [i for i in infos if i.kind == "study" or i.other_study]
    if study_name is None or not studies or not all(i.other_study or i.summary.get("no_such_study") for i in studies):
        return
    raise UserError(f"--study {study_name}: " + "; ".join(f"{i.path}: {i.other_study}" if i.other_study else
                                                        i.summary["study_error"] for i in studies))


def _silhouettes_only(report) -> None:
    """The silhouettes of the complete clustering runs made with [quality].fig2 = false (no fig2_distances.h5: their
    scores are in summary.json alone) as lines of the Fig. 2 section, added in its place where no run draws it."""
    from hpcflow.analysis import fig2

    lines = []
    for info in report.infos:
        if info.kind == "clustering" and info.complete and not info.products:
            scores = {k: float(v) for k, v in info.summary.items() if k.startswith("silhouette_")
                      and isinstance(v, (int, float)) and not isinstance(v, bool)}
            lines += [f"{info.name}: {line} (summary.json; no heatmaps: [quality].fig2 = false)"
                      for line in fig2.numbers({"silhouette": scores, **fig2.sampled(info.summary, scores)})]
    if not lines:
        return
    title = SECTIONS["fig2_heatmaps"]
    section = next((sec for sec in report.sections if sec.title == title), None)
    if section is None:
        order = list(SECTIONS.values())
        before = order[:order.index(title)]
        at = sum(sec.title in before for sec in report.sections)
        section = Section(title, {}, {}, [])
        report.sections.insert(at, section)
    section.lines += lines


#: the products drawn after the others, whose legends mark a run the others found damaged (`_damaged`), as its row
MARKED_AFTER = ("sigma_history",)


def _damaged(infos, refused) -> dict:
    """{path: the first product's reason} of the runs judged complete whose data a product refused (`refused`:
    (path, reason)), but for want of torch, which is no damage (`_mark_unread`)."""
    from hpcflow.analysis.rundir import TORCH_NEEDED

    why = {}
    for path, reason in refused:
        if TORCH_NEEDED not in reason:
            why.setdefault(path, reason)
    return {info.path: why[info.path] for info in infos
            if info.kind not in (None, "study") and info.complete and info.path in why}


def _mark_unread(infos, refused) -> None:
    """A run judged complete whose data a product refused (a noise scan's non-finite gain, an empty history) is
    damaged, not finished: its row says so with the product's reason, as a damaged checkpoint's does, and the fix
    once (a network's damaged nn.h5: `nn_damaged_fix`, written again from its checkpoint.pt where that holds the
    whole training); a history left unread for want of torch is no damage (the skipped list says what to install)."""
    from hpcflow.analysis.rundir import NN, nn_damaged_fix, rerun_fix
    from hpcflow.report.detect import data_file_of

    why = _damaged(infos, refused)
    for info in infos:
        if info.path in why:
            info.complete, info.status = False, ""
            name = data_file_of(info.path)
            fix = nn_damaged_fix(info.path) if name == NN else rerun_fix(info.path)
            info.reason = f"{name} damaged ({why[info.path].removesuffix(f'; {fix}')}); {fix}"


def build_report(paths, out, *, study_name=None, force: bool = False) -> dict:
    """Write OUT/report.md, OUT/report.html and the PNGs; {'html', 'md', 'skipped'}.

    UserError (nothing written) when --study names a study that none of the studies given holds (`_check_study`: a
    study directory whose study.json names another study does not hold it; said before any figure is drawn), or no
    directory holds anything to report (no figure, no run without figures to list; a study whose storage reads and
    holds a trial is listed, by its trials' states, though it has no completed trial to draw; an empty study is not;
    a damaged run is a row beside others, and alone the one-line error that names its file, also a run of a kind
    without figures, local_limit, whose local_limit.h5 is damaged), or
    --out holds other files than an earlier report and not force; InputFileError naming every path that does not
    exist or is not a directory (a mistyped path), after --out's check and before anything is read, then UserError for
    --study where no directory is a study, then MissingDependencyError without matplotlib. A directory without a run
    stays a skip. A study's storage (its journal file or URL) given beside its tune directory, or two directories
    of one study, are that study once: the input left out is listed with the one it is read as
    (`hpcflow.analysis.study.merged_studies`).
    --out is locked (`hpcflow.jobs.outlock`, as a run locks its directory) from after its check to the end: another
    report (or a run) writing there meanwhile is refused (OutdirBusy, exit 2, naming its pid), never mixed in.
    """
    from hpcflow.analysis.rundir import out_locked
    from hpcflow.report import documents

    documents.check_out(out, force=force)  # (refused before the lock creates it)
    with out_locked(out, "hpcflow report"):  # another report, script or run writing there: OutdirBusy, exit 2
        return _build_report(paths, out, study_name=study_name, force=force)


def _build_report(paths, out, *, study_name=None, force: bool = False) -> dict:
    """`build_report` while holding --out's lock."""
    from hpcflow.analysis.figure import require_matplotlib
    from hpcflow.analysis.rundir import CHECKPOINT_UNREADABLE, check_access, is_checkpoint_unreadable
    from hpcflow.analysis.study import check_study_flag, merged_studies
    from hpcflow.report import documents

    documents.check_out(out, force=force)  # again, held: what another report wrote before the lock was taken
    made = provenance(paths)
    paths, merged = merged_studies(paths, study_name)  # a tune directory's storage given too: the same study
    bad = [p for p in map(os.fspath, paths) if not os.path.isdir(p)]
    if bad:
        raise InputFileError(_not_directories(bad))
    check_access(paths)  # a directory or file this user may not read: its chmod, before any work
    check_study_flag(paths, study_name, inputs="a tune directory")
    require_matplotlib()  # a report draws its runs' figures
    report = collect(paths, study_name=study_name)
    report.skipped += merged
    report.provenance = made
    studies = [i for i in report.infos if i.kind == "study"]
    empty = [(i.path, "the study holds no trial") for i in studies if i.summary.get("study", {}).get("trials") == 0]
    unreadable = {i.path: i.summary["study_error"] for i in studies if "study_error" in i.summary}
    report.skipped = [(p, r) for p, r in report.skipped if not _says(r, unreadable.get(p))]  # its row says it: once
    rows_alone = [i for i in report.infos if i.kind is not None and not i.products]  # (local_limit: no figure)
    damaged_rows = [(i.path, i.damaged) for i in rows_alone if i.damaged]  # refused alone, as a damaged figure's run
    if not report.sections and not any(i.kind is not None and ((not i.products and not i.damaged) or (
            "study" in i.summary and i.summary["study"].get("trials"))) for i in report.infos):
        # a study that reads and holds a trial is a row: trials by state
        reasons = "; ".join(r if r.startswith(f"{p}: ") else f"{p}: {r}"  # a reason naming its path: once
                            for p, r in [*report.skipped, *unreadable.items(), *empty, *damaged_rows])
        raise UserError(f"nothing to report: {reasons}")
    unread = {i.path: i.reason for i in report.infos if is_checkpoint_unreadable(i.reason)}  # its row says so
    report.skipped = [(p, r) for p, r in report.skipped if p not in unread]
    # a damaged one (not one in use) listed as a run with a damaged nn.h5 or noise_scan.h5 is: once, as not drawn
    report.skipped += [(p, f"{SECTIONS['sigma_history']}: not drawn: {why}") for p, why in unread.items()
                       if why.startswith(f"{CHECKPOINT_UNREADABLE}; ")]
    return documents.write(report, out)


def _says(reason: str, error: str | None) -> bool:
    """Whether a product's skip `reason` ('SECTION: message') is a study's `error` that its row already says (a
    damaged storage, read by Table 1 and the Optuna section alike)."""
    return error is not None and any(reason == f"{title}: {error}" for title in SECTIONS.values())


def _not_directories(bad) -> str:
    """The refusal of report inputs `bad` that are not directories: a study given by its storage (a URL, a journal
    or SQLite file) is told what the report and analysis/optuna_view.py take; a mistyped path to check."""
    from hpcflow.analysis.study import is_study
    from hpcflow.tune.storage import is_sqlite_file, masked

    blank = [p for p in bad if not p.strip()]  # "" (an unset variable's $DIR) or spaces: no path at all
    said = [f"a run directory argument (DIR) is {'empty' if not p else f'blank ({p!r})'}" for p in blank]
    said += [f"{masked(p)}: " + ("a storage URL, not a directory" if "://" in p else "not a directory"
                                 if os.path.lexists(p) else "does not exist") for p in bad if p.strip()]
    study = [masked(p) for p in bad if "://" in p or os.path.isfile(p) and (is_study(p) or is_sqlite_file(p))]
    if len(blank) == len(bad):
        return f"{'; '.join(said)}; give run or tune directories, e.g. hpcflow report runs/x --out REPORT_DIR"
    if study:
        return (f"{'; '.join(said)}; hpcflow report reads run and tune directories: give the study's tune "
                f"directory, or draw the study from its storage with analysis/optuna_view.py {study[0]}")
    return f"{'; '.join(said)}; give run or tune directories (check the path)"
