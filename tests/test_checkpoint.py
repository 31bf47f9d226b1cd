"""Flow checkpoints: rows from any split of ranks land in global order; atomic replacement; SIGTERM; resume."""

import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.checkpoint import check_resumable, load_resume
from hpcflow.errors import ConfigError, InputFileError
from hpcflow.geometry.hermitian import pack

from test_parallel import each_rank_status, mpiexec, rank_statuses

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "checkpoint_checks.py")


def _v(idx, step):  # the fake flow's metrics, restated independently of the script
    v = np.zeros((len(idx), 9))
    v[:, :3] = 1.0 + np.asarray(idx)[:, None] * 0.1 + step
    v[:, 3:] = 0.01 * (np.asarray(idx)[:, None] + np.arange(6)) / (1 + step)
    return v


def _run(ranks, out, steps, *extra):
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, str(out), str(steps), *map(str, extra)]
    return subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90,
                          env=dict(os.environ, HPCFLOW_THREADS="1"))


# 1 rank (no neighbours) and 3 (a first, a middle and a last rank, uneven shares of the 11 rows): a run on 2
# ranks has only a first and a last, both covered here, as in the three 3-rank tests below
@pytest.mark.parametrize("ranks", [1, 3])
def test_rows_of_every_rank_written_in_global_order(tmp_path, ranks):
    out = tmp_path / "checkpoint.h5"
    r = _run(ranks, out, 5)
    assert r.returncode == 0, r.stderr
    res = load_resume(out)
    assert res.step == 5 and res.status == "finished" and res.test_held == 3
    np.testing.assert_array_equal(res.rows("train", np.arange(11)), _v(np.arange(11), 5))
    np.testing.assert_array_equal(res.rows("test", [2, 5]), 2 * _v([2, 5], 5))
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["train/weights"][()], np.arange(11) * 1.5)
        st = f["history/step_seconds"][()]
        assert st.shape == (5, ranks)
        np.testing.assert_allclose(st[-1], 0.1 * (np.arange(ranks) + 1))
        assert f["train/g"].shape == (11, 3, 3)
        np.testing.assert_array_equal(pack(f["train/g"][()]), _v(np.arange(11), 5))


#: seconds rank 0's fsync is slowed by in the read-after-close runs (a slow shared file system)
SLOW_SYNC = 0.3


@pytest.mark.parametrize("ranks", [3])  # ranks 1 and 2 both wait for rank 0's rename (2 ranks: rank 1 alone)
def test_every_rank_reads_the_final_checkpoint_right_after_close(tmp_path, ranks):
    """close() returns on a rank only once rank 0 has renamed the final checkpoint into place: the other ranks used
    to leave close while rank 0 was still syncing and read the checkpoint of the step before (step 4 here)."""
    out = tmp_path / "checkpoint.h5"
    r = _run(ranks, out, 5, -1, SLOW_SYNC)
    assert r.returncode == 0, r.stderr
    for k in range(ranks):
        assert r.stdout.count(f"rank {k}: read step 5 status finished") == 1, r.stdout


@pytest.mark.parametrize("ranks", [1, 3])
def test_sigterm_on_one_rank_checkpoints_next_step_and_exits_4_everywhere(tmp_path, ranks):
    out = tmp_path / "checkpoint.h5"
    r = _run(ranks, out, 9, 3)
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert r.stdout.count("preempted") == ranks
    res = load_resume(out)
    assert res.step == 3 and res.status == "preempted"  # the step at which the signal arrived, not a later one
    np.testing.assert_array_equal(res.rows("train", np.arange(11)), _v(np.arange(11), 3))


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "checkpoint.h5"
    assert _run(1, out, 2).returncode == 0
    before = out.read_bytes()
    import hpcflow.atomic as atomic
    from types import SimpleNamespace

    from hpcflow.checkpoint import CheckpointWriter

    def boom(*a, **k):
        raise OSError("injected crash between writing the temporary and the rename")

    w = CheckpointWriter(out, {}, every=1)
    w.restore_signals()
    monkeypatch.setattr(atomic.os, "replace", boom)
    view = SimpleNamespace(step=1, sigma_train=[1, 1], sigma_test=[1, 1], dt=[1], rejections=[], test_held=0,
                           best=1.0, since_best=0, stopped="", n_train=1, n_test=0, per_rank={},
                           train_rows=lambda: (np.arange(1), _v([0], 1)), test_rows=lambda: (np.arange(0), _v([], 1)))
    with pytest.raises(OSError, match="injected"):
        w(view)
    monkeypatch.undo()
    assert out.read_bytes() == before and load_resume(out).step == 2
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.h5"]


