"""A job that asks for a GPU this node lacks (HPCFLOW_BACKEND=cupy without a usable CuPy device; a network job's
[training].device = 'cuda' where torch sees none): refused in one line before any work by the commands that run it
here (a local submission's --check too), accepted with a warning by --check and by a submission to another node.
The GPU is faked present or absent through the probes (`hpcflow.backend.gpu_available`, `torch.cuda.is_available`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpcflow.backend as backend
from hpcflow.cli import main
from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
TUNE_JOB = ROOT / "jobs" / "tune_delta.toml"
NN_JOB = ROOT / "jobs" / "nn_smoke.toml"
CUDA = ["--set", 'training.device="cuda"']


@pytest.fixture
def cupy_asked(monkeypatch):
    """HPCFLOW_BACKEND=cupy; the test sets whether a GPU is usable with `gpu(bool)`."""
    monkeypatch.setenv("HPCFLOW_BACKEND", "cupy")

    def gpu(usable: bool) -> None:  # (a check counts the GPU, `hpcflow info` probes it apart, a run probes it here)
        problem = None if usable else ("none", "CuPy sees no CUDA device (none on this node)")
        monkeypatch.setattr(backend, "gpu_available", lambda: usable)
        monkeypatch.setattr(backend, "gpu_counted", lambda: problem)
        monkeypatch.setattr(backend, "gpu_probed_apart", lambda: problem)

    return gpu


@pytest.fixture
def torch_gpu(monkeypatch):
    """`gpu(bool)` sets whether torch, a CUDA build (whichever build is installed), sees a GPU."""
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.4")

    def gpu(usable: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: usable)

    return gpu


def _one_line_refusal(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hpcflow {command}: error:"), err
    return err[0]


def test_tune_without_a_usable_gpu_is_refused_before_the_study_is_made(tmp_path, cupy_asked, capsys):
    """Every trial failed with MissingDependencyError and the study (journal, trials/0000, ...) was written, exit 3."""
    cupy_asked(False)
    out = tmp_path / "study"
    assert main(["tune", str(TUNE_JOB), "--trials", "2", "--out", str(out)]) == 2
    line = _one_line_refusal(capsys, "tune")
    assert "HPCFLOW_BACKEND=cupy" in line and "HPCFLOW_BACKEND=numpy" in line
    assert list(tmp_path.iterdir()) == []


def test_a_usable_gpu_passes_the_job_checks(tmp_path, cupy_asked):
    """The refusal is for a missing GPU only: with one usable, the same job loads."""
    cupy_asked(True)
    assert backend.backend_name() == "cupy"
    _, cfg = registry.load(TUNE_JOB)
    assert cfg["job"]["kind"] == "flow"


def test_a_submission_checks_the_gpu_where_the_job_runs(tmp_path, tmp_path_factory, cupy_asked, capsys, monkeypatch):
    """A local job runs here: refused before anything is queued or written, and so is its --check, which accepted it.
    A Slurm job runs on another node, and --check on a login node (sbatch and srun, no GPU) accepts it, as run
    --check does."""
    from test_submit import SINFO, _stand_in_slurm

    _stand_in_slurm(tmp_path_factory.mktemp("bin"), monkeypatch, SINFO)
    cupy_asked(False)
    out, logs = tmp_path / "out", tmp_path / "logs"
    tune = ["submit", str(TUNE_JOB), "--command", "tune", "--trials", "2", "--out", str(out)]
    assert main([*tune, "--executor", "local", "--logs", str(logs)]) == 2
    refused = _one_line_refusal(capsys, "submit")
    assert "HPCFLOW_BACKEND=cupy" in refused
    assert main([*tune, "--executor", "local", "--check"]) == 2
    assert _one_line_refusal(capsys, "submit") == refused
    assert list(tmp_path.iterdir()) == []
    assert main([*tune, "--executor", "slurm", "--partition", "mixed", "--gpus-per-node", "1", "--check"]) == 0, \
        capsys.readouterr().err
    assert main(["run", str(ROOT / "jobs" / "quickstart.toml"), "--out", str(out), "--check"]) == 0
    assert "no usable GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def _check_line(capsys, argv) -> str:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 or (len(out) == 2 and out[1].startswith("hpcflow submit:   #SBATCH ")), out  # (Slurm's)
    return out[0]


def _without_paths(line: str, *paths) -> str:
    """`line` with each of `paths` (which it names) as PATH: a word of the checkout's or tmp path is not the line's."""
    for path in map(str, paths):
        assert path in line, (path, line)
        line = line.replace(path, "PATH")
    return line


def test_a_cuda_network_job_is_checked_without_a_gpu_and_refused_by_its_run(tmp_path, torch_gpu, capsys):
    """nn --check of device 'cuda' on a login node exited 2 ('torch sees no GPU'); it now says so and accepts the job,
    as run --check does for HPCFLOW_BACKEND=cupy, while the run itself refuses it in one line, nothing written. The
    line names the torch device the run would train on, not the array backend ('backend numpy', HPCFLOW_BACKEND);
    the paths it names (the checkout's, tmp's) are not its words."""
    torch_gpu(False)
    out = tmp_path / "out"
    for command in ("nn", "run"):
        line = _check_line(capsys, [command, str(NN_JOB), "--out", str(out), "--check", *CUDA])
        assert "; torch device cuda, but torch sees no GPU on this node: run it on a GPU node; nothing run" in line
        assert "backend" not in _without_paths(line, NN_JOB, out).lower()
    assert "; torch device cpu; nothing run" in _check_line(
        capsys, ["nn", str(NN_JOB), "--out", str(out), "--check", "--set", 'training.device="cpu"'])
    line = _check_line(capsys, ["nn", str(NN_JOB), "--out", str(out), "--check"])  # (device auto)
    assert "; torch device auto (cuda where torch sees a GPU, else cpu); nothing run" in line
    assert "backend" not in _without_paths(line, NN_JOB, out).lower()
    assert main(["nn", str(NN_JOB), "--out", str(out), *CUDA]) == 2
    assert "[training].device = 'cuda' but torch sees no GPU" in _one_line_refusal(capsys, "nn")
    assert list(tmp_path.iterdir()) == []
    torch_gpu(True)
    assert "; torch device cuda; nothing run" in _check_line(capsys, ["nn", str(NN_JOB), "--out", str(out), "--check",
                                                                      *CUDA])
    assert list(tmp_path.iterdir()) == []


def test_a_cuda_network_job_is_submitted_to_slurm_from_a_node_without_a_gpu(tmp_path, torch_gpu, monkeypatch,
                                                                            capsys):
    """submit --check of device 'cuda' exited 2 before the partition was looked at (--gpus-per-node 1 too), and so
    did the submission: the job runs on a GPU node, which checks its device as it starts. A local job runs here:
    refused before anything is queued or written."""
    from test_submit import SINFO, _stand_in_slurm
    from test_submit_failures import _sbatch

    torch_gpu(False)
    bin_dir = tmp_path / "bin"
    called = _stand_in_slurm(bin_dir, monkeypatch, SINFO)
    _sbatch(bin_dir, out="Submitted batch job 42\n", rc=0)
    out = tmp_path / "out"
    submit = ["submit", str(NN_JOB), "--out", str(out), "--command", "nn", *CUDA]
    assert main([*submit, "--executor", "local"]) == 2
    refused = _one_line_refusal(capsys, "submit")
    assert "[training].device = 'cuda' but torch sees no GPU" in refused
    assert main([*submit, "--executor", "local", "--check"]) == 2  # (exit 0 with a warning, then the job refused)
    assert _one_line_refusal(capsys, "submit") == refused
    gpus = ["--executor", "slurm", "--partition", "mixed", "--gpus-per-node", "1"]
    line = _check_line(capsys, [*submit, *gpus, "--check"])
    assert " in partition mixed: hpcflow nn " in line
    assert line.endswith("; torch device cuda, but torch sees no GPU on this node: run it on a GPU node"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"] and not called.exists()
    assert main([*submit, *gpus]) == 0, capsys.readouterr().err
    assert "slurm job 42: hpcflow nn " in capsys.readouterr().out and called.read_text().startswith("sbatch ")
    torch_gpu(True)  # a GPU here: nothing to warn of
    assert _check_line(capsys, [*submit, *gpus, "--check"]).endswith("--set 'training.device=\"cuda\"'")


def test_info_names_the_cupy_distribution_installed_and_each_gpu_probe(tmp_path, monkeypatch, cupy_asked, torch_gpu):
    """CuPy's line was tied to cupy-cuda12x: another CuPy distribution read 'cupy-cuda12x not installed' beside
    'gpu_available True'. The distribution that provides the `cupy` module is named (here a metadata-only
    cupy-cuda11x on sys.path). HPCFLOW_BACKEND=cupy without a GPU is a valid setting, not 'invalid'; torch's own GPU
    probe, which network jobs ask, has its line."""
    from hpcflow.commands.info import collect

    dist = tmp_path / "cupy_cuda11x-13.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cupy-cuda11x\nVersion: 13.3.0\n")
    (dist / "top_level.txt").write_text("cupy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for cupy_gpu, torch_sees in ((True, False), (False, True)):
        cupy_asked(cupy_gpu)
        torch_gpu(torch_sees)
        facts = collect()
        assert facts["cupy"] == "13.3.0 (cupy-cuda11x)" and "cupy-cuda12x" not in facts
        assert facts["gpu_available"] is cupy_gpu and facts["torch_cuda"] is torch_sees
        assert facts["backend"] == ("cupy" if cupy_gpu else "cupy requested, no usable GPU here")


def test_submit_check_of_a_tune_warns_of_a_cuda_choice_in_its_space(tmp_path, tmp_path_factory, torch_gpu, capsys,
                                                                    monkeypatch):
    """A [tune.space] choice training.device = "cuda" passed submit --check without a word on a node without a GPU
    (only the base job's device was looked at), while a tune here refuses it before any trial: a Slurm submission's
    --check (on a login node: sbatch and srun) says it as it says a base job's device 'cuda', naming the choice; a
    local one's refuses it, as the tune that it would start here does."""
    from test_submit import SINFO, _stand_in_slurm

    _stand_in_slurm(tmp_path_factory.mktemp("bin"), monkeypatch, SINFO)
    job = tmp_path / "tune_cuda.toml"
    job.write_text((ROOT / "jobs" / "tune_nn.toml").read_text() + '"training.device" = {choices = ["cpu", "cuda"]}\n')
    out = tmp_path / "study"
    torch_gpu(False)
    assert main(["tune", str(job), "--trials", "1", "--out", str(out)]) == 2
    refused = _one_line_refusal(capsys, "tune")
    assert "choices[1] = 'cuda' gives a job that fails its checks" in refused
    assert main(["submit", str(job), "--command", "tune", "--trials", "1", "--out", str(out), "--executor", "local",
                 "--check"]) == 2
    assert _one_line_refusal(capsys, "submit").split(": error: ", 1)[1] == refused.split(": error: ", 1)[1]
    gpus = ["--partition", "mixed", "--gpus-per-node", "1"]
    line = _check_line(capsys, ["submit", str(job), "--command", "tune", "--trials", "1", "--out", str(out),
                                "--executor", "slurm", *gpus, "--check"])
    assert line.endswith("""; [tune.space]."training.device".choices[1] = 'cuda': torch device cuda, but torch """
                         "sees no GPU on this node: run it on a GPU node"), line
    base = _check_line(capsys, ["submit", str(ROOT / "jobs" / "tune_nn.toml"), "--command", "tune", "--trials", "1",
                                "--out", str(out), "--executor", "slurm", *gpus, "--check", *CUDA])
    # the base job's own device (a job that does not search it): said as before
    assert base.endswith("; torch device cuda, but torch sees no GPU on this node: run it on a GPU node"), base
    torch_gpu(True)
    assert "torch" not in _check_line(capsys, ["submit", str(job), "--command", "tune", "--trials", "1", "--out",
                                               str(out), "--executor", "local", "--check"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tune_cuda.toml"]
