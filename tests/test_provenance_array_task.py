"""summary.json's provenance names a Slurm array task as Slurm does, ARRAYJOBID_TASKID (`slurm_array_task`): its
`slurm_job_id` (SLURM_JOB_ID) is a number of the task's own, or for one task the array's id (2164 for task 2164_1),
which named no task of the array."""

import json

from hpcflow.cli import main
from test_submit import JOB


def test_an_array_tasks_run_records_the_task_as_slurm_names_it(tmp_path, monkeypatch):
    (tmp_path / "job.toml").write_text(JOB)
    monkeypatch.setenv("SLURM_JOB_ID", "2164")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "2164")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert main(["run", str(tmp_path / "job.toml"), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    provenance = json.loads((tmp_path / "a" / "summary.json").read_text())["provenance"]
    assert (provenance["slurm_job_id"], provenance["slurm_array_task"]) == ("2164", "2164_1")
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):  # a job that is no array task
        monkeypatch.delenv(name)
    assert main(["run", str(tmp_path / "job.toml"), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    provenance = json.loads((tmp_path / "b" / "summary.json").read_text())["provenance"]
    assert (provenance["slurm_job_id"], provenance["slurm_array_task"]) == ("2164", None)
