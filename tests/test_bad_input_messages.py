"""Refusals say what is wrong and a fix that works, and the command lines shown to users paste back into a shell as
they were."""

from __future__ import annotations

from pathlib import Path

from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
NN = ROOT / "jobs" / "nn_smoke.toml"
SMALL = ["--set", "geometry.n_train=100", "--set", "geometry.n_test=100", "--set", "flow.steps=2", "--set",
         "checkpoint.every=1", "--set", "clustering.batch_size=50"]


# ---- job files and --set ------------------------------------------------------------------------------------------
def test_a_job_file_with_a_byte_order_mark_reads_as_without_it(tmp_path):
    """Some editors start UTF-8 files with U+FEFF: it said "not valid TOML (Invalid statement (at line 1, column 1))";
    the sbatch templates' choice of command (run or nn) took such a network job for a flow."""
    from hpcflow.submit.requeue import command

    for job in (QUICKSTART, NN):
        marked = tmp_path / job.name
        marked.write_bytes("\ufeff".encode() + job.read_bytes())
        assert registry.load(marked, memory_check=False)[1] == registry.load(job, memory_check=False)[1]
    assert command(str(tmp_path / NN.name), str(tmp_path / "out")) == ["nn"]
