"""kernel_flow's argument checks at R = 2, 3 with a bad argument on one or two ranks (tests/mpi/flow_arg_checks.py):
every rank raises the lowest failing rank's one-line TypeError / ValueError together, as one process would for
those arguments, and stays in step with the others; uncaught, every rank ends within the time limit."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from test_parallel import each_rank_status, mpiexec, rank_statuses

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "flow_arg_checks.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow_args")
    for ranks in (2, 3):
        r = subprocess.run(["timeout", "120", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(out)],
                           capture_output=True, text=True, timeout=150, env=ENV)
        assert r.returncode == 0, r.stdout + r.stderr  # (124: a rank waited in a collective the others left)
    return out


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_bad_argument_on_some_ranks_is_refused_by_every_rank(refused, ranks):
    got = json.loads((refused / f"refused_{ranks}.json").read_text())
    every, alone, failing = got["every"], got["alone"], got["failing"]
    assert len(every) == ranks
    for case, expected in alone.items():
        assert expected is not None and "\n" not in expected[1], case  # one process refuses it, in one line
        kind, message = expected  # ... and every rank the same, naming the lowest failing rank (the ranks differ)
        message += f" (on rank {min(failing[case])}; {len(failing[case])} of {ranks} ranks refused their arguments)"
        for rank, said in enumerate(every):
            assert said[case] == [kind, message, True], f"{case}, rank {rank} of {ranks}"  # marked collective
    assert alone["two_ranks"][0] == "ValueError" and alone["two_ranks"][1].startswith("tile=0")  # rank 0's
    after = np.load(refused / f"after_{ranks}.npy")
    assert after.shape == (3,) and np.all(np.isfinite(after))  # a valid flow afterwards: the ranks are in step


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_whole_set_given_as_its_fields_alone_flows_as_the_point_set(refused, ranks):
    """The whole train set on every rank as an object with points, g_fs, omega2 and weights only (no len(), no rows
    of its own): each rank keeps its share of the rows, as of a PointSet, and the flow is the one of the shares."""
    np.testing.assert_array_equal(np.load(refused / f"fields_{ranks}.npy"), np.load(refused / f"after_{ranks}.npy"))


@pytest.mark.parametrize("ranks", [2, 3])
def test_valid_arguments_that_differ_between_ranks_are_refused_by_every_rank(refused, ranks):
    """dt, the kernel's width or early_stop given otherwise on the last rank: each rank flowed its own way, mixing
    its sums with the others' (no error); every rank now refuses the first such argument, naming both values."""
    every = json.loads((refused / f"refused_{ranks}.json").read_text())["every"]
    last = ranks - 1
    for name, mine, theirs in (("dt", "0.05", "0.1"), ("early_stop", "None", "3"),
                               ("kernel", "'width': 0.3,", "'width': 0.31,")):
        for rank, said in enumerate(every):
            kind, message, collective = said["unlike_" + name]
            assert kind == "ValueError" and collective and "\n" not in message, (name, rank, message)
            assert message.startswith(f"{name} differs between ranks ({name}=") and f"on rank {last})" in message
            head, tail = message.split(" on rank 0, ")
            assert mine in head and theirs in tail and message.endswith(f"pass the same {name} on every rank")


@pytest.mark.parametrize("ranks", [2, 3])
def test_an_uncaught_refusal_ends_every_rank(tmp_path, ranks):
    """The last rank's kernel by name, uncaught: every rank ends with status 1, each with the TypeError, none by
    `abort_on_error`'s Abort of the others (a refusal decided together is let through)."""
    cmd = each_rank_status(tmp_path / "status", ranks, [sys.executable, SCRIPT, str(tmp_path), "uncaught"])
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=ENV)
    assert rank_statuses(tmp_path / "status", ranks) == [1] * ranks, r.stderr
    # counted, not looked for at line starts: the ranks share stderr and their lines may interleave
    assert r.stderr.count("kernel='gaussian' is not a kernel") == ranks and r.stderr.count("TypeError") >= ranks, \
        r.stderr
    assert "ERROR TypeError" not in r.stderr, r.stderr  # (abort_on_error's line for one rank's exception)
