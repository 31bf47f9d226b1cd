"""Writers into one new name: the complete file is placed only if no file took the name meanwhile, so of two
`hpcflow sample --out F` (or PointSet.save) racing for F, the second fails in one line (exit 2) and the first one's
file stays; --force / force=True still replaces."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from hpcflow import atomic
from hpcflow.atomic import atomic_file
from hpcflow.cli import main
from hpcflow.errors import OutputPathError
from hpcflow.geometry import Hypersurface, PointSet


def _no_hard_links(monkeypatch):
    def refuse(*args, **kw):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", refuse)


@pytest.mark.parametrize("links", ["hard links", "no hard links"])
def test_a_name_taken_while_writing_is_kept_and_the_write_fails(tmp_path, monkeypatch, links):
    if links == "no hard links":
        _no_hard_links(monkeypatch)
    p = tmp_path / "a.txt"
    with pytest.raises(FileExistsError):
        with atomic_file(p, "w", replace=False) as fh:
            fh.write("second")
            p.write_text("first")  # another writer finished first
    assert p.read_text() == "first"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporary left
    with atomic_file(tmp_path / "b.txt", "w", replace=False) as fh:
        fh.write("only")
    assert (tmp_path / "b.txt").read_text() == "only"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_a_dangling_symlink_at_the_name_is_not_replaced_nor_followed(tmp_path):
    (tmp_path / "a.txt").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        with atomic_file(tmp_path / "a.txt", "w", replace=False) as fh:
            fh.write("x")
    assert os.path.islink(tmp_path / "a.txt") and not (tmp_path / "elsewhere").exists()


def _taken_before_placing(monkeypatch, target, text=b"first"):
    """Create `target` once the set's rows are checked, as a writer that finished first would."""
    real = PointSet._save_refusal

    def then_taken(self, *args):
        out = real(self, *args)
        target.write_bytes(text)
        return out

    monkeypatch.setattr(PointSet, "_save_refusal", then_taken)


def test_save_keeps_a_file_created_between_its_check_and_its_placement(tmp_path, monkeypatch):
    ps = Hypersurface.fermat(3).sample(50, seed=2)
    target = tmp_path / "p.h5"
    _taken_before_placing(monkeypatch, target)
    with pytest.raises(OutputPathError, match="created by another process") as exc:
        ps.save(target)
    assert str(target) in str(exc.value) and "\n" not in str(exc.value)
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["p.h5"]
    ps.save(target, force=True)  # force replaces, as asked
    assert len(PointSet.load(target)) == 50


def test_sample_cli_refuses_in_one_line_when_out_is_taken_while_sampling(tmp_path, monkeypatch, capsys):
    target = tmp_path / "p.h5"
    _taken_before_placing(monkeypatch, target)
    assert main(["sample", "--n", "50", "--quiet", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--out {target} was created by another process" in err and "--force" in err
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["p.h5"]


#: `hpcflow sample` in a child process that, once its rows are checked (after the exists check), waits until every
#: child has come that far: the children then write and place their files at the same time
RACER = """
import os, sys, time
from hpcflow.cli import main
from hpcflow.geometry import PointSet

gate, count = sys.argv[1], int(sys.argv[2])
real = PointSet._save_refusal


def at_the_gate(self, *args):
    out = real(self, *args)
    open(os.path.join(gate, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(gate)) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return out


PointSet._save_refusal = at_the_gate
sys.exit(main(sys.argv[3:]))
"""


def test_two_concurrent_samples_into_one_new_file(tmp_path):
    """Two real processes past the exists check write F at once: one places it, the other exits 2 in one line;
    F is the first one's, whole."""
    out, gate = tmp_path / "out", tmp_path / "gate"
    out.mkdir()
    gate.mkdir()
    target = out / "p.h5"
    env = {**os.environ, "HPCFLOW_QUIET": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(gate), "2", "sample", "--n", "5000", "--seed",
                               str(seed), "--threads", "1", "--out", str(target)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    results = [(p.returncode, *o) for p, o in zip(procs, outputs)]
    assert len(os.listdir(gate)) == 2  # both came past the exists check
    assert sorted(r[0] for r in results) == [0, 2], results
    winner = next(seed for seed, r in zip((1, 2), results) if r[0] == 0)
    err = next(r[2] for r in results if r[0] == 2).strip()
    assert len(err.splitlines()) == 1 and f"--out {target} was created by another process" in err, err
    back = PointSet.load(target)
    assert back.seed == winner and len(back) == 5000
    assert os.listdir(out) == ["p.h5"]
