"""`hpcflow nn --resume` compares the effective job with the checkpoint's, as the flow's resume does
(`flow_job.effective`): a key left unset and the same key set to the value unset means are one job, while a real
change is still refused naming the key."""

import json

import pytest

pytest.importorskip("torch")

from hpcflow.errors import ConfigError  # noqa: E402
from hpcflow.jobs.schema import validate  # noqa: E402
from hpcflow.nn.job import SCHEMA, check_same_job, effective  # noqa: E402


def _job(training_lr=2e-3, **sweep):
    return validate({"job": {"kind": "nn"}, "training": {"epochs": 4, "lr": training_lr},
                     "width_sweep": {"widths": [4], **sweep}}, SCHEMA, source="job.toml")


def _state(cfg):
    return {"config": json.dumps(cfg), "train": {"epoch": 2, "position": 0}}


@pytest.mark.parametrize("saved,asked", [({}, {"lr": 2e-3}), ({"lr": 2e-3}, {})])
def test_width_sweep_lr_unset_and_set_to_the_training_lr_are_the_same_job(saved, asked):
    """[width_sweep].lr unset means the [training] lr: the sweep trains alike either way, so --resume continues it
    (it was refused as '[width_sweep].lr differs')."""
    old, new = _job(**saved), _job(**asked)
    assert (old["width_sweep"]["lr"] is None) != (new["width_sweep"]["lr"] is None)  # the raw configs differ
    check_same_job(new, _state(old), "ck.pt")
    assert effective(old) == effective(new) and effective(new)["width_sweep"]["lr"] == new["training"]["lr"]


@pytest.mark.parametrize("saved,asked", [({}, {"lr": 5e-3}), ({"lr": 5e-3}, {})])
def test_a_real_change_of_the_sweep_lr_is_still_refused(saved, asked):
    with pytest.raises(ConfigError, match=r"differs from the checkpoint's in \[width_sweep\]\.lr;"):
        check_same_job(_job(**asked), _state(_job(**saved)), "ck.pt")


def test_a_change_of_the_training_lr_with_the_sweep_lr_unset_is_refused():
    """With [width_sweep].lr unset, the [training] lr is also the sweep's: changing it is refused, and the --set
    values named restore the checkpoint's job."""
    with pytest.raises(ConfigError, match=r"\[training\]\.lr") as exc:
        check_same_job(_job(training_lr=1e-3), _state(_job()), "ck.pt")
    assert "--set training.lr=0.002" in str(exc.value)
    check_same_job(_job(training_lr=2e-3), _state(_job()), "ck.pt")


@pytest.mark.parametrize("schedule,key,value", [("cosine", "lr_decay", 0.9), ("exponential", "lr_min", 1e-4)])
def test_a_checkpoint_whose_job_set_a_rate_key_its_schedule_ignores_resumes_without_it(schedule, key, value):
    """A checkpoint written when such a key was accepted (it changed nothing) resumes with the job that leaves it
    out, which is now the only one that loads; another schedule is still a change."""
    saved = _job()
    saved["training"].update(lr_schedule=schedule, **{key: value})
    asked = _job()
    asked["training"]["lr_schedule"] = schedule
    check_same_job(asked, _state(saved), "ck.pt")
    other = "exponential" if schedule == "cosine" else "cosine"
    asked["training"]["lr_schedule"] = other
    with pytest.raises(ConfigError, match=r"\[training\]\.lr_schedule"):
        check_same_job(asked, _state(saved), "ck.pt")


def test_the_resumable_keys_are_said_from_the_tuple_itself():
    """The refusal's words follow RESUMABLE_CHANGES (no second list to keep in step): each section's keys together,
    in order, a whole table as [section]."""
    from hpcflow.nn.job import RESUMABLE_CHANGES, RESUMABLE_SAID, changes_said

    assert changes_said((("a", "x"),)) == "[a].x"
    assert changes_said((("a", "x"), ("b", None))) == "[a].x and [b]"
    assert changes_said((("a", "x"), ("b", None), ("a", "y"), ("c", "z"), ("a", "w"))) == \
        "[a].x, y and w, [b] and [c].z"
    assert RESUMABLE_SAID == changes_said(RESUMABLE_CHANGES)
    assert RESUMABLE_SAID == ("[training].epochs, threads and check_replicas, [geometry].max_batches, [checkpoint] "
                              "and [job].description")
