"""Under an address-space limit (RLIMIT_AS, `ulimit -v`) the largest point count a sampling memory refusal states
passes every memory check of `hpcflow sample` and of the API, one point more is refused, and sampling the stated
count completes: the limit the sampler's model is held to is the address space left once what the process maps,
its threads' stacks, malloc arenas and OpenBLAS buffers are counted, as the run's address-space check counts them."""

import os
import re
import resource
import subprocess
import sys
import textwrap

import h5py

ENV = dict(os.environ, HPCFLOW_THREADS="2")


def _child(code: str):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=ENV)


#: the child limits its own address space to what it maps at the start plus this many MiB
EXTRA_MIB = 700

LIMIT = f"""
    import re, resource
    from hpcflow.resources import mapped_bytes
    lim = mapped_bytes() + {EXTRA_MIB} * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
"""


def test_api_count_stated_is_sampled_and_one_more_refused():
    r = _child(LIMIT + """
    from hpcflow.geometry import Hypersurface
    X = Hypersurface.fermat(3)
    try:
        X.sample(10**7, seed=1)
        raise SystemExit("10**7 points were not refused")
    except ValueError as exc:
        n = int(re.search(r"sample at most (\\d+) points a call", str(exc)).group(1))
    print("stated", n)
    try:
        X.sample(n + 1, seed=1)
        print("more passed")
    except ValueError as exc:
        print("more refused", "at most" in str(exc))
    ps = X.sample(n, seed=1)
    print("sampled", len(ps))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    n = int(re.search(r"stated (\d+)", r.stdout).group(1))
    assert n >= 10000, r.stdout  # (a few 10^5 points on x86-64 Linux)
    assert "more refused True" in r.stdout, r.stdout
    assert f"sampled {n}" in r.stdout, r.stdout + r.stderr[-3000:]


def test_command_checks_take_the_count_stated_and_refuse_one_more():
    """Both of the command's checks (the sampler's model, then the run's address-space check) in one process."""
    r = _child(LIMIT + """
    import argparse
    from hpcflow.commands.sample import check_sample_resources
    from hpcflow.errors import ConfigError
    args = argparse.Namespace(no_memory_check=False)
    try:
        check_sample_resources(args, {"n": 10**7, "dim": 3})
        raise SystemExit("--n 10**7 was not refused")
    except ConfigError as exc:
        n = int(re.search(r"give --n (\\d+) or less", str(exc)).group(1))
    print("stated", n)
    try:
        check_sample_resources(args, {"n": n, "dim": 3})
        print("stated passed")
    except ConfigError as exc:
        print("stated refused:", exc)
    try:
        check_sample_resources(args, {"n": n + 1, "dim": 3})
        print("more passed")
    except ConfigError as exc:
        print("more refused", "give --n" in str(exc))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(re.search(r"stated (\d+)", r.stdout).group(1)) >= 10000, r.stdout
    assert "stated passed" in r.stdout, r.stdout
    assert "more refused True" in r.stdout, r.stdout


def _limited(kib: int):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))


def _sample(tmp_path, n: str, kib: int):
    cmd = [sys.executable, "-m", "hpcflow", "sample", "--n", n, "--out", str(tmp_path / "big.h5"), "--force"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, preexec_fn=_limited(kib),
                          cwd=tmp_path)


def test_command_samples_the_count_its_refusal_states(tmp_path):
    """`ulimit -v`: the --n the refusal names is sampled and written (it was refused by the address-space check)."""
    kib = 1000000
    r = _sample(tmp_path, "10000000", kib)
    assert r.returncode == 2, r.stderr[-3000:]
    n = int(re.search(r"give --n (\d+) or less", r.stderr).group(1))
    assert n >= 10000, r.stderr
    ok = _sample(tmp_path, str(n), kib)
    assert ok.returncode == 0, ok.stderr[-3000:]
    with h5py.File(tmp_path / "big.h5", "r") as fh:
        assert len(fh["points"]) == n
