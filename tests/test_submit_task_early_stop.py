"""A SIGTERM during the start-up of a command that `hpcflow submit` queued (scancel or preemption before the run's
checkpoint handler is set) ends it with its one line and 143, as outside a job. submitit's job environment sets a
SIGTERM handler that only logs the signal ("Bypassing signal"), which the command took for someone else's and left:
the request was dropped and the command went on."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.join(os.path.dirname(__file__), "..")

#: HpcflowTask.run of `hpcflow sample` under submitit's own SIGTERM handler, the signal raised as the command sets
#: its threads (as scancel's would arrive during a start-up); prints the task's status, then whether submitit's
#: SIGTERM handler is set again after it
DRIVER = textwrap.dedent("""
    import signal, sys
    from submitit.core.job_environment import SignalHandler
    import hpcflow.parallel.comm as comm
    from hpcflow.submit.task import HpcflowTask

    handler = SignalHandler(None, None, None)
    signal.signal(signal.SIGTERM, handler.bypass)
    limit = comm.limit_threads

    def limit_threads(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        print("went on", flush=True)
        return limit(*args, **kwargs)

    comm.limit_threads = limit_threads
    status, _ = HpcflowTask().run(["sample", "--n", "100", "--out", sys.argv[1]])
    print("status", status)
    print("after", signal.getsignal(signal.SIGTERM) == handler.bypass)
""")


def test_a_sigterm_in_the_start_up_of_a_queued_command_ends_it_with_143(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_"))}
    env["PYTHONPATH"] = os.path.abspath(ROOT)
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "p.h5")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "went on" not in proc.stdout, (proc.stdout, proc.stderr)
    assert "status 143" in proc.stdout.splitlines(), (proc.stdout, proc.stderr)
    assert "hpcflow sample: stopped by SIGTERM" in proc.stderr.splitlines(), proc.stderr
    assert not (tmp_path / "p.h5").exists()
    # submitit's handler is back for the rest of the job (it writes the task's result)
    assert "after True" in proc.stdout.splitlines(), proc.stdout
