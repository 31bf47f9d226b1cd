"""A study's row in the report is the study its directory holds, once, and its best trial is checked as a run is:
two study directories sharing one journal under --study, a best trial whose data file is missing or damaged."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from analysis_runs import make_study, md_rows, run_dirs, script
from test_tune_records import _job, _journal, _tune


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _read(res) -> str:
    with open(res["md"], encoding="utf-8") as fh:
        return fh.read()


def _rows(md: str) -> dict:
    return md_rows(md.split("## Runs")[1].split("\n## ")[0])


def _shared(tmp_path, capsys):
    """Study directories a (study 'A') and b (study 'B') of one journal outside both, given by --storage."""
    job, journal = _job(tmp_path), tmp_path / "shared.journal"
    for d, name in (("a", "A"), ("b", "B")):
        rc, io = _tune(capsys, job, "--trials", "2", "--out", tmp_path / d, "--study", name, "--storage", journal)
        assert rc == 0, io.err
    assert json.loads((tmp_path / "a" / "study.json").read_text())["study"] == "A"
    return tmp_path / "a", tmp_path / "b"


def test_a_study_directory_of_another_study_is_not_reported_as_the_study_of_study(tmp_path, capsys):
    """Given a and b with --study B, the row of a showed study B (b's best trial, its numbers read from
    b/trials/NNNN) and b's row the same again. Now a, whose study.json names A, is skipped, saying why, and B is
    one row, b's; without --study each directory is its own study."""
    from hpcflow.report.build import build_report

    a, b = _shared(tmp_path, capsys)
    res = build_report([str(a), str(b)], tmp_path / "r", study_name="B")
    md = _read(res)
    rows = _rows(md)
    assert set(rows) == {"b"}, rows
    assert rows["b"][2].startswith("2 trials: 2 complete; best trial "), rows["b"]
    why = dict(res["skipped"])[str(a)]
    assert why.startswith("its study.json names study 'A', not 'B' of --study"), why
    table1 = md_rows(md.split("## Table 1")[1].split("\n## ")[0])
    assert [r for r in table1 if r.startswith("b: B trial ")] and not [r for r in table1 if r.startswith("a:")], table1
    assert "(optuna_history.png)" in md and "(optuna_a_" not in md, md  # B's figures once, not again as a's

    both = _rows(_read(build_report([str(a), str(b)], tmp_path / "r2")))  # each its own study, with its best trial
    for d, name in ((a, "A"), (b, "B")):
        best = _journal(tmp_path / "shared.journal", name).best_trial
        assert both[d.name][2].endswith(f"best trial {best.number} (the numbers of this row): log_gain_test = "
                                        f"{best.value:.4g}"), both


def test_a_study_directory_of_another_study_alone_under_study_is_refused(tmp_path, capsys):
    from hpcflow.errors import UserError
    from hpcflow.report.build import build_report

    a, _b = _shared(tmp_path, capsys)
    try:
        build_report([str(a)], tmp_path / "r", study_name="B")
    except UserError as exc:
        assert exc.exit_status == 2 and "names study 'A', not 'B' of --study" in str(exc), str(exc)
    else:
        raise AssertionError("reported study B as a's")
    assert not os.path.exists(tmp_path / "r")
    res = build_report([str(a)], tmp_path / "r", study_name="A")  # its own study: reported
    assert set(_rows(_read(res))) == {"a"}


def test_the_analysis_scripts_refuse_another_study_directory_under_study(tmp_path, capsys):
    """optuna_view.py a b --study B drew B's figures twice (as a's and b's); now a one-line error naming a."""
    a, b = _shared(tmp_path, capsys)
    for name in ("optuna_view", "table1"):
        proc = script(name, a, b, "--study", "B", "--out", tmp_path / name)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"{name}: error: {a}: its study.json names study 'A', not 'B'"), proc.stderr
        assert not os.path.exists(tmp_path / name)
    proc = script("table1", b, "--study", "B", "--out", tmp_path / "t")
    assert proc.returncode == 0 and "b: B trial " in proc.stdout, proc.stderr
    shutil.rmtree(tmp_path / "t")


def _study(tmp_path, capsys):
    """A study of two trials in tmp_path/s; (directory, best trial number, its run directory)."""
    job, out = _job(tmp_path), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    assert rc == 0, io.err
    best = _journal(out / "study.journal").best_trial.number
    return out, best, out / "trials" / f"{best:04d}"


def _trial_fix(out, trial) -> str:
    """The advice for a finished trial's directory inside a study (test_report_trial_advice): its job.toml rerun
    outside the study, as `hpcflow run` refuses --force inside it."""
    return (f"trial {int(trial.name)} of the study in {out}, complete and not retried by the study; --force is refused "
            f"inside a study: rerun its job.toml into an --out outside it: `hpcflow run {trial / 'job.toml'} --out "
            f"{out.parent / ('s_' + trial.name)}`")


