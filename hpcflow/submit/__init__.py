"""Batch submission of hpcflow commands with submitit: Slurm (sbatch/srun) or local subprocesses.

`check` validates a job exactly as the command will before anything is queued; `task` is the submitted
callable (the command line run in-process on every task, requeued with --resume after preemption);
`executor` turns the resource options into a submitit executor and submits.
"""