def test_resume_refuses_other_jobs_and_damaged_files(tmp_path):
    saved = {"flow": {"dt": 1.0, "steps": 5}, "kernel": {"name": "gaussian"}, "checkpoint": {"every": 1}}
    check_resumable(saved, {"flow": {"dt": 1.0, "steps": 9}, "kernel": {"name": "gaussian"},
                            "checkpoint": {"every": 3}}, "x")
    with pytest.raises(ConfigError, match=r"\[flow\]\.dt"):
        check_resumable(saved, {"flow": {"dt": 2.0, "steps": 5}, "kernel": {"name": "gaussian"}}, "x")
    bad = tmp_path / "c.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["kind"] = "hpcflow.flow_checkpoint"
    with pytest.raises(InputFileError, match="missing"):
        load_resume(bad)
    with pytest.raises(InputFileError):
        load_resume(tmp_path / "none.h5")


def test_a_refused_resume_names_the_set_that_restores_an_unset_key():
    from hpcflow.experiments.flow_job import SCHEMA
    from hpcflow.jobs.schema import apply_overrides, validate

    saved = {"clustering": {"method": "full", "halo_cutoff": None}, "flow": {"dt": 1.0}}
    with pytest.raises(ConfigError, match=r"resume with --set clustering.halo_cutoff=none --set flow.dt=1.0 ") as exc:
        check_resumable(saved, {"clustering": {"method": "full", "halo_cutoff": 0.3}, "flow": {"dt": 2.0}}, "x")
    assert "(and [flow].dt)" in str(exc.value)
    text = str(exc.value).split("resume with --set ")[1].split(" ")[0]
    job = {"job": {"kind": "flow"}, "kernel": {"name": "delta"}, "flow": {"dt": 1.0},
           "clustering": {"method": "full", "halo_cutoff": 0.3}}
    assert validate(apply_overrides(job, [text]), SCHEMA)["clustering"]["halo_cutoff"] is None


def test_resume_of_a_checkpoint_older_than_a_job_key(tmp_path):
    """A key added to the job schema after a checkpoint was written counts as its default on --resume, and only
    then: a non-default value is still a change."""
    from hpcflow.experiments.flow_job import with_defaults

    saved = {"job": {"kind": "flow"}, "flow": {"dt": 1.0, "steps": 5}, "clustering": {"method": "batched"}}
    new = with_defaults(saved)
    assert new["clustering"]["merge"] == "nearest"
    assert new["flow"]["kappa_gradient"] == "fixed"  # flows written before the key held kappa fixed: no mixing
    assert new["flow"]["dt"] == 1.0 and saved["clustering"] == {"method": "batched"}  # the input is not changed
    cfg = {s: dict(v) for s, v in new.items()}
    check_resumable(new, cfg, "x")
    cfg["clustering"]["merge"] = "paper"
    with pytest.raises(ConfigError, match=r"\[clustering\]\.merge"):
        check_resumable(new, cfg, "x")


RESUME_JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 120
n_test = 40
seed = 4
[kernel]
name = "gaussian"
form = "exp"
width = 0.05
normalize = "row"
[flow]
dt = 6.5
steps = 3
loss = "ultralocal"
"""


def _damage(path, how):
    with h5py.File(path, "r+") as f:
        if how == "no train/g":
            del f["train/g"]
        elif how == "cut train/g":
            g = f["train/g"][:60]
            del f["train/g"]
            f["train/g"] = g
        elif how == "real test/g":
            g = f["test/g"][()].real
            del f["test/g"]
            f["test/g"] = g
        elif how == "step not a number":
            f.attrs["step"] = "abc"
        elif how == "dt a string":
            del f["history/dt"]
            f["history/dt"] = "x"
        elif how == "dt a number":
            del f["history/dt"]
            f["history/dt"] = 1.0
        elif how == "dt 2-D":
            dt = f["history/dt"][()]
            del f["history/dt"]
            f["history/dt"] = dt[None, :]
        elif how == "short test history":
            st = f["history/sigma_test"][:-1]
            del f["history/sigma_test"]
            f["history/sigma_test"] = st


@pytest.mark.parametrize("how", ["no train/g", "cut train/g", "real test/g", "step not a number", "dt a string",
                                 "dt a number", "dt 2-D", "short test history"])
def test_damaged_checkpoint_is_refused_in_one_line_before_work(tmp_path, capsys, how):
    """--resume (and --resume --check) on a checkpoint with a missing, cut or mistyped dataset: exit 2 naming the
    file and --force, the file unchanged."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    ck = out / "checkpoint.h5"
    _damage(ck, how)
    before = ck.read_bytes()
    capsys.readouterr()
    for extra in ([], ["--check"]):
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(ck) in err and "--force" in err, err
    assert ck.read_bytes() == before


