"""`hpcflow report DIR... --out REPORT_DIR`: figures, tables and key numbers of run directories in one report."""

from __future__ import annotations


def run(args) -> int:
    from hpcflow.report import build_report

    result = build_report(args.dirs, args.out, study_name=args.study, force=args.force)
    for path, reason in result["skipped"]:
        print(f"hpcflow report: skipped {path}: {reason}")
    print(f"hpcflow report: wrote {result['html']} and {result['md']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="report of run directories: figures, tables, key numbers (HTML + markdown)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run directories (flow, nn, noise_scan, ...) or tune directories")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for report.html, report.md and PNGs")
    p.add_argument("--force", action="store_true",
                   help="write into an --out that holds other files (an earlier report is replaced without it)")
    p.add_argument("--study", default=None, metavar="NAME", help="study name when a storage holds several")
    p.set_defaults(func=run)
