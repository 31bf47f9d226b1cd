"""PointSet HDF5 round trip and the `hpcflow sample` / `hpcflow info` CLI (bad input: one line, exit 2)."""

import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.errors import InputFileError, OutputPathError
from hpcflow.geometry import Hypersurface, PointSet


def hpcflow(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hpcflow", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_save_load_round_trip(tmp_path):
    """Every stored field bitwise; the Jacobians, not stored, recomputed CHUNK rows at a time on the host: bitwise
    one NumPy call on all rows (the sampler's own on the NumPy backend; CuPy's equal them to roundoff)."""
    from hpcflow.geometry.pointcheck import CHUNK

    X = Hypersurface.dwork(3, 0.2 + 0.1j)
    ps = X.sample(CHUNK + 500, seed=1)
    ps.save(tmp_path / "p.h5")
    back = PointSet.load(tmp_path / "p.h5")
    for name in ("points", "weights", "omega2", "g_fs", "chart"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ps, name))
    np.testing.assert_array_equal(back.jacobian, X.point_set(ps.points, chart=ps.chart).jacobian)
    np.testing.assert_allclose(back.jacobian, ps.jacobian, rtol=1e-13, atol=1e-13 * np.abs(ps.jacobian).max())
    assert back.manifold.definition() == X.definition() and back.seed == 1
    with h5py.File(tmp_path / "p.h5") as f:
        assert "eq. B.11" in f.attrs["conventions"] and f.attrs["hpcflow_version"]


def test_save_refuses_to_overwrite(tmp_path):
    ps = Hypersurface.fermat(3).sample(50, seed=2)
    path = tmp_path / "p.h5"
    path.write_bytes(b"precious")
    with pytest.raises(OutputPathError):
        ps.save(path)
    assert path.read_bytes() == b"precious"
    ps.save(path, force=True)
    assert len(PointSet.load(path)) == 50


def test_load_rejects_non_pointset_files(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["points"] = np.zeros((3, 5))
    for name in ("text.h5", "other.h5", "missing.h5"):
        with pytest.raises(InputFileError):
            PointSet.load(tmp_path / name)


def test_sample_cli_end_to_end(tmp_path):
    out = tmp_path / "pts.h5"
    r = hpcflow("sample", "--manifold", "fermat", "--dim", "3", "--n", "2000", "--seed", "0",
                "--chart", "0", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "sigma_FS" in r.stdout and "points/s" in r.stdout
    ps = PointSet.load(out)
    assert len(ps) == 2000 and np.all(ps.chart == [0, 1])
    np.testing.assert_array_equal(ps.points, Hypersurface.fermat(3).sample(2000, seed=0, chart=(0, 1)).points)


def test_sample_cli_takes_a_whole_count_in_float_notation(tmp_path):
    """--n 2e3 is --n 2000 (as the API's sample(2e3)): the same file, bitwise."""
    for n in ("2e3", "2000"):
        r = hpcflow("sample", "--n", n, "--seed", "3", "--out", str(tmp_path / f"{n}.h5"), "--quiet")
        assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "2e3.h5") as a, h5py.File(tmp_path / "2000.h5") as b:
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k][()], b[k][()]) for k in a)
        assert a["points"].shape[0] == 2000