def test_resume_below_the_checkpoint_step_and_changed_jobs_are_refused_with_check_too(tmp_path, capsys):
    """A [flow].steps below the steps a checkpoint holds is refused (it would record a run that did not happen), by
    --check as by the run; equal or more steps resume; a changed kernel is refused by --check as by the run."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    before = (out / "checkpoint.h5").read_bytes(), (out / "summary.json").read_bytes()
    capsys.readouterr()
    for extra in (["--set", "flow.steps=2"], ["--set", "kernel.width=0.06"]):
        for check in ([], ["--check"]):
            assert main(["run", str(job), "--out", str(out), "--resume", *extra, *check]) == 2
            err = capsys.readouterr().err
            assert ("flow.steps=N, N >= 3" if "flow.steps=2" in extra else "[kernel].width") in err, err
    # the refusal names the --set that restores the checkpoint's value, and that --set is accepted
    suggested = re.search(r"resume with (--set \S+)", err).group(1).split(" ")
    assert suggested == ["--set", "kernel.width=0.05"], err
    assert main(["run", str(job), "--out", str(out), "--resume", "--check", *extra, *suggested]) == 0
    assert ((out / "checkpoint.h5").read_bytes(), (out / "summary.json").read_bytes()) == before
    assert main(["run", str(job), "--out", str(out), "--resume", "--check"]) == 0
    (out / ".checkpoint.h5.tmp-0123abcd").write_bytes(b"a write cut short")
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=4", "--quiet"]) == 0
    assert load_resume(out / "checkpoint.h5").step == 4
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.h5", "job.toml", "summary.json"]  # debris gone


@pytest.mark.parametrize("saved", ["qa: run one", ""])
def test_the_suggested_set_of_a_refused_resume_pastes_into_a_shell(tmp_path, capsys, saved):
    """The --set that restores the checkpoint's job is shell-quoted: the refusal's command line, split as a POSIX
    shell splits it (shlex.split), resumes the run, with a description of spaces and a comma (or empty) changed too
    (which a resume may change: it is not in the --set suggested)."""
    import shlex

    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB.replace('kind = "flow"', f'kind = "flow"\ndescription = "{saved}"'))
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    changed = ["--set", 'job.description="note: run two, v2"', "--set", "flow.steps=4", "--set", 'kernel.form="gauss"']
    assert main(["run", str(job), "--out", str(out), "--resume", "--quiet", *changed]) == 2
    err = capsys.readouterr().err
    suggested = re.search(r"resume with (.*) \(or start a new --out\)", err).group(1)
    assert shlex.split(suggested) == ["--set", 'kernel.form="exp"'], err
    line = f"hpcflow run {shlex.quote(str(job))} --out {shlex.quote(str(out))} --resume --quiet " \
           f"{shlex.join(changed)} {suggested}"
    assert main(shlex.split(line)[1:]) == 0, capsys.readouterr().err
    assert load_resume(out / "checkpoint.h5").step == 4


@pytest.mark.parametrize("v", ["note: run two, v2", "", "it's \"quoted\"", "$HOME `x` \\ ; | & *", "tab\there",
                               "naïve", ["a b", ""], None, 0.05, 3, True])
def test_set_arg_is_one_shell_word_that_sets_the_value(v):
    """`set_arg` (the --set a refused resume of a flow or a network suggests) is split by a shell into --set and one
    SECTION.KEY=VALUE that --set parses back to the value (None: `none`, which unsets the key)."""
    import shlex

    from hpcflow.jobs.schema import parse_override
    from hpcflow.jobs.toml_out import set_arg

    flag, text = shlex.split(set_arg("job", "description", v))
    assert flag == "--set"
    assert parse_override(text) == ("job", "description", "none" if v is None else v)


def test_a_resume_of_another_job_with_fewer_steps_names_the_differing_keys_first():
    """The job's keys are compared before its steps: the first refusal names every key that differs (and the --set
    that restores them), not the step count, which is refused once the job is the checkpoint's."""
    saved = {"flow": {"dt": 1.0, "steps": 50}, "kernel": {"name": "gaussian", "width": 0.05}}
    other = {"flow": {"dt": 1.0, "steps": 15}, "kernel": {"name": "relu_ntk", "width": None}}
    with pytest.raises(ConfigError) as exc:
        check_resumable(saved, other, "x", step=50)
    said = str(exc.value)
    assert "[kernel].name" in said and "[kernel].width" in said and "below the 50 steps" not in said, said
    assert "resume with --set 'kernel.name=\"gaussian\"' --set kernel.width=0.05 (or" in said, said
    with pytest.raises(ConfigError, match=r"\[flow\]\.steps = 15 is below the 50 steps"):
        check_resumable(saved, {**saved, "flow": {"dt": 1.0, "steps": 15}}, "x", step=50)


