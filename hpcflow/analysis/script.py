"""The command line shared by the scripts in analysis/: `python analysis/NAME.py RUN_DIR... --out FIGDIR`.

All inputs are read and every figure is drawn before anything is written; a directory that lacks the data
gives a one-line error naming the missing file or dataset and exit status 2.
"""

from __future__ import annotations

import os
import sys

from hpcflow.errors import UserError, WriteFailed


#: each script's inputs: its positional's metavar and help
INPUTS = {
    "fig2_heatmaps": ("RUN_DIR", "clustering run directories (or their fig2_distances.h5 itself)"),
    "fig3_noise": ("RUN_DIR", "noise_scan run directories (or their noise_scan.h5 itself)"),
    "fig3_scaling": ("RUN_DIR", "distance_scaling run directories (or their distances.h5 itself)"),
    "fig4_ntk": ("RUN_DIR", "nn run directories (or their nn.h5 itself)"),
    "sigma_history": ("RUN_DIR", "flow or nn run directories (or their checkpoint.h5, nn.h5 or checkpoint.pt itself)"),
    "table1": ("RUN_DIR_OR_STUDY", "flow run directories (or their checkpoint.h5 itself), or studies, each giving its "
               "best trial's run: tune directories, journal files or storage URLs (sqlite:///...)"),
    "optuna_view": ("STUDY_DIR_OR_URL", "studies: tune directories (holding study.journal or study.json), journal "
                    "files or storage URLs (sqlite:///...)"),
}

#: the scripts whose inputs may be studies: they alone take --study
STUDY_READERS = ("table1", "optuna_view")

#: PNG resolutions the scripts accept: at 1200 the widest figure (13.5 in) is 16200 pixels wide
MIN_DPI, MAX_DPI = 10, 1200


def check_out(out) -> str:
    """Refuse (OutputPathError, before any work) an output directory that cannot be one (`writable_dir`)."""
    from hpcflow.jobs.output import writable_dir

    return writable_dir(out)


