"""Records that analysis reads for labels and progress only (a checkpoint's [kernel], nn.h5's `epoch`): one of an
unexpected type or value is passed over, and the run's histories are still drawn and reported."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from analysis_runs import find_line, run_dirs

pytest.importorskip("matplotlib")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_checkpoint_config_whose_kernel_is_no_table_gives_an_untagged_history(runs, tmp_path):
    """A flow run without summary.json whose checkpoint's config holds `kernel = "delta"` (no table): its curve is
    labelled without a kernel tag (it was an AttributeError traceback in sigma_history.py and hpcflow report)."""
    from hpcflow.analysis import histories
    from hpcflow.report.build import collect

    d = tmp_path / "flow"
    shutil.copytree(runs["flow"], d)
    os.remove(d / "summary.json")
    with h5py.File(d / "checkpoint.h5", "a") as f:
        f.attrs["config"] = json.dumps({**json.loads(f.attrs["config"]), "kernel": "delta"})
        sigma = f["history/sigma_train"][()]
    run = histories.load(d)
    assert run["label"].startswith("flow (") and "[" not in run["label"], run["label"]
    np.testing.assert_array_equal(run["train"], sigma)
    report = collect([str(d)])
    assert report.skipped == [] and [s.title for s in report.sections] == ["sigma histories"]
    find_line(report.sections[0].figures["sigma_history.png"].axes[0], np.arange(len(sigma)), sigma)


def test_an_nn_epoch_attribute_of_inf_is_no_progress_and_the_run_still_reads(runs, tmp_path):
    """nn.h5's `epoch` = inf (int() of it: an OverflowError traceback in sigma_history.py and hpcflow report): the
    history is read from nn.h5 as for a run without that attribute."""
    from hpcflow.analysis import histories
    from hpcflow.report.build import collect

    d = tmp_path / "nn"
    shutil.copytree(runs["nn"], d)
    with h5py.File(d / "nn.h5", "a") as f:
        f.attrs["epoch"] = np.inf
        sigma = f["history/sigma_train"][()]
    np.testing.assert_array_equal(histories.load(d)["train"], sigma)
    report = collect([str(d)])
    assert report.skipped == [] and "sigma histories" in [s.title for s in report.sections]
