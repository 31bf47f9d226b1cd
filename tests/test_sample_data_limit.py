"""Under a data limit (RLIMIT_DATA, `ulimit -d`: Linux >= 4.7 holds the heap and every private writable mapping to
it) a sample too large for it is refused before any work, in one line naming the limit, `ulimit -d` and the largest
count that fits; that count is sampled and written, one point more is refused. Without it the sampling ran into a
MemoryError mid-run whose line named only physical memory and `ulimit -v`."""

import os
import re
import resource
import subprocess
import sys
import textwrap

import h5py

from hpcflow import resources

ENV = dict(os.environ, HPCFLOW_THREADS="2")
#: the data limit of the children: ~110 MiB of it is taken by the interpreter and its libraries before any work
LIMIT_MIB = 600


def _limited():
    """preexec_fn: RLIMIT_DATA of LIMIT_MIB (as `ulimit -d`) for the child."""
    lim = LIMIT_MIB * 2**20
    return resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))


def _sample(tmp_path, n: str):
    cmd = [sys.executable, "-m", "hpcflow", "sample", "--n", n, "--out", str(tmp_path / "pts.h5")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, preexec_fn=_limited,
                          cwd=tmp_path)


def test_command_refuses_in_one_line_and_samples_the_count_it_states(tmp_path):
    r = _sample(tmp_path, "1e7")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    assert "RLIMIT_DATA" in lines[0] and "ulimit -d unlimited" in lines[0], lines[0]
    assert not (tmp_path / "pts.h5").exists()
    n = int(re.search(r"give --n (\d+) or less", lines[0]).group(1))
    kib = int(re.search(r"ulimit -d unlimited, or at least (\d+) KiB", lines[0]).group(1))
    assert 10000 <= n < 10**7 and kib * 1024 > LIMIT_MIB * 2**20, lines[0]
    more = _sample(tmp_path, str(n + 1))
    assert more.returncode == 2 and f"give --n {n} or less" in more.stderr, more.stderr[-3000:]
    ok = _sample(tmp_path, str(n))
    assert ok.returncode == 0, ok.stderr[-3000:]
    with h5py.File(tmp_path / "pts.h5", "r") as fh:
        assert len(fh["points"]) == n


def test_api_refuses_and_samples_the_count_it_states():
    code = f"""
    import re, resource
    lim = {LIMIT_MIB} * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
    from hpcflow.geometry import Hypersurface
    X = Hypersurface.fermat(3)
    try:
        X.sample(10**7, seed=1)
        raise SystemExit("10**7 points were not refused")
    except ValueError as exc:
        said = str(exc)
        assert "ulimit -d" in said and "\\n" not in said, said
        n = int(re.search(r"sample at most (\\d+) points a call", said).group(1))
    try:
        X.sample(n + 1, seed=1)
        print("more passed")
    except ValueError as exc:
        print("more refused", "at most" in str(exc))
    print("sampled", len(X.sample(n, seed=1)), "of", n)
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                       env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    n = int(re.search(r"of (\d+)", r.stdout).group(1))
    assert n >= 10000 and f"sampled {n} of {n}" in r.stdout, r.stdout
    assert "more refused True" in r.stdout, r.stdout


def _only_data_limit(monkeypatch, soft):
    """resource.getrlimit with a data limit of `soft` bytes and no address-space limit."""
    real, inf = resource.getrlimit, resource.RLIM_INFINITY
    given = {resource.RLIMIT_DATA: (soft, inf), resource.RLIMIT_AS: (inf, inf)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: given.get(which) or real(which))


def test_memory_limit_and_out_of_memory_line_name_the_data_limit(monkeypatch):
    _only_data_limit(monkeypatch, 2**20)  # 1 MiB: below any machine's memory
    assert resources.memory_limit(environ={}) == (2**20, "RLIMIT_DATA (ulimit -d)")
    line = resources.out_of_memory_line("MemoryError", "sample")
    assert "RLIMIT_DATA (ulimit -d)" in line and "ulimit -d unlimited" in line and "ulimit -v" not in line, line
