"""A network run interrupted, resumed and extended records each run (`legs`) in checkpoint.pt and summary.json, as
flow runs do (tests/test_flow_legs.py); the end-of-training checkpoint says "trained" until the outputs are written
("finished"); a stop request in the job's kernel flow is honoured after the step it arrives in. The chain:

1. SIGTERM in epoch 2 of 2 (as tests/mpi/nn_driver.py sends it): exit 4, a checkpoint after epoch 1 + 2 batches;
2. --resume, SIGTERM after step STOP of the kernel flow (as tests/mpi/nn_flow_stop_driver.py): exit 4;
3. --resume with epochs = 3 (an extension): finished; its files bit for bit those of an uninterrupted 3-epoch run.
The chain runs in this process (the signals sent to it); the 2-rank test runs the driver under mpiexec.
"""

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from hpcflow.nn.checkpoint import VERSION  # noqa: E402
from jobtexts import NN_POINTS  # noqa: E402

HERE = os.path.dirname(__file__)
DOC = os.path.join(HERE, "..", "docs", "outputs.md")
FLOW_STEPS, STOP = 5, 2
JOB = "\n" + NN_POINTS + f"""[model]
depth = 2
width = 8
activation = "gelu"
[training]
epochs = 2
batch_size = 70
lr = 3e-3
threads = 1
[ntk]
n_train_points = 3
n_test_points = 2
[checkpoint]
every = 1
[width_sweep]
widths = [4, 8]
epochs = 1
n_train = 100
[kernel_flow]
enabled = true
n_train = 20
n_test = 20
steps = {FLOW_STEPS}
"""


def _env():
    return dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())


def _read(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    return summary, torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)


def _spans(legs):
    return [(g["from_step"], g["to_step"], g["ranks"], g["status"]) for g in legs]


@contextlib.contextmanager
def _stop_at(*, epoch=None, position=None, flow_step=None, seen=None):
    """SIGTERM to this process after optimiser step (epoch, position) of the main training or after step flow_step of
    the kernel flow (each step appended to `seen`); the signal dispositions of before afterwards (a stopped run leaves
    SIGTERM/SIGUSR1 ignored: hpcflow.stop_signals)."""
    from hpcflow import flow
    from hpcflow.nn import train

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    init, kernel_flow = train.Trainer.__init__, flow.kernel_flow

    def _init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.checkpoint is not None and epoch is not None:  # the main training (the one that checkpoints)
            self.on_step = lambda t: (t.epoch, t.pos) == (epoch, position) and os.kill(os.getpid(), signal.SIGTERM)

    def _kernel_flow(*args, callback=None, **kwargs):
        def watched(info):
            seen.append(info["step"])
            if info["step"] == flow_step:
                os.kill(os.getpid(), signal.SIGTERM)
            return callback(info) if callback is not None else False

        return kernel_flow(*args, callback=watched, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train.Trainer, "__init__", _init)
        if flow_step is not None:
            mp.setattr(flow, "kernel_flow", _kernel_flow)
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nnlegs")
    job, out = str(tmp / "job.toml"), str(tmp / "run")
    (tmp / "job.toml").write_text(JOB)
    res = {"job": job, "out": out, "tmp": tmp, "flow_steps": []}
    with _stop_at(epoch=1, position=1):  # honoured at the next step boundary: epoch 1 + 2 batches
        assert main(["nn", job, "--out", out, "--quiet"]) == 4
    res["first"] = _read(out)
    shutil.copytree(out, tmp / "first")  # for the version 1 and version 3 checks
    err = io.StringIO()
    with _stop_at(flow_step=STOP, seen=res["flow_steps"]), contextlib.redirect_stderr(err):
        assert main(["nn", job, "--out", out, "--resume", "--quiet"]) == 4
    res["flow_stderr"], res["second"] = err.getvalue(), _read(out)
    assert main(["nn", job, "--out", out, "--resume", "--set", "training.epochs=3", "--quiet"]) == 0
    res["third"] = _read(out)
    res["plain"] = str(tmp / "plain")
    assert main(["nn", job, "--out", res["plain"], "--set", "training.epochs=3", "--quiet"]) == 0
    return res


