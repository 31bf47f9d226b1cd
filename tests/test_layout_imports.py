"""README's "Layout" orders hpcflow's modules in layers whose module-level imports go down (or within a layer) only.
Every module's module-level imports (statements outside functions, with the package `__init__`s that Python imports
on the way) are read from the source and checked against that order, and the order is the one README states."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hpcflow"

#: bottom first; a module belongs to the layer of its longest listed name ("nn" holds every hpcflow.nn module but
#: nn.files and nn._torch)
LAYERS = [
    ["errors", "arguments", "value_ranges", "names", "atomic", "h5read", "launcher_output", "stop_signals", "backend",
     "allocator", "provenance", "resources", "parallel", "progress", "jobs", "nn.files", "nn._torch"],
    ["geometry"],
    ["cluster", "kernels", "metric"],
    ["flow", "flow_step", "flow_inputs"],
    ["checkpoint"],
    ["experiments"],
    ["nn"],
    ["tune"],
    ["analysis"],
    ["report", "submit", "commands"],
    ["cli", "program", "__main__"],
]
#: modules in the base layer besides those listed: the package itself, and hpcflow.nn's __init__, which imports
#: nn._torch only (README says so), and which Python imports with nn.files
BASE = {"hpcflow", "hpcflow.nn"}


def _modules() -> dict:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _layer(module: str) -> int:
    if module in BASE:
        return 0
    rel = module.removeprefix("hpcflow.")
    found = [(len(name), i) for i, names in enumerate(LAYERS) for name in names
             if rel == name or rel.startswith(name + ".")]
    assert found, f"{module} is in no layer"
    return max(found)[1]


def _module_level_imports(module: str, path: Path, modules: dict) -> set:
    tree = ast.parse(path.read_text())
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
              for n in ast.walk(f)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in inside or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if not name or name.split(".")[0] != "hpcflow":
                continue
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # the packages on the way are imported too
                if ".".join(parts[:k]) in modules:
                    found.add(".".join(parts[:k]))
    found.discard(module)
    return found


def test_module_level_imports_never_go_up_the_layers():
    modules = _modules()
    assert len(modules) > 100
    up = sorted(f"{m} -> {t}" for m, path in modules.items() for t in _module_level_imports(m, path, modules)
                if _layer(t) > _layer(m))
    assert up == [], up


def test_the_layers_can_be_told_apart():
    """The order checked is not vacuous: geometry imports parallel at module level, flow imports cluster and kernels,
    and each of them sits in a lower layer."""
    modules = _modules()
    edges = {(m, t) for m, path in modules.items() for t in _module_level_imports(m, path, modules)}
    for m, t in [("hpcflow.geometry.pointset", "hpcflow.parallel.comm"), ("hpcflow.flow", "hpcflow.cluster.blocks"),
                 ("hpcflow.flow", "hpcflow.kernels.base"), ("hpcflow.cluster.distributed", "hpcflow.parallel.comm")]:
        assert (m, t) in edges and _layer(t) < _layer(m), (m, t)


def test_readme_states_these_layers():
    text = " ".join((ROOT / "README.md").read_text().split())
    stated = " → ".join(", ".join(f"`{name}`" for name in names) for names in LAYERS)
    assert stated in text, stated
    section = text[text.index("## Layout"):]
    assert "lower layers never import higher ones" not in section
    assert re.search(r"`nn`'s `__init__`, which imports `nn._torch` only", section)
