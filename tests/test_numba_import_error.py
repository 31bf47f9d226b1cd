"""engine = "numba" where Numba is installed but its import raises (a version or LLVM error; here a stand-in numba
package first on the path whose import raises) is refused naming the failed import and its one-line error, not a
missing package that `pip install numba` would add; where no numba package is found, the refusal names the install
as before. Each in a process of its own: the import is tried once per process."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")
BROKEN = "Numba needs NumPy 2.2 or less. Got NumPy 9.9."
TIMEOUT = 300


def _run(tmp_path, prelude=""):
    """`hpcflow run` of the quickstart job with engine numba; `prelude` runs first in the process."""
    code = f"import sys; {prelude}\nfrom hpcflow.cli import main; sys.exit(main(sys.argv[1:]))"
    fake = tmp_path / "fake"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]), HPCFLOW_QUIET="1", HPCFLOW_THREADS="1")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, "run", JOB, "--out", str(out), "--set", "kernel.engine=numba",
                        "--set", "flow.steps=1"], capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=ROOT)
    return r.returncode, r.stderr.strip().splitlines(), out


def _broken_numba(tmp_path, raised=f"RuntimeError({BROKEN!r})"):
    pkg = tmp_path / "fake" / "numba"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"raise {raised}\n")


def test_a_numba_that_fails_its_import_is_said_with_its_error(tmp_path):
    _broken_numba(tmp_path)
    rc, err, out = _run(tmp_path)
    assert rc == 2 and len(err) == 1 and err[0].startswith("hpcflow run: error:"), err
    assert f"failed to import (RuntimeError: {BROKEN})" in err[0], err
    assert "needs the numba package" not in err[0] and "Traceback" not in err[0], err
    assert not out.exists()


def test_an_import_error_inside_numba_is_a_failed_import_too(tmp_path):
    """A dependency of an installed Numba that does not load (llvmlite's library) is no missing numba package."""
    _broken_numba(tmp_path, raised="ImportError('llvmlite.binding: libllvmlite.so: cannot open shared object file')")
    rc, err, _ = _run(tmp_path)
    assert rc == 2 and len(err) == 1, err
    assert "failed to import (ImportError: llvmlite.binding: libllvmlite.so" in err[0], err


def test_no_numba_package_names_the_install(tmp_path):
    rc, err, _ = _run(tmp_path, prelude="sys.modules['numba'] = None")  # (import numba raises; no package found)
    assert rc == 2 and len(err) == 1, err
    assert "engine='numba' needs the numba package; pip install numba" in err[0] and "failed" not in err[0], err


def test_the_python_api_says_it_alike(tmp_path):
    _broken_numba(tmp_path)
    code = ("from hpcflow.kernels.gaussian import GaussianKernel\ntry:\n    GaussianKernel(0.5, engine='numba')\n"
            "except ValueError as exc:\n    print(exc)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), str(ROOT)]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"engine='numba' needs Numba, which is installed but failed to import (RuntimeError: "
                               f"{BROKEN})"), r.stdout
    assert r.stdout.rstrip().endswith("or use engine='numpy'"), r.stdout


def test_a_resume_of_a_numba_checkpoint_names_the_failed_import(tmp_path):
    """A checkpoint whose steps ran Numba's loop (engine "auto" resolved to "numba"), resumed where Numba is
    installed but fails its import: the resume runs NumPy's passes and its note names the failed import and its
    error, not an install of a package that is there."""
    import h5py

    out = tmp_path / "out"
    sets = ["geometry.n_train=200", "geometry.n_test=100", "clustering.n_clusters=2", "checkpoint.every=1"]

    def leg(steps, *more, fake=False, prelude=""):
        code = f"import sys; {prelude}\nfrom hpcflow.cli import main; sys.exit(main(sys.argv[1:]))"
        path = [str(tmp_path / "fake")] if fake else []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([*path, str(ROOT)]), HPCFLOW_QUIET="1", HPCFLOW_THREADS="1")
        args = [a for s in (*sets, f"flow.steps={steps}") for a in ("--set", s)]
        r = subprocess.run([sys.executable, "-c", code, "run", JOB, "--out", str(out), *args, *more],
                           capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        return r.stderr.strip().splitlines()

    leg(1, prelude="import hpcflow.kernels.jit as jit; jit.AUTO_NUMBA_ENTRIES = 0")  # "auto": Numba's loop
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["engine"] == "numba"  # the premise: the checkpoint's steps ran Numba
    _broken_numba(tmp_path)
    err = leg(2, "--resume", fake=True)
    notes = [line for line in err if "engine" in line]
    assert len(notes) == 1 and notes[0].startswith("hpcflow run: note: "), err
    assert f"Numba is installed but failed to import (RuntimeError: {BROKEN})" in notes[0], notes
    assert "pip install --force-reinstall numba" in notes[0] and "install numba to" not in notes[0], notes
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["engine"] == "numpy" and len(f["history/sigma_train"]) == 3