def test_legs_chain_over_two_interruptions_and_an_extension(chain):
    from hpcflow import __version__

    s1, c1 = chain["first"]
    assert s1["status"] == "preempted" and s1["checkpoint_step"] == 1 and s1["resumed"] is False
    assert (c1["train"]["epoch"], c1["train"]["position"]) == (1, 2)
    assert _spans(c1["legs"]) == [(0, 1, 1, "preempted")] and s1["legs"] == c1["legs"]
    assert 0 < c1["legs"][0]["wall_seconds"] <= s1["wall_seconds"] == s1["wall_seconds_total"]

    s2, c2 = chain["second"]
    assert s2["status"] == "preempted" and s2["checkpoint_step"] == 2 and s2["resumed"] is True
    assert _spans(c2["legs"]) == [(0, 1, 1, "preempted"), (1, 2, 1, "preempted")] and s2["legs"] == c2["legs"]
    assert c2["legs"][0] == c1["legs"][0]  # carried over as recorded
    np.testing.assert_allclose(s2["wall_seconds_total"], c1["legs"][0]["wall_seconds"] + s2["wall_seconds"],
                               rtol=1e-12)

    s3, c3 = chain["third"]
    legs = c3["legs"]
    assert s3["status"] == "finished" and s3["resumed"] is True and s3["legs"] == legs
    assert _spans(legs) == [(0, 1, 1, "preempted"), (1, 2, 1, "preempted"), (2, 3, 1, "finished")]
    assert legs[:2] == c2["legs"] and all(g["hpcflow_version"] == __version__ for g in legs)
    assert legs[0]["from_step"] == 0 and legs[-1]["to_step"] == s3["checkpoint_step"] == c3["train"]["epoch"] == 3
    assert all(a["to_step"] == b["from_step"] for a, b in zip(legs, legs[1:]))  # the epochs chain
    assert all(g["wall_seconds"] > 0 for g in legs) and legs[-1]["wall_seconds"] <= s3["wall_seconds"]
    np.testing.assert_allclose(s3["wall_seconds_total"], legs[0]["wall_seconds"] + legs[1]["wall_seconds"]
                               + s3["wall_seconds"], rtol=1e-12)


def test_the_interrupted_and_extended_run_is_bitwise_the_uninterrupted_one(chain):
    got, ref = datasets(os.path.join(chain["out"], "nn.h5")), datasets(os.path.join(chain["plain"], "nn.h5"))
    assert got.keys() == ref.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    for name in ("model.pt",):
        a, b = (torch.load(os.path.join(d, name), weights_only=True) for d in (chain["out"], chain["plain"]))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    (_, c), (_, p) = chain["third"], (None, torch.load(os.path.join(chain["plain"], "checkpoint.pt"),
                                                      weights_only=True))
    assert all(torch.equal(c["train"]["model"][k], p["train"]["model"][k]) for k in p["train"]["model"])
    for pid, st in p["train"]["optimizer"]["state"].items():
        assert all(torch.equal(t, c["train"]["optimizer"]["state"][pid][n]) for n, t in st.items())
    assert _spans(p["legs"]) == [(0, 3, 1, "finished")]  # legs: metadata, not part of what is compared


def test_the_checkpoint_says_trained_until_the_outputs_are_written(chain):
    """Stopped in the kernel flow, training was done but the run was not: "trained"; after the outputs, "finished"
    (what --resume reads as "nothing to do")."""
    _, c2 = chain["second"]
    _, c3 = chain["third"]
    assert (c2["status"], c2["train"]["epoch"]) == ("trained", 2)
    assert c3["status"] == "finished"
    assert not os.path.exists(os.path.join(chain["tmp"], "first", "nn.h5"))
    assert main(["nn", chain["job"], "--out", chain["out"], "--resume", "--set", "training.epochs=3",
                 "--quiet"]) == 0  # nothing to do: files left as they are
    assert _read(chain["out"])[1]["legs"] == c3["legs"]


def test_a_stop_request_in_the_kernel_flow_is_honoured_after_its_step(chain):
    steps = chain["flow_steps"]
    assert steps == list(range(1, STOP + 1)), steps  # not the remaining FLOW_STEPS - STOP steps
    assert f"in the kernel flow, after step {STOP} of {FLOW_STEPS}" in chain["flow_stderr"]
    s2, _ = chain["second"]
    assert "kernel_flow" not in s2 and not os.path.exists(os.path.join(chain["out"], "nn.h5.tmp"))


def test_a_version_1_checkpoint_resumes_its_epochs_as_one_leg_of_unknown_time(chain, tmp_path):
    out = str(tmp_path / "v1")
    shutil.copytree(chain["tmp"] / "first", out)
    ck = os.path.join(out, "checkpoint.pt")
    state = torch.load(ck, weights_only=True)
    del state["legs"]
    state["version"] = 1
    torch.save(state, ck)
    assert main(["nn", chain["job"], "--out", out, "--resume", "--quiet"]) == 0
    summary, c = _read(out)
    assert c["version"] == VERSION and summary["legs"] == c["legs"]
    assert c["legs"][0] == {"from_step": 0, "to_step": 1, "ranks": None, "wall_seconds": None,
                            "hpcflow_version": None, "status": "running"}
    assert _spans(c["legs"][1:]) == [(1, 2, 1, "finished")]
    assert summary["wall_seconds_total"] == summary["wall_seconds"]  # the leg of unknown time is not counted


