"""Sampling under mpiexec at 1, 2 and 3 ranks: the global point set is bitwise the block-by-block definition.

The reference is built here from the definition alone (block k = LINES_PER_BATCH lines from
SeedSequence(seed, spawn_key=(k,)), point data per block, chart filter, first N points in block order),
not from the distributed sampler.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow.backend import get_xp
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import LINES_PER_BATCH
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "sampling_checks.py")
FIELDS = ("points", "weights", "omega2", "g_fs", "chart", "jacobian")


def by_definition(X, n, seed, chart):
    """First n points of blocks 0, 1, ... (with the block each came from, as field "block") and the unusable points
    of the blocks up to the last one used; the roots and point data on the sampler's array module (`get_xp`, auto
    on the host), whose roundoff and near-tie charts the sampler's are."""
    entropy = np.random.SeedSequence(seed).entropy
    parts, blocks, have, dropped, k = [], [], 0, 0, 0
    while have < n:
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(k,)))
        z, bad = X.line_points(LINES_PER_BATCH, rng, xp=get_xp(auto_on_host=True))
        ps = X.point_set(z)
        dropped += bad + ps.n_dropped
        if chart is not None:
            ps = ps.subset(np.all(ps.chart == np.array(chart), axis=1))
        parts.append(ps)
        blocks.append(np.full(len(ps), k))
        have += len(ps)
        k += 1
    out = {f: np.concatenate([getattr(p, f) for p in parts])[:n] for f in FIELDS}
    return {**out, "block": np.concatenate(blocks)[:n]}, dropped, k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    X = Hypersurface.fermat(3)
    data = {}
    for name, n, seed, chart in (("free", 25_001, 11, None), ("chart", 1_500, 12, (0, 1))):
        ref, dropped, blocks = by_definition(X, n, seed, chart)
        assert blocks >= 3  # several blocks, so several ranks contribute
        data.update({f"{name}_{f}": v for f, v in ref.items()}, **{f"{name}_n": n, f"{name}_dropped": dropped,
                                                                   f"{name}_blocks": blocks})
    path = tmp_path_factory.mktemp("ref") / "reference.npz"
    np.savez(path, **data)
    return path, data


