"""A caller that runs a command in its own process (`hpcflow.cli.main(argv)`) and has it stopped by SIGTERM gets its
SIGTERM and SIGUSR1 handlers back as they were before the command, and a program it starts afterwards (mpiexec,
srun, any subprocess) can be stopped by SIGTERM: the stop does not leave the signals ignored (SIG_IGN, which a new
program inherits). Each case runs in a fresh interpreter: the tests' own process keeps its handlers between tests."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_BACKEND="numpy", PYTHONPATH=ROOT)

#: `hpcflow sample` run in-process, a SIGTERM sent to the process as its sampling begins (inside its stop handlers);
#: with "handler", the caller has a SIGUSR1 handler of its own. Prints the status, whether each handler is the one
#: before the command, and the signals a program started afterwards ignores (/proc/PID/status SigIgn).
DRIVER = textwrap.dedent("""
    import os, signal, subprocess, sys
    import hpcflow.resources as resources
    from hpcflow.cli import main

    if sys.argv[2] == "handler":
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    began = resources.work_began

    def work_began(*args, **kwargs):
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # the command's stop handler: its sampling begins
            os.kill(os.getpid(), signal.SIGTERM)  # (its handler runs before kill returns to Python code)
            print("went on", flush=True)
        return began(*args, **kwargs)

    resources.work_began = work_began
    status = main(["sample", "--n", "1000", "--out", sys.argv[1], "--quiet"])
    print("status", status)
    print("kept", all(signal.getsignal(sig) == handler for sig, handler in before.items()))
    child = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
    mask = next(int(line.split()[1], 16) for line in child.splitlines() if line.startswith("SigIgn:"))
    print("ignored", sorted(signal.Signals(sig).name for sig in (signal.SIGTERM, signal.SIGUSR1)
                            if mask >> (int(sig) - 1) & 1))
""")


@pytest.mark.parametrize("caller", ["default", "handler"])
def test_an_in_process_command_stopped_by_sigterm_gives_the_callers_handlers_back(tmp_path, caller):
    out = tmp_path / "points.h5"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(out), caller], capture_output=True, text=True, env=ENV,
                          cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["status 143", "kept True", "ignored []"], (proc.stdout, proc.stderr)
    assert proc.stderr.splitlines() == ["hpcflow sample: stopped by SIGTERM"]
    assert not out.exists()


#: the program (`hpcflow.program.main`, as `python -m hpcflow` runs it) stopped by SIGTERM as its sampling begins;
#: after it returns, SIGUSR1 and SIGTERM again (the request's repeats, late), then once more at the interpreter's
#: exit; prints the signals a program started after the stop ignores, and exits with the command's status
PROGRAM = textwrap.dedent("""
    import atexit, os, signal, subprocess, sys
    import hpcflow.resources as resources
    from hpcflow.program import main

    def late():
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            os.kill(os.getpid(), sig)

    atexit.register(late)  # (runs after the atexit functions the command registers)
    began = resources.work_began

    def work_began(*args, **kwargs):
        handler = signal.getsignal(signal.SIGTERM)
        if handler is not signal.SIG_DFL and not getattr(handler, "early", False):  # the command's stop handler
            os.kill(os.getpid(), signal.SIGTERM)
        return began(*args, **kwargs)

    resources.work_began = work_began
    sys.argv[1:] = ["sample", "--n", "1000", "--out", sys.argv[1], "--quiet"]
    status = main()
    late()
    child = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
    mask = next(int(line.split()[1], 16) for line in child.splitlines() if line.startswith("SigIgn:"))
    print("ignored", sorted(signal.Signals(sig).name for sig in (signal.SIGTERM, signal.SIGUSR1)
                            if mask >> (int(sig) - 1) & 1), flush=True)
    sys.exit(status)
""")


def test_the_stopped_program_ignores_late_repeats_to_its_end_and_a_program_it_starts_does_not(tmp_path):
    out = tmp_path / "points.h5"
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(out)], capture_output=True, text=True, env=ENV,
                          cwd=str(tmp_path), timeout=120)
    assert (proc.returncode, proc.stdout.splitlines()) == (143, ["ignored []"]), (proc.stdout, proc.stderr)
    assert proc.stderr.splitlines() == ["hpcflow sample: stopped by SIGTERM"]
    assert not out.exists()