def test_a_checkpoint_of_a_later_version_is_refused_in_one_line(chain, tmp_path, capsys):
    out = str(tmp_path / "v3")
    shutil.copytree(chain["tmp"] / "first", out)
    ck = os.path.join(out, "checkpoint.pt")
    state = torch.load(ck, weights_only=True)
    state["version"] = VERSION + 1
    torch.save(state, ck)
    before = open(ck, "rb").read()
    capsys.readouterr()
    assert main(["nn", chain["job"], "--out", out, "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ck in err and f"version {VERSION + 1}" in err and "--force" in err, err
    assert open(ck, "rb").read() == before


@pytest.mark.parametrize("legs", ["a string", [{"from_step": 0}]])
def test_damaged_legs_are_refused_in_one_line(chain, tmp_path, capsys, legs):
    out = str(tmp_path / "bad")
    shutil.copytree(chain["tmp"] / "first", out)
    ck = os.path.join(out, "checkpoint.pt")
    state = torch.load(ck, weights_only=True)
    state["legs"] = legs
    torch.save(state, ck)
    capsys.readouterr()
    assert main(["nn", chain["job"], "--out", out, "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ck in err and "legs" in err and "damaged" in err, err


def _documented_checkpoint_entries() -> dict:
    """{entry: meaning} of the checkpoint.pt table in docs/outputs.md."""
    with open(DOC, encoding="utf-8") as fh:
        part = [p for p in fh.read().split("\n## ") if "`checkpoint.pt`" in p.splitlines()[0]]
    assert len(part) == 1, "docs/outputs.md: no section for checkpoint.pt"
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in part[0].splitlines()
            if line.startswith("| `")]
    return {r[0].strip("`"): r[-1] for r in rows}


def test_docs_describe_every_checkpoint_entry_and_status(chain):
    doc = _documented_checkpoint_entries()
    _, c = chain["third"]
    have = set(c) | {f"train.{k}" for k in c["train"]} | {f"legs[].{k}" for g in c["legs"] for k in g}
    assert have <= set(doc), sorted(have - set(doc))
    assert all(re.search(rf'"{s}"', doc["status"]) for s in ("running", "trained", "finished", "stopped", "diverged"))


@pytest.mark.slow
def test_a_stop_request_on_one_rank_stops_every_ranks_kernel_flow_after_its_step(tmp_path):
    """The flow runs whole on every rank; the request reaches rank 1 only and both stop after the same step; the
    resume at one rank is a leg of its own (no epochs: it redoes what follows the training)."""
    from test_parallel import mpiexec

    job, out = tmp_path / "job.toml", str(tmp_path / "run")
    job.write_text(JOB.replace("epochs = 2", "epochs = 1").replace("widths = [4, 8]", "widths = []"))
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, os.path.join(HERE, "mpi", "nn_flow_stop_driver.py"),
                        "1", "1", "nn", str(job), "--out", out], capture_output=True, text=True, timeout=180,
                       env=_env())
    assert p.returncode == 4, p.stderr[-2000:]
    assert sorted(int(s) for s in re.findall(r"kernel flow step: (\d+)", p.stderr)) == [1, 1], p.stderr[-2000:]
    summary, c = _read(out)
    assert summary["status"] == "preempted" and c["status"] == "trained"
    assert _spans(c["legs"]) == [(0, 1, 2, "preempted")] and summary["legs"] == c["legs"]
    assert main(["nn", str(job), "--out", out, "--resume", "--quiet"]) == 0  # at another rank count
    summary, c = _read(out)
    assert _spans(c["legs"]) == [(0, 1, 2, "preempted"), (1, 1, 1, "finished")] and summary["legs"] == c["legs"]
    assert summary["ranks"] == 1 and summary["status"] == "finished" and c["status"] == "finished"


def test_a_resume_part_way_into_an_epoch_must_finish_that_epoch(chain, tmp_path, capsys):
    """The first leg stopped 2 batches into epoch 2: --resume with epochs = 1 would write that part-trained network
    as model.pt beside an nn.h5 of epoch 1; it is refused in one line (exit 2) saying epochs >= 2, nothing
    rewritten, and epochs = 2 finishes the run."""
    out = str(tmp_path / "part")
    shutil.copytree(chain["tmp"] / "first", out)
    _, c = _read(out)
    done = c["train"]["epoch"]
    assert c["train"]["position"] > 0
    before = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}
    capsys.readouterr()
    assert main(["nn", chain["job"], "--out", out, "--resume", "--set", f"training.epochs={done}", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint.pt" in err, err
    assert f"resume with --set training.epochs=N, N >= {done + 1}" in err, err
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == before
    assert main(["nn", chain["job"], "--out", out, "--resume", "--set", f"training.epochs={done + 1}",
                 "--quiet"]) == 0


def test_a_resume_with_too_few_epochs_is_told_the_set_that_continues_it(chain):
    """The refusals of too few epochs say what to change as the flow's does ("resume with --set training.epochs=N,
    N >= 2") and count batches and epochs in words that agree with the number: a checkpoint 1 batch into epoch 2 was
    "stopped 1 batches into epoch 2 ...; set epochs >= 2"."""
    from hpcflow.errors import ConfigError
    from hpcflow.jobs import registry
    from hpcflow.nn.job import check_resume

    path = str(chain["tmp"] / "first" / "checkpoint.pt")
    state = torch.load(path, weights_only=True)
    batches = state["train"]["step"] - state["train"]["position"]  # 1 epoch of them done
    assert (state["train"]["epoch"], state["train"]["position"]) == (1, 2)
    for position, epochs, said in (
            (2, 1, "[training].epochs = 1 would not finish epoch 2, which the checkpoint stopped 2 batches into; "
                   "resume with --set training.epochs=N, N >= 2"),
            (1, 1, "[training].epochs = 1 would not finish epoch 2, which the checkpoint stopped 1 batch into; "
                   "resume with --set training.epochs=N, N >= 2"),
            (0, 0, "[training].epochs = 0 is below the 1 epoch the checkpoint holds; resume with --set "
                   "training.epochs=N, N >= 1")):
        state["train"].update(position=position, step=batches + position)
        if not position:
            state["train"].pop("epoch_start", None)  # (kept only part way into an epoch)
        _, cfg = registry.load(chain["job"], [f"training.epochs={epochs}"])
        with pytest.raises(ConfigError) as exc:
            check_resume(cfg, state, path)
        assert str(exc.value) == f"{path}: {said}"


def _damage(state, how):
    """checkpoint.pt's `state` with one tensor or counter that no training writes (-> the entry named)."""
    tr = state["train"]
    if how == "theta_epochs":
        state["ntk"]["theta"] = state["ntk"]["theta"][:1]
        return "ntk.theta"
    if how == "theta_points":
        state["ntk"]["theta"] = state["ntk"]["theta"][..., :3, :3]
        return "ntk.theta"
    if how == "ntk_seconds":
        state["ntk"]["seconds"] = state["ntk"]["seconds"][:1]
        return "ntk.seconds"
    if how == "moment_short":
        tr["optimizer"]["state"][0]["exp_avg"] = torch.zeros(2)
        return "train.optimizer.state.0.exp_avg"
    if how == "moment_float32":
        st = tr["optimizer"]["state"][1]
        st["exp_avg_sq"] = st["exp_avg_sq"].float()
        return "train.optimizer.state.1.exp_avg_sq"
    if how == "adam_step_shape":
        tr["optimizer"]["state"][2]["step"] = torch.zeros(2)
        return "train.optimizer.state.2.step"
    if how == "step":
        tr["step"] += 1
        return "train.step"
    if how in ("sigma_float32", "loss_float32", "count_int32"):  # float64 histories (int64 counts), rounded
        name = {"sigma_float32": "sigma_train", "loss_float32": "loss", "count_int32": "val_not_positive_definite"}[how]
        tr["history"][name] = tr["history"][name].to(torch.int32 if how == "count_int32" else torch.float32)
        return f"train.history.{name} ({how.rpartition('_')[2]} of shape"
    if how == "ntk_seconds_float32":
        state["ntk"]["seconds"] = state["ntk"]["seconds"].float()
        return "ntk.seconds (float32 of shape"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["theta_epochs", "theta_points", "ntk_seconds", "moment_short", "moment_float32",
                                 "adam_step_shape", "step", "sigma_float32", "loss_float32", "count_int32",
                                 "ntk_seconds_float32"])
def test_a_checkpoint_tensor_that_does_not_fit_the_job_is_refused_before_any_work(chain, tmp_path, capsys, how):
    """An NTK of fewer epochs or other probe points, an optimiser moment or step count of another shape or dtype
    than its parameter, a train.step that epoch and position do not give, a history or the NTK's seconds of another
    dtype than the float64 (counts int64) a training writes: --resume exits 2 with one line naming the entry, nothing
    rewritten (they went into nn.h5, failed in np.stack after training, crashed fused Adam or shifted the
    learning-rate schedule; a float32 history was resumed to outputs that were not the run's, bit for bit)."""
    out = str(tmp_path / how)
    shutil.copytree(chain["tmp"] / "first", out)
    ck = os.path.join(out, "checkpoint.pt")
    state = torch.load(ck, weights_only=True)
    entry = _damage(state, how)
    torch.save(state, ck)
    before = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}
    args = ["nn", chain["job"], "--out", out, "--resume", "--quiet"]
    if "optimizer" in entry:  # a moment or step fused Adam was given: SIGSEGV, outside this process
        p = subprocess.run([sys.executable, "-m", "hpcflow", *args], capture_output=True, text=True, timeout=120,
                           env=_env())
        status, err = p.returncode, p.stderr.strip()
    else:  # (in this process, as the tests above: one torch import fewer)
        capsys.readouterr()
        status, err = main(args), capsys.readouterr().err.strip()
    assert status == 2, err[-2000:]
    assert len(err.splitlines()) == 1 and f"{ck}: entry {entry} " in err and "damaged" in err, err
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == before


