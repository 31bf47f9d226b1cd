"""A stand-in `srun` for tests without Slurm: it records its options and runs the command as srun does for one
task; `srun --mpi=list` prints a given listing instead (Slurm's forms: hpcflow.submit.mpi_types)."""

from __future__ import annotations

from pathlib import Path


def stand_in_srun(bin_dir: Path, record: Path, mpi_list: str = "", stream: int = 1) -> Path:
    """bin_dir/srun: appends its --options to `record` (one line a call), drops them and execs the rest; with only
    --mpi=list it writes `mpi_list` to file descriptor `stream` (1 stdout, 2 stderr) and exits 0."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "srun.mpi_list").write_text(mpi_list)
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/bash\nopts=()\nwhile [[ "$1" == --* ]]; do opts+=("$1"); shift; done\n'
                    f'echo "${{opts[*]}}" >> {str(record)!r}\n'
                    f'if [[ "${{opts[*]}}" == --mpi=list && $# == 0 ]]; then cat {str(bin_dir / "srun.mpi_list")!r} '
                    f'>&{stream}; exit 0; fi\nexec "$@"\n')
    srun.chmod(0o755)
    return srun
