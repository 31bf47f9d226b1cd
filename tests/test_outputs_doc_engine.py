"""docs/outputs.md's `@engine` row of checkpoint.h5 says when the attribute is written: a Gaussian flow's checkpoint
written by a `CheckpointWriter` of the Python API holds it only when the writer is given `engine=` (`hpcflow run`
gives it), so the row's condition names `engine=`, not the kernel alone."""

from __future__ import annotations

import os
import re

import h5py
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "outputs.md")


def _engine_row() -> str:
    with open(DOC, encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("\n## flow: `checkpoint.h5`", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `@engine` |")]
    assert len(rows) == 1, rows
    return [c.strip() for c in rows[0].strip().strip("|").split("|")][3]


@pytest.mark.parametrize("engine", [None, "numpy"])
def test_a_python_api_checkpoint_holds_engine_only_when_its_writer_is_given_one(tmp_path, engine):
    from hpcflow.checkpoint import CheckpointWriter
    from hpcflow.flow import kernel_flow
    from hpcflow.geometry import Hypersurface
    from hpcflow.kernels import GaussianKernel

    X = Hypersurface.fermat(3)
    train, test = X.sample(60, seed=1, chart=(0, 1)), X.sample(30, seed=2, chart=(0, 1))
    path = tmp_path / "checkpoint.h5"
    writer = CheckpointWriter(path, {}, every=10, engine=engine)
    kernel_flow(GaussianKernel(0.3, engine="numpy"), train, test, dt=0.5, steps=2, on_step=writer)
    writer.close("finished")
    with h5py.File(path, "r") as f:
        assert f.attrs.get("engine") == engine  # None: absent, although the kernel is Gaussian

    description = _engine_row()
    condition = re.split(r': "numba"', description, maxsplit=1)[0]
    assert condition.startswith("when"), description  # not listed for every checkpoint
    assert "`engine=`" in condition and "CheckpointWriter" in condition, condition