def test_a_network_job_started_by_hpcflow_run_is_continued_by_the_command_its_stop_line_names(tmp_path, capsys):
    """`hpcflow run` runs network jobs: preempted, its line said "continue with --resume", which `hpcflow run`
    refuses for them, and a plain run said "already holds results (checkpoint.pt); ... pass --force", steering to
    throw the training away. Its line names the `hpcflow nn` command with the --set values (shell-quoted), which
    finishes the run; `hpcflow run` (--check too) names that command for the interrupted run, and --resume too."""
    job, out = str(tmp_path / "job.toml"), str(tmp_path / "run")
    (tmp_path / "job.toml").write_text(JOB)
    sets = ["--set", "width_sweep.widths=[]", "--set", "kernel_flow.enabled=false"]
    with _stop_at(epoch=1, position=1):  # honoured at the next step boundary: epoch 1 + 2 batches
        assert main(["run", job, "--out", out, "--quiet", *sets]) == 4
    again = shlex.join(["hpcflow", "nn", job, "--out", out, "--quiet", "--resume", *sets])
    assert "'width_sweep.widths=[]'" in again  # (quoted for the shell)
    assert capsys.readouterr().err.splitlines() == [
        f"hpcflow run: stopped: signal received: checkpoint written after epoch 1 + 2 batches; continue with: {again}"]
    for extra in ([], ["--check"]):
        assert main(["run", job, "--out", out, "--quiet", *sets, *extra]) == 2
        assert capsys.readouterr().err == (
            f"hpcflow run: error: --out {out} holds an interrupted run (checkpoint.pt that no finished summary.json "
            f"describes); continue it with '{again}', or pass --force to start over\n")
    assert main(["run", job, "--out", out, "--quiet", "--resume", *sets]) == 2
    assert capsys.readouterr().err.endswith(f": {again}\n")
    assert main(shlex.split(again)[1:]) == 0
    summary, c = _read(out)
    assert summary["status"] == "finished" and _spans(c["legs"]) == [(0, 1, 1, "preempted"), (1, 2, 1, "finished")]


