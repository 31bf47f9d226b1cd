"""A stop request raised where Python cannot pass an exception on (a weakref callback, such as importlib's module-lock
clean-up during an import, or a __del__) is printed by Python as "Exception ignored" and dropped: the command would
go on as if never asked to stop. `stop_signals.kept` (around every command) raises it again in the command's own
code. Each case runs in a process of its own, the signal sent by the process to itself inside the callback."""

import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(__file__)
ROOT = os.path.join(HERE, "..")
SIGNALS = {"SIGINT": 130, "SIGTERM": 143, "SIGUSR1": 138}

#: objects whose weakref callbacks run as `del` drops them: `stopper` sends the signal and lets its handler raise
#: inside the callback; `spinner` then keeps Python code busy in a callback of its own past the resend delay, so that
#: the signal sent again lands in a callback too
CALLBACKS = """
import os, signal, sys, time, weakref
class A: pass
SIG = getattr(signal, sys.argv[1])
def stopper(ref):
    os.kill(os.getpid(), SIG)
    for _ in range(10000): pass  # the handler runs here: its exception is unraisable
def spinner(ref):
    end = time.monotonic() + 0.3
    while time.monotonic() < end: pass
def drop(spin):
    a, b = A(), A()
    refs = [weakref.ref(a, stopper), weakref.ref(b, spinner)]
    del a
    if spin:
        del b
    time.sleep(5)  # the command's own work: the stop request must end it here, not after
    return 0
"""


def _run(script: str, *args: str):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("spin", [False, True])
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_a_stop_request_raised_in_a_weakref_callback_still_stops_the_command(name, spin):
    """`hpcflow info`'s work replaced by a command's (`interrupts_end_the_job`) during which the request is raised in a weakref callback (and, `spin`,
    raised again in another): the command ends within the 5 s its work would take, in one line with 128 + the signal
    (the line and status of a request that came anywhere else), and Python's "Exception ignored" is not printed."""
    script = CALLBACKS + f"""
import time
import hpcflow.cli as cli
from hpcflow.stop_signals import interrupts_end_the_job
def work(args):
    with interrupts_end_the_job("hpcflow info"):  # as each command that runs work
        return drop({spin})
started = time.monotonic()
cli._run = work
status = cli.main(["info"])
print(round(time.monotonic() - started, 3))
sys.exit(status)
"""
    proc = _run(script, name)
    assert proc.returncode == SIGNALS[name], proc.stderr
    said = "interrupted" if name == "SIGINT" else f"stopped by {name}"
    assert proc.stderr == f"hpcflow info: {said}\n", proc.stderr
    assert float(proc.stdout) < 4, proc.stdout  # not after the 5 s sleep: stopped where the work was


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_request_lost_at_the_very_end_of_the_work_still_ends_the_command_in_one_line(name):
    """The request raised in a weakref callback as the command's work returns (no Python code of it left to run):
    the command ends with the request's one line and status, not status 0 followed later by a raw KeyboardInterrupt
    traceback, and nothing arrives after it has returned."""
    script = CALLBACKS + """
import time
import hpcflow.cli as cli
from hpcflow.stop_signals import interrupts_end_the_job
def work(args):
    with interrupts_end_the_job("hpcflow info"):
        a = A()
        refs = [weakref.ref(a, stopper)]
        del a
        return 0
status = cli.main(["info"])
time.sleep(0.3)  # a request still armed would arrive here, outside the command
print("returned", status)
sys.exit(status)
""".replace("cli.main", "setattr(cli, '_run', work) or cli.main")
    proc = _run(script, name)
    said = "interrupted" if name == "SIGINT" else f"stopped by {name}"
    assert (proc.returncode, proc.stderr) == (SIGNALS[name], f"hpcflow info: {said}\n"), proc.stderr
    assert proc.stdout == f"returned {SIGNALS[name]}\n", proc.stdout


def test_an_analysis_script_also_stops(tmp_path):
    """The analysis scripts' entry (`hpcflow.analysis.script.main`) keeps the request too: status 130, one line."""
    script = CALLBACKS + """
import hpcflow.analysis.script as script
script._main = lambda name, argv, description="": drop(False)
sys.exit(script.main("table1", ["x", "--out", "y"]))
"""
    proc = _run(script, "SIGINT")
    assert (proc.returncode, proc.stderr) == (130, "table1: interrupted\n"), proc.stderr


def test_outside_a_command_python_still_reports_other_unraisable_exceptions():
    """Only stop requests are taken: another exception in a callback is still printed by Python's hook, and the
    hook is Python's own again after the block."""
    script = """
import sys, weakref
from hpcflow.stop_signals import kept
class A: pass
def bad(ref):
    raise ValueError("from the callback")
before = sys.unraisablehook
with kept():
    a = A(); r = weakref.ref(a, bad); del a
print(sys.unraisablehook is before)
"""
    proc = _run(script)
    assert proc.returncode == 0 and proc.stdout == "True\n", proc.stderr
    assert "Exception ignored" in proc.stderr and "ValueError: from the callback" in proc.stderr, proc.stderr


def test_a_requeue_exit_raised_in_a_weakref_callback_still_ends_the_command():
    """submitit's requeue (on Slurm's or the local executor's USR2) ends the process with a SystemExit from its
    handler; raised in a weakref callback it was dropped ("Exception ignored"), and the command ran on to its end
    with 0, so the job, requeued, was taken as finished. It now ends the command there with the requeue's status."""
    script = CALLBACKS.replace("SIG = getattr(signal, sys.argv[1])", "SIG = signal.SIGUSR2") + """
import time
import hpcflow.cli as cli
signal.signal(signal.SIGUSR2, lambda *_: sys.exit(144))  # as submitit's local requeue ends the process
started = time.monotonic()
cli._run = lambda args: drop(False)
try:
    cli.main(["info"])
finally:
    print(round(time.monotonic() - started, 3))
"""
    proc = _run(script)
    assert proc.returncode == 144 and "Exception ignored" not in proc.stderr, proc.stderr
    assert float(proc.stdout) < 4, proc.stdout  # not after the 5 s sleep: ended where the work was
