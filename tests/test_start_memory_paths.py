"""Memory that runs out while hpcflow loads its modules and libraries, wherever in the start-up (its own modules, the
commands' modules, HDF5's initialization, the error path itself): one line and status 2, with nothing after it; and
the pieces that decide so (the loader's lines, CPython's SystemError of an import under a limit, the bare line)."""

import configparser
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from hpcflow import cli, errors, resources
from test_parallel import mpiexec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
QUICKSTART = os.path.join(ROOT, "jobs", "quickstart.toml")
KiB = 2**10

#: runs the program as its console script does (`python -m hpcflow` with "runpy") with its address space limited to
#: what it has mapped once NumPy is imported plus argv[1] bytes: the limit falls inside hpcflow's own imports, the
#: commands' modules, h5py's and HDF5's init or the command, as argv[1] grows
DRIVER = textwrap.dedent("""
    import resource, runpy, sys
    extra, how = int(sys.argv.pop(1)), sys.argv.pop(1)
    import numpy
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra, resource.getrlimit(resource.RLIMIT_AS)[1]))
    sys.argv = ["hpcflow"] + sys.argv[1:]
    if how == "runpy":
        runpy.run_module("hpcflow", run_name="__main__", alter_sys=True)
    from hpcflow.program import main
    sys.exit(main())
""")


