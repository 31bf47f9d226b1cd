"""Job-file pieces shared by the experiment kinds: the [geometry] section and sampling one chart."""

from __future__ import annotations

from hpcflow.errors import ConfigError, NumericalStop
from hpcflow.jobs.schema import (MANIFOLD_FIELDS, MAX_BATCHES, MAX_BATCHES_FIELD, MAX_DIM, SEED_MAX, Field, at_least,
                                 batches_said, chart_pair, projective_coordinates, zero_or_at_least)


#: fewest points a sigma (eq. B.11) means anything for: kappa is the weighted mean of eta over the same points,
#: so for one point eta / kappa = 1 and sigma = 0 whatever the metric (a gain 0/0)
MIN_POINTS = 2


_ONE_POINT = "sigma needs two points: for one it is 0 by construction"
#: checks of point-set sizes for sigma: at least MIN_POINTS; 0 (no test points) or at least MIN_POINTS
enough_points = at_least(MIN_POINTS, _ONE_POINT)
none_or_enough_points = zero_or_at_least(MIN_POINTS, "no test points", _ONE_POINT)


#: [geometry]: the manifold and the train/test point sets (one chart, the paper's choice, sec. 3.1)
GEOMETRY_SECTION = {
    **MANIFOLD_FIELDS,
    "chart": Field(list, [0, 1], items=int, check=chart_pair, lo=0, hi=MAX_DIM + 1, within=projective_coordinates,
                   help="[I, J]: scale coordinate I, eliminated coordinate J (canonical charts only)"),
    "max_batches": MAX_BATCHES_FIELD,
    "n_train": Field(int, 1000, lo=0, check=enough_points, help="number of train points"),
    "n_test": Field(int, 1000, lo=0, check=none_or_enough_points, help="number of test points (0 = none)"),
    "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed of the train points; test points use seed + 1"),
}


def check_geometry(geo: dict, source: str) -> None:
    """Cross-field checks of [geometry] (chart indices within P^n) — raised before any work."""
    n = geo["dim"] + 1
    if max(geo["chart"]) > n:
        raise ConfigError(f"{source}: [geometry].chart = {geo['chart']} needs indices <= {n} on P^{n} ([geometry].dim "
                          f"= {geo['dim']}); change it")


#: keys of the [geometry] section that `sample_train_test_shares` reads (and "psi" for dwork; "max_batches" where
#: given, else the sampler's default)
GEO_KEYS = ("manifold", "dim", "chart", "n_train", "n_test", "seed")
#: how the sampler's refusals past max_batches name the key of a [geometry] section
GEO_BATCHES = batches_said("geometry")


def sampling_keywords(geo: dict) -> dict:
    """The sampler's max_batches of a [geometry] section (its default where the section has none) and how its
    refusals name that key."""
    return {"max_batches": geo.get("max_batches", MAX_BATCHES), "batches_said": GEO_BATCHES}


def manifold(geo: dict):
    """The Hypersurface of a [geometry] section."""
    from hpcflow.geometry import Hypersurface

    if geo["manifold"] == "dwork":
        return Hypersurface.dwork(geo["dim"], geo["psi"])
    return Hypersurface.fermat(geo["dim"])


def sample_train_test(geo: dict):
    """(X, train, test) sampled in the job's chart; test is None when n_test = 0."""
    X = manifold(geo)
    chart = tuple(geo["chart"])
    kw = sampling_keywords(geo)
    train = X.sample(geo["n_train"], seed=geo["seed"], chart=chart, **kw)
    test = X.sample(geo["n_test"], seed=geo["seed"] + 1, chart=chart, **kw) if geo["n_test"] > 0 else None
    return X, train, test


#: `sample_train_test_shares`' names of the train set's sampling arguments
TRAIN = {"surface": "manifold", "n_points": "n_train"}


