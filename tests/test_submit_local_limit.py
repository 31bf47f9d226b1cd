"""A local job ended by the local executor's limit of runs is said to be preempted, with how to continue it."""

from pathlib import Path
from types import SimpleNamespace

from submitit.core.utils import UncompletedJobError

from hpcflow.errors import EXIT_PREEMPTED
from hpcflow.submit import executor
from hpcflow.submit.task import LOCAL_MAX_LEGS, legs_file


class _Ended:
    def __init__(self, folder):
        self.job_id = "77"
        self.state = "FINISHED"
        self.paths = SimpleNamespace(folder=folder, stderr=folder / "77_0_log.err", stdout=folder / "77_0_log.out")

    def done(self):
        return True

    def results(self):
        raise UncompletedJobError("no result")


def _wait(folder, runs, command):
    if runs:
        with open(legs_file(folder, "77"), "w") as f:
            f.write(f"local-h-77-1 {runs - 1}\n")
    lines = []
    status = executor.wait([_Ended(folder)], log=lines.append, command=command, out="/x/out")
    return status, lines


def test_limit_of_runs_says_preempted_and_how_to_continue(tmp_path):
    status, lines = _wait(tmp_path, LOCAL_MAX_LEGS, "nn")
    assert status == EXIT_PREEMPTED and len(lines) == 1
    assert f"limit of {LOCAL_MAX_LEGS} runs" in lines[0] and "preempted in /x/out" in lines[0]
    assert "JOB" not in lines[0]  # (no command named with a placeholder for the job file)
    status, lines = _wait(tmp_path, LOCAL_MAX_LEGS, "tune")
    assert status == EXIT_PREEMPTED and "--trials" in lines[0]


def test_fewer_runs_is_a_job_without_a_result(tmp_path):
    status, lines = _wait(tmp_path, LOCAL_MAX_LEGS - 1, "run")
    assert status == 1 and "ended without a result" in lines[0]


class _Done:
    def __init__(self, folder, job_id, status):
        self.job_id, self.status = job_id, status
        self.paths = SimpleNamespace(folder=folder, stderr=folder / f"{job_id}_0_log.err")
        self.paths.stderr.write_text("")

    def done(self):
        return True

    def results(self):
        return [self.status]


def test_the_failed_worker_of_an_array_is_named_with_its_log(tmp_path):
    lines = []
    jobs = [_Done(tmp_path, "10", 0), _Done(tmp_path, "11", 2), _Done(tmp_path, "12", 0)]
    assert executor.wait(jobs, log=lines.append) == 2
    assert len(lines) == 1 and "job 11 (array index 1 of 3)" in lines[0] and "exit status 2" in lines[0]
    assert str(tmp_path / "11_0_log.err") in lines[0]


def test_limit_of_runs_names_the_submit_command_that_continues_it(tmp_path):
    """Given the submit command that continues the run, the line names it where --out holds the interrupted run."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"")  # (no summary.json: an interrupted run)
    with open(legs_file(tmp_path, "77"), "w") as f:
        f.write(f"local-h-77-1 {LOCAL_MAX_LEGS - 1}\n")
    again = f"hpcflow submit j.toml --out {out} --executor local --command nn --resume"
    for where, said in ((out, f"submit it again as before with --resume ({again}); "),
                        (tmp_path / "empty", "submit it again as before with --resume; ")):
        lines = []
        assert executor.wait([_Ended(tmp_path)], log=lines.append, command="nn", out=str(where), again=again) == 4
        assert said in lines[0], lines


def test_limit_of_runs_names_the_jobs_own_command_with_its_set_values(tmp_path, monkeypatch, capsys):
    """The line named `hpcflow run JOB --out OUT --resume`, a literal JOB and without the job's --set values; it now
    names the submitted job's own command line with --resume (no --force), which hpcflow's parser reads back."""
    import shlex

    from hpcflow.cli import build_parser, main
    from test_submit import JOB

    job, out = tmp_path / "my job.toml", tmp_path / "out"
    job.write_text(JOB)
    with open(legs_file(tmp_path, "77"), "w") as f:
        f.write(f"local-h-77-1 {LOCAL_MAX_LEGS - 1}\n")
    (tmp_path / "77_0_log.err").write_text("")
    monkeypatch.setattr(executor, "submit", lambda ex, task, argvs: [_Ended(tmp_path)])
    argv = ["submit", str(job), "--out", str(out), "--executor", "local", "--logs", str(tmp_path / "logs"), "--wait",
            "--force", "--quiet", "--set", "flow.steps=7", "--set", "flow.dt=0.5"]
    assert main(argv) == EXIT_PREEMPTED
    line = next(x for x in capsys.readouterr().out.splitlines() if "limit of" in x)
    here = shlex.split(line.split(", or run here: ")[1].split("; see ")[0])
    assert here[:2] == ["hpcflow", "run"] and "--force" not in here, here
    again = build_parser().parse_args(here[1:])
    assert (again.out, again.resume, again.set) == (str(out), True, ["flow.steps=7", "flow.dt=0.5"])
    copy = Path(again.job)  # the copy of the job file that the job ran (`hpcflow.commands.submit._frozen_job`)
    assert copy.name == job.name and copy.parent.parent == tmp_path / "logs" and copy.read_text() == JOB, copy


def test_the_logs_line_quotes_paths_with_spaces(tmp_path, monkeypatch, capsys):
    """The logs line named its two files unquoted: a path with spaces read as several words."""
    import shlex

    from hpcflow.cli import main
    from test_submit import JOB

    folder = tmp_path / "my logs"
    folder.mkdir()
    (tmp_path / "job.toml").write_text(JOB)
    monkeypatch.setattr(executor, "submit", lambda ex, task, argvs: [_Ended(folder)])
    assert main(["submit", str(tmp_path / "job.toml"), "--out", str(tmp_path / "out"), "--executor", "local",
                 "--logs", str(folder)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "  logs " in x)
    assert shlex.split(line.split("  logs ", 1)[1]) == [str(folder / "77_0_log.out"), "and", str(folder / "77_0_log.err")]