@pytest.mark.parametrize("seconds", [0.0, 0.25])
def test_a_version_3_checkpoint_resumes_with_rank_0s_partial_seconds(chain, tmp_path, seconds):
    """A version 3 checkpoint holds rank 0's seconds in collectives of the unfinished epoch alone, one number: it
    still resumes. 0 is every rank's (one rank times no collectives); any other was written on several ranks, whose
    other ranks' part is unknown, so the epoch it splits is NaN in history/comm_seconds (it was rank 0's part)."""
    out = str(tmp_path / "v3")
    shutil.copytree(chain["tmp"] / "first", out)  # epoch 1 + 2 batches, on one rank
    ck = os.path.join(out, "checkpoint.pt")
    state = torch.load(ck, weights_only=True)
    assert state["train"]["partial"]["comm_seconds"] == [0.0] and state["train"]["position"] == 2
    state["version"], state["train"]["partial"]["comm_seconds"] = 3, seconds
    torch.save(state, ck)
    assert main(["nn", chain["job"], "--out", out, "--resume", "--quiet"]) == 0
    comm = datasets(os.path.join(out, "nn.h5"))["history/comm_seconds"]
    assert comm.shape == (2, 1) and comm[0, 0] == 0.0  # epoch 1, whole on one rank
    assert comm[1, 0] == 0.0 if seconds == 0 else np.isnan(comm[1, 0]), comm
    assert _read(out)[1]["train"]["partial"]["comm_seconds"] == [0.0]  # (an epoch boundary at the end)


def test_an_epoch_begun_at_another_rank_count_and_stopped_again_resumes_with_its_seconds_unknown(tmp_path):
    """An epoch begun on 2 ranks (ranks = 2, train.partial.comm_seconds and history/comm_seconds of 2 ranks),
    resumed on 1 and stopped again within it: its partial seconds are unknown (NaN) in the new checkpoint, which
    still resumes (not refused as damaged), and the epochs trained, wholly or in part, on 2 ranks are NaN in
    history/comm_seconds, the epoch trained whole on this rank 0 0 (one rank times nothing)."""
    job, out = str(tmp_path / "job.toml"), str(tmp_path / "run")
    (tmp_path / "job.toml").write_text(JOB)
    sets = ["--set", "width_sweep.widths=[]", "--set", "kernel_flow.enabled=false", "--set", "training.epochs=3",
            "--set", "training.batch_size=20"]  # 10 batches an epoch
    with _stop_at(epoch=1, position=1):  # honoured at the next step boundary: epoch 1 + 2 batches
        assert main(["nn", job, "--out", out, "--quiet", *sets]) == 4
    ck = os.path.join(out, "checkpoint.pt")
    state = torch.load(ck, weights_only=True)
    state["train"]["partial"]["comm_seconds"] = [0.1, 0.2]  # as 2 ranks write it
    state["ranks"] = state["legs"][0]["ranks"] = 2
    state["train"]["history"]["comm_seconds"] = state["train"]["history"]["comm_seconds"].repeat(1, 2)
    torch.save(state, ck)
    with _stop_at(epoch=1, position=4):
        assert main(["nn", job, "--out", out, "--quiet", "--resume", *sets]) == 4
    state = torch.load(ck, weights_only=True)
    assert state["train"]["position"] == 5 and np.isnan(state["train"]["partial"]["comm_seconds"]).all()
    assert main(["nn", job, "--out", out, "--quiet", "--resume", *sets]) == 0
    comm = datasets(os.path.join(out, "nn.h5"))["history/comm_seconds"]
    assert comm.shape == (3, 1) and np.isnan(comm[:2, 0]).all() and comm[2, 0] == 0.0, comm


