"""HDF5 outputs as the tests compare them: every dataset of a file, and nn.h5's wall-clock datasets."""

import h5py

#: nn.h5 datasets of wall-clock seconds, different in any two runs (left out of bitwise comparisons)
NN_TIMINGS = frozenset({"history/epoch_seconds", "history/comm_seconds", "ntk/ntk_seconds", "width_sweep/seconds"})


def datasets(path) -> dict:
    """{name: value} of every dataset in the HDF5 file `path`, groups walked recursively."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out
