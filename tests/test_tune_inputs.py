"""What `hpcflow tune` accepts and refuses of a study's job, its --set values, its storage and its queued trials, and
what its lines say."""

from __future__ import annotations


from optuna.trial import TrialState

from hpcflow.jobs import registry
from hpcflow.tune.trial import trial_seeds
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's import mode)


def _flow_cfg(path, overrides=()):
    return registry.load(str(path), list(overrides))[1]


def test_a_later_worker_may_change_the_test_seed_as_it_may_the_seed(tmp_path, capsys):
    """[geometry].test_seed, like seed, is replaced by every trial's own point seed: a later worker whose job sets
    another one joins the study (it was refused); its trial's points are the trial's, not the job's."""
    with_seed = lambda s: JOB.replace("n_test = 60", f"n_test = 60\ntest_seed = {s}")  # noqa: E731
    first, later = _job(tmp_path, with_seed(5), "a.toml"), _job(tmp_path, with_seed(6), "b.toml")
    out = tmp_path / "s"
    assert _tune(capsys, first, "--trials", "1", "--out", out, "--study", "tiny", "--quiet")[0] == 0
    rc, io = _tune(capsys, later, "--trials", "1", "--out", out, "--study", "tiny", "--quiet")
    assert rc == 0 and io.err == "", io.err
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    geo = _flow_cfg(out / "trials" / "0001" / "job.toml")["geometry"]
    assert [geo["seed"], geo["test_seed"]] == list(trial_seeds(5, 1))


def test_a_set_of_a_point_seed_is_refused_before_any_work(tmp_path, capsys):
    """--set geometry.seed=3 / geometry.test_seed=5 ran the study with every trial's own seeds and said nothing
    (exit 0); [tune.space] refuses them, and so does --set now: one line naming [tune].seed, nothing written."""
    job = _job(tmp_path)
    for key in ("geometry.seed=3", "geometry.test_seed=5"):
        out = tmp_path / key.split("=")[0]
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--set", key)
        assert rc == 2 and io.err.count("\n") == 1 and io.out == "", io.err
        assert f"--set {key} sets {key.split('=')[0]}" in io.err and "[tune].seed" in io.err, io.err
        assert not out.exists()
