"""`hpcflow submit` where Slurm fails it: sinfo silent (--check says the request went unchecked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcflow.cli import main
from test_submit import JOB, _script, _stand_in_slurm

DOWN = "Unable to contact slurm controller (connect failure)"


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(JOB)
    return p


def _sbatch(bin_dir: Path, *, err: str = "", out: str = "", rc: int = 1) -> None:
    """bin/sbatch: records its call, prints `out` and `err` (shell builtins only: PATH may hold nothing else)."""
    (bin_dir / "sbatch.err").write_text(err)
    (bin_dir / "sbatch.out").write_text(out)
    _script(bin_dir / "sbatch", f'echo "sbatch $*" >> {bin_dir}/called; echo -n "$(<{bin_dir}/sbatch.out)"; '
                                f'echo -n "$(<{bin_dir}/sbatch.err)" >&2; exit {rc}')


@pytest.mark.parametrize("sinfo, reason", [
    (f'echo "slurm_load_partitions: {DOWN}" >&2; exit 1', f"slurm_load_partitions: {DOWN}"),
    ("exec sleep 30", "no answer in 1 s"),
    (None, "not on PATH"),
    ("exit 0", "no partition listed"),
], ids=["controller-down", "no-answer", "missing", "empty"])
def test_check_says_that_the_request_went_unchecked_where_sinfo_does_not_answer(tmp_path, job, monkeypatch, capsys,
                                                                              sinfo, reason):
    """--check said "is valid ... would queue 1 slurm job(s)" with no word that the partition and size were not
    checked: --ntasks-per-node 4 on 2-CPU nodes, 8 GPUs, a partition that does not exist all passed silently. The
    line now says so and why (still exit 0: a login node may lack sinfo), and so does a submission."""
    from hpcflow.submit import capacity

    bin_dir = tmp_path / "bin"
    _stand_in_slurm(bin_dir, monkeypatch, "")
    _sbatch(bin_dir, out="Submitted batch job 42\n", rc=0)
    monkeypatch.setattr(capacity, "TIMEOUT_S", 1, raising=False)  # (before: 20 s, fixed)
    if sinfo is None:
        (bin_dir / "sinfo").unlink()
        monkeypatch.setenv("PATH", str(bin_dir))  # (not the sinfo of this machine's Slurm either)
    else:
        _script(bin_dir / "sinfo", sinfo)
    note = f"not checked against the cluster's partitions because sinfo did not answer ({reason})"
    out = str(tmp_path / "out")
    for options, tasks in ((["--ntasks-per-node", "4"], 4), (["--gpus-per-node", "8"], 8), (["--partition", "nope"], 1)):
        assert main(["submit", str(job), "--out", out, "--executor", "slurm", "--check", *options]) == 0
        said = capsys.readouterr().out
        assert f"of 1 node(s) x {tasks} task(s), {note}: hpcflow run {job} --out {out}" in said, said
    assert main(["submit", str(job), "--out", out, "--executor", "slurm", "--partition", "nope"]) == 0
    said = capsys.readouterr().out
    assert "slurm job 42: hpcflow run" in said and f"hpcflow submit: the request was {note}\n" in said, said
