"""Fig. 4 draws the paper's statistic by default: the eigenvalues of the train x test blocks Theta_IJ(x_a, x'_b)
(paper sec. 3.3, nn.h5 ntk/spectrum_train_test, their real parts) and their Wasserstein distance to epoch 0; `--spectrum
train` draws the symmetrised train x train blocks (ntk/spectrum), which it drew alone. The histogram panel names the
spectrum; a run without the paper's statistic (fewer test than train probe points) draws the train x train one and
says so, and `--spectrum train_test` is refused for it in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis_runs import ROOT, JOBS, env, run_dirs, script

pytest.importorskip("matplotlib")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _h5(path, *names):
    with h5py.File(os.path.join(path, "nn.h5"), "r") as f:
        return [f[n][()] for n in names]


def _drawn(fig, spec) -> None:
    """The histogram panel's two stairs are the histograms of `spec`'s first and last rows, every value in a bin."""
    stairs = fig.axes[0].patches
    assert len(stairs) == 2
    for patch, epoch in zip(stairs, (0, len(spec) - 1)):
        counts, edges, _ = patch.get_data()
        np.testing.assert_array_equal(counts, np.histogram(spec[epoch], bins=edges)[0])
        assert counts.sum() == spec.shape[1]


def _curve(ax) -> np.ndarray:
    (line,) = ax.get_lines()
    return np.asarray(line.get_ydata(), dtype=float)


def test_the_default_is_the_papers_train_x_test_spectrum(runs, tmp_path):
    from scipy.stats import wasserstein_distance

    from hpcflow.analysis import fig4

    tt, w_tt, spec = _h5(runs["nn"], "ntk/spectrum_train_test", "ntk/wasserstein_train_test", "ntk/spectrum")
    assert np.iscomplexobj(tt) and tt.shape == spec.shape
    fig = fig4.plot(fig4.load(runs["nn"]))
    _drawn(fig, tt.real)
    np.testing.assert_array_equal(_curve(fig.axes[1]), w_tt)
    assert "train x test" in fig.axes[0].get_title() and "paper" in fig.axes[0].get_title()
    assert fig.axes[0].get_xlabel().startswith("Re eigenvalue of the train x test blocks")
    # the drawn distance is scipy's between the real parts of the last and the first spectra
    assert w_tt[-1] == pytest.approx(wasserstein_distance(tt[-1].real, tt[0].real), rel=1e-12)
    proc = script("fig4_ntk", runs["nn"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "spectrum: train x test blocks (the paper's statistic) (ntk/spectrum_train_test)" in proc.stdout
    printed = float(re.search(r"Wasserstein distance to epoch 0 of the train x test blocks' spectrum \(last epoch\): "
                              r"([0-9.e+-]+)", proc.stdout).group(1))
    assert printed == pytest.approx(w_tt[-1], rel=1e-3)


def test_spectrum_train_draws_the_symmetrised_train_blocks(runs, tmp_path):
    from hpcflow.analysis import fig4

    spec, w = _h5(runs["nn"], "ntk/spectrum", "ntk/wasserstein")
    fig = fig4.plot(fig4.load(runs["nn"], "train"))
    _drawn(fig, spec)
    np.testing.assert_array_equal(_curve(fig.axes[1]), w)
    assert "symmetrised train x train" in fig.axes[0].get_title()
    proc = script("fig4_ntk", runs["nn"], "--out", tmp_path, "--spectrum", "train")
    assert proc.returncode == 0, proc.stderr
    assert "spectrum: symmetrised train x train blocks (ntk/spectrum)" in proc.stdout
    printed = float(re.search(r"Wasserstein distance to epoch 0 of the symmetrised train x train blocks' spectrum "
                              r"\(last epoch\): ([0-9.e+-]+)", proc.stdout).group(1))
    assert printed == pytest.approx(w[-1], rel=1e-3)


@pytest.fixture(scope="module")
def fewer_test_probes(tmp_path_factory):
    """The fixture's network job with 3 test and 4 train probe points: its nn.h5 holds no train x test spectrum."""
    folder = tmp_path_factory.mktemp("probes")
    job = folder / "nn.toml"
    job.write_text(JOBS["nn"][1].replace("n_test_points = 4", "n_test_points = 3"))
    run = folder / "run"
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "nn", str(job), "--out", str(run)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(run)


def test_a_run_without_the_papers_statistic_draws_the_train_spectrum_and_says_so(fewer_test_probes, tmp_path):
    from hpcflow.analysis import fig4

    run = fewer_test_probes
    with h5py.File(os.path.join(run, "nn.h5"), "r") as f:
        assert "ntk/spectrum_train_test" not in f and "ntk/spectrum" in f
    (spec,) = _h5(run, "ntk/spectrum")
    data = fig4.load(run)
    _drawn(fig4.plot(data), spec)
    assert data["note"] == ""  # a finished run, not a damaged one
    proc = script("fig4_ntk", run, "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    assert "nn.h5 holds no ntk/spectrum_train_test" in proc.stdout and "train x train spectrum is drawn" in proc.stdout
    refused = script("fig4_ntk", run, "--out", tmp_path / "other", "--spectrum", "train_test")
    assert (refused.returncode, refused.stdout) == (2, ""), refused.stderr
    assert refused.stderr.count("\n") == 1 and "'ntk/spectrum_train_test'" in refused.stderr
    assert "--spectrum train" in refused.stderr and os.path.join(run, "nn.h5") in refused.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("damage", ["two_dimensional", "nan", "negative"])
def test_a_damaged_train_x_test_wasserstein_series_is_refused_naming_the_file(runs, tmp_path, damage):
    """ntk/wasserstein_train_test, the curve of the spectrum drawn by default, was read with no check of its shape or
    values: a 2-D or NaN series was drawn (or ended in a traceback). It is refused as ntk/wasserstein is: one line
    naming the file and the dataset, exit 2, nothing drawn."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["nn"], run)
    with h5py.File(run / "nn.h5", "r+") as f:
        series = f["ntk/wasserstein_train_test"][()]
        del f["ntk/wasserstein_train_test"]
        if damage == "two_dimensional":
            series = np.stack([series, series], axis=1)
        else:
            series[-1] = np.nan if damage == "nan" else -0.5
        f["ntk/wasserstein_train_test"] = series
    proc = script("fig4_ntk", run, "--out", tmp_path / "figs")
    assert (proc.returncode, proc.stdout) == (2, ""), (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and "'ntk/wasserstein_train_test'" in proc.stderr, proc.stderr
    assert os.path.join(str(run), "nn.h5") in proc.stderr and not (tmp_path / "figs").exists(), proc.stderr
