"""A finished network run's nn.h5 that h5py reads but that is not what its run wrote (a dataset of another shape or
dtype, an attribute no run writes, a NaN where a run writes finite values, a status or job other than checkpoint.pt's)
is judged alike by the report and by `hpcflow nn --resume`: the report calls the run damaged and names that resume,
and the resume it names writes nn.h5 again from checkpoint.pt, the run's datasets bit for bit but the wall-clock
seconds. The resume said "nothing to do" (exit 0, the file left damaged) where the report sent the user to it, or the
report sent the user to --force (a retraining) for a file the checkpoint writes again, or both called it whole."""

import json
import shlex
import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.analysis.rundir import completeness, nn_resume_command, run_state  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from test_nn_cli import JOB as NN_JOB  # noqa: E402

#: test_nn_cli's finished job (2 epochs, a width sweep, a kernel flow) with the NTK on 4 train and 4 test probes, so
#: also its train x test spectrum
JOB = NN_JOB.replace("n_test_points = 3", "n_test_points = 4")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(job file, the directory of a finished run of JOB, every dataset of its nn.h5 and its attributes)."""
    tmp = tmp_path_factory.mktemp("judged")
    job, run = tmp / "job.toml", tmp / "run"
    job.write_text(JOB)
    assert main(["nn", str(job), "--out", str(run), "--quiet"]) == 0
    return str(job), run, _contents(run)


def _contents(run) -> dict:
    with h5py.File(run / "nn.h5") as f:
        return {**datasets(run / "nn.h5"), "@": {k: str(v) for k, v in f.attrs.items()}}


def _replace(name, change):
    def edit(f):
        values = change(f[name][()])
        del f[name]
        f[name] = values
    return edit


def _attribute(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


def _nan_at_epoch_1(values):
    values[1] = np.nan
    return values


def _other_seed(f):
    cfg = json.loads(f.attrs["config"])
    cfg["geometry"]["seed"] += 1
    f.attrs["config"] = json.dumps(cfg, sort_keys=True)


#: edits of the run's nn.h5 that h5py still reads -> what the report's reason and the resume's line say of it
EDITS = {
    "ntk/spectrum of 10 columns": (_replace("ntk/spectrum", lambda v: v[:, :10]),
                                   "dataset ntk/spectrum of shape (3, 10), not (3, 324)"),
    "ntk/ntk_train_train float32": (_replace("ntk/ntk_train_train", lambda v: v.astype(np.float32)),
                                    "dataset ntk/ntk_train_train of dtype float32, not float64"),
    "ntk/ntk_train_test of 3 test probes": (_replace("ntk/ntk_train_test", lambda v: v[..., :3]),
                                      "dataset ntk/ntk_train_test of shape (3, 9, 9, 4, 3), not (3, 9, 9, 4, 4)"),
    "@status bogus": (_attribute("status", "bogus"), "attribute status = 'bogus', none of finished, stopped, diverged"),
    "@status diverged": (_attribute("status", "diverged"),
                         "attribute status = 'diverged', where checkpoint.pt says 'finished'"),
    "@config {}": (_attribute("config", "{}"), 'attribute config is not an nn job ([job].kind is not "nn")'),
    "@config of another seed": (_other_seed, "attribute config is another job than checkpoint.pt's (in "
                                             "[geometry].seed)"),
    "NaN in history/sigma_val": (_replace("history/sigma_val", _nan_at_epoch_1),
                                 "dataset history/sigma_val holds a NaN or inf at epoch 1, where a run writes finite "
                                 "values"),
}


def _edited(finished, tmp_path, case):
    """A copy of the finished run with EDITS[case] made to its nn.h5: (its directory, the words said of it)."""
    out = tmp_path / "run"
    shutil.copytree(finished[1], out)
    edit, words = EDITS[case]
    with h5py.File(out / "nn.h5", "a") as f:
        edit(f)
    return out, words


@pytest.mark.parametrize("case", list(EDITS))
def test_the_report_calls_it_damaged_and_names_the_resume(finished, tmp_path, case):
    out, words = _edited(finished, tmp_path, case)
    complete, reason = completeness(out)
    assert not complete and reason == f"nn.h5 damaged ({words}); write it again with {nn_resume_command(out)}", reason
    assert run_state(out).status_line() == f"incomplete: {reason}"


@pytest.mark.parametrize("case", list(EDITS))
def test_the_resume_the_report_names_writes_it_again(finished, tmp_path, capsys, case):
    _, _, before = finished
    out, words = _edited(finished, tmp_path, case)
    argv = shlex.split(nn_resume_command(out))
    assert argv[:2] == ["hpcflow", "nn"] and argv[-1] == "--resume"
    capsys.readouterr()
    assert main([*argv[1:], "--quiet"]) == 0
    said = [s for s in capsys.readouterr().out.splitlines() if "nn.h5" in s]
    assert said == [f"hpcflow nn: {out}: nn.h5 damaged in a finished run ({words}); redoing from checkpoint.pt what "
                    "follows its training (the NTK's spectra, the width sweep, the kernel flow, the outputs) to write "
                    "it again"], said
    after = _contents(out)
    assert sorted(after) == sorted(before) and after["@"] == before["@"]
    for name in sorted(set(before) - NN_TIMINGS - {"@"}):
        assert after[name].dtype == before[name].dtype, name
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert completeness(out) == (True, "")
    assert main([*argv[1:], "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_history_other_than_checkpoint_pts_is_written_again(finished, tmp_path, capsys):
    """A finished run's history/sigma_val one ulp off at epoch 1 (finite, so no reader can tell it from a run's): the
    resume compares the histories with checkpoint.pt's, bit for bit, and writes nn.h5 again; it said "nothing to
    do"."""
    job, run, before = finished
    out = tmp_path / "run"
    shutil.copytree(run, out)
    with h5py.File(out / "nn.h5", "a") as f:
        _replace("history/sigma_val", lambda v: np.where(np.arange(len(v)) == 1, np.nextafter(v, np.inf), v))(f)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 0
    said = [s for s in capsys.readouterr().out.splitlines() if "nn.h5" in s]
    assert len(said) == 1 and ("nn.h5 damaged in a finished run (dataset history/sigma_val differs from "
                               "checkpoint.pt's train.history.sigma_val at epoch 1)") in said[0], said
    np.testing.assert_array_equal(_contents(out)["history/sigma_val"], before["history/sigma_val"])


