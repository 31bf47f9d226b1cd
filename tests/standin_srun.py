"""A stand-in `srun` for tests without Slurm: it records its options and runs the command as srun does for one
task; `srun --mpi=list` prints a given listing instead (Slurm's forms: hpcflow.submit.mpi_types)."""

from __future__ import annotations

from pathlib import Path


def stand_in_srun(bin_dir: Path, record: Path, mpi_list: str = "", stream: int = 1) -> Path:
    """bin_dir/srun: appends its --options to `record` (one line a call), drops them and runs the rest as one task
    (its pid in bin_dir/srun.task), passing a SIGUSR1 on to every process of it, and exits with its status; with only
    --mpi=list it writes `mpi_list` to file descriptor `stream` (1 stdout, 2 stderr) and exits 0."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "srun.mpi_list").write_text(mpi_list)
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/bash\nopts=()\nwhile [[ "$1" == --* ]]; do opts+=("$1"); shift; done\n'
                    f'echo "${{opts[*]}}" >> {str(record)!r}\n'
                    f'if [[ "${{opts[*]}}" == --mpi=list && $# == 0 ]]; then cat {str(bin_dir / "srun.mpi_list")!r} '
                    f'>&{stream}; exit 0; fi\n'
                    # the task in a process group of its own, which a SIGUSR1 to srun reaches whole (as Slurm signals
                    # every process of a step); its pid in srun.task
                    f'setsid "$@" & task=$!\necho $task > {str(bin_dir / "srun.task")!r}\n'
                    'trap \'kill -USR1 -- -$task 2>/dev/null\' USR1\n'
                    'while kill -0 $task 2>/dev/null; do wait $task; done\nwait $task\n')
    srun.chmod(0o755)
    return srun
