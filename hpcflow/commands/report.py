"""`hpcflow report DIR... --out REPORT_DIR`: figures, tables and key numbers of run directories in one report.

A serial tool: under mpiexec/srun rank 0 writes the report while the other ranks wait, then every rank exits with
rank 0's status, each message printed once; without a launcher MPI is not loaded."""

from __future__ import annotations

import math


def _write(args) -> dict:
    from hpcflow.report import build_report
    from hpcflow.resources import work_began

    work_began()  # memory that runs out from here on is the report's, not the start-up's
    return build_report(args.dirs, args.out, study_name=args.study, force=args.force)


def _on_rank_0(work, comm):
    """work() on rank 0 (its value; None elsewhere) while the other ranks wait in a polled barrier, asleep rather
    than spinning in a collective for as long as the report takes."""
    from hpcflow.parallel.comm import arrive_within

    try:
        return work() if comm.Get_rank() == 0 else None
    finally:
        arrive_within(comm, math.inf)


def run(args) -> int:
    from hpcflow.parallel.comm import abort_on_error, check_launch, duplicate, refuse_together
    from hpcflow.resources import check_environment
    from hpcflow.stop_signals import finished, interrupts_end_the_job

    check_launch()
    with abort_on_error() as comm, interrupts_end_the_job("hpcflow report"), duplicate(comm) as waiting:
        refuse_together(check_environment, comm)  # HPCFLOW_* as every command checks them, before any work
        # rank 0's refusal (UserError) is raised by every rank together: one line, every rank exits with its status
        result = refuse_together(lambda: _on_rank_0(lambda: _write(args), waiting or comm), comm)
        finished()  # the report is written: a stop request from here on is ignored
    if result is None:  # the other ranks
        return 0
    args.written = result["html"]  # (named where the lines below cannot be written: `cli.log_refused`)
    for path, reason in result["skipped"]:
        print(f"hpcflow report: skipped {path}: {reason}")
    print(f"hpcflow report: wrote {result['html']} and {result['md']}{replacing(result)}")
    return 0


#: the names of removed files that the output line lists at most (the rest: "...")
LISTED = 3


def replacing(result: dict) -> str:
    """', replacing the earlier report's N files (M removed: a.png, b.png, ...)' where `result` (`build_report`'s)
    replaced an earlier report in --out, its files that this one does not write removed; '' where there was none."""
    from hpcflow.analysis.table1 import one_line

    replaced, removed = result.get("replaced") or [], result.get("removed") or []
    if not replaced:
        return ""
    text = f", replacing the earlier report's {len(replaced)} file{'s' * (len(replaced) != 1)}"
    if removed:
        names = ", ".join(map(one_line, removed[:LISTED])) + (", ..." if len(removed) > LISTED else "")
        text += f" ({len(removed)} removed: {names})"
    return text


def register(sub) -> None:
    p = sub.add_parser("report", help="report of run directories: figures, tables, key numbers (HTML + markdown)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run directories (flow, nn, noise_scan, ...) or tune directories")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for report.html, report.md and PNGs")
    p.add_argument("--force", action="store_true",
                   help="write into an --out that holds other files, which stay (an earlier report is replaced without it); a file there under a name the report writes that no earlier report wrote (as .hpcflow_report.json records) is refused, never replaced")
    p.add_argument("--study", default=None, metavar="NAME", help="study name when a storage holds several")
    p.set_defaults(func=run)
