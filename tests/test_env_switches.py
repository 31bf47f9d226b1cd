"""HPCFLOW_QUIET and HPCFLOW_IGNORE_MEMORY_CHECK are on/off switches with one rule (hpcflow.arguments.env_switch):
1 is on, 0, blank or unset is off, anything else is refused in one line naming the variable and the fix (exit 2),
by every command and the Python API alike."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.jobs import registry
from hpcflow.progress import wanted
from hpcflow.resources import check_resources, memory_limit

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = ("HPCFLOW_QUIET", "HPCFLOW_IGNORE_MEMORY_CHECK")


def _info(name: str, value: str):
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update({"PYTHONPATH": str(ROOT), name: value})
    return subprocess.run([sys.executable, "-m", "hpcflow", "info"], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize("value", ["0", "1", " 0 ", ""])
def test_a_switch_takes_0_and_1(name, value):
    """HPCFLOW_QUIET=0 was refused ("must be 1 ... or unset") while HPCFLOW_IGNORE_MEMORY_CHECK=0 was taken."""
    r = _info(name, value)
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_a_switch_refuses_anything_else_in_the_same_line(name, value):
    r = _info(name, value)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    line = rf"hpcflow info: error: {name}='{value}' must be 1 \([a-z ]+\) or 0 \(off\); set {name}=1 or {name}=0, " \
           "or unset it\n"
    assert re.fullmatch(line, r.stderr), r.stderr


def test_quiet_0_shows_progress_and_1_hides_it(monkeypatch):
    monkeypatch.setenv("HPCFLOW_QUIET", "0")
    assert wanted() and len(Hypersurface.fermat(3).sample(5, seed=0)) == 5  # the Python API takes 0 too
    monkeypatch.setenv("HPCFLOW_QUIET", "1")
    assert not wanted()


def test_ignore_0_keeps_the_memory_check_and_1_skips_it(monkeypatch):
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    _, cfg = registry.load(ROOT / "jobs" / "quickstart.toml", ["geometry.n_train=100000000000"], memory_check=False)
    monkeypatch.setenv("HPCFLOW_IGNORE_MEMORY_CHECK", "0")
    with pytest.raises(ConfigError, match="estimated peak memory"):
        check_resources(cfg, "flow")
    monkeypatch.setenv("HPCFLOW_IGNORE_MEMORY_CHECK", "1")
    assert check_resources(cfg, "flow").bytes > memory_limit()[0]