def test_an_epoch_begun_on_one_rank_and_finished_on_two_is_nan_in_comm_seconds(tmp_path):
    """An epoch begun on 1 rank (whose train.partial.comm_seconds is [0.0]: one rank times no collectives) and
    finished under mpiexec -n 2: the 1-rank part's seconds are not those of the 2 ranks, so that epoch, as the one
    trained whole on 1 rank, is NaN for both ranks in history/comm_seconds (docs/outputs.md: NaN for epochs trained,
    wholly or in part, before a resume at another R); the epoch trained whole on 2 ranks holds their seconds."""
    from test_parallel import mpiexec

    job, out = str(tmp_path / "job.toml"), str(tmp_path / "run")
    (tmp_path / "job.toml").write_text(JOB)
    sets = ["--set", "width_sweep.widths=[]", "--set", "kernel_flow.enabled=false", "--set", "training.epochs=3",
            "--set", "ntk.enabled=false"]
    with _stop_at(epoch=1, position=1):  # honoured at the next step boundary: epoch 1 + 2 batches
        assert main(["nn", job, "--out", out, "--quiet", *sets]) == 4
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
    assert (state["train"]["epoch"], state["train"]["position"]) == (1, 2)
    assert state["train"]["partial"]["comm_seconds"] == [0.0]
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "nn", job, "--out", out, "--quiet",
                        "--resume", *sets], capture_output=True, text=True, timeout=300, env=_env())
    assert p.returncode == 0, p.stderr
    comm = datasets(os.path.join(out, "nn.h5"))["history/comm_seconds"]
    assert comm.shape == (3, 2), comm
    assert np.isnan(comm[0]).all() and np.isnan(comm[1]).all(), comm  # epoch 1 whole, epoch 2 in part on 1 rank
    assert np.isfinite(comm[2]).all() and (comm[2] > 0).all(), comm  # epoch 3 whole on the 2 ranks


@pytest.mark.parametrize("leg,sets,key", [
    ("first", ["training.batch_size=60"], "[training].batch_size"),  # 4 batches per epoch: step 1 * 4 + 2 != 5
    ("first", ["geometry.n_train=120"], "[geometry].n_train"),  # 2 batches per epoch: position 2 past the epoch
    ("finished", ["training.batch_size=4", "training.epochs=5"], "[training].batch_size")])
