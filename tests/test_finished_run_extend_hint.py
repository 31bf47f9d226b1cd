"""A run into the --out of a finished run of its own kind with a checkpoint, without --resume (e.g. the same job with
more [training].epochs or [flow].steps): the refusal said only "choose another --out or pass --force", which throws
the finished run away. It adds that --resume extends it where the job differs only in those keys or the others a
resume may change, [checkpoint] and [job].description among them (a resume with another description extends it),
and says so only there: not beside another kind's run, a run without its checkpoint or a run that did not finish."""

import json
import os

import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

#: command, job text, checkpoint, the --set of the finished run and of a longer one, the key extended, how
KINDS = {"run": (flow_points(60, 20) + DELTA_FLOW, "checkpoint.h5", "flow.steps=3", "flow.steps=5", "[flow].steps",
                 "with --resume"),
         "nn": (NN_POINTS + SMALL_NET + TINY_TRAINING, "checkpoint.pt", "training.epochs=1", "training.epochs=2",
                "[training].epochs", "with 'hpcflow nn --resume'")}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


def _finished(tmp_path, verb):
    text, ckpt, first, _, _, _ = KINDS[verb]
    job, out = tmp_path / f"{verb}.toml", tmp_path / verb
    job.write_text(text)
    assert main([verb, str(job), "--out", str(out), "--quiet", "--set", first]) == 0
    assert (out / ckpt).is_file()
    return str(job), out


@pytest.mark.parametrize("verb", ["run", "nn"])
def test_a_longer_run_into_a_finished_run_is_told_that_resume_extends_it(tmp_path, capsys, verb):
    _, ckpt, _, longer, key, how = KINDS[verb]
    job, out = _finished(tmp_path, verb)
    capsys.readouterr()
    argv = [verb, job, "--out", str(out), "--quiet", "--set", longer]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"already holds results ({ckpt})" in err and "--force" in err, err
    assert f"only in {key}, " in err and f"[checkpoint] and [job].description, extend it {how}" in err, err
    resume = ["nn", *argv[1:]] if verb == "nn" else argv
    assert main([*resume, "--set", 'job.description="longer"', "--resume"]) == 0  # the advice runs: it goes on
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("verb", ["run", "nn"])
@pytest.mark.parametrize("how", ["no checkpoint", "diverged", "another kind"])
def test_the_hint_is_given_only_for_a_finished_run_of_the_jobs_kind_with_its_checkpoint(tmp_path, capsys, verb,
                                                                                        how):
    _, ckpt, _, longer, _, _ = KINDS[verb]
    job, out = _finished(tmp_path, verb)
    if how == "no checkpoint":
        os.unlink(out / ckpt)
    elif how == "diverged":
        summary = json.loads((out / "summary.json").read_text())
        (out / "summary.json").write_text(json.dumps(dict(summary, status="diverged")))
    else:
        other = "nn" if verb == "run" else "run"
        job = str(tmp_path / f"{other}.toml")
        (tmp_path / f"{other}.toml").write_text(KINDS[other][0])
        longer = KINDS[other][3]
    capsys.readouterr()
    assert main(["run", job, "--out", str(out), "--quiet", "--set", longer]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds results" in err and "--resume" not in err, err


#: what --resume accepts besides the key that extends a run (README: "a resume may change ..."), as the hint says it
OTHERS = {"run": ("[geometry].max_batches", "[checkpoint]", "[job].description"),
          "nn": ("threads", "check_replicas", "[geometry].max_batches", "[checkpoint]", "[job].description")}


@pytest.mark.parametrize("verb", ["run", "nn"])
def test_the_hint_names_every_key_the_resume_accepts(tmp_path, capsys, verb):
    """The hint names every key that a resume accepts, from the list the resume's refusal names them from (for a
    network it named [training].epochs, [checkpoint] and [job].description only, not [training].threads and
    check_replicas or [geometry].max_batches), and the resume it advises accepts a change of each of them."""
    import importlib

    _, ckpt, _, longer, key, _ = KINDS[verb]
    job, out = _finished(tmp_path, verb)
    capsys.readouterr()
    assert main([verb, job, "--out", str(out), "--quiet", "--set", longer]) == 2
    err = capsys.readouterr().err
    said = importlib.import_module({"run": "hpcflow.checkpoint", "nn": "hpcflow.nn.job"}[verb]).RESUMABLE_SAID
    assert f"only in {said}, extend it" in err, err
    for name in (key, *OTHERS[verb]):
        assert name in said, (name, said)
    sets = ["geometry.max_batches=1000", 'job.description="other"', "checkpoint.every=1"]
    if verb == "nn":
        sets += ["training.threads=2", "training.check_replicas=true"]
    argv = ["nn" if verb == "nn" else verb, job, "--out", str(out), "--quiet", "--set", longer, "--resume"]
    assert main([*argv, *(a for s in sets for a in ("--set", s))]) == 0


def test_the_help_of_nn_resume_names_every_key_the_resume_accepts(capsys):
    """`hpcflow nn --help`'s --resume names every key of the resume's list (it left out [geometry].max_batches)."""
    from hpcflow.nn.job import RESUMABLE_CHANGES

    with pytest.raises(SystemExit):
        main(["nn", "--help"])
    resume = " ".join(capsys.readouterr().out.split()).split("--resume ", 2)[-1].split("nothing else may")[0]
    for section, key in RESUMABLE_CHANGES:
        assert f"[{section}]" in resume and (key is None or key in resume), (section, key, resume)
