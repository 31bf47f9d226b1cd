"""An installed torch that does not import (a shared library missing: OSError; a broken package: ImportError) ends
`hpcflow nn` in one line naming the error and the reinstall, exit 2, before any work; it used to end OSError's case
in a traceback, exit 1. The broken torch is a package of that name ahead on PYTHONPATH whose import raises."""

import os
import subprocess
import sys

import pytest

from jobtexts import NN_POINTS, SMALL_NET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("error", ["OSError('libtorch_cpu.so: cannot open shared object file')",
                                   "ImportError('cannot import name _C from partially initialized module torch')"])
def test_nn_with_a_torch_that_does_not_import_says_so_in_one_line(tmp_path, error):
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise {error}\n")
    job = tmp_path / "job.toml"
    job.write_text(NN_POINTS + SMALL_NET + "[training]\nepochs = 1\nbatch_size = 100\n")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), ROOT]), HPCFLOW_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "nn", str(job), "--out", str(out)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    kind = error.split("(")[0]
    assert f"PyTorch is installed but does not import ({kind}: " in lines[0], lines[0]
    assert "--force-reinstall" in lines[0]
    assert not out.exists() or not os.listdir(out)  # nothing of a run written
