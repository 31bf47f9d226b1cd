"""A refusal (ConfigError, a ValueError too) raised while a checkpoint or an nn.h5's job is judged is said as it is:
the checkpoint reader took it for "a dataset or attribute has the wrong type or shape" (the checkpoint called damaged),
and nn.h5's comparison of its job with checkpoint.pt's took it for no difference at all (the check passed)."""

import json

import pytest

from hpcflow.errors import ConfigError, InputFileError

from test_checkpoint import RESUME_JOB

#: what the stand-in refusal says
SAID = "[flow].dt = 0 must be > 0; set a positive step"


def _refuse(*_args, **_kwargs):
    raise ConfigError(SAID)


def test_a_refusal_while_a_checkpoint_is_read_is_said_as_it_is(tmp_path, monkeypatch):
    import hpcflow.checkpoint as checkpoint
    from hpcflow.cli import main

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(RESUME_JOB)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    checkpoint.load_resume(out / "checkpoint.h5")  # (whole: read without a refusal)
    monkeypatch.setattr(checkpoint, "_check_leg_chain", _refuse)
    with pytest.raises(ConfigError) as info:
        checkpoint.load_resume(out / "checkpoint.h5")
    assert str(info.value) == SAID
    assert not isinstance(info.value, InputFileError)


def test_a_refusal_while_nn_h5s_job_is_compared_is_not_taken_for_the_same_job(monkeypatch):
    import hpcflow.nn.job as nn_job
    from hpcflow.nn.h5schema import _checkpoint_fault

    cfg = {"job": {"kind": "nn"}}
    state = {"status": "finished", "config": json.dumps(cfg)}
    assert _checkpoint_fault(None, nn_job.with_defaults(cfg), "finished", state) is None  # (the same job)
    monkeypatch.setattr(nn_job, "resume_key", _refuse)
    with pytest.raises(ConfigError, match=r"^\[flow\]\.dt = 0"):
        _checkpoint_fault(None, nn_job.with_defaults(cfg), "finished", state)
