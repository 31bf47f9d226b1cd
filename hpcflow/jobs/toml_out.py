"""TOML writer for validated job configurations (tomllib only reads): `DIR/job.toml` is rebuilt from the cfg.

`dumps(cfg)` writes one `[section]` table per top-level key (nested tables as [section.table]); values are strings,
booleans, ints, finite floats (nan/inf with nonfinite=True) and lists. None means "not set" and is left out, so re-reading the text with tomllib and
validating it against the same schema gives the same cfg.
"""

from __future__ import annotations

import math
import re

from hpcflow.names import shown

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # not allowed in a TOML comment
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def key(name: str) -> str:
    """A TOML key: bare when it can be, else a quoted string."""
    name = str(name)
    return name if _BARE_KEY.fullmatch(name) else string(name)


def string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def value(v, *, nonfinite: bool = False) -> str:
    """One TOML value (inline form); ValueError for None, unsupported types or (unless `nonfinite`, which
    writes TOML's nan/inf) non-finite floats."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            if nonfinite:
                return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            raise ValueError(f"{v!r} cannot be written to TOML (validated configurations hold finite numbers)")
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x, nonfinite=nonfinite) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)} = {value(x, nonfinite=nonfinite)}" for k, x in v.items()
                               if x is not None) + "}"
    raise ValueError(f"{type(v).__name__} value {v!r} cannot be written to TOML")


def set_arg(section: str, name: str, v) -> str:
    """The `--set SECTION.KEY=VALUE` that gives a job key the value v (`none` unsets it), e.g. for a refusal
    that tells how to match a checkpoint's job: shell-quoted (shlex.join), so that a pasted string value (its TOML
    quotes, spaces) reaches --set as one TOML value."""
    import shlex

    return shlex.join(["--set", f"{section}.{name}={'none' if v is None else value(v)}"])


def dumps(cfg: dict, *, header: str = "", nonfinite: bool = False) -> str:
    """The job configuration {section: {key: value}} as TOML text, after `header` written as # comments (a control
    character there as ?, a byte that is not UTF-8, a lone surrogate of os.fsdecode, as \\xNN).

    Top-level values that are not tables (as in hand-made test files) come first; a table inside a section is
    written as its own [section.table] (e.g. [tune.space]); None values are left out.
    """
    lines = [f"# {shown(_CONTROL.sub('?', line))}".rstrip() for line in header.splitlines()]
    _table(lines, (), cfg, nonfinite)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list, path: tuple, table: dict, nonfinite: bool) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines += ["", "[" + ".".join(key(p) for p in path) + "]"]
    lines += [f"{key(k)} = {value(v, nonfinite=nonfinite)}" for k, v in scalars.items()]
    for k, v in tables.items():
        _table(lines, (*path, str(k)), v, nonfinite)
