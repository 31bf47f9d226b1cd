"""Whether an output directory can be written is found by writing in it (a probe file created and removed at once),
not by os.access, which answers for the permission bits alone: root passes it where a read-only mount refuses the
write, and ACLs or a network file system may refuse (or allow) what the bits say. The refusal stays one line, exit 2,
before any work, and the probe leaves nothing behind."""

import errno
import os
import stat

import pytest

from hpcflow.cli import main
from hpcflow.errors import OutputPathError
from hpcflow.jobs import output
from test_checkpoint import RESUME_JOB


def _refused_in(monkeypatch, directory, code):
    """Every file creation in `directory` fails with OSError `code` (a read-only mount: EROFS; an ACL: EACCES), as the
    kernel refuses it, whatever the permission bits (and so os.access) say."""
    real_open, real = os.open, os.path.realpath(directory)

    def refusing(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and os.path.realpath(os.path.dirname(os.path.abspath(path))) == real:
            raise OSError(code, os.strerror(code), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)


def _entries(d):
    return sorted(os.listdir(d))


@pytest.mark.parametrize("code, why", [(errno.EROFS, "lies on a read-only file system"),
                                       (errno.EACCES, "is not writable")])
def test_a_directory_the_kernel_refuses_to_write_is_refused_whatever_os_access_says(tmp_path, monkeypatch, code, why):
    out = tmp_path / "out"
    out.mkdir()
    assert os.access(out, os.W_OK | os.X_OK)  # the permission bits allow it (and root passes them anyway)
    _refused_in(monkeypatch, out, code)
    with pytest.raises(OutputPathError, match=f"^--out {out} {why}; choose another --out$"):
        output.check_outdir(str(out))
    with pytest.raises(OutputPathError, match=f"cannot create --out {out / 'new'}: {out} {why}; choose another"):
        output.check_outdir(str(out / "new"))
    with pytest.raises(OutputPathError, match=f"directory {out} {why}; pick another path or make it writable$"):
        output.check_output_file(str(out / "points.h5"), force=False)
    monkeypatch.undo()
    assert _entries(out) == []


def test_a_run_into_a_read_only_mount_is_refused_in_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(RESUME_JOB)
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    _refused_in(monkeypatch, out, errno.EROFS)
    for check in (["--check"], []):
        assert main(["run", str(job), "--out", str(out), "--force", "--quiet", *check]) == 2
        err = capsys.readouterr().err
        assert err == f"hpcflow run: error: --out {out} lies on a read-only file system; choose another --out\n", err
    monkeypatch.undo()
    assert _entries(out) == ["keep.txt"]


def test_the_probe_leaves_nothing_and_a_writable_directory_is_accepted(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert output.check_outdir(str(out)) == str(out)
    assert output.check_output_file(str(out / "points.h5"), force=False) == str(out / "points.h5")
    assert output.check_outdir(str(out / "a" / "b")) == str(out / "a" / "b")
    assert _entries(out) == [] and _entries(tmp_path) == ["out"]


def test_a_chmod_read_only_directory_is_judged_as_a_write_there_goes(tmp_path):
    """chmod a-w: refused where a write there fails (any user but root), accepted where it succeeds (root, whom the
    permission bits do not stop), so the verdict is the write's own, as for root below a read-only mount."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        try:  # what the kernel says to a write there (the test's own, independent of the probe)
            (out / "w").write_text("")
        except PermissionError:
            writes = False
        else:
            writes = True
            (out / "w").unlink()
        if writes:
            assert output.check_outdir(str(out)) == str(out)
            assert output.check_output_file(str(out / "p.h5"), force=False) == str(out / "p.h5")
        else:
            with pytest.raises(OutputPathError, match=f"^--out {out} is not writable; choose another --out$"):
                output.check_outdir(str(out))
            with pytest.raises(OutputPathError, match=f"directory {out} is not writable"):
                output.check_output_file(str(out / "p.h5"), force=False)
        assert _entries(out) == []
    finally:
        out.chmod(stat.S_IRWXU)


def test_a_parent_that_is_a_file_is_refused_as_root_too(tmp_path):
    """A path below a regular file: refused naming the file (root cannot create it either)."""
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match=f"{tmp_path / 'f'} is not a directory"):
        output.check_outdir(str(tmp_path / "f" / "out"))
    with pytest.raises(OutputPathError, match="is not a directory"):
        output.check_output_file(str(tmp_path / "f" / "p.h5"), force=False)
