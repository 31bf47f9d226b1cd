"""Job-file fragments that several test files build their jobs from (TOML sections, joined with `+`)."""

#: the Gaussian kernel of the small flow jobs: exp form, width 1/30, rows normalised
GAUSSIAN_KERNEL = """[kernel]
name = "gaussian"
form = "exp"
width = 0.0333333333333333
normalize = "row"
"""

#: the small network of the nn jobs: two hidden layers of 8 GELU units
SMALL_NET = """[model]
depth = 2
width = 8
activation = "gelu"
"""

#: the Delta kernel's ultralocal flow of 3 steps with dt = 2 (the Slurm and submit jobs)
DELTA_FLOW = """[kernel]
name = "delta"
[flow]
dt = 2.0
steps = 3
loss = "ultralocal"
"""

#: the nn jobs' width sweep: widths 4 and 8, one epoch on the first 100 train points
SMALL_SWEEP = """[width_sweep]
widths = [4, 8]
epochs = 1
n_train = 100
"""


#: the job table and point sets of the small nn jobs: 200 train and 100 validation points, seed 3
NN_POINTS = """[job]
kind = "nn"
[geometry]
n_train = 200
n_val = 100
seed = 3
"""


def flow_points(n_train: int, n_test: int, seed: int = 0) -> str:
    """The job table and point sets of a small flow job in chart (0, 1)."""
    return f"""[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = {n_train}
n_test = {n_test}
seed = {seed}
"""


#: the training of the tiny nn jobs: 4 epochs of batches of 100, no NTK
TINY_TRAINING = """[training]
epochs = 4
batch_size = 100
lr = 3e-3
threads = 1
[ntk]
enabled = false
"""


def pt_archive(data: bytes = b"hpcflow.nn_checkpoint") -> bytes:
    """A sound zip archive laid out as torch.save's, whose data.pkl holds `data` (by default the mark of a network's
    checkpoint.pt, which `hpcflow nn --resume` cannot load): a killed run's checkpoint that no copy cut short."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", data)
    return buf.getvalue()
