"""The run directories the README's analysis commands read are those its commands, or the commands in the job
files' headers, create: a name no command writes (runs/noise_delta for runs/noise_scan) leaves the reader nothing
to run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _created() -> set[str]:
    """Directories given as `--out runs/NAME` to hpcflow (README and jobs/*.toml) or as an sbatch template's DIR."""
    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "jobs").glob("*.toml"))]
    out = set()
    for text in texts:
        for line in text.splitlines():
            if re.search(r"\bhpcflow (run|nn|tune|submit)\b", line):
                out |= set(re.findall(r"--out (runs/[\w.-]+)", line))
            elif "sbatch" in line:
                out |= set(re.findall(r"\.sbatch \S+ (runs/[\w.-]+)", line))
    return out


def test_every_analysis_input_in_the_readme_is_a_directory_a_command_creates():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line.strip() for line in readme.splitlines() if line.startswith("    python analysis/")]
    assert len(commands) >= 7, commands
    created = _created()
    missing = []
    for command in commands:
        inputs = command.split(" --out ")[0]
        for name in re.findall(r"runs/[\w.-]+", inputs):
            if name not in created:
                missing.append(f"{name} ({command.split()[1]})")
    assert not missing, missing
