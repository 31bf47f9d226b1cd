"""optuna_view of studies beyond one objective with parameters: a multi-objective study gets each view per objective
(values, importances in the objective's direction, Pareto front), and a view skipped for want of trials with
parameters counts only those."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
optuna = pytest.importorskip("optuna")

GRID = [(x, y) for x in np.linspace(0.05, 0.95, 10) for y in np.linspace(0.05, 0.95, 10)]


def _values(x, y):
    """Objective 0 (minimised): x. Objective 1 (maximised): x + 10 [y > 0.85], whose best decile is the row y = 0.95
    (y decides it) and whose worst decile the column x = 0.05 (x decides it)."""
    return float(x), float(x + 10.0 * (y > 0.85))


def _multi(url):
    dist = optuna.distributions.FloatDistribution(0, 1)
    study = optuna.create_study(study_name="m", storage=url, directions=["minimize", "maximize"])
    for x, y in GRID:
        study.add_trial(optuna.trial.create_trial(params={"x": float(x), "y": float(y)},
                                                  distributions={"x": dist, "y": dist}, values=list(_values(x, y))))
    return study


def _bars(fig) -> dict:
    """{parameter: bar length} of an importances figure."""
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    return dict(zip(names, [p.get_width() for p in ax.patches]))


def test_a_multi_objective_study_is_drawn_per_objective(tmp_path, capsys):
    """optuna_view.py on a study of two objectives (a ValueError traceback: Optuna's views need a target): three
    figures per objective, the history's points its values, the importances in its direction (the maximised one is
    decided by y, the minimised one by x), and the Pareto front printed."""
    from hpcflow.analysis import optuna_view
    from hpcflow.analysis.script import main

    url = f"sqlite:///{tmp_path / 'm.db'}"
    study = _multi(url)
    assert main("optuna_view", [url, "--out", str(tmp_path / "F")]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "F").iterdir()) == sorted(
        [".hpcflow_optuna_view.json", *(f"optuna_{view}_objective{i}.png" for view in optuna_view.VIEWS for i in (0, 1))])
    for i in (0, 1):
        ax = optuna_view.plot(study, "history", i).axes[0]
        ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
        np.testing.assert_allclose(np.sort(ys), np.sort([_values(x, y)[i] for x, y in GRID]))
    lower_x = _bars(optuna_view.plot(study, "importances", 0))
    higher_1 = _bars(optuna_view.plot(study, "importances", 1))
    assert lower_x["x"] > lower_x["y"] and higher_1["y"] > higher_1["x"], (lower_x, higher_1)
    # the Pareto front by hand: no other trial has a lower x and a higher objective 1, or equal ones with one better
    vals = [_values(x, y) for x, y in GRID]
    front = [k for k, (a, b) in enumerate(vals)
             if not any((c <= a and d >= b) and (c < a or d > b) for c, d in vals)]
    printed = [int(n) for n in __import__("re").findall(r"Pareto-front trial (\d+):", out)]
    assert sorted(printed) == front and front, out
    assert "objectives: objective 0 (minimize), objective 1 (maximize)" in out


def _study(url, name, with_params: int, without: int):
    study = optuna.create_study(study_name=name, storage=url)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for k in range(with_params):
        study.add_trial(optuna.trial.create_trial(value=float(k), params={"x": 0.1 + 0.2 * k}, distributions=dist))
    for k in range(without):
        study.add_trial(optuna.trial.create_trial(value=10.0 + k))
    return study


@pytest.mark.parametrize("with_params, without", [(0, 3), (1, 2)])
def test_a_skipped_view_counts_only_trials_with_parameters(tmp_path, capsys, with_params, without):
    """'3 completed trial(s) with parameters; the importances view needs 2' was said of a study whose 3 trials have
    none; and importances were drawn from one trial with parameters among three."""
    from hpcflow.analysis.script import main

    url = f"sqlite:///{tmp_path / 's.db'}"
    _study(url, "noparams", with_params, without)
    assert main("optuna_view", [url, "--out", str(tmp_path / "F")]) == 0
    out = capsys.readouterr().out
    assert (f"skipped importances: study 'noparams': {with_params} completed trial(s) with parameters; the "
            "importances view needs 2") in out, out
    assert not (tmp_path / "F" / "optuna_importances.png").exists()
    assert (tmp_path / "F" / "optuna_slice.png").exists() == (with_params > 0)


def test_a_study_whose_only_trial_was_killed_names_its_directory_and_the_tune_command(tmp_path):
    """A tune directory whose one trial was killed (RUNNING in the journal, never told): optuna_view.py said only
    "study 'tune_gaussian': 0 completed trial(s); the history view needs 1". Now the line names the directory, the
    trials by state and the command that adds trials to it, as table1.py's does for the same study."""
    import os
    import shlex

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from analysis_runs import script

    tune = tmp_path / "tune_kill"
    tune.mkdir()
    storage = JournalStorage(JournalFileBackend(str(tune / "study.journal")))
    study = optuna.create_study(study_name="tune_gaussian", storage=storage, direction="maximize")
    study.ask({"flow.dt": optuna.distributions.FloatDistribution(0.1, 10, log=True)})  # its worker killed
    for name in ("optuna_view", "table1"):
        proc = script(name, tune, "--out", tmp_path / name)
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith(f"{name}: error: {tune}: study 'tune_gaussian': "), line
        assert "(trials: 1 running)" in line, line
        # a trial still running may be all the study lacks: waiting for it is said before more trials
        assert "; wait for the trial still running to end (then read it again), or " in line, line
        command = shlex.split(line.split("run more trials into it: ")[1])
        assert command[:2] == ["hpcflow", "tune"] and command[command.index("--out") + 1] == str(tune), line
        assert command[command.index("--study") + 1] == "tune_gaussian", line
        assert not os.path.exists(tmp_path / name)


def test_a_journal_whose_study_lacks_completed_trials_gets_a_tune_command_that_reaches_that_study(tmp_path):
    """A journal file (no study directory beside it) whose study 'shared_a' has no completed trial: the fix named a
    bare "hpcflow tune (--storage PATH)", which without --study would add trials to another study (the job file's
    stem). Now the command names the storage and the study."""
    import shlex

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from analysis_runs import script

    journal = tmp_path / "shared.journal"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="shared_a", storage=storage, direction="maximize")
    study.ask({"flow.dt": optuna.distributions.FloatDistribution(0.1, 10, log=True)})  # its worker killed
    proc = script("optuna_view", journal, "--out", tmp_path / "v")
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    command = shlex.split(line.split("run more trials into it: ")[1].split(" (JOB.toml:")[0])
    assert command[:2] == ["hpcflow", "tune"], line
    assert command[command.index("--storage") + 1] == str(journal), line
    assert command[command.index("--study") + 1] == "shared_a", line
