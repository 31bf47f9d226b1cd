"""An --out given with a trailing slash (`--out DIR/`, as a shell's completion writes it) is named without a doubled
separator in what the commands print: `hpcflow run` and `hpcflow nn` said "wrote DIR//summary.json"."""

import pytest

from hpcflow.cli import main
from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING
from test_late_stop_signal import FLOW_JOB
from test_tune_records import JOB as TUNE_JOB


def _said(capsys, argv):
    assert main(argv) == 0
    io = capsys.readouterr()
    return io.out + io.err


@pytest.mark.parametrize("verb, text", [("run", FLOW_JOB), ("nn", NN_POINTS + SMALL_NET + TINY_TRAINING)])
def test_a_run_names_its_summary_in_an_out_with_a_trailing_slash_cleanly(tmp_path, capsys, monkeypatch, verb, text):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    job = tmp_path / "job.toml"
    job.write_text(text)
    said = _said(capsys, [verb, str(job), "--out", f"{tmp_path / 'out'}/", "--quiet"])
    assert f"hpcflow {verb}: wrote {tmp_path / 'out' / 'summary.json'} (" in said, said
    assert "//" not in said, said
    # the report and the study of such a directory, each into an --out with a trailing slash
    said = _said(capsys, ["report", f"{tmp_path / 'out'}/", "--out", f"{tmp_path / 'report'}/"])
    assert f"wrote {tmp_path / 'report' / 'report.html'}" in said and "//" not in said, said


def test_a_study_names_best_toml_in_an_out_with_a_trailing_slash_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    job = tmp_path / "tiny.toml"
    job.write_text(TUNE_JOB)
    said = _said(capsys, ["tune", str(job), "--trials", "1", "--out", f"{tmp_path / 'study'}/", "--quiet"])
    assert f"wrote {tmp_path / 'study' / 'best.toml'}" in said and "//" not in said, said
