"""A run named in characters matplotlib's fonts lack (Japanese: DejaVu Sans has no CJK glyphs) is drawn with boxes
for them, without matplotlib's 'Glyph ... missing from font(s)' UserWarning and its source line on stderr, once per
character and drawing (about ten lines for one report); its name is written as it is in the text beside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_report_and_a_script_on_a_cjk_named_run_print_no_glyph_warnings(tmp_path, runs):
    odd = shutil.copytree(runs["flow"], tmp_path / "odd" / "日本 x")
    for args in (["-m", "hpcflow", "report", str(odd), runs["flow_gauss"], "--out", str(tmp_path / "R")],
                 [os.path.join(ROOT, "analysis", "sigma_history.py"), str(odd), "--out", str(tmp_path / "F")]):
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env={**env(), "PYTHONWARNINGS": "default"},
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    md = (tmp_path / "R" / "report.md").read_text(encoding="utf-8")
    assert "日本 x" in md


def test_other_warnings_in_drawing_still_show():
    import warnings

    from hpcflow.analysis.figure import glyphs_quiet

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with glyphs_quiet():
            warnings.warn("Glyph 26085 (\\N{CJK UNIFIED IDEOGRAPH-65E5}) missing from font(s) DejaVu Sans.")
            warnings.warn("something else")
    assert [str(w.message) for w in seen] == ["something else"]


def test_both_wordings_of_the_missing_glyph_warning_are_silenced_and_no_other():
    """matplotlib before 3.9 warns "Glyph N (...) missing from current font.", later releases "... missing from
    font(s) NAME.": both are silenced (setup.cfg allows matplotlib >= 3.7), a warning about anything else is not."""
    import warnings

    from hpcflow.analysis.figure import glyphs_quiet

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with glyphs_quiet():
            warnings.warn("Glyph 26085 (\\N{CJK UNIFIED IDEOGRAPH-65E5}) missing from current font.", UserWarning)
            warnings.warn("Glyph 26085 (\\N{CJK UNIFIED IDEOGRAPH-65E5}) missing from font(s) DejaVu Sans.",
                          RuntimeWarning)
            warnings.warn("Tight layout not applied", UserWarning)
    assert [str(w.message) for w in seen] == ["Tight layout not applied"]
