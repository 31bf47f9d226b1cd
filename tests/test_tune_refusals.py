"""What `hpcflow tune` refuses before any work, and `hpcflow submit --command tune` (--check too) with it, and what
`hpcflow run` and `nn` refuse around a study directory: one line, exit 2, nothing on disk changed."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from optuna.trial import TrialState

from hpcflow.cli import main
from test_tune_records import _digests, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study of one finished trial of the tiny job (flow.steps = 3) in its default journal, and the job file."""
    base = tmp_path_factory.mktemp("study")
    job = _job(base)
    assert main(["tune", str(job), "--trials", "1", "--out", str(base / "s"), "--quiet"]) == 0
    return job, base / "s"


def _copy(study, tmp_path):
    job, out = study
    shutil.copytree(out, tmp_path / "s")
    return job, tmp_path / "s"


def _refusal(capsys, argv) -> str:
    """The one line (after 'error: ') of a command refused with exit status 2."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, (rc, err)
    return err.split(": error: ", 1)[1].strip()


def _submit(job, out, *extra, check=True):
    return ["submit", job, "--out", out, "--executor", "local", "--command", "tune", "--trials", "1", *extra,
            *(["--check"] if check else [])]


@pytest.mark.parametrize("extra, says", [
    (["--set", "flow.steps=4"], "this job has [flow].steps = 4, not 3"),
    (["--storage", "sqlite:///{tmp}/other.db"], "in storage {out}/study.journal, not sqlite:///{tmp}/other.db"),
    (["--storage", "bogus://x"], "in storage {out}/study.journal, not bogus://x")])
def test_submit_refuses_what_the_tune_it_queues_would_refuse(study, tmp_path, capsys, extra, says):
    """submit (--check and a real submission) ran the study's checks without its storage: a job that the study's
    record refuses, or another storage for its directory, was queued and the job ended with exit 2 at its start."""
    job, out = _copy(study, tmp_path)
    extra = [e.format(tmp=tmp_path) for e in extra]
    before = _digests(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", out, *extra])
    assert says.format(tmp=tmp_path, out=out) in refused, refused
    assert _refusal(capsys, _submit(job, out, *extra)) == refused
    assert _refusal(capsys, _submit(job, out, *extra, check=False)) == refused
    assert _digests(tmp_path) == before and not (tmp_path / "s_logs").exists()


def test_submit_reads_an_sqlite_study_without_writing_and_refuses_a_bad_url_as_tune_does(tmp_path, capsys):
    """A study in an SQLite database: submit reads its record (refusing another job) and leaves the database as it
    was; a database file that does not exist yet is not created; a URL no SQLAlchemy dialect takes is refused, as tune
    refuses it, for a new --out too."""
    job, out, db = _job(tmp_path), tmp_path / "s", tmp_path / "q.db"
    url = f"sqlite:///{db}"
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--storage", url, "--quiet"]) == 0
    before = _digests(tmp_path)
    refused = _refusal(capsys, _submit(job, out, "--storage", url, "--set", "flow.steps=4"))
    assert "this job has [flow].steps = 4, not 3" in refused
    assert _refusal(capsys, ["tune", job, "--trials", "1", "--out", out, "--storage", url, "--set",
                             "flow.steps=4"]) == refused
    assert main(_submit(str(job), str(out), "--storage", url)) == 0
    new = tmp_path / "new.db"
    assert main(_submit(str(job), str(tmp_path / "n"), "--storage", f"sqlite:///{new}")) == 0
    bad = ["--storage", "bogus://x"]
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", tmp_path / "n", *bad])
    assert refused.startswith("--storage bogus://x: cannot open it")
    assert _refusal(capsys, _submit(job, tmp_path / "n", *bad)) == refused
    assert _digests(tmp_path) == before and not new.exists() and not (tmp_path / "n").exists()


@pytest.mark.parametrize("entry, says", [
    ("best.toml", "--out {out} holds best.toml but no study.json, so no study wrote it and this one would write over "
                  "it"),
    ("notes.txt", "--out {out} is not empty: it holds 'notes.txt' and no study.json"),
    ("trials", "--out {out}: trials is a file where the study writes its trial directories"),
    ("trials/0000/x", "--out {out} holds trials but no study.json")])
def test_a_new_study_does_not_start_among_files_no_study_wrote(tmp_path, capsys, entry, says):
    """A new study's --out that holds a file of a name the study writes (the user's best.toml was replaced; a file
    named trials failed every trial with exit 3 after the study was written) or any other file: refused by tune and
    by submit, nothing written; the same directory emptied takes the study."""
    job, out = _job(tmp_path), tmp_path / "s"
    (out / entry).parent.mkdir(parents=True, exist_ok=True)
    (out / entry).write_text("mine\n")
    before = _digests(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", out])
    assert refused.startswith(says.format(out=out)), refused
    assert _refusal(capsys, _submit(job, out)) == refused
    assert _digests(tmp_path) == before and sorted(os.listdir(out)) == [entry.split("/")[0]]
    shutil.rmtree(out)
    out.mkdir()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    assert rc == 0 and (out / "study.json").is_file(), io.err


def test_a_study_directory_whose_trials_became_a_file_is_refused_before_any_trial(study, tmp_path, capsys):
    job, out = _copy(study, tmp_path)
    shutil.rmtree(out / "trials")
    (out / "trials").write_text("")
    before = _digests(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", out])
    assert refused.startswith(f"--out {out}: trials is a file where the study writes its trial directories")
    assert _digests(tmp_path) == before and len(_journal(out / "study.journal").trials) == 1


def test_run_and_nn_do_not_write_inside_a_study_directory_and_the_study_goes_on(study, tmp_path, capsys):
    """`hpcflow run` (--resume, --force, a new run) and `hpcflow nn` into a trial's directory, or a new one among
    them, also through a link, and a new study below it (`hpcflow tune`): refused in one line naming the study
    directory, nothing changed; tune still writes
    its next trial there, and the trial's job.toml reruns it outside."""
    job, out = _copy(study, tmp_path)
    trial = out / "trials" / "0000"
    (tmp_path / "link").symlink_to(out / "trials")
    quick, nn = os.path.join(ROOT, "jobs", "quickstart.toml"), os.path.join(ROOT, "jobs", "nn_smoke.toml")
    before = _digests(tmp_path)
    attempts = [["run", trial / "job.toml", "--out", trial, "--resume", "--set", "flow.steps=9"],
                ["run", trial / "job.toml", "--out", trial, "--force"],
                ["run", quick, "--out", out / "trials" / "0005", "--set", "flow.steps=1"],
                ["run", quick, "--out", tmp_path / "link" / "0006", "--check"],
                ["nn", nn, "--out", out / "trials" / "0007", "--check"],
                ["submit", quick, "--out", out / "trials" / "0005", "--executor", "local", "--check"],
                ["tune", job, "--trials", "1", "--out", out / "sub", "--quiet"],  # nor a study inside a study
                ["tune", job, "--trials", "1", "--out", tmp_path / "link" / "0006", "--quiet"]]
    for argv in attempts:
        refused = _refusal(capsys, argv)
        assert f"lies inside {out}, the study directory of 'hpcflow tune' (study.json)" in refused, refused
    assert _digests(tmp_path) == before and sorted(os.listdir(out / "trials")) == ["0000"]
    assert not (out / "sub").exists()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    assert rc == 0, io.err
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert json.loads((out / "trials" / "0001" / "summary.json").read_text())["status"] == "finished"
    assert main(["run", str(trial / "job.toml"), "--out", str(tmp_path / "rerun"), "--quiet"]) == 0
    rerun = json.loads((tmp_path / "rerun" / "summary.json").read_text())
    assert rerun["sigma_test_final"] == trials[0].user_attrs["sigma_test_final"]


