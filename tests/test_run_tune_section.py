"""`hpcflow run` of a job with a [tune] section runs the job as written and says that `hpcflow tune` reads it."""

from hpcflow.cli import main


def test_a_tune_section_is_said_to_be_unused_by_hpcflow_run(tmp_path, capsys, monkeypatch):
    """`hpcflow run` of a flow job with a [tune] section (jobs/tune_delta.toml) ran it as written without a word: a
    user who meant a study is told which command reads it; a job without one gets no note."""
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    assert main(["run", "jobs/tune_delta.toml", "--out", str(tmp_path / "run"), "--check"]) == 0
    err = capsys.readouterr().err
    assert "jobs/tune_delta.toml's [tune] section is not used here" in err and "'hpcflow tune" in err, err
    assert err.count("\n") == 1, err
    assert main(["run", "jobs/quickstart.toml", "--out", str(tmp_path / "run"), "--check"]) == 0
    assert "[tune]" not in capsys.readouterr().err
