"""`hpcflow tune` refusals of a [tune].seed outside a seed's range: one line naming the key and the range, exit 2,
nothing written."""

from __future__ import annotations

import pytest

from test_tune_records import _job  # tests/ is on sys.path (pytest's default import mode)
from test_tune_refusals import _refusal


@pytest.mark.parametrize("seed", ["-1", str(2**62 + 1), "9223372036854775807"])
def test_a_tune_seed_outside_0_to_2_62_is_refused_with_its_own_range(tmp_path, capsys, seed):
    """A seed is >= 0 (numpy's SeedSequence refuses a negative one) and a job file's seeds lie in [0, 2**62]: the
    refusal named [-2**62, 2**62], a range whose lower half no seed may take."""
    job = _job(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", tmp_path / "s", "--set", f"tune.seed={seed}"])
    assert f"[tune].seed = {seed}: must lie in [0, 2**62]" in refused, refused
    assert not (tmp_path / "s").exists()
