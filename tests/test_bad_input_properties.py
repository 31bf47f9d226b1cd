"""Property-based tests (hypothesis, derandomised): arbitrary mutations of the real job files and of real
command lines end in a clean run or a one-line refusal before any work, never in a traceback or a hang.

The properties do not use the validator's own idea of "invalid": a mutated job must either raise UserError
(one line) or load into a configuration that fits in memory and is written back to TOML as it is; a mutated
command must exit 0 or 2 within a timeout, and on 2 print one line, no traceback, and leave the output
directory byte-identical.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hpcflow.errors import UserError
from hpcflow.jobs import registry
from hpcflow.jobs.schema import validate
from hpcflow.jobs.toml_out import dumps
from hpcflow.resources import estimate, memory_limit

ROOT = Path(__file__).resolve().parents[1]
JOBS = sorted((ROOT / "jobs").glob("*.toml"))
SETTINGS = dict(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPECIAL_NUMBERS = [0, 1, -1, 2, 3, 10**6, 10**9, 10**12, 10**23, 2**63 - 1, -(2**63), 2**64, 0.0, -0.0, 1e-300,
                   5e-324, 1e300, 1.7e308, math.nan, math.inf, -math.inf, 0.5, 1e-3]
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(SPECIAL_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["fermat", "dwork", "gaussian", "delta", "exp", "row", "none", "sigma", "batched", "full",
                     "adam", "cosine", "jacobian", "cuda", "flow", "nn"]),
)
VALUES = st.one_of(
    st.none(),  # None: the key is removed
    SCALARS,
    st.lists(st.one_of(st.integers(-3, 10**7), st.sampled_from(SPECIAL_NUMBERS), st.text(max_size=3)), max_size=5),
    st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=2),
)


FACTORS = [0, -1, 1e-9, 0.5, 2, 10, 1e3, 1e6, 1e12, 1e30]


def _scaled(old, factor):
    value = old * factor
    return int(value) if isinstance(old, int) and math.isfinite(value) else value


def _read(path: Path) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


@st.composite
def mutated_job(draw):
    """(job file name, parsed data after 1-4 mutations: a value of any type, a missing or extra key or section)."""
    path = draw(st.sampled_from(JOBS))
    data = _read(path)
    module = registry.job_module(data["job"]["kind"])
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(module.SCHEMA) * 4 + ["extra"]))
        what = draw(st.sampled_from(["value"] * 10 + ["drop_section", "section_scalar"]))
        if what == "drop_section":
            data.pop(section, None)
            continue
        if what == "section_scalar":
            data[section] = draw(SCALARS)
            continue
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            continue
        keys = sorted(module.SCHEMA.get(section, {})) * 3 + ["extra_key"]
        key = draw(st.sampled_from(keys))
        old = table.get(key, module.SCHEMA.get(section, {}).get(key, None))
        old = getattr(old, "default", old)
        if isinstance(old, (int, float)) and not isinstance(old, bool) and draw(st.booleans()):
            value = _scaled(old, draw(st.sampled_from(FACTORS)))  # the same number, made huge or tiny
        else:
            value = draw(VALUES)
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return path.name, data


@settings(max_examples=400, **SETTINGS)
@given(mutated_job())
def test_mutated_job_is_refused_in_one_line_or_loads_a_run_that_fits(case):
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(dumps(data, nonfinite=True))
        assert _read(path) == data or any(isinstance(v, float) and math.isnan(v) for v in _leaves(data))
        try:
            module, cfg = registry.load(path)
        except UserError as exc:
            event("refused")
            msg = str(exc)
            assert msg and "\n" not in msg and "Traceback" not in msg
            return
    event("accepted")
    # accepted: every value is finite and written back as it is, and the run fits in memory
    assert validate(tomllib.loads(dumps(cfg)), module.SCHEMA) == cfg
    assert estimate(cfg).bytes <= memory_limit()[0]


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


# ---- real command lines through the CLI -----------------------------------------------------------------------
SET_VALUES = ["nan", "inf", "-1", "0", "1e400", "1e-400", "99999999999999999999999", "[1, 1]", "[]", "true",
              "\"x\"", "x y", "\"a\"\n[evil]\nk = 1", "{a = 1}", "10**9", "", "0.5", "3"]
SET_KEYS = ["geometry.seed", "geometry.psi", "geometry.manifold", "geometry.chart", "geometry.dim", "kernel.name",
            "kernel.width", "kernel.normalize", "flow.dt", "flow.loss", "flow.clip", "flow.max_halvings",
            "clustering.method", "clustering.n_clusters", "job.kind", "job.description", "geometry.extra", "nope.x",
            "geometry"]
# the capping overrides come last, so a mutation cannot make the run long
CAP = ["--set", "flow.steps=1", "--set", "geometry.n_train=40", "--set", "geometry.n_test=30"]


def _hpcflow(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "hpcflow", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def _check_outcome(r, tmp: Path, before: dict):
    event(f"exit {r.returncode}")
    assert r.returncode in (0, 2), (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert _snapshot(tmp) == before


@settings(max_examples=8, **SETTINGS)
@given(sets=st.lists(st.tuples(st.sampled_from(SET_KEYS), st.sampled_from(SET_VALUES)), max_size=2),
       out=st.sampled_from(["fresh"] * 3 + ["kept", "file", "empty", "proc"]), force=st.booleans(),
       extra=st.sampled_from([[], [], ["--bogus"], ["--check"], ["--no-memory-check"]]))
def test_mutated_run_command_exits_0_or_2_cleanly(sets, out, force, extra):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "kept").mkdir()
        (tmp / "kept" / "keep.txt").write_bytes(b"\x00 previous results \xff")
        (tmp / "file").write_bytes(b"a file")
        target = {"fresh": tmp / "fresh", "kept": tmp / "kept", "file": tmp / "file", "empty": "",
                  "proc": "/proc/self/hpcflow"}[out]
        args = ["run", ROOT / "jobs/quickstart.toml", "--out", target]
        for key, value in sets:
            args += ["--set", f"{key}={value}"]
        args += CAP + (["--force"] if force else []) + extra
        before = _snapshot(tmp)
        r = _hpcflow(args, tmp)
        _check_outcome(r, tmp, before)
        if r.returncode == 0 and "--check" not in extra:
            import json

            summary = json.loads((Path(target) / "summary.json").read_text())
            for key in ("sigma_train_initial", "sigma_train_final", "sigma_test_initial", "sigma_test_final"):
                assert math.isfinite(summary[key])


@settings(max_examples=10, **SETTINGS)
@given(n=st.sampled_from(["50"] * 4 + ["0", "-5", "abc", "1.5", "10000000000000", "1e3"]),
       dim=st.sampled_from([[]] * 3 + [["--dim", "0"], ["--dim", "300"], ["--dim", "2"], ["--dim", "x"]]),
       psi=st.sampled_from([[]] * 4 + [["--manifold", "dwork", "--psi", "nan"],
                                       ["--manifold", "dwork", "--psi", "1e400"],
                                       ["--manifold", "dwork", "--psi", "0.5+1j"], ["--psi", "1e9"],
                                       ["--manifold", "k3"]]),
       other=st.sampled_from([[]] * 5 + [["--seed", "-1"], ["--seed", "123456789012345678901234567890"],
                                         ["--chart", "0", "9"], ["--chart", "1", "1"], ["--chart", "0", "1"],
                                         ["--threads", "0"], ["--threads", "100000"]]),
       out=st.sampled_from(["new.h5"] * 4 + ["kept", "kept/old.h5", "", "/proc/self/x.h5", "missing/x.h5"]),
       force=st.booleans())
def test_mutated_sample_command_exits_0_or_2_cleanly(n, dim, psi, other, out, force):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "kept").mkdir()
        (tmp / "kept" / "old.h5").write_bytes(b"\x89HDF not really")
        args = ["sample", "--n", n, *dim, *psi, *other, "--out", out if not out or out.startswith("/") else tmp / out]
        args += ["--force"] if force else []
        before = _snapshot(tmp)
        r = _hpcflow(args, tmp)
        _check_outcome(r, tmp, before)
        if r.returncode == 0:
            from hpcflow.geometry import PointSet

            assert len(PointSet.load(tmp / out)) == int(n)
