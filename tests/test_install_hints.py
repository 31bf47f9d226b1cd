"""Every install line hpcflow prints or documents names something pip can install as this project: `hpcflow` on
PyPI is an unrelated package, so an extra is installed from the checkout (`pip install -e '.[nn]'`), never as
`pip install 'hpcflow[nn]'`."""

import configparser
import pathlib
import re
import sys

import pytest

from hpcflow.errors import MissingDependencyError

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: a pip install line: its options, then its first quoted or bare requirement / path argument
PIP = re.compile(r"pip install\s+(?P<opts>(?:-[-\w]+\s+)*)(?P<q>['\"]?)(?P<spec>[^'\"\s`]+)(?P=q)")


def _extras():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    assert cfg["metadata"]["name"] == "hpcflow"
    return {k: v.split() for k, v in cfg["options.extras_require"].items()}


def _checked(message: str, extra: str) -> None:
    """The message's pip line installs EXTRA of this checkout: `-e '.[EXTRA]'`, said to be run in the checkout."""
    lines = [m for m in PIP.finditer(message) if "[" in m["spec"]]
    assert lines, message
    for m in lines:
        assert "-e" in m["opts"].split() and m["spec"] == f".[{extra}]", message
    assert "in the hpcflow checkout" in message, message
    assert extra in _extras()


def test_nn_and_gpu_extras_exist_with_their_packages():
    extras = _extras()
    assert any(r.startswith("torch") for r in extras["nn"]) and any(r.startswith("cupy") for r in extras["gpu"])


def test_missing_torch_names_the_nn_extra_of_the_checkout(monkeypatch):
    from hpcflow.nn._torch import _broken, refuse_without_torch, require_torch

    monkeypatch.setitem(sys.modules, "torch", None)
    for call in (require_torch, refuse_without_torch):
        with pytest.raises(MissingDependencyError) as exc:
            call()
        _checked(str(exc.value), "nn")
    _checked(_broken(OSError("libtorch_cpu.so: cannot open shared object file")), "nn")


def test_gp_sampler_without_torch_names_the_nn_extra_of_the_checkout(monkeypatch):
    from hpcflow.tune.study import check_sampler

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError) as exc:
        check_sampler("gp")
    _checked(str(exc.value), "nn")


def test_cupy_backend_without_a_gpu_names_the_gpu_extra_of_the_checkout(monkeypatch):
    import hpcflow.backend as backend

    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    with pytest.raises(MissingDependencyError) as exc:
        backend.backend_name("cupy")
    _checked(str(exc.value), "gpu")


def test_no_document_or_module_installs_hpcflow_from_pypi():
    """`pip install 'hpcflow[...]'` (or hpcflow bare) anywhere in the docs, job files or code would fetch PyPI's
    unrelated hpcflow; an extra of the checkout is `-e '.[EXTRA]'` with an extra setup.cfg defines."""
    files = [ROOT / "README.md", ROOT / "Makefile", *ROOT.glob("docs/**/*.md"), *ROOT.glob("jobs/*.toml"),
             *ROOT.glob("hpcflow/**/*.py"), *ROOT.glob("slurm/*")]
    extras = _extras()
    bad = []
    for f in files:
        if not f.is_file():
            continue
        for m in PIP.finditer(f.read_text(encoding="utf-8")):
            spec = m["spec"]
            if re.fullmatch(r"hpcflow(\[.*\])?", spec, flags=re.IGNORECASE):
                bad.append(f"{f.relative_to(ROOT)}: {m[0]}")
            elif spec.startswith(".["):
                wanted = spec[2:-1].split(",")
                if "-e" not in m["opts"].split() or not set(wanted) <= set(extras):
                    bad.append(f"{f.relative_to(ROOT)}: {m[0]}")
    assert not bad, bad