def test_a_study_whose_best_trial_lost_its_data_file_is_marked_with_the_trials_fix(tmp_path, capsys):
    """The best trial's checkpoint.h5 removed (a partial copy): the study's row read as whole ("best trial k (the
    numbers of this row)", its summary's numbers unmarked) and only the skipped list said so, advising "pass the run
    directory of a flow job ... or the directory of a flow job's study". A run directory so is skipped with "restore
    it from a copy"; the study's row now marks its best trial so, with the fix for a trial's directory, and so does
    the skipped line of Table 1."""
    from hpcflow.report.build import build_report

    out, best, trial = _study(tmp_path, capsys)
    os.remove(trial / "checkpoint.h5")
    res = build_report([str(out)], tmp_path / "r")
    why = f"the flow run's checkpoint.h5 is missing (its summary.json is there); restore it from a copy; without a " \
          f"copy: it is {_trial_fix(out, trial)}"
    status = _rows(_read(res))["s"][2]
    assert status.startswith(f"2 trials: 2 complete; best trial {best} (the numbers of this row): "), status
    assert status.endswith(f"; its run is incomplete: {why}"), status
    skipped = dict(res["skipped"])[str(out)]
    assert skipped == f"Table 1: hyper-parameters and gains: {trial}: {why}", skipped
    assert "pass the run directory of a flow job" not in skipped


def test_a_study_whose_best_trial_data_file_is_damaged_is_marked(tmp_path, capsys):
    """checkpoint.h5 of the best trial cut short: the study's row read as whole; a run's own row says "checkpoint.h5
    unreadable (damaged)" with the trial's fix, and now so does the study's."""
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    out, _best, trial = _study(tmp_path, capsys)
    status = row(detect(out))[2]
    assert "its run is incomplete" not in status, status  # whole: unmarked
    os.truncate(trial / "checkpoint.h5", 1000)
    assert row(detect(trial))[2] == f"incomplete: checkpoint.h5 unreadable (damaged); {_trial_fix(out, trial)}"
    status = row(detect(out))[2]
    assert status.endswith(f"; its run is incomplete: checkpoint.h5 unreadable (damaged); {_trial_fix(out, trial)}"), \
        status


def test_a_study_whose_best_network_trial_lost_its_nn_h5_is_marked_as_its_run_is(tmp_path, runs):
    """A network best trial without nn.h5 (checkpoint.pt, which holds the whole training, there): its own row says
    "finished; nn.h5 missing: <fix>"; the study's row read as whole. Now it carries the same words; an intact network
    trial (nn.h5 and checkpoint.pt) and one whose nn.h5 alone is there stay unmarked (checkpoint.pt is no HDF5 file
    to be called unreadable)."""
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    nn = runs["nn"]
    gone, whole, alone = (tmp_path / n for n in ("gone", "whole", "alone"))
    for d in (gone, whole, alone):
        shutil.copytree(nn, d)
    os.remove(gone / "nn.h5")
    os.remove(alone / "checkpoint.pt")
    own = row(detect(gone))[2]
    assert own.startswith("finished; nn.h5 missing: write it again with hpcflow nn "), own
    for d, mark in ((gone, own.removeprefix("finished; ")), (whole, ""), (alone, "")):
        make_study(tmp_path / f"tune_{d.name}", str(d), [0.4, 2.0])
        status = row(detect(tmp_path / f"tune_{d.name}"))[2]
        want = "2 trials: 2 complete; best trial 1 (the numbers of this row): value = 2"
        assert status == want + (f"; its run is incomplete: {mark}" if mark else ""), (d.name, status)


def test_a_study_directory_and_its_shared_journal_are_one_study(tmp_path, capsys):
    """b and the journal it shares with a, given together with --study B (in either order), are study B once: b's row
    (the directory, whose trials it finds), the journal listed as merged into it; without --study the journal, holding
    A and B, names no one study and is refused as the input it is."""
    from hpcflow.errors import InputFileError
    from hpcflow.report.build import build_report

    a, b = _shared(tmp_path, capsys)
    journal = tmp_path / "shared.journal"
    best = _journal(journal, "B").best_trial
    for i, given in enumerate(([b, journal], [journal, b])):
        res = build_report(list(map(str, given)), tmp_path / f"r{i}", study_name="B")
        md = _read(res)
        rows = _rows(md)
        assert set(rows) == {"b"}, rows
        assert rows["b"][2].endswith(f"best trial {best.number} (the numbers of this row): log_gain_test = "
                                     f"{best.value:.4g}"), rows["b"]
        assert dict(res["skipped"]) == {str(journal): f"the same study as {b} (study 'B' in {journal}): read once"}
        table1 = md_rows(md.split("## Table 1")[1].split("\n## ")[0])
        assert list(table1) == [f"b: B trial {best.number}"], table1
    with pytest.raises(InputFileError, match="shared.journal: not a directory"):
        build_report([str(a), str(b), str(journal)], tmp_path / "r2")


def test_the_analysis_scripts_read_a_study_directory_and_its_journal_once(tmp_path, capsys):
    _a, b = _shared(tmp_path, capsys)
    journal = tmp_path / "shared.journal"
    best = _journal(journal, "B").best_trial
    merged = f"{journal}: the same study as {b} (study 'B' in {journal}): read once"
    proc = script("table1", b, journal, "--study", "B", "--out", tmp_path / "t")
    assert proc.returncode == 0 and proc.stderr == f"table1: {merged}\n", proc.stderr
    rows = md_rows((tmp_path / "t" / "table1.md").read_text())
    assert list(rows) == [f"b: B trial {best.number}"], rows
    proc = script("optuna_view", journal, b, "--study", "B", "--out", tmp_path / "o")
    assert proc.returncode == 0 and proc.stderr == f"optuna_view: {merged}\n", proc.stderr
    assert proc.stdout.count("study B: ") == 1, proc.stdout
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["optuna_history.png", "optuna_importances.png",
                                                                       "optuna_slice.png"]
