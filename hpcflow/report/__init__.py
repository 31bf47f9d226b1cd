"""`hpcflow report`: detect what run directories hold, draw the applicable figures and tables of
hpcflow.analysis, and write one self-contained report.html (images embedded) and report.md with the PNGs."""

from hpcflow.report.build import build_report

__all__ = ["build_report"]