def _whole_to_both(job, out, capsys) -> None:
    """The run in `out` is complete to the report, and its resume has nothing to do, every file left as it was."""
    assert completeness(out) == (True, "")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--resume", "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_float32_models_finished_run_is_whole(tmp_path, capsys):
    """A network of [model].dtype float32 writes the same float64 histories and NTK as a float64 one: its finished
    run's nn.h5 is whole to the report and to the resume (the dtypes asked for are those a run writes)."""
    job, out = tmp_path / "job.toml", tmp_path / "run"
    job.write_text(JOB.replace('activation = "gelu"', 'activation = "gelu"\ndtype = "float32"'))
    assert main(["nn", str(job), "--out", str(out), "--quiet"]) == 0
    _whole_to_both(job, out, capsys)


def test_an_earlier_writers_nn_h5_of_0_epochs_is_whole(tmp_path, capsys):
    """An hpcflow before history/comm_seconds was (E, R) for E = 0 too wrote it (0,) for a run of 0 epochs: such a
    finished run's nn.h5 is whole to the report and to the resume ("nothing to do", every file as it was)."""
    job, out = tmp_path / "job.toml", tmp_path / "run"
    job.write_text(JOB.replace("epochs = 2", "epochs = 0"))
    assert main(["nn", str(job), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out / "nn.h5", "a") as f:
        assert f["history/comm_seconds"].shape == (0, 1)
        del f["history/comm_seconds"]
        f["history/comm_seconds"] = np.zeros(0)
    _whole_to_both(job, out, capsys)
