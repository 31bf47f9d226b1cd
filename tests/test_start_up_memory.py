"""A library the command loads that the dynamic loader cannot map for want of address space (a tight `ulimit -v`, as
with --no-memory-check, where the imports of the start-up come before any estimate is checked) ends the command with
one line naming the library, the limit and the fix, and status 2: a limit the command cannot start under, refused
before any work (memory that runs out mid-run ends with status 5); before, an ImportError traceback and status 1."""

import os
import resource
import subprocess
import sys
import textwrap

ROOT = os.path.join(os.path.dirname(__file__), "..")

#: `hpcflow info` whose work is replaced by loading h5py (libhdf5 and its extension modules) after NumPy; "measure"
#: prints the address space (bytes) before and after the load
SCRIPT = textwrap.dedent("""
    import sys
    import numpy
    import hpcflow.cli as cli
    import hpcflow.commands.info as info

    def address_space():
        with open("/proc/self/status") as fh:
            return int(next(line for line in fh if line.startswith("VmSize:")).split()[1]) * 1024

    def work(args):
        if sys.argv[1] == "measure":
            print(address_space())
        import h5py  # noqa: F401
        if sys.argv[1] == "measure":
            print(address_space())
        return 0

    info.run = work
    sys.exit(cli.main(["info"]))
""")


def _run(mode: str, limit=None):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT), OPENBLAS_NUM_THREADS="1",
               HPCFLOW_IGNORE_MEMORY_CHECK="1")  # (the floor of the `hpcflow info` whose work this replaces)

    def limited():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=120,
                          preexec_fn=limited)


def test_a_library_that_cannot_be_mapped_ends_the_command_in_one_line_with_status_2():
    measured = _run("measure")
    assert measured.returncode == 0, measured.stderr
    before, after = map(int, measured.stdout.split())
    assert after - before > 4 * 2**20, (before, after)  # libhdf5 alone maps more than 4 MiB
    proc = _run("limited", before + (after - before) // 4)  # room for NumPy, not for h5py's libraries
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpcflow info: error: out of memory loading its libraries before any work ("), \
        proc.stderr
    assert "failed to map segment from shared object" in lines[0], proc.stderr  # the loader's own words
    assert "(ulimit -v)" in lines[0] and "raise the limit" in lines[0], proc.stderr


def test_only_a_loader_refusal_for_want_of_memory_is_taken_for_one():
    """A module or library that is missing or broken is not memory that ran out: its traceback stays."""
    from hpcflow.errors import load_refused

    assert load_refused(ImportError("No module named 'h5py'")) is None
    assert load_refused(ImportError("libx.so: cannot open shared object file: No such file or directory")) is None
    assert load_refused(OSError(12, "Cannot allocate memory")) is None  # an errno: not the loader's refusal
    said = "libx.so: failed to map segment from shared object"
    assert load_refused(ImportError(said)) == said
    assert load_refused(OSError(said)) == said  # ctypes.CDLL's


#: `hpcflow info` whose work is replaced by the first import of mpi4py.MPI (libmpi of the mpich wheel) as a run under
#: a launcher does it (`comm._mpi`); "measure" prints the address space before and after the load
MPI_SCRIPT = SCRIPT.replace("import h5py  # noqa: F401", "from hpcflow.parallel.comm import _mpi; assert _mpi()")


def test_an_mpi_library_that_cannot_be_mapped_ends_the_command_in_one_line_with_status_2():
    """mpi4py says RuntimeError ("cannot load MPI library"), which `_mpi` took for no MPI at all: the run went on as
    one rank and the launch check blamed the launcher (status 2) instead of the limit."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT), OPENBLAS_NUM_THREADS="1",
               HPCFLOW_IGNORE_MEMORY_CHECK="1")  # (the floor of the `hpcflow info` whose work this replaces)
    measured = subprocess.run([sys.executable, "-c", MPI_SCRIPT, "measure"], capture_output=True, text=True, env=env,
                              timeout=120)
    assert measured.returncode == 0, measured.stderr
    before, after = map(int, measured.stdout.split())
    assert after - before > 12 * 2**20, (before, after)  # libmpi alone maps more than 12 MiB
    limit = before + 2**21  # room for the import's Python objects, not for libmpi (MPI_Init's threads would abort in C)

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-c", MPI_SCRIPT, "limited"], capture_output=True, text=True, env=env,
                          timeout=120, preexec_fn=limited)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpcflow info: error: out of memory loading its libraries before any work ("), \
        proc.stderr
    assert "(ulimit -v)" in lines[0] and "raise the limit" in lines[0], proc.stderr


def test_a_static_tls_failure_is_no_want_of_memory():
    """glibc's "cannot allocate memory in static TLS block" (libgomp loaded late on aarch64) is fixed by the import
    order or LD_PRELOAD, not by a larger limit: its traceback stays."""
    from hpcflow.errors import load_refused

    tls = "/lib/aarch64-linux-gnu/libgomp.so.1: cannot allocate memory in static TLS block"
    assert load_refused(ImportError(tls)) is None
    # a RuntimeError mid-run (MPI.Exception, torch's shared memory) is no library that failed to load
    assert load_refused(RuntimeError("unable to mmap 4096 bytes from file </torch_1_2>: Cannot allocate "
                                           "memory (12)")) is None
