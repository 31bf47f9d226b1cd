"""pyflakes over the package, its tests, benchmarks, analysis scripts and job helpers: undefined names (a NameError
waiting on a rarely taken branch), unused imports and names, redefinitions, f-strings without placeholders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("hpcflow", "tests", "benchmarks", "analysis", "jobs", "slurm")


def test_pyflakes_finds_nothing():
    r = subprocess.run([sys.executable, "-m", "pyflakes", *CHECKED], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and not r.stdout, r.stdout + r.stderr


def test_pyflakes_reports_an_undefined_name(tmp_path):
    """The check above would see a real finding: pyflakes runs, and a NameError-to-be fails it."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    return undefined_name\n")
    r = subprocess.run([sys.executable, "-m", "pyflakes", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "undefined name 'undefined_name'" in r.stdout
