"""Two stop requests that arrive together (scancel's SIGTERM just after Slurm's --signal=USR1 notice, or the other
order) are one stop, named by the first to arrive: the line that acknowledges it, the request a handler took
(`stop_signals.taken`) and the exit status name that signal, whichever order Python runs the two handlers in (it runs
those of signals pending at once by their numbers, SIGUSR1's before SIGTERM's, which named a SIGTERM-then-SIGUSR1 stop
SIGUSR1, and printed "Signal 15 ignored due to race condition" with a traceback beside the line). Real processes, real
signals: a probe whose main thread is in a long C call (the kernel sums of a step, the sampling of a setup) while both
arrive, and the commands themselves."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_BACKEND="numpy", PYTHONPATH=ROOT)
ORDERS = [("SIGTERM", "SIGUSR1"), ("SIGUSR1", "SIGTERM")]

#: the probe: in mode "stopped" the block of a command without checkpoint (`interrupts_end_the_job`: Stopped, exit
#: 128 + its signal), in "early" the interpreter's start (`record_early`, then the handover), in "requests" a flow's
#: setup (`requests`: the line said at the first request, and `taken`). Each C block ("block" said first) holds the
#: main thread for a second or more, the handlers of the signals that arrive meanwhile waiting for its end.
PROBE = r"""
import signal, sys
from hpcflow import stop_signals as ss

def block():
    print("block", flush=True)
    sum(range(100_000_000))

mode = sys.argv[1]
try:
    if mode == "stopped":
        with ss.interrupts_end_the_job("probe"):
            while True:
                block()
    elif mode == "early":
        ss.record_early()
        block()
        ss.early_handover()
    else:
        with ss.requests(lambda s: f"probe: stop requested by {signal.Signals(s).name}") as asked:
            while not asked.is_set():
                block()
        print("taken", signal.Signals(ss.taken()).name, flush=True)
except ss.Stopped as exc:
    print(f"probe: {exc}", file=sys.stderr, flush=True)
    sys.exit(exc.exit_status)
"""


def _probe(mode: str, order) -> tuple:
    """(status, stdout lines after the blocks, stderr lines) of the probe in `mode`, the signals of `order` sent
    0.1 s apart while its first C block runs."""
    proc = subprocess.Popen([sys.executable, "-c", PROBE, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline() == "block\n"
    time.sleep(0.05)
    for name in order:
        os.kill(proc.pid, getattr(signal, name))
        time.sleep(0.1)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, [line for line in out.splitlines() if line != "block"], err.splitlines()


@pytest.mark.parametrize("mode", ["stopped", "early"])
@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-then-".join(o))
def test_two_requests_in_one_c_call_stop_as_the_first(order, mode):
    status, out, err = _probe(mode, order)
    first = getattr(signal, order[0])
    assert (status, out, err) == (128 + int(first), [], [f"probe: stopped by {order[0]}"])


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-then-".join(o))
def test_two_requests_in_one_c_call_are_said_and_taken_as_the_first(order):
    status, out, err = _probe("requests", order)
    assert (status, out, err) == (0, [f"taken {order[0]}"], [f"probe: stop requested by {order[0]}"])


#: an unclustered flow whose points take seconds to sample: the requests come while it is set up
SLOW_SETUP = """[job]
kind = "flow"

[geometry]
manifold = "fermat"
dim = 3
chart = [0, 1]
n_train = 150000
n_test = 100
seed = 0

[kernel]
name = "delta"

[flow]
dt = 0.1
steps = 3
loss = "ultralocal"

[checkpoint]
every = 1
"""


def _stop_with(proc, ready, order) -> tuple:
    """Once `ready()`, the two signals of `order` sent 0.3 s apart; (status, stderr lines)."""
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, ("ended before the requests", proc.communicate())
    for name in order:
        os.kill(proc.pid, getattr(signal, name))
        time.sleep(0.3)  # (sent at once, the kernel may hand them to two threads that write them either way round)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, err.splitlines()


#: `python -m hpcflow ARGS` as the program runs it (`hpcflow.program.main`), saying "sampling" on stdout as the
#: sampling of its points begins (`hpcflow.geometry.sampling.sample_waves`)
SAYS_SAMPLING = textwrap.dedent("""
    import sys
    import hpcflow.geometry.sampling as sampling
    waves = sampling.sample_waves

    def sample_waves(*args, **kwargs):
        print("sampling", flush=True)
        return waves(*args, **kwargs)

    sampling.sample_waves = sample_waves
    from hpcflow.program import main
    sys.exit(main())
""")


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-then-".join(o))
def test_a_command_without_checkpoint_is_stopped_by_the_first_request(tmp_path, order):
    """`hpcflow sample` (no checkpoint: the request ends it): one line naming the first signal and the status 128 + it,
    that of a process the first signal ended. Sent once its sampling has begun, which takes tens of seconds however
    fast the machine (a chart a twentieth of the points lie in: 6e6 points sampled, 3e5 kept)."""
    out = tmp_path / "points.h5"
    proc = subprocess.Popen([sys.executable, "-c", SAYS_SAMPLING, "sample", "--n", "3e5", "--chart", "0", "1", "--out",
                             str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=str(tmp_path))
    status, err = _stop_with(proc, lambda: proc.stdout.readline() == "sampling\n", order)
    first = getattr(signal, order[0])
    assert (status, err) == (128 + int(first), [f"hpcflow sample: stopped by {order[0]}"])
    assert not out.exists()


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-then-".join(o))
def test_a_flow_stopped_while_set_up_says_the_first_request(tmp_path, order):
    """`hpcflow run` asked to stop while its points are sampled: the line that acknowledges the request names the
    first signal (the stop's checkpoint follows, exit 4 as for one request)."""
    (tmp_path / "job.toml").write_text(SLOW_SETUP)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", str(tmp_path / "job.toml"), "--out", str(out),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=str(tmp_path))
    status, err = _stop_with(proc, lambda: (out / ".hpcflow.lock").exists() and time.sleep(1.0) is None, order)
    assert status == 4, (status, err)
    assert len(err) == 2 and err[0].startswith(f"hpcflow run: stop requested by {order[0]}: the run stops with a "
                                               "checkpoint before its first step"), err
    assert err[1].startswith("hpcflow run: stopped: signal received: checkpoint of step 0 written to"), err
