"""Ranks at different collective checks of hpcflow.parallel.comm (a rank that skipped a check or called another:
a programming error) are told so, on every rank together, naming both checks (tests/mpi/check_mismatch_driver.py
at 2 ranks). Argument checks compared the values of unrelated arguments by position and said the first "differs
between ranks" under rank 0's name; agreements named a value "unset" on the rank that never had it; an argument
check meeting an agreement failed on each rank with its own unpacking error. Ranks at the same check with different
values are still told which value differs."""

import json
import os
import subprocess
import sys

import pytest

from test_parallel import mpiexec

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "check_mismatch_driver.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    out = tmp_path_factory.mktemp("mismatch")
    r = subprocess.run(["timeout", "60", mpiexec(), "-n", "2", sys.executable, SCRIPT, str(out)],
                       capture_output=True, text=True, env=ENV, timeout=90)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "outcomes.json", encoding="utf-8") as fh:
        return json.load(fh)


def _alike(outcomes, case):
    """The outcome of `case`, the same on both ranks."""
    assert outcomes[0][case] == outcomes[1][case], (outcomes[0][case], outcomes[1][case])
    return outcomes[0][case]


def _at(case: str, k: int) -> str:
    """Where the `k`-th call of a check in the driver's function `case` is: "in case (file:line)"."""
    with open(SCRIPT, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    start = lines.index(next(line for line in lines if line.startswith(f"def {case}(")))
    calls = [i + 1 for i, line in enumerate(lines) if i > start and "pcomm." in line]
    return f"in {case} ({os.path.basename(SCRIPT)}:{calls[k]})"


@pytest.mark.parametrize("case, first, other", [
    ("arguments_names", f"an argument check comparing n_points, seed {_at('arguments_names', 0)}",
     f"an argument check comparing layout {_at('arguments_names', 1)}"),
    ("agreement_names", f"agreement of command, hpcflow version {_at('agreement_names', 0)}",
     f"agreement of job {_at('agreement_names', 1)}"),
    ("other_checks", f"an argument check comparing seed {_at('other_checks', 0)}",
     f"agreement of seed {_at('other_checks', 1)}"),
])
def test_ranks_at_different_checks_are_told_so_naming_both(outcomes, case, first, other):
    kind, message, collective = _alike(outcomes, case)
    assert kind == "RuntimeError" and collective, message
    assert message.startswith(f"ranks are at different collective checks ({first} on rank 0, {other} on rank 1)"), \
        message
    assert "differs" not in message and "unset" not in message, message


@pytest.mark.parametrize("case, said", [
    ("arguments_values", "n_points differs between ranks (n_points=40 on rank 0, 41 on rank 1)"),
    ("arguments_named_by_value", "n_test differs between ranks (n_test=0 on rank 0, 20 on rank 1)"),
    ("agreement_values", 'command differs between ranks ("hpcflow run" on rank 0, "hpcflow nn" on rank 1)'),
])
def test_a_value_that_differs_at_the_same_check_is_named(outcomes, case, said):
    kind, message, collective = _alike(outcomes, case)
    assert kind in ("ValueError", "ConfigError") and collective, message
    assert message.startswith(said), message
