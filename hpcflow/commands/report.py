"""`hpcflow report DIR... --out REPORT_DIR`: figures, tables and key numbers of run directories in one report."""

from __future__ import annotations


def run(args) -> int:
    from hpcflow.report import build_report

    check_dirs(args.dirs, args.out, force=args.force)
    result = build_report(args.dirs, args.out, study_name=args.study, force=args.force)
    for path, reason in result["skipped"]:
        print(f"hpcflow report: skipped {path}: {reason}")
    print(f"hpcflow report: wrote {result['html']} and {result['md']}")
    return 0


def check_dirs(dirs, out, *, force: bool = False) -> None:
    """Refuse, before anything is read or written, an --out the report cannot write into, then every given DIR that
    does not exist or is not a directory (a mistyped path) in one line; a directory without a run stays a skip."""
    import os

    from hpcflow.errors import InputFileError
    from hpcflow.report.documents import check_out

    check_out(out, force=force)
    bad = [f"{p}: {'not a directory' if os.path.lexists(p) else 'does not exist'}" for p in dirs if not os.path.isdir(p)]
    if bad:
        raise InputFileError(f"{'; '.join(bad)}; give run or tune directories (check the path)")


def register(sub) -> None:
    p = sub.add_parser("report", help="report of run directories: figures, tables, key numbers (HTML + markdown)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run directories (flow, nn, noise_scan, ...) or tune directories")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for report.html, report.md and PNGs")
    p.add_argument("--force", action="store_true",
                   help="write into an --out that holds other files (an earlier report is replaced without it)")
    p.add_argument("--study", default=None, metavar="NAME", help="study name when a storage holds several")
    p.set_defaults(func=run)