def test_check_of_a_resume_says_what_the_run_would_and_estimates_the_steps_left(tmp_path, capsys):
    """--check --resume of a finished run has nothing to do, as the run says (exit 0, nothing written); with more
    steps its estimate is that of the steps left: the same seconds as a fresh run of that many steps, half those of
    twice as many (a delta kernel's estimate is proportional to the steps)."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB.replace('name = "gaussian"\nform = "exp"\nwidth = 0.05\nnormalize = "row"',
                                      'name = "delta"').replace("dt = 6.5", "dt = 0.3162"))
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume"]) == 0
    run_said = capsys.readouterr().out
    assert main(["run", str(job), "--out", str(out), "--resume", "--check"]) == 0
    check_said = capsys.readouterr().out
    assert "already finished at step 3" in check_said and "nothing to do" in check_said, check_said
    assert check_said == run_said and "valid" not in check_said

    def seconds(*argv):
        assert main(["run", str(job), *argv, "--check"]) == 0
        said = capsys.readouterr().out
        return said, re.search(r"roughly (\S+) s of kernel products", said).group(1)

    said, left = seconds("--out", str(out), "--resume", "--set", "flow.steps=6")
    assert "continues after step 3: 3 of 6 steps left" in said, said
    assert left == seconds("--out", str(tmp_path / "new"), "--set", "flow.steps=3")[1]
    whole = float(seconds("--out", str(tmp_path / "new"), "--set", "flow.steps=6")[1])
    assert float(left) == pytest.approx(whole / 2, rel=1e-2)  # both printed to 3 significant digits
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not (tmp_path / "new").exists()


def _poison(path, name, index, value=np.nan):
    """Put `value` into entry `index` of dataset `name` (an attribute when `name` starts with "@")."""
    with h5py.File(path, "r+") as f:
        if name.startswith("@"):
            f.attrs[name[1:]] = value
            return
        data = f[name][()]
        data[index] = value
        f[name][...] = data


#: where NaN or inf may not be (dataset, index, value): each a finished run's result that --resume would continue
POISONS = [("train/g", (0, 0, 0), np.nan), ("test/g", (-1, 1, 2), np.inf), ("train/weights", 7, np.nan),
           ("train/points", (3, 1), -np.inf), ("test/omega2", -1, np.nan), ("history/sigma_train", -1, np.nan),
           ("history/sigma_test", 2, np.nan), ("history/dt", 0, np.inf), ("@best", None, np.nan)]


@pytest.mark.parametrize("name,index,value", POISONS, ids=[p[0] for p in POISONS])
def test_a_non_finite_checkpoint_is_refused_and_nothing_is_rewritten(tmp_path, capsys, name, index, value):
    """NaN/inf in the state a resume continues from (metrics, point data, history, @best): --resume (and --check)
    exit 2 in one line naming the file and the dataset, before any work; checkpoint.h5, summary.json and job.toml
    stay as they were (the finished result is not rewritten as diverged)."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    _poison(out / "checkpoint.h5", name, index, value)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip()
        shown = "attribute best" if name == "@best" else name
        assert len(err.splitlines()) == 1 and f"{out / 'checkpoint.h5'}: {shown} " in err and "--force" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_nan_where_the_schema_allows_it_still_resumes(tmp_path):
    """history/sigma_test of a run without test points is NaN by definition: such a run resumes."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB.replace("n_test = 40", "n_test = 0"))
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out / "checkpoint.h5") as f:
        assert np.isnan(f["history/sigma_test"][()]).all()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
    assert load_resume(out / "checkpoint.h5").step == 5


def test_a_command_line_resume_reads_and_compares_the_point_data_once(tmp_path, monkeypatch):
    """`hpcflow run --resume` compares the point data it samples again with the checkpoint's (`check_static`), and
    the flow does not read and compare them again (FlowResume.check_sets read every dataset of them a second
    time); the resumed run is bit for bit the uninterrupted one."""
    import hpcflow.checkpoint as checkpoint
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert main(["run", str(job), "--out", str(whole), "--quiet", "--set", "flow.steps=5"]) == 0
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    read, rows_at = [], checkpoint._rows_at

    def counted(ds, idx, *args, **kw):
        read.append(ds.name.lstrip("/"))
        return rows_at(ds, idx, *args, **kw)

    monkeypatch.setattr(checkpoint, "_rows_at", counted)
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
    point_data = [f"{kind}/{name}" for kind in ("train", "test") for name in ("points", "weights", "omega2")]
    assert sorted(name for name in read if name in point_data) == sorted(point_data), read
    with h5py.File(whole / "checkpoint.h5") as a, h5py.File(out / "checkpoint.h5") as b:
        assert a.attrs["step"] == b.attrs["step"] == 5
        for name in ("train/g", "test/g", "history/sigma_train", "history/sigma_test", "history/dt"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)


@pytest.mark.parametrize("ranks", [3])  # rank 0, which prints, and a middle rank learn it from the last
def test_every_rank_refuses_a_non_finite_row_that_only_the_last_rank_reads(tmp_path, ranks):
    """The rows are checked in shares (each rank reads its own): a NaN in the last row of test/g is found by the
    last rank alone; every rank exits 2, rank 0 prints the one line, nothing is rewritten."""
    job, out, _ = _finished_run(tmp_path)  # in this process: the ranks below are what the test launches
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
    args = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out)]
    _poison(out / "checkpoint.h5", "test/g", (-1, 2, 2))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cmd = each_rank_status(tmp_path / "statuses", ranks, [*args, "--resume", "--set", "flow.steps=5"])
    r = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, timeout=150, env=env)
    assert rank_statuses(tmp_path / "statuses", ranks) == [2] * ranks, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "test/g holds a non-finite value (NaN or inf) at row 39" in lines[0], r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _finished_run(tmp_path):
    """(job, out, out/checkpoint.h5) of RESUME_JOB run to its end in tmp_path/out."""
    from hpcflow.cli import main

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(RESUME_JOB)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    return job, out, out / "checkpoint.h5"


@pytest.mark.parametrize("name", ["history/dt", "history/rejections", "test/g", "@best", "@n_train"])
def test_a_missing_entry_is_named_by_its_path_in_the_file(tmp_path, capsys, name):
    """A dataset (by its path in the file) or attribute deleted from checkpoint.h5: --resume names it and the fix in
    one line (exit 2), the file unchanged."""
    from hpcflow.cli import main

    job, out, ck = _finished_run(tmp_path)
    with h5py.File(ck, "r+") as f:
        del (f.attrs if name.startswith("@") else f)[name.lstrip("@")]
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    what = f"attribute {name[1:]}" if name.startswith("@") else f"dataset {name}"
    assert len(err.splitlines()) == 1 and f"{ck}: {what} is missing; " in err and "--force" in err, err
    assert ck.read_bytes() == before


@pytest.mark.parametrize("name", ["history/sigma_train", "history/sigma_test", "history/dt"])
def test_a_history_of_the_wrong_length_is_named_with_its_length_and_the_step(tmp_path, capsys, name):
    """A history dataset one row short: --resume names that dataset, its length and the one the step attribute asks
    for (step + 1 sigmas, step dts) in one line (exit 2), the file unchanged."""
    from hpcflow.cli import main

    job, out, ck = _finished_run(tmp_path)
    with h5py.File(ck, "r+") as f:
        step, values = int(f.attrs["step"]), f[name][()]
        del f[name]
        f[name] = values[:-1]
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    want = step if name == "history/dt" else step + 1
    assert len(err.splitlines()) == 1 and f"{ck}: dataset {name} holds {want - 1} values, not {want} " in err, err
    assert f"step = {step}" in err and "--force" in err and ck.read_bytes() == before


def test_resume_with_force_is_refused_and_nothing_is_touched(tmp_path, capsys):
    """--resume continues the run in --out and --force starts it over: together, one line and exit 2 before any
    work (--check too), every file as it was."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for extra in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--resume", "--force", "--set", "flow.steps=5", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--resume and --force exclude each other" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _read_at(ranks, *reads):
    """Each (OUT, MODE) of `reads` read by every rank of one launch (tests/mpi/resume_read_checks.py), in turn: per
    read, its ranks' lines in rank order."""
    script = os.path.join(os.path.dirname(__file__), "mpi", "resume_read_checks.py")
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, script, *(str(a) for read in reads for a in read)]
    r = subprocess.run(["timeout", "60", *cmd], capture_output=True, text=True, timeout=90,
                       env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == 0, r.stderr
    said = [line.split(": ", 1) for line in r.stdout.splitlines()]
    assert sorted({k for k, _ in said}) == [f"read {k}" for k in range(len(reads))], r.stdout
    return [sorted(line for k, line in said if k == f"read {n}") for n in range(len(reads))]


@pytest.mark.parametrize("ranks", [3])  # rank 0 and a middle rank refuse with the last, which alone cannot read
def test_a_checkpoint_one_rank_cannot_read_is_refused_by_every_rank(tmp_path, ranks):
    """A rank that cannot open the file (node-local path) or finds NaN in its share of the rows makes every rank
    raise, so none goes on alone into the flow's collectives. (The three reads in one launch of the ranks.)"""
    out, nan = tmp_path / "checkpoint.h5", tmp_path / "nan" / "checkpoint.h5"
    assert _run(1, out, 2).returncode == 0
    nan.parent.mkdir()
    nan.write_bytes(out.read_bytes())
    with h5py.File(nan, "r+") as f:  # the last row: read only by the last rank's share
        g = f["train/g"]
        g[g.shape[0] - 1, 0, 0] = np.nan
    whole, missing, poisoned = _read_at(ranks, (out, "as_is"), (out, "missing_on_last"), (nan, "as_is"))
    assert whole == [f"rank {k}: read step 2" for k in range(ranks)]
    assert all(line.startswith(f"rank {k}: refused: ") and "checkpoint.h5.missing: no checkpoint to resume from "
               "(does not exist)" in line for k, line in enumerate(missing)), missing
    assert all(line.startswith(f"rank {k}: refused: ") and "train/g holds a non-finite value" in line
               for k, line in enumerate(poisoned)), poisoned


def test_a_flow_without_test_points_writes_every_test_dataset_with_no_rows(tmp_path):
    """[geometry].n_test = 0: test/points, test/weights, test/omega2 (which only test/g had) are written with 0 rows
    and the trailing shape and type of their train/ datasets, as docs/outputs.md lists them for every run; --resume,
    the report and Table 1 read the file, and one written before those datasets existed."""
    from hpcflow.cli import main

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(RESUME_JOB.replace("n_test = 40", "n_test = 0"))
    ck = out / "checkpoint.h5"

    def check(steps):
        with h5py.File(ck) as f:
            assert f.attrs["step"] == steps and f.attrs["n_test"] == 0
            for name in ("points", "weights", "omega2", "g"):
                train, test = f[f"train/{name}"], f[f"test/{name}"]
                assert test.shape == (0, *train.shape[1:]) and test.dtype == train.dtype, name

    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    check(3)
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=4", "--quiet"]) == 0
    check(4)
    with h5py.File(ck, "r+") as f:  # as an earlier version wrote it
        for name in ("points", "weights", "omega2"):
            del f[f"test/{name}"]
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0  # Table 1 and the sigma history
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| out | flow | finished | 120 / 0 |" in md and "Skipped" not in md and "## Table 1" in md
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]) == 0
    check(5)


def test_a_checkpoint_another_process_holds_locked_is_in_use_not_damaged(tmp_path, capsys):
    """--resume on a checkpoint.h5 whose HDF5 lock another process holds (a program with it open for writing): one
    line saying it is in use, never "damaged ... --force" (which would replace a whole file); released, it resumes."""
    import fcntl

    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(RESUME_JOB)
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    ck = out / "checkpoint.h5"
    before = ck.read_bytes()
    capsys.readouterr()
    argv = ["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet"]
    with open(ck, "rb") as fh:  # (an exclusive lock, as a writer's, which h5py's shared lock for reading meets)
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for extra in ([], ["--check"]):
            assert main([*argv, *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and str(ck) in err and "in use" in err, err
            assert "damaged" not in err and "--force" not in err, err
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert ck.read_bytes() == before
    assert main(argv) == 0, capsys.readouterr().err
