"""A command started under an address-space or data limit (ulimit -v, ulimit -d) too small to load its libraries is
refused in one line naming the limit and the KiB to raise it to, status 2, before any work; memory that runs out while
it imports them (a limit just above that floor) is said as the start-up's, status 2, never as a run's "mid-run" (status
5, which memory that runs out during the work keeps). Before, OpenBLAS's own line and status 1, or "out of memory
mid-run ... reduce the job's sizes ... --resume" and status 5 with nothing run."""

import contextlib
import os
import re
import resource
import subprocess
import sys

import pytest

from test_parallel import mpiexec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
QUICKSTART = os.path.join(ROOT, "jobs", "quickstart.toml")
MiB = 2**20
#: under what `import numpy` alone needs with one OpenBLAS thread (96 MiB), so under any command's floor
TINY = 60 * MiB


def hpcflow(args, *, space=None, data=None, threads="1", environ=None, launcher=None, cwd=None):
    """`python -m hpcflow ARGS` with RLIMIT_AS `space` / RLIMIT_DATA `data` (bytes) set in the child, NumPy's
    OpenBLAS at `threads` (None: its own count), under `launcher` (a command prefix) where given."""
    env = dict(os.environ, PYTHONPATH=ROOT, **(environ or {}))
    for name in ("HPCFLOW_IGNORE_MEMORY_CHECK", "OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if name not in (environ or {}):
            env.pop(name, None)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads

    def limited():
        for which, value in ((resource.RLIMIT_AS, space), (resource.RLIMIT_DATA, data)):
            if value is not None:
                resource.setrlimit(which, (value, resource.getrlimit(which)[1]))

    cmd = [*(launcher or []), sys.executable, "-m", "hpcflow", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, preexec_fn=limited, cwd=cwd)


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def kib(line: str, flag: str = "-v") -> int:
    m = re.search(rf"ulimit {flag} unlimited, or at least (\d+) KiB", line)
    assert m, line
    return int(m.group(1))


@pytest.mark.parametrize("threads", ["1", None])
def test_a_run_under_an_address_space_it_cannot_start_in_is_refused_in_one_line(tmp_path, threads):
    out = tmp_path / "o"
    proc = hpcflow(["run", QUICKSTART, "--out", str(out)], space=TINY, threads=threads)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc)
    assert line.startswith("hpcflow run: error: ") and "RLIMIT_AS" in line and "nothing was run" in line, line
    assert "mid-run" not in line and "OpenBLAS error" not in line and "--resume" not in line, line
    assert kib(line) * 1024 > TINY and kib(line) % 102400 == 0, line  # above the limit, in ulimit -v's KiB
    assert "--no-memory-check" in line, line
    assert not out.exists()  # nothing written


def test_the_figure_named_lets_the_command_start_and_is_within_its_memory_checks(tmp_path):
    """Raised to the figure the refusal names, the run starts and reaches its own memory check, whose figure for the
    job is no smaller."""
    start = kib(one_line(hpcflow(["run", QUICKSTART, "--out", str(tmp_path / "a")], space=TINY)))
    proc = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / "b"), "--check"], space=start * 1024)
    line = one_line(proc)
    assert proc.returncode == 2 and "needs" in line and "of address space" in line, proc.stderr  # check_resources'
    assert "before any work" not in line, line
    assert kib(line) >= start, (line, start)
    # and at the job's own figure it runs its check through
    ok = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / "c"), "--check"], space=kib(line) * 1024)
    assert ok.returncode == 0, ok.stderr


def test_a_limit_just_above_the_floor_ends_as_the_start_up_not_mid_run(tmp_path):
    """Between the floor and what the command maps, memory runs out while it imports: status 2 and the start-up's
    line (or its memory check's refusal), never the run's "mid-run" line and status 5."""
    from hpcflow.resources import start_needs

    needs, _ = start_needs("run", {"OPENBLAS_NUM_THREADS": "1"})
    floor, need = needs[resource.RLIMIT_AS]
    for space in (floor + 2 * MiB, (floor + need) // 2):
        proc = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / str(space)), "--check"], space=space)
        line = one_line(proc)
        assert proc.returncode == 2, proc.stderr
        assert "mid-run" not in line and "--resume" not in line, line
        assert "before any work" in line or "of address space" in line, line


