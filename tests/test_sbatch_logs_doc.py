"""README's paragraph on the sbatch templates names the log file of each template as its `#SBATCH --output` line
gives it: the pattern most templates share, and each other pattern next to the template that uses it."""

from __future__ import annotations

import collections
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _outputs() -> dict:
    """{template file name: its #SBATCH --output pattern}."""
    out = {}
    for path in sorted((ROOT / "slurm").glob("*.sbatch")):
        found = re.findall(r"^#SBATCH\s+--output[= ](\S+)", path.read_text(encoding="utf-8"), flags=re.M)
        assert len(found) == 1, (path.name, found)
        out[path.name] = found[0]
    return out


def _paragraph() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\nsbatch templates (")
    return " ".join(text[start:text.index("\n\n", start)].split())


def test_readme_names_each_template_s_log_pattern():
    outputs = _outputs()
    assert len(outputs) >= 2
    said = _paragraph()
    named = set(re.findall(r"`(%[^`]*)`", said))
    assert named == set(outputs.values()), (named, outputs)
    common = collections.Counter(outputs.values()).most_common(1)[0][0]
    for name, pattern in outputs.items():
        if pattern != common:  # named with its template, not left under the pattern of the others
            between = re.search(re.escape(f"`{name}`") + r"(.{0,80})" + re.escape(f"`{pattern}`"), said)
            assert between and "`" not in between.group(1).replace(f"`{name}`", ""), (name, pattern, said)
