"""A network job's process never imports torch._dynamo (~2 s of start-up, a third of a small job's wall time):
the optimizer's steps, its state dict (checkpoint) and load (resume), the NTK tracking, the width sweep's SGD and
the kernel flow with the network's NTK (its layer-wise operator) all run eagerly without it."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from jobtexts import NN_POINTS, SMALL_NET, SMALL_SWEEP

pytest.importorskip("torch")

JOB = NN_POINTS + SMALL_NET + """[training]
epochs = {epochs}
batch_size = 50
[checkpoint]
every = 1
[ntk]
n_train_points = 4
n_test_points = 4
""" + SMALL_SWEEP + """optimizer = "sgd"
[kernel_flow]
enabled = true
n_train = 20
n_test = 10
steps = 2
tile = 8
"""

SCRIPT = """
import sys
from hpcflow.cli import main
for epochs, extra in ((2, []), (3, ["--resume"])):
    open(sys.argv[1], "w").write(sys.argv[3].format(epochs=epochs))
    rc = main(["nn", sys.argv[1], "--out", sys.argv[2], "--quiet", *extra])
    assert not rc, rc
print("torch._dynamo" in sys.modules, "torch.optim" in sys.modules)
"""


def test_training_checkpoint_resume_ntk_sweep_and_kernel_flow_never_import_torch_dynamo(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "job.toml"), str(tmp_path / "out"), JOB],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["False", "True"], r.stdout + r.stderr
    assert (tmp_path / "out" / "checkpoint.pt").exists() and (tmp_path / "out" / "nn.h5").exists()
    with h5py.File(tmp_path / "out" / "nn.h5", "r") as f:  # the kernel flow ran its steps
        assert f["kernel_flow/sigma_train"].shape == (3,) and np.all(np.isfinite(f["kernel_flow/sigma_test"][()]))
