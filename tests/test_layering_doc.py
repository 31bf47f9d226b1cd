"""The layer order the docs state (README's "Layout", the docstring of `hpcflow/__init__.py`) and the imports the
subpackages' docstrings name agree with the module-level imports of the source (read with ast, nothing imported):
`tests/test_layout_imports.py` holds the order as a table, here both texts are parsed into that table, every module's
module-level imports are checked against the order parsed from the docstring, and a docstring that says which
hpcflow modules its package imports names exactly those its modules import at module level."""

from __future__ import annotations

import ast
import re

import pytest

from test_layout_imports import LAYERS, PACKAGE, ROOT, _layer, _module_level_imports, _modules

#: the sentence of a subpackage docstring that names its module-level imports from the rest of hpcflow
MARKER = "Imports at module level from outside this package:"
#: subpackages whose docstrings must carry that sentence (they once stated imports that were not theirs)
MUST_SAY = ("parallel", "cluster")


def _docstring(path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=True) or ""


def _chain(text: str, arrow: str) -> list:
    """[[names of a layer], ...] of "a, b -> c -> d, e" (backticks dropped)."""
    return [[n.strip().strip("`") for n in part.split(",")] for part in text.split(arrow)]


def _docstring_layers() -> list:
    doc = _docstring(PACKAGE / "__init__.py")
    block = re.search(r"\n\n((?: {4}.*\n?)+)", doc)  # the indented paragraph: the order
    assert block, "hpcflow/__init__.py's docstring has no indented layer order"
    return _chain(" ".join(block.group(1).split()), "->")


def _readme_layers() -> list:
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    section = text[text.index("## Layout"):]
    m = re.search(r"never up: (`errors`.*?`__main__`)", section)
    assert m, "README's Layout gives no order from `errors` to `__main__`"
    return _chain(m.group(1), "→")


def _upward(layers: list) -> list:
    """Module-level imports of a module in a higher layer of `layers` than the importing module's."""
    def layer(module):
        rel = module.removeprefix("hpcflow.")
        if module in ("hpcflow", "hpcflow.nn"):
            return 0
        found = [(len(n), i) for i, names in enumerate(layers) for n in names if rel == n or rel.startswith(n + ".")]
        assert found, f"{module} is in no layer the docs state"
        return max(found)[1]
    modules = _modules()
    return sorted(f"{m} -> {t}" for m, path in modules.items() for t in _module_level_imports(m, path, modules)
                  if layer(t) > layer(m))


def test_the_package_docstring_states_readme_s_layers():
    assert _readme_layers() == LAYERS
    assert _docstring_layers() == LAYERS


def test_module_level_imports_follow_the_docstring_s_order():
    assert _upward(_docstring_layers()) == []


def test_an_import_up_the_stated_order_is_caught(tmp_path):
    """geometry importing hpcflow.flow at module level is an upward import; one inside a function is not counted."""
    modules = dict(_modules())
    path = tmp_path / "upward.py"
    path.write_text("from hpcflow.flow import kernel_flow\n\n\ndef f():\n    from hpcflow.cli import main\n")
    found = _module_level_imports("hpcflow.geometry.upward", path, modules)
    assert found == {"hpcflow", "hpcflow.flow"}
    layers = _docstring_layers()
    assert _layer("hpcflow.flow") > _layer("hpcflow.geometry.upward")
    flow = next(i for i, names in enumerate(layers) if "flow" in names)
    geometry = next(i for i, names in enumerate(layers) if "geometry" in names)
    assert flow > geometry


def _stated_imports(doc: str) -> set:
    """The `hpcflow.X` names of the MARKER sentence, outside parentheses, up to its first "; " or "." outside them."""
    text = " ".join(doc.split())
    start = text.index(MARKER) + len(MARKER)
    depth, kept = 0, []
    for i, ch in enumerate(text[start:], start):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and (text.startswith("; ", i) or text.startswith(". ", i) or i == len(text) - 1):
            break
        kept.append(ch if depth == 0 and ch != ")" else " ")
    return set(re.findall(r"`(hpcflow\.[A-Za-z_]+)`", "".join(kept)))


def _actual_imports(package: str) -> set:
    """The hpcflow subpackages and top-level modules the package's modules import at module level."""
    modules = _modules()
    full = f"hpcflow.{package}"
    out = set()
    for m, path in modules.items():
        if m == full or m.startswith(full + "."):
            for t in _module_level_imports(m, path, modules):
                if t != "hpcflow" and not (t == full or t.startswith(full + ".")):
                    out.add(".".join(t.split(".")[:2]))
    return out


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_a_subpackage_docstring_names_the_imports_its_modules_make(package):
    doc = _docstring(PACKAGE / package / "__init__.py")
    if package in MUST_SAY:
        assert MARKER in " ".join(doc.split()), f"hpcflow/{package}/__init__.py: no '{MARKER}'"
    if MARKER not in " ".join(doc.split()):
        return
    assert _stated_imports(doc) == _actual_imports(package), f"hpcflow/{package}/__init__.py"
    assert all(_layer(t) <= _layer(f"hpcflow.{package}") for t in _actual_imports(package))
