"""[training].lr_warmup: the linear warmup's rates, its validation, and --resume of a checkpoint written before
the key existed (the key counts as its default, 0: no warmup)."""

import json

import pytest

torch = pytest.importorskip("torch")

from hpcflow.errors import ConfigError  # noqa: E402
from hpcflow.jobs.schema import validate  # noqa: E402
from hpcflow.nn.job import SCHEMA, check, check_same_job  # noqa: E402
from hpcflow.nn.train import TrainConfig, learning_rate  # noqa: E402


def test_warmup_rates_rise_linearly_then_follow_the_schedule():
    # 4 epochs of 5 steps, warmup 2 epochs = 10 steps: factor (s + 1)/10 up to step 9, then 1
    cos = TrainConfig(epochs=4, lr=0.2, lr_min=0.0, lr_schedule="cosine", lr_warmup=2.0)
    plain = TrainConfig(**{**cos.__dict__, "lr_warmup": 0.0})
    assert learning_rate(cos, 0, 0, 20) == pytest.approx(0.02, rel=1e-15)  # 0.2 · 1/10, the cosine still at 1
    assert learning_rate(cos, 4, 0, 20) == pytest.approx(0.5 * learning_rate(plain, 4, 0, 20), rel=1e-15)
    for s in (9, 10, 19):
        assert learning_rate(cos, s, s // 5, 20) == learning_rate(plain, s, s // 5, 20)
    exp = TrainConfig(epochs=4, lr=0.1, lr_decay=0.5, lr_warmup=0.5)  # 2.5 steps
    assert learning_rate(exp, 0, 0, 20) == pytest.approx(0.04, rel=1e-15)
    assert learning_rate(exp, 1, 0, 20) == pytest.approx(0.08, rel=1e-15)
    assert learning_rate(exp, 6, 1, 20) == pytest.approx(0.05, rel=1e-15)


def _job(**training):
    return validate({"job": {"kind": "nn"}, "training": {"epochs": 4, **training}}, SCHEMA, source="job.toml")


def test_warmup_longer_than_the_run_is_refused_and_an_older_checkpoint_resumes():
    with pytest.raises(ConfigError, match=r"\[training\]\.lr_warmup"):
        check(_job(lr_warmup=5.0), "job.toml")
    check(_job(lr_warmup=4.0), "job.toml")
    old = _job()
    del old["training"]["lr_warmup"]  # a checkpoint written before the key existed
    state = {"config": json.dumps(old), "train": {"epoch": 2, "position": 0}}
    check_same_job(_job(), state, "ck.pt")
    with pytest.raises(ConfigError, match=r"\[training\]\.lr_warmup"):
        check_same_job(_job(lr_warmup=1.0), state, "ck.pt")