def test_serial_sample_is_the_block_definition(reference):
    _, data = reference
    X = Hypersurface.fermat(3)
    for threads in (1, 3):
        ps = X.sample(1_500, seed=12, chart=(0, 1), threads=threads)
        for f in FIELDS:
            assert getattr(ps, f).tobytes() == data[f"chart_{f}"].tobytes(), f
        assert ps.n_dropped == data["chart_dropped"]


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_sampling_under_mpiexec_is_bitwise_the_definition(reference, ranks):
    path, data = reference
    env = dict(os.environ, HPCFLOW_THREADS="1")
    r = subprocess.run(["timeout", "100", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(path)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert sorted(o["rank"] for o in outs) == list(range(ranks))
    for o in outs:
        assert o["mismatch"] == [] and o["moved_ok"], o
    for name in ("free", "chart"):
        cnt = [o["counters"][name] for o in outs]
        assert sum(x["points_owned"] for x in cnt) == data[f"{name}_n"]
        # the ranks together sample the blocks the definition reads (0 .. the block of point N-1), each once: not
        # a block per rank where one would do (rank r samples blocks k % R == r, so some ranks may sample none)
        assert sum(x["sampled_blocks"] for x in cnt) == data[f"{name}_blocks"], [x["sampled_blocks"] for x in cnt]
        assert all(x["sampled_lines"] == x["sampled_blocks"] * LINES_PER_BATCH for x in cnt)
        # jacobian=False moves the same rows with row bytes 8 (index) + 16*5 + 8 + 8 + 16*9 + 16 = 264 instead of
        # 264 + 16*15 = 504 (the quintic's Jacobian dz/dx is 3 x 5 complex)
        lean = [o["counters"][name + "_no_jacobian"] for o in outs]
        assert [x["sample_bytes_sent"] * 504 for x in lean] == [x["sample_bytes_sent"] * 264 for x in cnt]
        # bytes sent: rank q samples block k when k % R == q and keeps the rows of its share; 504 bytes a row
        away = [np.sum((data[f"{name}_block"] % ranks == q) & ~in_share(data[f"{name}_n"], ranks, q))
                for q in range(ranks)]
        assert [x["sample_bytes_sent"] for x in cnt] == [504 * int(a) for a in away]
        assert (sum(away) > 0) == (ranks > 1)
    # seed=None: every rank drew with rank 0's fresh entropy (>= 2^63 but with chance 2^-65), and the shares put
    # together are the serial draw from that seed
    seeds = {o["fresh_seed"] for o in outs}
    assert len(seeds) == 1 and seeds.pop() >= 2**63, [o["fresh_seed"] for o in outs]
    by_rank = sorted(outs, key=lambda o: o["rank"])
    shares = np.concatenate([np.array(o["fresh_points"], dtype=np.float64).reshape(-1, 10) for o in by_rank])
    again = Hypersurface.fermat(3).sample(40, seed=outs[0]["fresh_seed"], threads=1)
    assert shares.tobytes() == again.points.view(np.float64).tobytes()


def in_share(n, ranks, q):
    """Mask of the n global rows that rank q owns in the "share" layout: one divmod, the first n % R get one more."""
    base, extra = divmod(n, ranks)
    lo = q * base + min(q, extra)
    return (np.arange(n) >= lo) & (np.arange(n) < lo + base + (q < extra))


def test_sample_command_under_mpiexec_writes_one_identical_file(tmp_path):
    base = [sys.executable, "-m", "hpcflow", "sample", "--n", "3000", "--seed", "4", "--chart", "1", "2"]
    r = subprocess.run(base + ["--out", str(tmp_path / "serial.h5")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (tmp_path / "mpi").mkdir()
    r = subprocess.run(["timeout", "60", mpiexec(), "-n", "2"] + base + ["--out", str(tmp_path / "mpi" / "p.h5")],
                       capture_output=True, text=True, timeout=90, env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "mpi") == ["p.h5"] and r.stdout.count("written") == 1
    assert (tmp_path / "serial.h5").read_bytes() == (tmp_path / "mpi" / "p.h5").read_bytes()


def test_a_check_failing_on_one_rank_only_ends_every_rank(tmp_path):
    """A memory limit seen by rank 1 only (as on a node with less memory): exit 2 for the job, not rank 0 done and
    rank 1 waiting in the sampling collective for ever; no file written."""
    base = [sys.executable, "-m", "hpcflow", "sample", "--n", "3000", "--quiet", "--out", str(tmp_path / "p.h5")]
    cmd = ["timeout", "60", mpiexec(), "-n", "1", *base, ":", "-n", "1", "-env", "SLURM_MEM_PER_NODE", "1", *base]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # rank 0 prints rank 1's refusal, once
    assert "SLURM_MEM_PER_NODE" in r.stderr and os.listdir(tmp_path) == []


@pytest.mark.parametrize("ranks", [2, 3])
def test_bad_input_under_mpiexec_is_one_line_for_all_ranks(tmp_path, ranks):
    """A refusal every rank makes alike (a bad --n, a bad job value) is printed once, not once per rank."""
    env = dict(os.environ, HPCFLOW_THREADS="1")
    job = os.path.join(os.path.dirname(__file__), "..", "jobs", "quickstart.toml")
    for args in (["sample", "--n", "0", "--out", str(tmp_path / "p.h5")],
                 ["run", job, "--set", "flow.dt=-1", "--out", str(tmp_path / "r")]):
        r = subprocess.run(["timeout", "60", mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpcflow", *args],
                           capture_output=True, text=True, timeout=90, env=env)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert r.stderr.startswith(f"hpcflow {args[0]}: error: ") and os.listdir(tmp_path) == []