def make_dir(out, *, flag: str = "--out") -> None:
    """os.makedirs(out) with an OSError (a race, a read-only file system) as a one-line UserError."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {flag} {out} ({exc.strerror}); choose a writable directory") from None


def check_names(out, names, *, flag: str = "--out") -> None:
    """Refuse (OutputPathError) an output file name in directory `out` that is a directory there, before anything is
    written (a write would fail on it half-way, after the files before it)."""
    from hpcflow.errors import OutputPathError

    for name in names:
        target = os.path.join(out, name)
        if os.path.isdir(target) and not os.path.islink(target):
            raise OutputPathError(f"{flag} {out}: {target} is a directory where a file is to be written; remove it or "
                                  f"choose another {flag}")


def write(product, out, *, dpi: int = 110, name: str = "", force: bool = False) -> list:
    """Write a Product's PNGs (at `dpi`) and text files into directory `out`; the paths written. Refused
    (OutputPathError) before anything is written where one of their names is a directory (`check_names`), and, for
    script `name`, where `out` holds an output of an earlier call of it or a file under a name it writes, unless
    `force`; with `force` still where such a file is not one it wrote (`owned`: its record DIR/.hpcflow_NAME.json).
    Under `force` its earlier files that this call does not write are removed; other files stay."""
    from hpcflow.analysis.figure import save_png
    from hpcflow.analysis.rundir import shown
    from hpcflow.analysis.owned import listed, own, record_name, refuse_not_own, unlisted, write_owned
    from hpcflow.errors import OutputPathError

    names = [*product.figures, *product.texts]
    record = record_name(name or "analysis")
    check_names(out, [*names, record])
    tool = f"{name}.py" if name else "this script"
    mine = listed(out, record)
    if mine is None and os.path.lexists(os.path.join(out, record)):  # a record that cannot be read lists nothing
        taken = [n for n in names if os.path.lexists(os.path.join(out, n))]
        if taken:
            raise OutputPathError(f"--out {out}: {os.path.join(out, taken[0])} exists, and {record} there, the record "
                                  f"of the files {tool} wrote, cannot be read (not the JSON list it writes), so it is "
                                  "not known as one of them (--force replaces only files it wrote); move it away or "
                                  "choose another --out")
    if force:
        refuse_not_own(out, names, record, tool=tool)
    else:
        earlier = own(out, mine or {})
        there = [n for n in [*earlier, *names] if os.path.lexists(os.path.join(out, n))]
        theirs = [n for n in there if n not in (mine or {})]  # --force would refuse these: named first
        if theirs:
            raise OutputPathError(f"--out {out}: {os.path.join(out, theirs[0])} exists and was not written by {tool} "
                                  f"({unlisted(out, record)}; --force replaces only files it wrote): move it "
                                  "away or choose another --out")
        if there:  # written by it (in `earlier`, or edited since): --force replaces it
            whose = f"an earlier {tool} output" + ("" if there[0] in earlier else ", changed since")
            raise OutputPathError(f"--out {out}: {os.path.join(out, there[0])} exists ({whose}); pass --force to "
                                  "replace the earlier outputs of this script, or choose another --out")
    written = []

    def write_files(open_):  # (each file renamed into place once all are written: `owned.write_owned`)
        written.extend(save_png(fig, os.path.join(out, n), dpi=dpi, opener=open_) for n, fig in product.figures.items())
        for n, text in product.texts.items():
            with open_(os.path.join(out, n), "w") as fh:
                fh.write(shown(text))  # a path's bytes that are no UTF-8 as \xff
            written.append(os.path.join(out, n))

    write_owned(out, record, names, write_files)
    return written


def main(name: str, argv=None, *, description: str = "") -> int:
    """The script `name`: its files are written before its table and numbers are printed, and a reader of those that
    goes away (`table1.py ... | head -1`) ends neither early nor with a traceback. A write the file system refuses
    (WriteFailed), Ctrl-C and SIGTERM/SIGUSR1 end it as they end `hpcflow report`: one line, status 5, 130 or 128 +
    the signal, and an --out it created removed (`owned.write_owned`)."""
    import signal

    from hpcflow.stop_signals import interrupted, interrupts_again, interrupts_end_the_job, kept

    ctrl_c = signal.getsignal(signal.SIGINT)
    from hpcflow.cli import log_refused, thread_environment

    threads = None if argv is None else thread_environment()  # an in-process call: the caller's, given back

    try:
        with kept(), interrupts_end_the_job(name):
            return log_refused(name, _main(name, argv, description=description))
    except KeyboardInterrupt as exc:  # what was written is whole (atomic writes remove their temporaries)
        return interrupted(name, exc)
    finally:
        if argv is not None:  # an in-process call: the caller's Ctrl-C back (`stop_signals.finished` ignores it)
            interrupts_again(ctrl_c)
            thread_environment(threads)


def _main(name: str, argv, *, description: str) -> int:
    from hpcflow.analysis.figure import require_matplotlib
    from hpcflow.analysis.products import TABLES
    from hpcflow.analysis.rundir import check_access, set_aside_note
    from hpcflow.analysis.study import check_study_flag, other_study
    from hpcflow.cli import _Parser, survive_closed_pipes  # argparse's errors in one line (exit 2), as hpcflow's
    from hpcflow.resources import check_environment
    from hpcflow.stop_signals import finished

    survive_closed_pipes()
    p = _Parser(prog=f"{name}.py", description=description)
    metavar, what = INPUTS[name]
    p.add_argument("paths", nargs="+", metavar=metavar, help=what)
    p.add_argument("--out", required=True, metavar="FIGDIR", help="directory for the figures (created)")
    p.add_argument("--force", action="store_true",
                   help=f"replace this script's earlier outputs in FIGDIR (recorded in FIGDIR/.hpcflow_{name}.json; "
                        "those this call does not write are removed); a file of another's under a name it writes is "
                        "still refused")
    if name in STUDY_READERS:
        p.add_argument("--study", default=None, metavar="NAME", help="study name when a storage holds several")
    if name == "fig4_ntk":
        from hpcflow.analysis.fig4 import SPECTRA

        p.add_argument("--spectrum", choices=tuple(SPECTRA), default=None,
                       help="the metric-NTK spectrum drawn: train_test, the paper's statistic (the eigenvalues of the "
                            "train x test blocks, their real parts), or train (the symmetrised train x train blocks); "
                            "default: train_test where nn.h5 holds it, else train")
    if name not in TABLES:  # a table script draws no figure: --dpi would be accepted and do nothing
        p.add_argument("--dpi", type=int, default=110, help=f"PNG resolution, {MIN_DPI} to {MAX_DPI} (default 110)")
    args = p.parse_args(argv)
    dpi = getattr(args, "dpi", 110)
    try:
        check_environment()  # HPCFLOW_* and the BLAS/OpenMP thread counts as every command checks them, before any work
        check_out(args.out)
        check_access(args.paths)  # a directory or file this user may not read: its chmod, before any work
        check_study_flag(args.paths, getattr(args, "study", None))
        for path in args.paths:  # another study's directory would show the trials of --study's under its name
            if other := other_study(path, getattr(args, "study", None)):
                raise UserError(f"{path}: {other}")
        for path in args.paths:  # an earlier run's files that a killed --force run set aside are not read: said
            if note := set_aside_note(path):
                print(f"{name}: warning: {note}", file=sys.stderr, flush=True)
        if not MIN_DPI <= dpi <= MAX_DPI:  # beyond MAX_DPI a figure's pixels outgrow memory (a traceback)
            raise UserError(f"--dpi {dpi} is out of range; use {MIN_DPI} to {MAX_DPI} (default 110)")
        if name not in TABLES:
            require_matplotlib()
        from hpcflow.analysis.rundir import out_locked

        with out_locked(args.out, f"{name}.py"):  # another writer there (a script, a report, a run): OutdirBusy
            product, written = _made(name, args, dpi)
        finished()  # the files are written: a stop request from here on is ignored, as after hpcflow report's
        for file, text in product.texts.items():  # as a terminal reads it: HTML entities only in the files
            print(product.printed.get(file, text), end="")
        for line in product.lines:
            print(line)
        for path in written:
            print(f"wrote {path}")
    except (UserError, WriteFailed) as exc:
        print(f"{name}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_status
    return 0


def _made(name: str, args, dpi: int):
    """(the Product of script `name`'s inputs, the paths written into --out), read, drawn and written under its
    lock (`out_locked`)."""
    from hpcflow.analysis.products import PRODUCTS
    from hpcflow.analysis.rundir import once, one_snapshot
    from hpcflow.analysis.study import merged_studies

    # read once, as `hpcflow report` reports a directory given twice once; a run's directory and data file are one
    # run, named so alike (sigma_history reads a run's files together itself: `histories.by_run`)
    paths, twice = once(args.paths, by_run=True, grouped=name == "sigma_history")
    for path in twice:
        print(f"{name}: {path} given twice: read once", file=sys.stderr)
    if name in STUDY_READERS:  # a tune directory and its storage given too are one study
        paths, merged = merged_studies(paths, getattr(args, "study", None))
        for path, why in merged:
            print(f"{name}: {path}: {why}", file=sys.stderr)
    with one_snapshot():  # a live run read as it was when first read (`rundir.one_snapshot`)
        chosen = {"spectrum": args.spectrum} if name == "fig4_ntk" else {}  # (the one product that takes it)
        product = PRODUCTS[name](paths, study_name=getattr(args, "study", None), **chosen)
    return product, write(product, args.out, dpi=dpi, name=name, force=args.force)
