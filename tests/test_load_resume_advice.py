"""load_resume, a Python call, refuses a damaged or foreign checkpoint with advice a Python caller can follow (start
the flow afresh), not the command line's --force or --out, which `hpcflow run --resume` keeps for the same file."""

import h5py
import pytest

from hpcflow.checkpoint import load_resume
from hpcflow.errors import InputFileError

from test_checkpoint import RESUME_JOB

API_ADVICE = "start the flow afresh (kernel_flow with resume=None) and write a new checkpoint"


def _refusal(path) -> str:
    with pytest.raises(InputFileError) as refused:
        load_resume(path)
    return str(refused.value)


@pytest.mark.parametrize("how, said, advice", [
    ("not HDF5", "not a readable checkpoint", API_ADVICE),
    # another file (a PointSet file, an nn.h5): the path is wrong, not the flow (was: start the flow afresh)
    ("foreign HDF5", "not an hpcflow flow checkpoint (attribute kind)",
     "pass the path of a flow run's checkpoint.h5 (which hpcflow run writes)"),
])
def test_load_resume_of_a_bad_file_advises_the_python_caller(tmp_path, how, said, advice):
    bad = tmp_path / "bad.h5"
    if how == "not HDF5":
        bad.write_bytes(b"no HDF5 here" * 100)
    else:
        with h5py.File(bad, "w") as f:
            f["x"] = [1.0]
    message = _refusal(bad)  # said 'start the run again with --force (replaces it) or use a new --out'
    assert message.startswith(f"{bad}: ") and said in message and message.endswith(advice), message
    assert "--force" not in message and "--out" not in message and "\n" not in message


def test_a_damaged_checkpoint_is_advised_in_the_words_of_each_caller(tmp_path, capsys):
    """The same damaged checkpoint: the same problem from load_resume and from hpcflow run --resume, each with its
    own advice."""
    from hpcflow.cli import main

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(RESUME_JOB)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    ck = out / "checkpoint.h5"
    with h5py.File(ck, "r+") as f:
        del f["train/g"]
    capsys.readouterr()
    message = _refusal(ck)
    problem = f"{ck}: dataset train/g is missing; the checkpoint is incomplete, "
    assert message == problem + API_ADVICE, message
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert problem + (f"start over with: hpcflow run {job} --out {out} --force --set flow.steps=5 (it replaces that "
                      "run's files), or choose another --out") in err, err