def sample_train_test_shares(geo: dict, *, comm=None, test_seed: int | None = None):
    """(X, train, test, counters): this rank's contiguous shares (decompose.share) of the sets of
    `sample_train_test`, bitwise the same rows for every R; test is None when n_test = 0. `counters`: this
    rank's sampled blocks and lines, points owned, bytes sent, seconds (train and test together); without
    Jacobians, which no flow uses. test_seed:
    the test set's seed (default [geometry].seed + 1; a tune trial passes its own spawned seed). Bad sizes, seeds
    or chart on any rank, or a manifold, n_train, n_test, seed, chart or test seed that differs between ranks, are
    refused by every rank together before any sampling (one allgather at R > 1)."""
    from hpcflow.arguments import api_keys
    from hpcflow.geometry.sampling import agreed, sample_checked, sampling_arguments
    from hpcflow.parallel.comm import arguments_together, resolve

    c = resolve(comm)
    sets = []

    def check():
        api_keys(geo, "geo", GEO_KEYS + (("psi",) if geo.get("manifold") == "dwork" else ()))
        X = manifold(geo)
        kw = dict(chart=tuple(geo["chart"]), layout="share", jacobian=False, **sampling_keywords(geo))
        train = sampling_arguments(X, geo["n_train"], geo["seed"], **kw, names=TRAIN)
        test = None
        if geo["n_test"] > 0:
            test = sampling_arguments(X, geo["n_test"], geo["seed"] + 1 if test_seed is None else test_seed, **kw,
                                      names={"n_points": "n_test", "seed": "test_seed"})
        sets[:] = [X, train, test]

    arguments_together(check, comm=c, same=lambda: {
        **agreed(sets[0], sets[1], TRAIN),
        **({"n_test": 0} if sets[2] is None else {"n_test": sets[2]["n_points"], "test_seed": sets[2]["seed"]})})
    X, train, test = sets
    train, counters = sample_checked(X, **train, comm=c)
    if test is not None:
        test, more = sample_checked(X, **test, comm=c)
        counters = {k: v + more[k] for k, v in counters.items()}
    return X, train, test, counters


def gain(initial: float, final: float) -> float:
    """Gain factor sigma_initial / sigma_final (the paper's 'factor gained in the sigma loss')."""
    return float(initial / final) if final > 0 else float("inf")


def stops_status(rows, name: str) -> dict:
    """{'status', 'stopped'} of a job of one flow per row (row[name]: the row's parameter, e.g. its noise scale):
    "diverged" naming every row whose flow stopped for a numerical reason (row["numerical_stop"], the reason in
    row["stopped"]) and every row left without test points (row["no_test_gain"]: its flow moved the train points
    only, so it has no test gain; its flow need not have stopped), else "finished"."""
    bad = [r for r in rows if r["numerical_stop"]]
    if not bad:
        return {"status": "finished", "stopped": ""}
    empty = [r for r in bad if r.get("no_test_gain")]
    halted = [r for r in bad if not r.get("no_test_gain")]
    parts = []
    if halted:
        parts.append(f"the flows of {len(halted)} of {len(rows)} {name}s stopped ({_reasons(halted, name)}); a "
                     "stopped flow's gains are those of its last finite step")
    if empty:
        parts.append(f"{len(empty)} of {len(rows)} {name}s have no test gain ({_reasons(empty, name)}); their test "
                     "points are missing; their flows moved the train points alone, steps taken: "
                     f"{', '.join(str(r['steps_taken']) for r in empty)}")
    return {"status": "diverged", "stopped": "; ".join(parts)}


def _reasons(rows, name: str) -> str:
    return "; ".join(f"{name} {r[name]:g}: {r['stopped']}" for r in rows)


#: schema_version attribute of the experiments' HDF5 files (noise_scan, local_limit, distances, fig2_distances)
FILE_SCHEMA_VERSION = 1


def file_attrs(kind: str) -> dict:
    """Root attributes every experiment HDF5 file carries: `kind` (e.g. "hpcflow.noise_scan"), `schema_version`
    (layouts in docs/outputs.md) and `geometry_conventions` (normalisation of the points, g_FS, Ω, the weights)."""
    from hpcflow.geometry.pointset import CONVENTIONS

    return {"kind": kind, "schema_version": FILE_SCHEMA_VERSION, "geometry_conventions": CONVENTIONS}


def write_scan(path, data: dict, rows, name: str, cfg: dict, conventions: str, kind: str) -> dict:
    """Write the HDF5 file of a job of one flow per row: `data` with table/steps_taken and table/stopped (the
    reason of a numerical stop, '' for none) added, the job's config, `conventions`, `file_attrs(kind)` and its
    status (stops_status) as attributes; returns that status."""
    import h5py
    import numpy as np

    from hpcflow.jobs.output import write_hdf5

    data = {**data, "table/steps_taken": np.array([r["steps_taken"] for r in rows], dtype=np.int64),
            "table/stopped": np.array([r["stopped"] if r["numerical_stop"] else "" for r in rows],
                                      dtype=h5py.string_dtype("utf-8"))}
    status = stops_status(rows, name)
    write_hdf5(path, data, attrs={**file_attrs(kind), "config": cfg, "conventions": conventions, **status})
    return status


def finish(summary: dict, outdir) -> dict:
    """`summary`, or NumericalStop carrying it (exit status 3; the caller writes it) when its status is "diverged"."""
    if summary["status"] != "diverged":
        return summary
    exc = NumericalStop(f"{summary['stopped']}; outputs are in {outdir}")
    exc.summary = summary
    raise exc
