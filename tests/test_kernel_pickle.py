"""Every kernel survives pickle, copy.copy and copy.deepcopy: the copy is fixed as the original (its parameters cannot
be set), evaluates the same bits (blocks, operators, apply), and its private caches (the Gaussian's thread-local tile
buffers) are its own, new and empty, not the original's. A kernel sent to a spawned process evaluates the same bits
there."""

import copy
import multiprocessing
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.kernels import KERNELS, make_kernel

X = Hypersurface.fermat(3)

#: small valid parameters of every registered kernel; the Gaussian's for each method, normalisation, dtype and
#: engine (width 1e-3 with normalize="row": the row-shifted direct path)
SMALL = {
    "gaussian": [{"width": 0.1}, *({"width": 0.3, "method": m, "normalize": nz} for m in ("auto", "poly", "direct")
                                   for nz in (None, "row")),
                 {"width": 1e-3, "normalize": "row"}, {"width": 0.3, "form": "gauss", "normalize": "row"},
                 {"width": 0.3, "dtype": "float32"}, {"width": 0.3, "engine": "numpy"}],
    "delta": [{}],
    "relu_ntk": [{"w_std": 1.5, "b_std": 0.3, "depth": 2}],
    "cosine_ntk": [{"sigma_w": 2.0}],
}
CASES = [(name, params) for name, many in SMALL.items() for params in many]
COPIES = {"pickle": lambda k: pickle.loads(pickle.dumps(k)), "copy": copy.copy, "deepcopy": copy.deepcopy}


def test_every_registered_kernel_is_checked():
    assert set(SMALL) == set(KERNELS)


@pytest.fixture(scope="module")
def sets():
    p = X.sample(30, seed=0).points
    q = np.concatenate([p[:4], X.sample(30, seed=1).points])  # sources at distance 0: the exact near pairs
    g = np.random.default_rng(2).normal(size=(q.shape[0], 9))
    return p, q, g


def evaluations(k, p, q, g):
    """Everything a kernel computes, as arrays: blocks with itself and with other sources, operators (tiled on two
    threads, and with a cached matrix) and apply."""
    return [k.block(p), k.block(p, q), k.operator(p, q, tile=7, threads=2)(g),
            k.operator(p, p, tile=7, threads=2)(g[:p.shape[0]]), k.operator(p, q, cache_bytes=1 << 20)(g),
            k.apply(p, q, g)]


def same_bits(a, b):
    return [(x.dtype, x.shape, x.tobytes()) for x in map(np.asarray, a)] == \
        [(x.dtype, x.shape, x.tobytes()) for x in map(np.asarray, b)]


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("name, params", CASES)
def test_a_copied_kernel_is_fixed_evaluates_the_same_bits_and_has_its_own_empty_caches(sets, name, params, how):
    k = make_kernel(name, **params)
    before = evaluations(k, *sets)  # the original has used its caches (tile buffers of this and worker threads)
    twin = COPIES[how](k)
    assert type(twin) is type(k) and twin is not k and twin.params() == k.params()
    assert set(vars(twin)) == set(vars(k))
    caches = [attr for attr, v in vars(k).items() if isinstance(v, threading.local)]  # per-thread caches
    assert caches == (["_local"] if name == "gaussian" else [])
    for attr in caches:  # new and empty: not the original's, and nothing carried over
        assert type(getattr(twin, attr)) is threading.local and getattr(twin, attr) is not getattr(k, attr)
        assert vars(getattr(twin, attr)) == {}
    assert same_bits(evaluations(twin, *sets), before)
    assert same_bits(evaluations(k, *sets), before)  # the original is unchanged by its copy's use
    # fixed as the original: a parameter, and the record that fixes it, cannot be set
    for key, value in params.items():
        with pytest.raises(AttributeError, match=f"{type(k).__name__}.{key} cannot be set after the kernel is built"):
            setattr(twin, key, value)
    with pytest.raises(AttributeError, match="cannot be set after the kernel is built"):
        twin.new_name = 1
    for fixing in ("_built_with", "_building"):
        with pytest.raises(AttributeError, match=f"{fixing} cannot be set"):
            setattr(twin, fixing, {})
    assert twin._built_with == k._built_with and "_building" not in vars(twin)
    assert same_bits(evaluations(twin, *sets), before)


@pytest.mark.parametrize("how", list(COPIES))
def test_a_copy_of_a_gaussian_kernel_leaves_the_originals_tile_alone(how):
    """The Gaussian's tile_block returns its thread's buffer, which that kernel's next tile of the same shape
    overwrites: a copy sharing the buffers (copy.copy did) overwrote the original's tile with its own."""
    f = make_kernel("gaussian", width=0.1).features(X.sample(6, seed=3).points)
    k = make_kernel("gaussian", width=0.1, engine="numpy")
    tile = k.tile_block(f[:3], f[:3])
    kept = tile.copy()
    twin = COPIES[how](k)
    other = twin.tile_block(f[3:], f[3:])
    assert np.array_equal(tile, kept) and not np.array_equal(other, kept)
    assert np.array_equal(other, make_kernel("gaussian", width=0.1, engine="numpy").tile_block(f[3:], f[3:]))


def _blocks(kernels, p, q):
    return [(k.block(p), k.block(p, q)) for k in kernels]


def test_a_kernel_sent_to_a_spawned_process_gives_the_same_bits(sets):
    p, q, _ = sets
    kernels = [make_kernel(name, **many[0]) for name, many in SMALL.items()]
    kernels += [make_kernel("gaussian", width=0.3, method="direct", normalize="row")]
    here = _blocks(kernels, p, q)  # used before it is sent: its caches hold buffers
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(_blocks, kernels, p, q).result(timeout=300)
    assert len(there) == len(here)
    for a, b in zip(here, there):
        assert same_bits(a, b)
