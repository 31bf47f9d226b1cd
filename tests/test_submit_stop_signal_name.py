"""A `hpcflow submit` job's run stopped during its setup by submitit's time-limit signal (`scancel --signal=USR2
JOBID`, as the README advises; Slurm's --signal=USR2@120) says the signal it received: "stop requested by SIGUSR2".
The task handed the request to the run's checkpoint handler as SIGUSR1, and the line named SIGUSR1, which nobody
sent."""

import os
import subprocess
import sys
import textwrap

from jobtexts import DELTA_FLOW

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

JOB = """[job]
kind = "flow"
[geometry]
n_train = 90
n_test = 50
seed = 4
""" + DELTA_FLOW

#: HpcflowTask.run of `hpcflow run` with submitit's USR2 handler (a stand-in that says it requeues), the signal
#: raised as the run's points are sampled (its setup, before its checkpoint writer exists)
DRIVER = textwrap.dedent("""
    import signal, sys
    import hpcflow.experiments.flow_job as flow_job
    from hpcflow.submit.task import HpcflowTask

    signal.signal(signal.SIGUSR2, lambda *_: print("submitit requeues", flush=True))
    distribute = flow_job.distribute

    def signalled(*args, **kwargs):
        signal.raise_signal(signal.SIGUSR2)
        return distribute(*args, **kwargs)

    flow_job.distribute = signalled
    status, requeued = HpcflowTask().run(["run", sys.argv[1], "--out", sys.argv[2], "--quiet"])
    print("status", status, "requeued", requeued)
""")


def test_the_setup_stop_line_names_the_signal_the_task_received(tmp_path):
    (tmp_path / "job.toml").write_text(JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_", "PMI"))}
    env.update(PYTHONPATH=os.path.abspath(ROOT), HPCFLOW_THREADS="1")
    r = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "job.toml"), str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == ["submitit requeues", "status 4 requeued True"], (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert any(line.startswith("hpcflow run: stop requested by SIGUSR2: the run stops with a checkpoint before its "
                               "first step") for line in lines), r.stderr
    assert "SIGUSR1" not in r.stderr, r.stderr
