"""distributed_labels of 100 points in 5 mini-batches of 20 with stderr no terminal, under a clock that moves 61 s at
each reading, so that every batch a rank clusters is over a minute after the last; the test reads what the ranks
said on stderr (only rank 0 says clustering lines)."""

import numpy as np

import hpcflow.progress
from hpcflow.cluster.distributed import distributed_labels


class Ticking:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 61.0
        return self.now


hpcflow.progress.clock = Ticking()
t = np.linspace(0.0, 1.2, 100)
distributed_labels(np.stack([np.cos(t), np.sin(t)], axis=1), n_clusters=3, batch_size=20, seed=0)