def test_every_command_refuses_a_limit_it_cannot_start_under(tmp_path):
    cases = {"info": [], "sample": ["--n", "100", "--out", str(tmp_path / "s.h5")],
             "report": [str(tmp_path), "--out", str(tmp_path / "r")],
             "submit": [QUICKSTART, "--out", str(tmp_path / "q"), "--executor", "local", "--check"]}
    for verb, args in cases.items():
        proc = hpcflow([verb, *args], space=TINY)
        line = one_line(proc)
        assert proc.returncode == 2, proc.stderr
        assert line.startswith(f"hpcflow {verb}: error: this process may use ") and kib(line) * 1024 > TINY, line
        assert ("--no-memory-check" in line) == (verb in ("sample", "submit")), line  # the options they take
        assert "HPCFLOW_IGNORE_MEMORY_CHECK=1" in line, line
    assert sorted(os.listdir(tmp_path)) == []


def test_a_data_limit_it_cannot_start_under_is_refused_too(tmp_path):
    proc = hpcflow(["sample", "--n", "100", "--out", str(tmp_path / "s.h5")], data=30 * MiB)
    line = one_line(proc)
    assert proc.returncode == 2, proc.stderr
    assert "RLIMIT_DATA" in line and kib(line, "-d") * 1024 > 30 * MiB and "mid-run" not in line, line


def test_commands_that_start_today_are_not_refused(tmp_path):
    """At limits the commands start under (measured: info 149 MiB, run 166 MiB of address space with one or two
    OpenBLAS threads), no start-up refusal."""
    for threads in ("1", None):
        info = hpcflow(["info"], space=200 * MiB, threads=threads)
        assert info.returncode == 0, info.stderr
        run = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / f"o{threads}"), "--check"], space=200 * MiB,
                      threads=threads)
        assert "before any work" not in run.stderr and run.returncode == 2, run.stderr  # the job's own check


def test_only_the_openblas_numpy_bundles_counts_its_threads(tmp_path):
    """NumPy's wheels bundle a pthreads OpenBLAS (numpy.libs/libscipy_openblas*.so, libopenblas* before NumPy 2) that
    starts a thread per CPU as it loads; a NumPy built against another BLAS (MKL, an OpenMP OpenBLAS: conda's) has
    none there and starts none, so its floor is that of one thread at any OPENBLAS_NUM_THREADS or CPU count."""
    from hpcflow.resources import numpy_bundled_openblas, start_needs

    def site(name, libs):
        root = tmp_path / name
        (root / "numpy").mkdir(parents=True)
        (root / "numpy" / "__init__.py").write_text("")
        for lib in libs:
            (root / lib).parent.mkdir(parents=True, exist_ok=True)
            (root / lib).write_bytes(b"")
        return str(root / "numpy")

    assert numpy_bundled_openblas(site("wheel", ["numpy.libs/libscipy_openblas64_-32a4b2a6.so",
                                                 "numpy.libs/libgfortran-040039e1.so.5.0.0"]))
    assert numpy_bundled_openblas(site("old_wheel", ["numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so"]))
    assert not numpy_bundled_openblas(site("conda", []))  # MKL or OpenBLAS in the environment's lib/
    assert not numpy_bundled_openblas(site("other", ["numpy.libs/libgfortran-040039e1.so.5.0.0"]))
    assert not numpy_bundled_openblas(str(tmp_path / "nowhere" / "numpy"))
    import numpy

    assert numpy_bundled_openblas() == numpy_bundled_openblas(os.path.dirname(numpy.__file__))

    many = {"OPENBLAS_NUM_THREADS": "64"}
    one = {"OPENBLAS_NUM_THREADS": "1"}
    for verb in ("run", "info", "report"):
        assert start_needs(verb, many, bundled=False) == start_needs(verb, one, bundled=False), verb
        assert start_needs(verb, many, bundled=False)[1] == 1
        assert start_needs(verb, one, bundled=True) == start_needs(verb, one, bundled=False), verb


def test_the_refusal_names_the_openblas_threads_it_counted(tmp_path):
    """So that a user on a node of many CPUs can start fewer (OPENBLAS_NUM_THREADS) rather than raise the limit."""
    cpus = len(os.sched_getaffinity(0))
    proc = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / "o")], space=TINY, threads="2")
    line = one_line(proc)
    assert proc.returncode == 2, proc.stderr
    counted = min(2, cpus)
    assert f"NumPy's OpenBLAS starting {counted} thread" in line and "OPENBLAS_NUM_THREADS" in line, line