@pytest.mark.parametrize("args, needle", [
    (["--manifold", "foo"], "--manifold"),
    (["--dim", "0"], "dim"),
    (["--n", "0"], "--n"),
    (["--n", "12.5"], "--n"),
    (["--n", "1e400"], "--n"),
    (["--n", "nan"], "--n"),
    (["--chart", "2", "2"], "chart"),
    (["--chart", "0", "7"], "chart"),
    (["--psi", "abc", "--manifold", "dwork"], "--psi"),
])
def test_sample_cli_bad_input_exit_2_and_nothing_overwritten(tmp_path, args, needle):
    out = tmp_path / "pts.h5"
    base = ["sample", "--n", "10", "--out", str(out)]
    r = hpcflow(*base, *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not out.exists()


def test_sample_cli_refuses_existing_output_and_unwritable_dir(tmp_path):
    out = tmp_path / "pts.h5"
    out.write_bytes(b"keep me")
    r = hpcflow("sample", "--n", "10", "--out", str(out))
    assert r.returncode == 2 and "--force" in r.stderr and out.read_bytes() == b"keep me"
    r = hpcflow("sample", "--n", "10", "--out", str(tmp_path / "nodir" / "x.h5"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_invalid_backend_env_is_a_one_line_error():
    """info too refuses it (it printed 'backend invalid (...)' and exited 0), as the README's environment row says."""
    r = hpcflow("info", env={"HPCFLOW_BACKEND": "tpu"})
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r
    assert r.stderr.startswith("hpcflow info: error: HPCFLOW_BACKEND='tpu' is not one of numpy, cupy, auto"), r.stderr
    from hpcflow.backend import backend_name
    from hpcflow.errors import ConfigError

    with pytest.raises(ConfigError):
        backend_name("tpu")
    assert backend_name("numpy") == "numpy"


def test_sample_help_states_the_defaults_of_dim_and_psi():
    """--help of sample gave no default for --dim or --psi; it states the ones the parser applies, and the bound on
    |psi| that holds (it said |psi| <= 1000 after the cap became 1e9; the sampler refuses 1e5 at dim 3)."""
    r = hpcflow("sample", "--help", env={"COLUMNS": "400"})  # one line per option
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip().startswith("--")}
    assert "default 3)" in lines["--dim"] and "default 0.0)" in lines["--psi"], r.stdout
    assert "|psi| <= 1000" not in lines["--psi"] and "|psi| <= 1e9" in lines["--psi"], lines["--psi"]
    assert "~5e4 at dim 3" in lines["--psi"], lines["--psi"]


def test_a_psi_that_starts_with_a_minus_is_told_to_use_the_equals_form(tmp_path):
    """argparse takes '-0.5+0.2j' for an option ('expected one argument', nothing else said); the refusal and --help
    say to write --psi=-0.5+0.2j, which the parser reads as that number."""
    from hpcflow.cli import build_parser

    out = tmp_path / "pts.h5"
    r = hpcflow("sample", "--manifold", "dwork", "--psi", "-0.5+0.2j", "--n", "10", "--out", str(out))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "--psi=VALUE" in lines[0] and not out.exists(), r.stderr
    r = hpcflow("sample", "--help", env={"COLUMNS": "400"})
    assert "--psi=-0.5+0.2j" in next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("--psi"))
    args = build_parser().parse_args(["sample", "--psi=-0.5+0.2j", "--n", "10", "--out", str(out)])
    assert args.psi == complex(-0.5, 0.2)


def test_cupy_without_gpu_names_the_setting_it_came_from(tmp_path, monkeypatch):
    """HPCFLOW_BACKEND=cupy on a node without a GPU: the fix names HPCFLOW_BACKEND=numpy (what the user set), not
    the API argument; an explicit backend= argument keeps naming backend=numpy."""
    import hpcflow.backend as backend
    from hpcflow.errors import MissingDependencyError

    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    monkeypatch.setenv("HPCFLOW_BACKEND", "cupy")
    with pytest.raises(MissingDependencyError, match="use HPCFLOW_BACKEND=numpy$"):
        backend.backend_name()
    with pytest.raises(MissingDependencyError, match="use backend=numpy$"):
        backend.backend_name("cupy")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "o"
    r = hpcflow("run", os.path.join(root, "jobs", "quickstart.toml"), "--out", str(out),
                env={"HPCFLOW_BACKEND": "cupy", "CUDA_VISIBLE_DEVICES": ""})  # no GPU visible, CuPy or not
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "HPCFLOW_BACKEND=cupy" in r.stderr and "HPCFLOW_BACKEND=numpy" in r.stderr and not out.exists()


def test_info_reports_mpi_world_size_under_mpiexec():
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "hpcflow", "info"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    sizes = [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("mpi_world_size")]
    assert sizes == ["2"]  # one table for the world, not one per rank
    assert len([line for line in r.stdout.splitlines() if line.startswith("numpy ")]) == 1


def test_info_prints_a_fact_that_differs_between_ranks_once_per_rank():
    from hpcflow.commands.info import lines

    out = lines([{"numpy": "2.0", "host": "a", "gpu_available": True},
                 {"numpy": "2.0", "host": "b", "gpu_available": True}])
    assert out == ["numpy            2.0", "host             rank 0: a", "host             rank 1: b",
                   "gpu_available    True"]


def test_info_shows_whole_lines_of_the_mpi_library_version():
    """MPICH's multi-line version is shown line by line up to 120 characters, never a line cut mid-field."""
    from hpcflow.commands.info import library_line

    mpich = ("MPICH Version:      5.0.2\nMPICH Release date: Fri Sep 25 20:45:26 UTC 2026\nMPICH ABI:          18:2:6\n"
             "MPICH Device:       ch4:ucx ofi\nMPICH configure:    --with-device=ch4:ucx,ofi --with-pm=hydra\n")
    line = library_line(mpich)
    assert line == ("MPICH Version: 5.0.2; MPICH Release date: Fri Sep 25 20:45:26 UTC 2026; MPICH ABI: 18:2:6; "
                    "MPICH Device: ch4:ucx ofi")
    one = "Open MPI v4.1.5, package: Open MPI builder@host Distribution, ident: 4.1.5, " * 3
    cut = library_line(one)
    assert len(cut) <= 120 and cut.endswith("...") and one.startswith(cut[:-3] + " ")
    assert library_line("Intel(R) MPI Library 2021.10\n") == "Intel(R) MPI Library 2021.10"


def test_info_warns_when_launcher_says_several_ranks_but_mpi_sees_one():
    r = hpcflow("info", env={"SLURM_STEP_NUM_TASKS": "4"})  # an srun step of 4 tasks
    assert r.returncode == 0
    assert "warning" in r.stdout and "world size 1" in r.stdout
    r = hpcflow("info", env={"SLURM_STEP_NUM_TASKS": "1"})
    assert "warning" not in r.stdout


def test_bad_thread_count_env_is_a_one_line_error(tmp_path):
    r = hpcflow("sample", "--n", "10", "--out", str(tmp_path / "x.h5"), env={"HPCFLOW_THREADS": "two"})
    assert r.returncode == 2 and "HPCFLOW_THREADS" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("where", ["trials/0000/x.h5", "x.h5", "trials/0000/new/x.h5"])
def test_sample_and_save_do_not_write_inside_a_study_directory(tmp_path, capsys, where):
    """A file in the study directory of `hpcflow tune` (study.json naming a study) or below it: `hpcflow sample`
    refuses it in one line naming the study directory, exit 2, with --force too, before sampling; PointSet.save
    likewise, nothing written. It was written among the study's trials."""
    from hpcflow.cli import main

    study = tmp_path / "study"
    (study / "trials" / "0000").mkdir(parents=True)
    (study / "study.json").write_text('{"study": "s"}')
    (tmp_path / "link").symlink_to(study / "trials")
    before = sorted(p for p in tmp_path.rglob("*"))
    for out in (study / where, tmp_path / "link" / where.removeprefix("trials/")):
        for force in ([], ["--force"]):
            assert main(["sample", "--n", "10", "--seed", "0", "--out", str(out), *force]) == 2
            captured = capsys.readouterr()
            assert captured.out == "" and captured.err.count("\n") == 1, captured
            assert captured.err.startswith(f"hpcflow sample: error: --out {out} lies inside {study}, the study "
                                           "directory of 'hpcflow tune' (study.json)"), captured.err
        with pytest.raises(OutputPathError, match=f"^{re.escape(f'{out} lies inside {study}, the study directory')}"):
            Hypersurface.fermat(3).sample(10, seed=0).save(out, force=True)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_sample_cli_takes_back_the_128_bit_seed_that_an_api_draw_records(tmp_path):
    """A draw with seed=None records its entropy (128 bits) in @seed; `hpcflow sample --seed` with it gives the same
    points as X.sample(n, seed=that)."""
    X = Hypersurface.fermat(3)
    drawn = X.sample(40, seed=None, threads=1)
    drawn.save(tmp_path / "api.h5")
    seed = json.loads(h5py.File(tmp_path / "api.h5", "r").attrs["seed"])
    assert isinstance(seed, int) and seed >= 2**63  # (2^-65 chance that a fresh entropy is below: rerun)
    r = hpcflow("sample", "--n", "40", "--seed", str(seed), "--threads", "1", "--quiet", "--out",
                str(tmp_path / "cli.h5"))
    assert r.returncode == 0, r.stderr
    again = PointSet.load(tmp_path / "cli.h5")
    assert again.seed == seed
    np.testing.assert_array_equal(again.points, drawn.points)
    r = hpcflow("sample", "--n", "40", "--seed", "-1", "--out", str(tmp_path / "neg.h5"))
    assert r.returncode == 2 and "--seed" in r.stderr and not (tmp_path / "neg.h5").exists()


def test_sample_force_writes_through_a_symlink_to_its_target(tmp_path):
    """--force on a symbolic link replaces the file it leads to (atomically, the temporary beside the target) and
    keeps the link; PointSet.save(force=True) alike."""
    data = tmp_path / "data"
    data.mkdir()
    tgt = data / "tgt.h5"
    Hypersurface.fermat(3).sample(5, seed=9, threads=1).save(tgt)
    lnk = tmp_path / "lnk.h5"
    lnk.symlink_to(tgt)
    r = hpcflow("sample", "--n", "7", "--seed", "1", "--threads", "1", "--quiet", "--out", str(lnk), "--force")
    assert r.returncode == 0, r.stderr
    assert lnk.is_symlink() and os.readlink(lnk) == str(tgt)
    assert len(PointSet.load(tgt)) == 7 and PointSet.load(tgt).seed == 1
    assert sorted(os.listdir(data)) == ["tgt.h5"] and sorted(os.listdir(tmp_path)) == ["data", "lnk.h5"]
    Hypersurface.fermat(3).sample(3, seed=2, threads=1).save(lnk, force=True)
    assert lnk.is_symlink() and len(PointSet.load(tgt)) == 3
    r = hpcflow("sample", "--n", "7", "--out", str(lnk))  # without --force the link is an existing file
    assert r.returncode == 2 and "exists" in r.stderr and len(PointSet.load(tgt)) == 3


@pytest.mark.parametrize("force", [False, True])
def test_a_dangling_link_out_names_its_missing_directory_not_force(tmp_path, force):
    """A link to a path whose directory is missing: with or without --force the refusal says so (--force would not
    help); a dangling link whose directory exists is an existing name, refused without --force as any other."""
    from hpcflow.jobs.output import check_output_file

    lnk = tmp_path / "dang.h5"
    lnk.symlink_to(tmp_path / "nowhere" / "x.h5")
    with pytest.raises(OutputPathError) as err:
        check_output_file(str(lnk), force=force)
    msg = str(err.value)
    assert f"link to {tmp_path / 'nowhere' / 'x.h5'}" in msg and f"directory {tmp_path / 'nowhere'} is missing" in msg
    assert "--force" not in msg and lnk.is_symlink() and not (tmp_path / "nowhere").exists()
    (tmp_path / "nowhere").mkdir()
    if force:
        assert check_output_file(str(lnk), force=True) == str(lnk)
    else:
        with pytest.raises(OutputPathError, match="exists; .* pass --force"):
            check_output_file(str(lnk), force=False)


def test_info_prints_the_host_at_one_rank_too():
    import platform

    r = hpcflow("info")
    assert r.returncode == 0, r.stderr
    hosts = [line.split(None, 1)[1] for line in r.stdout.splitlines() if line.startswith("host ")]
    assert hosts == [platform.node()]
