"""The collective Python-API entry points at R = 2, 3 (tests/mpi/argument_agreement_checks.py, one launch per rank
count): an argument bad on one rank alone, or valid but different on one rank, is refused by every rank together
in one line naming it (sample_points, Hypersurface.sample, sample_train_test_shares, neighbour_distances,
distributed_labels, distributed_blocks, PointSet.save, CheckpointWriter; sample_shards: tests/test_nn_api_args.py).
The failing rank used to raise alone while the others waited in the sampler's, the clustering's or the save's first
collective for ever (or met another collective and aborted), and differing valid values sampled, clustered or wrote
each rank's own way, or hung."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from test_parallel import mpiexec

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "argument_agreement_checks.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
#: seconds a launch may take: start-up, ~30 refusals of one allgather each and a little sampling (~2 s measured);
#: a rank left waiting in a collective the others skipped is ended by `timeout` after LIMIT
PROMPT, LIMIT = 20.0, 60

#: case -> (type every rank raises, how its message starts: it names the argument, rank with the bad one; -1 the last)
REFUSED = {
    "sample_points_n_points": ("ValueError", "n_points=0 is invalid; pass a whole number of points >= 1", -1),
    "sample_points_chart": ("ValueError", "chart (0, 0) does not exist on P^4", -1),
    "sample_points_layout_on_rank_0": ("ValueError", "layout 'rows' is not one of ('all', 'share', 'root')", 0),
    "sample_points_backend": ("ConfigError", "backend='gpu' is not one of numpy, cupy, auto", -1),
    "surface_sample_seed": ("ConfigError", "seed=-1 is invalid; pass an integer >= 0", -1),
    "train_test_shares_n_train": ("ValueError", "n_train=0 is invalid; pass a whole number of points >= 1", -1),
    "train_test_shares_missing_key": ("ValueError", "geo has no key 'n_test'; pass a geo with 'manifold',", -1),
    "neighbour_distances_missing_key": ("ValueError", "sc has no key 'queries'; pass a sc with 'method',", -1),
    "checkpoint_every": ("ValueError", "every=0 is invalid; pass None or a whole number of steps >= 1", -1),
    "checkpoint_seconds": ("ValueError", "seconds=nan is invalid; pass None or a finite number of seconds > 0", -1),
    "checkpoint_block_rows": ("ValueError", "block_rows=2.5 is invalid; pass a whole number of rows >= 1", -1),
    "neighbour_distances_queries": ("ValueError", "sc['queries']=-1 is invalid; pass an integer >= 0", -1),
    "labels_n_clusters": ("ConfigError", "n_clusters = 0 must be >= 1", -1),
    "labels_seed_on_rank_0": ("ConfigError", "seed='a' is invalid; pass an integer >= 0 (of any size", 0),
    "blocks_halo_cutoff": ("ConfigError", "halo_cutoff = -1.0 must be a finite FS distance >= 0", -1),
    "blocks_test_points": ("ConfigError", "test points: 1 point(s) contain NaN or inf", -1),
}
#: case -> (argument as named in the message, rank 0's value, the last rank's)
UNLIKE = {
    "n_points": ("n_points", "40", "41"),
    "seed": ("seed", "1", "2"),
    "chart": ("chart", "(0, 1)", "(1, 0)"),
    "max_batches": ("max_batches", "100", "200"),
    "layout": ("layout", "'share'", "'all'"),
    "jacobian": ("jacobian", "True", "False"),
    "sample_n_points": ("n_points", "40", "41"),
    "shares_n_test": ("n_test", "20", "0"),
    "shares_test_seed": ("test_seed", "1", "5"),  # (rank 0's: [geometry].seed + 1)
    "distances_queries": ("sc['queries']", "10", "12"),
    "labels_seed": ("seed", "0", "1"),
    "checkpoint_every": ("every", "2", "3"),
    "checkpoint_seconds": ("seconds", "None", "60.0"),
    "checkpoint_block_rows": ("block_rows", "4", "8"),
    "blocks_halo_cutoff": ("halo_cutoff", "0.5", "None"),
}
#: case -> (argument, how rank 0's value starts, how the last rank's starts): values that end in a digest
UNLIKE_DIGESTS = {
    "surface": ("surface", "'fermat(dim=3) #", "'dwork(dim=3, psi=(0.1+0j)) #"),
    "labels_z": ("z", "(12, '", "(12, '"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("agree")
    seconds = {}
    for ranks in (2, 3):
        t0 = time.monotonic()
        r = subprocess.run(["timeout", str(LIMIT), mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(out)],
                           capture_output=True, text=True, timeout=LIMIT + 30, env=ENV)
        seconds[ranks] = time.monotonic() - t0
        assert r.returncode == 0, r.stderr[-3000:]  # (124: a rank waited in a collective the others left)
    return out, seconds


def _said(runs, ranks):
    out, seconds = runs
    got = json.loads((out / f"agree_{ranks}.json").read_text())
    assert seconds[ranks] < PROMPT, seconds
    every = got["every"]
    assert len(every) == ranks and got["allreduce"] == [ranks] * len(every[0])  # after each case: all in step
    return every


def _alike(every, case):
    """The one outcome every rank recorded for `case`: [type, one-line message, marked collective]."""
    got = [m[case] for m in every]
    assert got[0] is not None and got == [got[0]] * len(every), (case, got)
    kind, message, collective = got[0]
    assert collective and "\n" not in message, (case, got[0])
    return kind, message


@pytest.mark.parametrize("ranks", [2, 3])
def test_an_argument_bad_on_one_rank_is_refused_by_every_rank(runs, ranks):
    """Every rank raises the bad rank's type and line, naming that rank (a geo or sc without a key the call reads:
    a ValueError naming the key, not a KeyError on that rank alone); then all sample a share together: the rows of
    one process."""
    every = _said(runs, ranks)
    for case, (kind, start, at) in REFUSED.items():
        said = _alike(every, case)
        assert said[0] == kind and said[1].startswith(start), (case, said)
        assert said[1].endswith(f" (on rank {at % ranks}; 1 of {ranks} ranks refused their arguments)"), (case, said)
    whole = Hypersurface.fermat(3).sample(40, seed=1, chart=(0, 1), threads=1).points
    np.testing.assert_array_equal(np.load(runs[0] / f"share_{ranks}.npy"), whole)


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_save_one_rank_may_not_make_is_refused_by_every_rank_and_nothing_is_written(runs, ranks):
    """The file exists and only rank 0 passes force=True: every rank raises rank 1's OutputPathError; the file is
    kept. Paths that differ between ranks are refused too, and neither is written."""
    out = runs[0]
    kind, message = _alike(_said(runs, ranks), "save_existing_without_force")
    assert kind == "OutputPathError" and message == (
        f"{out / f'exists_{ranks}.h5'} exists; choose another path or pass force=True to overwrite it (on rank 1; "
        f"{ranks - 1} of {ranks} ranks refused their arguments)")
    assert (out / f"exists_{ranks}.h5").read_text() == "kept"
    kind, message = _alike(_said(runs, ranks), "unlike_save_path")
    paths = [repr(str(out / f"unwritten_{ranks}_{last}.h5")) for last in (False, True)]
    assert kind == "ValueError" and message == (f"path differs between ranks (path={paths[0]} on rank 0, {paths[1]} "
                                                f"on rank {ranks - 1}); pass the same path on every rank")
    assert not list(out.glob(f"unwritten_{ranks}*"))


@pytest.mark.parametrize("ranks", [2, 3])
def test_valid_arguments_that_differ_between_ranks_are_refused_by_every_rank(runs, ranks):
    """n_points, seed, chart, max_batches, layout, jacobian, the surface, n_test, the test seed, queries, the
    clustering seed, the points z, halo_cutoff or a CheckpointWriter's every, seconds or block_rows (its writes would
    fall out of step) given otherwise on the last rank: every rank raises ValueError naming the argument, rank 0's
    value and the last rank's."""
    every = _said(runs, ranks)
    for case, (name, first, other) in UNLIKE.items():
        kind, message = _alike(every, "unlike_" + case)
        assert kind == "ValueError" and message == (f"{name} differs between ranks ({name}={first} on rank 0, {other} "
                                                    f"on rank {ranks - 1}); pass the same {name} on every rank"), case
    for case, (name, first, other) in UNLIKE_DIGESTS.items():
        kind, message = _alike(every, "unlike_" + case)
        head, tail = message.split(" on rank 0, ")
        assert kind == "ValueError" and head.startswith(f"{name} differs between ranks ({name}={first}"), message
        assert tail.startswith(other) and tail.endswith(f" on rank {ranks - 1}); pass the same {name} on every rank")
        assert head[head.index("=") + 1:] != tail[: tail.index(" on rank")], message  # two values