def test_a_resume_that_changes_the_batches_per_epoch_names_the_key_not_a_damaged_checkpoint(chain, tmp_path, capsys,
                                                                                               leg, sets, key):
    """A sound checkpoint (preempted 2 batches into epoch 2, or finished) resumed with another batch_size or n_train:
    its counters were checked against the new job's batches per epoch before the job was compared, and the run was
    called damaged, to be started again with --force. The line names the key and the --set that restores it (as for
    any other key), `hpcflow nn --check` and `submit --resume --check` alike; nothing is rewritten."""
    out = str(tmp_path / leg)
    shutil.copytree(chain["tmp"] / "first" if leg == "first" else chain["out"], out)
    _, c = _read(out)
    old = json.loads(c["config"])
    sec, name = key[1:].split("].")
    before = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}
    extra = [x for s in sets for x in ("--set", s)]
    capsys.readouterr()
    for verb, cmd in (("nn", ["nn"]), ("nn", ["nn", "--check"]), ("submit", ["submit", "--executor", "local",
                                                                            "--check"])):
        assert main([cmd[0], chain["job"], "--out", out, "--resume", *cmd[1:], *extra, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"hpcflow {verb}: error: ") and \
            f"differs from the checkpoint's in {key};" in err, err
        assert f"--set {sec}.{name}={old[sec][name]}" in err and "damaged" not in err, err
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == before


@pytest.mark.parametrize("size", [0, 50000, -10])
def test_a_truncated_checkpoint_is_refused_as_damaged(chain, tmp_path, capsys, size):
    """checkpoint.pt cut short (empty, its first 50 kB, all but its last 10 bytes: a killed copy, a full disk) beside
    the rest of the run: --resume said it was "not a tensor-only state dict; pass a file written by 'hpcflow nn'",
    which it was. It is refused in one line as damaged with the way out (--force or a new --out), `submit --resume
    --check` alike, nothing rewritten; a file torch reads that holds other objects keeps its own line."""
    out = str(tmp_path / "cut")
    shutil.copytree(chain["tmp"] / "first", out)
    ck = os.path.join(out, "checkpoint.pt")
    data = open(ck, "rb").read()
    assert len(data) > 50000 + 10
    with open(ck, "wb") as fh:
        fh.write(data[:size])
    before = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}
    capsys.readouterr()
    for verb, cmd in (("nn", ["nn"]), ("submit", ["submit", "--executor", "local", "--check"])):
        assert main([cmd[0], chain["job"], "--out", out, "--resume", *cmd[1:], "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"hpcflow {verb}: error: {ck} "), err
        restart = (f"start over with: hpcflow nn {chain['job']} --out {out} --quiet --force" if verb == "nn" else
                   "start the run again with --force")
        assert f"the checkpoint is damaged, {restart}" in err and "tensor-only" not in err, err
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == before
    torch.save({"train": np.zeros(3)}, ck)  # readable, but an object weights_only refuses (not one of ours)
    assert main(["nn", chain["job"], "--out", out, "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not a tensor-only state dict" in err and "damaged" not in err, err


@pytest.fixture
def thread_settings(monkeypatch):
    """The thread variables, torch's threads and the BLAS pools of this process as they were, after the test (a
    run in-process sets them: hpcflow.parallel.comm.limit_threads)."""
    from threadpoolctl import threadpool_limits

    from hpcflow.resources import THREAD_VARIABLES

    for name in ("HPCFLOW_THREADS", *THREAD_VARIABLES):
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    before = torch.get_num_threads()
    with threadpool_limits(limits=None):  # (puts the pools' threads back on exit)
        yield monkeypatch
    torch.set_num_threads(before)


THREADS_JOB = JOB.replace("threads = 1", "threads = 0").split("[width_sweep]")[0]  # threads: the rank's CPUs


def test_a_resume_with_other_threads_per_rank_records_each_legs_and_says_so(tmp_path, capsys, thread_settings):
    """threads = 0 (the rank's CPUs, $HPCFLOW_THREADS): a run of 1 epoch at HPCFLOW_THREADS=1, resumed to 2 epochs
    at 2, then to 3 at 2. Torch's and BLAS's sums per thread round otherwise at another count, so the second leg
    continues the run to summation order only: the resume says so in one line (it claimed bit for bit), each leg's
    threads are in legs[] (summary.json's threads named only the last leg's); the third, at the same count, says
    nothing."""
    job, out = _write_job(tmp_path, THREADS_JOB), str(tmp_path / "run")
    said = []
    for threads, epochs in ((1, 1), (2, 2), (2, 3)):
        thread_settings.setenv("HPCFLOW_THREADS", str(threads))
        resume = ["--resume"] if epochs > 1 else []
        assert main(["nn", job, "--out", out, *resume, "--set", f"training.epochs={epochs}", "--quiet"]) == 0
        said.append([line for line in capsys.readouterr().err.splitlines() if "threads per rank" in line])
        summary, ck = _read(out)
        assert summary["threads"] == threads and summary["legs"] == ck["legs"]
    assert [g["threads"] for g in ck["legs"]] == [1, 2, 2]
    assert said[0] == said[2] == [] and len(said[1]) == 1, said
    assert said[1][0].startswith("hpcflow nn: note: 2 threads per rank, where the checkpoint's last leg ran 1: ")
    assert "summation order" in said[1][0] and "HPCFLOW_THREADS=1" in said[1][0], said[1]


def _write_job(tmp_path, text):
    p = tmp_path / "job.toml"
    p.write_text(text)
    return str(p)


def test_training_threads_cap_the_blas_pools_of_the_ntk_spectra(tmp_path, thread_settings):
    """[training] threads = 1 under HPCFLOW_THREADS=2 (README: the advice for a shared node, as HPCFLOW_THREADS=1):
    the NTK's spectra (LAPACK through NumPy's BLAS) ran on the 2 BLAS threads, several times slower on busy cores;
    they run on 1, as the training does."""
    from threadpoolctl import threadpool_info

    from hpcflow.nn import ntk

    seen, results = [], ntk.NTKTracker.results

    def watched(self):
        seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return results(self)

    thread_settings.setattr(ntk.NTKTracker, "results", watched)
    thread_settings.setenv("HPCFLOW_THREADS", "2")
    job = _write_job(tmp_path, THREADS_JOB.replace("threads = 0", "threads = 1"))
    assert main(["nn", job, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert seen == [{1}], seen
    assert _read(str(tmp_path / "run"))[0]["threads"] == 1


def _set(path, value):
    """An edit of a loaded checkpoint: the entry at `path` (keys and indices) set to `value`, or to value(old)."""
    def edit(state):
        *parents, last = path
        node = state
        for key in parents:
            node = node[key]
        node[last] = value(node[last]) if callable(value) else value
    return edit


def _at(index, x):
    """value(old) for `_set`: a copy of tensor `old` with entry `index` set to x."""
    def value(old):
        new = old.clone()
        new[index] = x
        return new
    return value


#: hand edits of a finished run's checkpoint.pt to values no training writes -> the entry the refusal names: Adam's
#: second moment is a mean of squares; -1 is the one count that says "not counted", and the job has 100 validation
#: points; one partial comm_seconds and one history column per rank; a fraction of a point; negative seconds;
#: a leg of 0 ranks
IMPOSSIBLE = {
    "negative Adam second moment": (_set(("train", "optimizer", "state", 0, "exp_avg_sq"), _at((1, 2), -1e-9)),
                                    "train.optimizer.state.0.exp_avg_sq[1, 2] = -1e-09 is negative"),
    "negative sigma_val": (_set(("train", "history", "sigma_val"), _at(2, -0.5)),
                           "train.history.sigma_val[2] = -0.5 is negative"),
    "count -7": (_set(("train", "history", "val_not_positive_definite"), _at(1, -7)),
                 "train.history.val_not_positive_definite[1] = -7 is negative and not -1"),
    "count above n_val": (_set(("train", "history", "val_not_positive_definite"), _at(3, 101)),
                          "train.history.val_not_positive_definite[3] = 101 is above [geometry].n_val = 100"),
    "3 partial comm_seconds at 1 rank": (_set(("train", "partial", "comm_seconds"), [0.0, 0.0, 0.0]),
                                         "train.partial.comm_seconds (3 values, not one per rank of ranks = 1)"),
    "3 comm_seconds columns at 1 rank": (_set(("train", "history", "comm_seconds"),
                                              lambda old: old.repeat(1, 3)),
                                         "train.history.comm_seconds (3 columns, not one per rank of ranks = 1)"),
    "a fraction of a point": (_set(("train", "partial", "loss_count"), 2.5),
                              "train.partial.loss_count = 2.5 is not a whole number"),
    "negative NTK seconds": (_set(("ntk", "seconds"), _at(0, -1.0)), "ntk.seconds[0] = -1 is negative"),
    "a leg of 0 ranks": (_set(("legs", 0, "ranks"), 0), "legs[0].ranks = 0 is below 1"),
}


@pytest.mark.parametrize("case", list(IMPOSSIBLE))
def test_a_checkpoint_holding_a_value_no_training_writes_is_refused_before_any_work(chain, tmp_path, capsys, case):
    """A finished run's checkpoint.pt edited by hand to hold a value outside the range a training writes there: a
    resume that extends it is refused in one line naming the entry and value as a damaged checkpoint, exit 2, every
    file as it was. A negative Adam moment was accepted: the extension diverged at its first step and overwrote the
    finished run's nn.h5, model.pt and summary.json with status "diverged"; the other values were accepted and
    copied into nn.h5 or summary.json."""
    out = tmp_path / "run"
    shutil.copytree(chain["out"], out)
    ck = out / "checkpoint.pt"
    state = torch.load(ck, weights_only=True)
    assert state["status"] == "finished" and state["ranks"] == 1 and state["train"]["epoch"] == 3
    edit, words = IMPOSSIBLE[case]
    edit(state)
    torch.save(state, ck)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["nn", chain["job"], "--out", str(out), "--resume", "--set", "training.epochs=4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hpcflow nn: error: {ck}: entry {words}"), err
    assert (f"the checkpoint is damaged, start over with: hpcflow nn {chain['job']} --out {out} --quiet --force "
            "--set training.epochs=4 (it replaces that run's files), or choose another --out") in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_resume_may_change_threads_check_replicas_and_the_description_and_records_them(tmp_path, capsys,
                                                                                        thread_settings):
    """[training].threads (summation order only), [training].check_replicas (a debug checksum) and [job].description
    (text) may change on --resume: a run of 1 epoch at threads = 1, resumed to 2 epochs at threads = 2 (one line
    says the run continues to summation order and names the --set that resumes it bit for bit: HPCFLOW_THREADS does
    not override the key), then to 3 with check_replicas and a description; job.toml, summary.json and checkpoint.pt
    hold the new values, legs[] each leg's threads. Another change ([training].lr) is still refused, nothing
    touched."""
    import tomllib

    job, out = _write_job(tmp_path, THREADS_JOB.replace("threads = 0", "threads = 1")), str(tmp_path / "run")
    assert main(["nn", job, "--out", out, "--set", "training.epochs=1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["nn", job, "--out", out, "--resume", "--set", "training.epochs=2", "--set", "training.threads=2",
                 "--quiet"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "threads per rank" in line]
    assert len(said) == 1 and said[0].startswith("hpcflow nn: note: 2 threads per rank, where the checkpoint's last "
                                                 "leg ran 1: "), said
    assert "summation order" in said[0] and "(--set training.threads=1 resumes it bit for bit)" in said[0], said
    changes = ["--set", "training.epochs=3", "--set", "training.threads=2", "--set", "training.check_replicas=true",
               "--set", 'job.description="second try"']
    assert main(["nn", job, "--out", out, "--resume", *changes, "--quiet"]) == 0
    assert not [line for line in capsys.readouterr().err.splitlines() if "threads per rank" in line]
    summary, ck = _read(out)
    assert [g["threads"] for g in ck["legs"]] == [1, 2, 2] and summary["legs"] == ck["legs"]
    assert [(g["from_step"], g["to_step"]) for g in ck["legs"]] == [(0, 1), (1, 2), (2, 3)]
    with open(os.path.join(out, "job.toml"), "rb") as fh:
        saved = tomllib.load(fh)
    for cfg in (saved, summary["config"], json.loads(ck["config"])):
        assert cfg["training"]["threads"] == 2 and cfg["training"]["check_replicas"] is True, cfg
        assert cfg["job"]["description"] == "second try" and cfg["training"]["epochs"] == 3, cfg
    before = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}
    assert main(["nn", job, "--out", out, "--resume", *changes, "--set", "training.lr=1e-3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[training].lr" in err and "--set training.lr=0.003" in err, err
    assert ("may change only [training].epochs, threads and check_replicas, [geometry].max_batches, [checkpoint] and "
            "[job].description") in err
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == before
