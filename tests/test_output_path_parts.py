"""An output path whose directory the OS resolves otherwise than os.path.abspath would (a trailing '/', `..` after a
missing directory or after a file) is refused in one line before any work, as the write would fail on it."""

import os

import pytest

from hpcflow.errors import OutputPathError
from hpcflow.geometry import Hypersurface


def _cases(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"keep")
    return {"x.h5/": "ends with '/'", "a.h5/": "ends with '/'",
            "sub/../q.h5": "directory sub/.. is missing (sub does not exist)",
            "a.h5/../qq.h5": "directory a.h5/.. cannot be reached (a.h5 is not a directory)"}


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_sample_refuses_an_out_the_os_cannot_create_before_sampling(tmp_path, monkeypatch, capsys, force):
    from hpcflow.cli import main

    cases = _cases(tmp_path)
    monkeypatch.chdir(tmp_path)

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before the refusal")

    monkeypatch.setattr(Hypersurface, "sample", no_sampling)
    for out, needle in cases.items():
        assert main(["sample", "--n", "10", "--out", out, *force]) == 2, out
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"hpcflow sample: error: --out {out}") and needle in err, err
    assert sorted(os.listdir(tmp_path)) == ["a.h5"] and (tmp_path / "a.h5").read_bytes() == b"keep"


def test_pointset_save_refuses_them_as_output_path_errors(tmp_path, monkeypatch):
    cases = _cases(tmp_path)
    monkeypatch.chdir(tmp_path)
    ps = Hypersurface.fermat(3).sample(5, seed=0, threads=1)
    for out, needle in cases.items():
        for force in (False, True):
            with pytest.raises(OutputPathError, match="^" + out.replace(".", r"\.")) as err:
                ps.save(out, force=force)
            assert needle in str(err.value) and "--" not in str(err.value)
    (tmp_path / "sub2").mkdir()
    ps.save("sub2/../ok.h5")  # `..` through a directory is fine
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "ok.h5", "sub2"]


def test_a_run_directory_behind_a_file_is_refused_by_check_too(tmp_path, monkeypatch):
    """`--out a.h5/../runs` (a.h5 a file): mkdir fails there (ENOTDIR); `hpcflow run --check` accepted it, as the
    checks dropped the `..` first. A missing directory before `..` is created by mkdir -p, so it is accepted."""
    from hpcflow.jobs.output import writable_dir

    (tmp_path / "a.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for out in ("a.h5/../runs", "gone/../a.h5/x", "a.h5/"):
        with pytest.raises(OutputPathError, match=r"^cannot create --out .*: a\.h5 is not a directory"):
            writable_dir(out)
    assert writable_dir("gone/../runs") == "gone/../runs"
    os.makedirs("gone/../runs")
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "gone", "runs"]