def test_a_set_of_a_searched_setting_is_refused_naming_it(study, tmp_path, capsys):
    """--set flow.dt=3 where [tune.space] searches flow.dt was ignored (every trial ran its own dt) while the study's
    record and every trial's overrides listed it."""
    job, out = _copy(study, tmp_path)
    before = _digests(tmp_path)
    for where in (out, tmp_path / "new"):
        refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", where, "--set", "flow.dt=3"])
        assert refused == (f'{job}: --set flow.dt=3 sets flow.dt, which [tune.space] searches (every trial sets its '
                           'own value, so the --set would be ignored); remove "flow.dt" from [tune.space] to hold it '
                           "at 3, or drop the --set to search it")
        assert _refusal(capsys, _submit(job, where, "--set", "flow.dt=3")) == refused
    assert _digests(tmp_path) == before and not (tmp_path / "new").exists()


def test_a_study_directory_that_lost_its_study_json_is_continued_from_its_journal(study, tmp_path, capsys):
    """study.json gone (removed, or of an older layout) beside the study's journal, trials/ and best.toml: the journal
    is the study's record, so the same command continues the study, writes study.json again as it was and says so."""
    job, out = _copy(study, tmp_path)
    record = json.loads((out / "study.json").read_text())
    (out / "study.json").unlink()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    assert rc == 0, io.err
    assert (f"hpcflow tune: --out {out} held no study.json; wrote it again from study 'tiny' in storage "
            f"{out}/study.journal\n") in io.out
    assert json.loads((out / "study.json").read_text()) == record
    assert len(_journal(out / "study.journal").trials) == 2 and (out / "trials" / "0001" / "summary.json").is_file()


def test_a_journal_without_the_study_named_does_not_let_another_study_write_over_best_toml(study, tmp_path, capsys):
    """No study.json, and the journal in --out holds study 'tiny' beside its best.toml (trials/ moved away): a study
    of another name was created in that journal and wrote over best.toml; refused by tune and submit, naming the
    study the journal holds, nothing changed."""
    job, out = _copy(study, tmp_path)
    (out / "study.json").unlink()
    shutil.rmtree(out / "trials")
    before = _digests(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", out, "--study", "other"])
    assert refused == (f"--out {out} holds best.toml but no study.json, and its storage {out}/study.journal holds "
                       "study 'tiny', not 'other': this study would write over them; pass --study tiny to continue it "
                       "(study.json is written again), or choose another --out")
    assert _refusal(capsys, _submit(job, out, "--study", "other")) == refused
    assert _digests(tmp_path) == before and len(_journal(out / "study.journal").trials) == 1