def test_the_console_script_is_the_program_that_says_it():
    """The `hpcflow` console script runs `hpcflow.program.main`, as `python -m hpcflow` does: the start-up's lines
    of memory that ran out while hpcflow.cli was imported are the console script's too."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    scripts = dict(line.split("=", 1) for line in config["options.entry_points"]["console_scripts"].split("\n")
                   if line.strip())
    assert {k.strip(): v.strip() for k, v in scripts.items()} == {"hpcflow": "hpcflow.program:main"}


@pytest.mark.parametrize("how", ["script", "runpy"])
def test_memory_that_runs_out_anywhere_in_the_start_up_is_one_line_and_status_2(tmp_path, how):
    """From hpcflow's first module to its check, at every limit: status 2 and the one line, or a start (0); before,
    the commands' modules (imported to parse the arguments), hpcflow.cli's own import in the console script and a
    second MemoryError while the line was made ended in a traceback (status 1), and a failed HDF5 initialization
    printed "HDF5: infinite loop closing library" after it."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", HPCFLOW_IGNORE_MEMORY_CHECK="1")
    seen = {}
    for extra in range(0, 9216 * KiB, 256 * KiB):
        proc = subprocess.run([sys.executable, str(driver), str(extra), how, "run", QUICKSTART, "--out",
                               str(tmp_path / "o"), "--check"], capture_output=True, text=True, env=env, timeout=120)
        seen[extra // KiB] = proc.returncode
        lines = proc.stderr.splitlines()
        assert proc.returncode in (0, 2), (extra // KiB, proc.stderr[-3000:])
        if proc.returncode == 2:
            assert len(lines) == 1 and lines[0].startswith("hpcflow"), (extra // KiB, proc.stderr[-3000:])
            assert "out of memory" in lines[0] and "nothing was run" in lines[0], lines[0]
            assert "mid-run" not in lines[0] and "--resume" not in lines[0], lines[0]
    assert 2 in seen.values(), seen  # the sweep is inside the start-up
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("message", [
    "/x/h5py/h5t.cpython-311-x86_64-linux-gnu.so: cannot map zero-fill pages",
    "libhdf5.so.320: failed to map segment from shared object",
])
def test_the_loaders_refusals_under_a_data_limit_are_memory(message):
    """glibc's loader says "cannot map zero-fill pages" where `ulimit -d` refuses a library's bss: memory, as a
    segment it could not map; before, a traceback."""
    exc = ImportError(message)
    assert errors.load_refused(exc) == message
    resources.work_began(False)
    line = resources.start_out_of_memory(exc, "run")
    assert line is not None and message in line and "nothing was run" in line, line
    assert errors.load_refused(ImportError("No module named 'h5py'")) is None


def test_a_systemerror_of_an_import_is_memory_only_under_a_limit():
    """CPython's import says "error return without exception set" where an allocation failed unsaid: memory where
    RLIMIT_AS or RLIMIT_DATA is set, a fault (None: its traceback) where neither is, or where the SystemError says
    another thing (an extension built for another NumPy)."""
    unsaid = [SystemError("<built-in function compile> returned NULL without setting an exception"),
              SystemError("error return without exception set")]
    other = [SystemError("type numpy.ndarray has the wrong size, try recompiling"),
             RuntimeError("error return without exception set")]
    saved = {which: resource.getrlimit(which) for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA)}
    try:
        unlimited = all(hard == resource.RLIM_INFINITY for _, hard in saved.values())
        for which, (_, hard) in saved.items():  # (no limit where the hard ones allow it)
            resource.setrlimit(which, (hard, hard))
        assert all((errors.unsaid_import_failure(exc) is None) == unlimited for exc in unsaid)
        soft = 2**44 if saved[resource.RLIMIT_DATA][1] == resource.RLIM_INFINITY else saved[resource.RLIMIT_DATA][1]
        resource.setrlimit(resource.RLIMIT_DATA, (soft, saved[resource.RLIMIT_DATA][1]))
        assert all("SystemError" in errors.unsaid_import_failure(exc) for exc in unsaid)
        assert all(errors.unsaid_import_failure(exc) is None for exc in other)
    finally:
        for which, limits in saved.items():
            resource.setrlimit(which, limits)


def test_under_mpiexec_the_lines_made_beforehand_are_said_once(tmp_path):
    """Where memory ran out importing hpcflow's modules on every task of a launch, launcher rank 0's task alone says
    it, as the start-up's other lines; before, each task did."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", HPCFLOW_IGNORE_MEMORY_CHECK="1")
    for extra in (0, 2048 * KiB):
        proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(driver), str(extra), "script", "run",
                               QUICKSTART, "--out", str(tmp_path / "o"), "--check"], capture_output=True, text=True,
                              env=env, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert len(lines) == 1 and "out of memory" in lines[0] and "nothing was run" in lines[0], proc.stderr[-3000:]


def test_memory_that_runs_out_again_while_the_line_is_made_still_ends_in_the_line(monkeypatch, capfd, tmp_path):
    """Where the start-up's line cannot be made (its limits measured, its fix worked out) for want of memory too, the
    line made when the CLI was imported is written, status 2 before the work began and 5 after; no traceback."""
    def no_memory(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(cli, "start_limits", no_memory)
    monkeypatch.setattr(resources, "start_out_of_memory", no_memory)
    status = cli.main(["run", QUICKSTART, "--out", str(tmp_path / "o"), "--check"])
    err = capfd.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("hpcflow run: error: out of memory before any work"), err
    assert "nothing was run" in err and "Traceback" not in err

    resources.work_began(False)
    monkeypatch.setattr(cli, "start_limits", lambda _args: resources.work_began())  # the work began: then memory
    monkeypatch.setattr(cli, "same_command", no_memory)
    monkeypatch.setattr(resources, "out_of_memory_said", no_memory)
    status = cli.main(["run", QUICKSTART, "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err
    assert status == 5, err
    assert err.count("\n") == 1 and err.startswith("hpcflow run: error: out of memory mid-run"), err
    resources.work_began(False)


QUIET = textwrap.dedent("""
    import atexit, os, sys, types
    from hpcflow import cli
    atexit.register(os.write, 2, b"AN EXIT HANDLER RAN\\n")
    if sys.argv[1] == "half":
        sys.modules["h5py._errors"] = types.ModuleType("h5py._errors")  # h5py's import began and failed
    elif sys.argv[1] == "whole":
        import h5py
    cli.quiet_exit(2)
    sys.exit(3)
""")


def test_an_in_process_command_whose_start_up_ran_out_in_hdf5s_init_returns(monkeypatch, capfd, tmp_path):
    """A caller's in-process `main(argv)` gets the status back, never an ended process, with h5py half imported."""
    import types

    def no_memory(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setitem(sys.modules, "h5py._hpcflow_half", types.ModuleType("h5py._hpcflow_half"))
    monkeypatch.delitem(sys.modules, "h5py", raising=False)
    assert cli.hdf5_half_loaded()
    monkeypatch.setattr(cli, "start_limits", no_memory)
    assert cli.main(["run", QUICKSTART, "--out", str(tmp_path / "o"), "--check"]) == 2
    assert "out of memory" in capfd.readouterr().err


@pytest.mark.parametrize("h5py_state, status, handlers", [("half", 2, False), ("whole", 3, True), ("none", 3, True)])
def test_a_start_up_that_failed_in_hdf5s_initialization_ends_without_its_exit_handlers(tmp_path, h5py_state, status,
                                                                                        handlers):
    """HDF5's exit handler, after its initialization failed for want of memory, prints "HDF5: infinite loop closing
    library" and a garbled list after the start-up's one line: where h5py's import began and did not end the program
    ends at once (its exit handlers skipped, status kept); otherwise as usual."""
    script = tmp_path / "quiet.py"
    script.write_text(QUIET)
    proc = subprocess.run([sys.executable, str(script), h5py_state], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert proc.returncode == status, proc.stderr
    assert ("AN EXIT HANDLER RAN" in proc.stderr) == handlers, proc.stderr


def test_the_bare_line_of_a_rank_that_ran_out_mid_run_is_its_own(monkeypatch, capfd):
    """Mid-run one rank runs out alone (a larger partition, a smaller node): it says so itself, whatever its rank; at
    the start-up every task ran out alike, and launcher rank 0's task alone says it."""
    import argparse

    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    try:
        resources.work_began(True)
        assert cli._out_of_memory_bare(argparse.Namespace(verb="run")) == 5
        err = capfd.readouterr().err
        assert err.startswith("hpcflow run: error: out of memory mid-run") and err.count("\n") == 1, err
        resources.work_began(False)
        assert cli._out_of_memory_bare(argparse.Namespace(verb="run")) == 2
        assert capfd.readouterr().err == ""
    finally:
        resources.work_began(False)


class _NamesOutOfMemory(dict):
    """sys.modules whose names cannot be listed: no memory left for the iterator (as under a tight ulimit -v)."""

    def __iter__(self):
        raise MemoryError

    def keys(self):
        raise MemoryError


def test_a_start_up_out_of_memory_even_to_list_the_modules_is_still_the_one_line(monkeypatch):
    """The exit that skips HDF5's handler asks which modules are loaded; where that too ran out of memory, the
    MemoryError left `main` after the one line (a traceback, status 1: seen on a CI machine at one limit of the sweep
    above)."""
    names = _NamesOutOfMemory(sys.modules)
    names.pop("h5py", None)
    monkeypatch.setattr(sys, "modules", names)
    try:
        half = cli.hdf5_half_loaded()
    finally:
        monkeypatch.undo()
    assert half is True