def test_the_memory_check_bypass_skips_the_start_up_check_too(tmp_path):
    for extra, environ in (([], {"HPCFLOW_IGNORE_MEMORY_CHECK": "1"}), (["--no-memory-check"], None)):
        proc = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / "o"), "--check", *extra], space=TINY,
                       environ=environ)
        assert "this process may use" not in proc.stderr, proc.stderr
        assert "mid-run" not in proc.stderr, proc.stderr


class _Refusing:
    """A finder whose loading of `name` raises MemoryError, as importlib reading a module under a tight limit."""

    def __init__(self, name):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise MemoryError
        return None


@contextlib.contextmanager
def memory_error_importing(name):
    finder = _Refusing(name)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def importing():
    import hpcflow_fake_module

    return hpcflow_fake_module


def test_memory_that_runs_out_in_the_work_keeps_the_run_line():
    """A MemoryError once the command's work began is the run's (status 5); one raised before it, importing a module
    or not (a C extension's init, a check), is the start-up's."""
    import types

    from hpcflow import resources

    def in_work():
        raise MemoryError

    module = types.ModuleType("fake_module")
    code = compile("raise MemoryError", "<fake_module>", "exec")
    resources.work_began(False)
    try:
        try:
            exec(code, module.__dict__)  # a module's body: co_name "<module>"
        except MemoryError as exc:
            assert "loading its libraries before any work" in resources.start_out_of_memory(exc, "run")
        try:
            in_work()  # no import in its frames: before the work began, still nothing was run
        except MemoryError as exc:
            line = resources.start_out_of_memory(exc, "run")
            assert line is not None and "before any work" in line and "nothing was run" in line, line
            assert "mid-run" not in line and "--resume" not in line, line
        with memory_error_importing("hpcflow_fake_module"):
            try:
                importing()
            except MemoryError as exc:  # at the import statement of a function (importlib's frames removed)
                assert "before any work" in resources.start_out_of_memory(exc, "submit")
        resources.work_began()
        for raising in (lambda: exec(code, module.__dict__), in_work):
            try:
                raising()
            except MemoryError as exc:
                assert resources.start_out_of_memory(exc, "run") is None  # the work began
                assert "mid-run" in resources.out_of_memory_said(exc, "run")
    finally:
        resources.work_began(False)


def test_a_check_run_out_of_memory_at_any_limit_is_never_said_mid_run(tmp_path):
    """run --check does no work, so memory that runs out anywhere in it (under the usual 8 MiB stack limit too, where
    the libraries are mapped elsewhere and a MemoryError comes after the skipped memory check) is the start-up's,
    status 2; before, at some limits "out of memory mid-run ... --resume", status 5."""
    def stack_8m():
        resource.setrlimit(resource.RLIMIT_STACK, (8 * MiB, resource.getrlimit(resource.RLIMIT_STACK)[1]))

    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", HPCFLOW_IGNORE_MEMORY_CHECK="1")
    for name in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS"):
        env.pop(name, None)
    said = {}
    for space in range(100 * MiB, 180 * MiB, 2 * MiB):
        def limited(space=space):
            stack_8m()
            resource.setrlimit(resource.RLIMIT_AS, (space, resource.getrlimit(resource.RLIMIT_AS)[1]))

        proc = subprocess.run([sys.executable, "-m", "hpcflow", "run", QUICKSTART, "--out", str(tmp_path / "o"),
                               "--check"], capture_output=True, text=True, env=env, timeout=120, preexec_fn=limited)
        said[space // MiB] = proc.returncode
        # (with the check bypassed, a limit at the edge of what Python needs may fail its own error path: a bare
        # MemoryError, status 1, which no code of a command can say otherwise; never the mid-run line, status 5)
        bare = proc.returncode == 1 and proc.stderr.rstrip().endswith("MemoryError")
        assert proc.returncode in (0, 2) or bare, (space // MiB, proc.stderr)
        assert "mid-run" not in proc.stderr and "--resume" not in proc.stderr, (space // MiB, proc.stderr)
    assert 0 in said.values() and 2 in said.values(), said  # the sweep spans the start-up's failures and a start
    assert not (tmp_path / "o").exists()


def test_under_mpiexec_the_refusal_is_one_line(tmp_path):
    proc = hpcflow(["run", QUICKSTART, "--out", str(tmp_path / "o")], space=TINY, launcher=[mpiexec(), "-n", "2"])
    line = one_line(proc)
    assert proc.returncode == 2, proc.stderr
    assert line.startswith("hpcflow run: error: this process may use "), line
    assert not (tmp_path / "o").exists()
