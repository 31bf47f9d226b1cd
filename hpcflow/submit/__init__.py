"""Batch submission of hpcflow commands with submitit: Slurm (sbatch/srun) or local subprocesses.

`check` validates a job exactly as the command will before anything is queued; `capacity` refuses a request that
no node of its partition can hold (sinfo), `mpi_types` a --mpi type the cluster's srun lacks; `task` is the
submitted callable (the command line run in-process on every task, requeued with --resume after preemption);
`executor` turns the resource options into a submitit executor, submits and waits (`local`: the local executor's
jobs, in their own process groups, stopped by `hpcflow submit` and said killed by a signal); `sbatch_error` says
what a failed sbatch means (nothing queued: one line, its files removed; or the job's fate unknown); `pending` says
which pending reasons end that wait. The MPI and GPU sbatch templates use `requeue` (which command, with --resume
or not) and `step` (their run's step: SIGUSR1 passed on, requeued on exit status 4), and so does the tune array
template (`step` for its worker); every template checks HPCFLOW_THREADS (and the MPI and GPU ones HPCFLOW_MPI) with
`template_env`.
"""
