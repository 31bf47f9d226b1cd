"""`hpcflow sample --out FILE` killed during its write leaves `.FILE.tmp-<hex>` (as large as the set); the next sample
to FILE (with --force too) removes it, as run directories and analysis outputs remove theirs, but never the temporary
of a write still running, nor one of another file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1")

#: a write of FILE killed before its rename, as SIGKILL leaves one: the atomic write's own temporary, left there
KILLED_WRITE = """
import os, signal, sys
from hpcflow.atomic import atomic_file
with atomic_file(sys.argv[1]) as fh:
    fh.write(b"x" * 65536)
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""

#: a write of FILE still running: its directory lock and temporary held until stdin closes (as `PointSet.save`)
LIVE_WRITE = """
import sys
from hpcflow.atomic import atomic_file
from hpcflow.geometry.temporaries import writing
with writing(sys.argv[1]), atomic_file(sys.argv[1]) as fh:
    fh.write(b"live")
    fh.flush()
    print("writing", flush=True)
    sys.stdin.read()
"""


def _temporaries(d: Path, name: str) -> list:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(f".{name}.tmp-"))


def _sample(d: Path, *args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "hpcflow", "sample", "--n", "50", "--quiet", "--out", "k.h5", *args],
                       cwd=d, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def _killed_write(d: Path, name: str) -> None:
    r = subprocess.run([sys.executable, "-c", KILLED_WRITE, name], cwd=d, env=ENV, timeout=60)
    assert r.returncode == -signal.SIGKILL


@pytest.mark.parametrize("force", [False, True], ids=["new", "force"])
def test_the_next_sample_removes_the_temporary_of_a_killed_write_of_its_file(tmp_path, force):
    if force:
        _sample(tmp_path)
    _killed_write(tmp_path, "k.h5")
    _killed_write(tmp_path, "other.h5")
    assert len(_temporaries(tmp_path, "k.h5")) == 1  # (what the killed sample left: 60 MB for --n 3e6)
    _sample(tmp_path, *(["--force"] if force else []))
    assert _temporaries(tmp_path, "k.h5") == []
    assert len(_temporaries(tmp_path, "other.h5")) == 1  # another file's: not this write's to remove
    assert (tmp_path / "k.h5").stat().st_size > 0


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    """A write of the same file still running in another process: its temporary stays (it would fail to rename a
    removed one), and so does debris, which the next write with no live writer removes."""
    with subprocess.Popen([sys.executable, "-c", LIVE_WRITE, "k.h5"], cwd=tmp_path, env=ENV, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as live:
        try:
            assert live.stdout.readline() == "writing\n"
            live_tmp = _temporaries(tmp_path, "k.h5")
            assert len(live_tmp) == 1
            _killed_write(tmp_path, "k.h5")
            debris = sorted(set(_temporaries(tmp_path, "k.h5")) - set(live_tmp))
            _sample(tmp_path)
            assert _temporaries(tmp_path, "k.h5") == sorted(live_tmp + debris)
        finally:
            live.stdin.close()
            assert live.wait(timeout=60) == 0
    assert _temporaries(tmp_path, "k.h5") == debris
    assert (tmp_path / "k.h5").read_bytes() == b"live"  # (no PointSet file, which --force would refuse to replace)
    (tmp_path / "k.h5").unlink()
    _sample(tmp_path)
    assert _temporaries(tmp_path, "k.h5") == []
