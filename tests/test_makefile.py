"""The Makefile: every target it declares has a rule; `make venv` installs torch from pip's configured indexes unless
TORCH_INDEX names another (PyTorch's CPU index), and that index serves torch alone, never hpcflow's own
dependencies."""

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _pip_lines(tmp_path, *args):
    """The arguments of the pip install commands `make -n venv` would run for a venv at a fresh path."""
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "venv", f"VENV={tmp_path / 'venv'}", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line.split(" pip install ", 1)[1] for line in proc.stdout.splitlines()
            if " pip install " in line and "--upgrade pip" not in line]


def test_by_default_no_index_beyond_pips_configuration_is_named(tmp_path):
    torch, project = _pip_lines(tmp_path)
    assert '"torch==2.13.0"' in torch and '-e ".[test,nn,mpich]"' in project
    assert not any("index" in line or "find-links" in line for line in (torch, project))


def test_torch_index_is_used_for_torch_alone(tmp_path):
    torch, project = _pip_lines(tmp_path, f"TORCH_INDEX={CPU_INDEX}")
    assert torch.split()[-2:] == ["--index-url", f'"{CPU_INDEX}"'] and '"torch==2.13.0"' in torch
    assert "index" not in project


def test_every_phony_target_has_a_rule():
    """A .PHONY name without a rule is a target `make` accepts and does nothing for ('Nothing to be done', exit 0)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", text, flags=re.MULTILINE)[1].split()
    rules = set(re.findall(r"^([\w.-]+)\s*:(?!=)", text, flags=re.MULTILINE))
    assert phony and [t for t in phony if t not in rules] == [], (phony, rules)
