"""Progress bars of sampling and clustering: drawn on a terminal's stderr, silent on a pipe or with --quiet."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios

import numpy as np

from hpcflow.cluster import batched_clustering
from hpcflow.cluster.distributed import distributed_labels


def pseudo_terminal():
    """(master fd, slave fd) of a 100-column pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return master, slave


def read_all(master) -> str:
    """Everything written to the terminal (its slave side closed)."""
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: no writer left
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def sample(tmp_path, *extra, tty: bool):
    """Run `hpcflow sample --n 500` with stderr on a pseudo-terminal (tty) or a pipe: (result, terminal text)."""
    return _job(tmp_path, "sample", "--n", "500", "--seed", "2", "--threads", "1", "--out", tmp_path / "p.h5",
                "--force", *extra, tty=tty)


def test_sample_draws_a_bar_on_a_terminal_and_nothing_elsewhere(tmp_path):
    r, text = sample(tmp_path, tty=True)
    assert r.returncode == 0
    assert "sampling" in text and "500/500" in text and "pt" in text
    assert "sampling" not in r.stdout  # the bar goes to stderr only; the summary lines stay on stdout
    r, _ = sample(tmp_path, tty=False)
    assert r.returncode == 0 and r.stderr == "" and "points        500" in r.stdout
    r, text = sample(tmp_path, "--quiet", tty=True)
    assert r.returncode == 0 and text == "" and "points        500" in r.stdout


def test_clustering_batches_draw_a_bar_on_a_terminal_only(monkeypatch, capsys):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    t = np.linspace(0.0, 1.2, 100)
    z = np.stack([np.cos(t), np.sin(t)], axis=1)
    labels = batched_clustering(z, n_clusters=3, batch_size=20, seed=0).labels
    np.testing.assert_array_equal(distributed_labels(z, n_clusters=3, batch_size=20, seed=0)[0], labels)
    assert capsys.readouterr().err == ""  # pytest's captured stderr is no terminal
    master, slave = pseudo_terminal()
    with os.fdopen(slave, "w") as w:
        monkeypatch.setattr(sys, "stderr", w)
        batched_clustering(z, n_clusters=3, batch_size=20, seed=0)
        distributed_labels(z, n_clusters=3, batch_size=20, seed=0)
        w.flush()
    text = read_all(master)
    assert text.count("clustering") >= 2 and "/5" in text and "batch" in text


def _job(tmp_path, *args, tty: bool):
    """Run `hpcflow ARGS` with stderr on a pseudo-terminal (tty) or a pipe: (result, terminal text)."""
    env = {k: v for k, v in os.environ.items() if k != "HPCFLOW_QUIET"}
    env["TQDM_MININTERVAL"] = "0"  # draw every update, so the final count shows
    cmd = [sys.executable, "-m", "hpcflow", *map(str, args)]
    if not tty:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300), ""
    master, slave = pseudo_terminal()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, text=True, env=env, timeout=300)
    finally:
        os.close(slave)
    return r, read_all(master)


def test_flow_steps_and_training_epochs_draw_bars_on_a_terminal_only(tmp_path):
    root = os.path.join(os.path.dirname(__file__), "..", "jobs")
    # the NumPy tile: the bar is the flow's, whatever the kernel's engine (Numba's load adds ~1 s to each run)
    flow = ("run", os.path.join(root, "quickstart.toml"), "--set", "geometry.n_train=200", "--set",
            "geometry.n_test=50", "--set", "flow.steps=7", "--set", "clustering.batch_size=100", "--set",
            "kernel.engine=numpy", "--force")
    r, text = _job(tmp_path, *flow, "--out", tmp_path / "f1", tty=True)
    assert r.returncode == 0, r.stderr
    assert "flow[gaussian]" in text and "7/7" in text and "step" in text
    r, text = _job(tmp_path, *flow, "--out", tmp_path / "f3", "--quiet", tty=True)
    assert r.returncode == 0 and "7/7" not in text
    nn = ("nn", os.path.join(root, "nn_smoke.toml"), "--set", "training.epochs=2", "--set", "geometry.n_train=800",
          "--set", "geometry.n_val=200", "--set", "width_sweep.widths=[]", "--set", "kernel_flow.enabled=false",
          "--set", "ntk.enabled=false", "--force")
    r, text = _job(tmp_path, *nn, "--out", tmp_path / "n1", tty=True)
    assert r.returncode == 0, r.stderr
    assert "training" in text and "2/2" in text and "epoch" in text
    # on a pipe the bars stay silent: the sampling run above (the same hpcflow.progress bar as these)
