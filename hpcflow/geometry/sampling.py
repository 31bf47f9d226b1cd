"""Shiffman-Zelditch sampling in fixed blocks of lines, shared over ranks: the points depend on the seed alone.

Block k intersects LINES_PER_BATCH random lines with X, drawn from its own stream SeedSequence(entropy,
spawn_key=(k,)), and computes the points' data (charts, g_FS, |Omega|^2, weights); with a chart, only that chart's
points are kept, so a block's yield is random. Block k is sampled by rank k % R, in waves of the blocks the missing
points need, all ranks together (at most 4 per thread of a rank; a rank's run in a thread pool); after each wave one
Allgather of the blocks' yields settles where every block's points lie in the global order (a prefix sum). The
global set is the first N points in block order, so it is bitwise the same for every rank count and thread count.
Its rows then move to their owners with one Alltoallv of packed bytes (`hpcflow.parallel.redistribute`): point data
are computed once, inside the block, and moved unchanged. When the first wave's lines meet X in more than about 1%
of points whose roots float64 cannot resolve (Dwork at large |psi|: leaving them out biases the sample), or more
than 1% of them where dp vanishes (p with a repeated factor), sampling stops there (`check_placed`). The arguments
are checked on every rank together before any of this (`sampling_arguments`, `comm.arguments_together`): one rank's
bad or differing argument is refused by all, not left waiting in the first wave's Allgather.
"""

from __future__ import annotations

import hashlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from hpcflow.backend import default_threads, get_xp
from hpcflow.errors import ConfigError
from hpcflow.geometry.pointset import PointSet, subset_or_none
from hpcflow.arguments import (INT_LIMIT, MAX_BATCHES, api_integer, api_seed, api_threads, env_quiet, env_threads,
                               int_text)
from hpcflow.parallel.comm import SerialComm, arguments_together, raise_together, resolve
from hpcflow.parallel.decompose import counts, displs
from hpcflow.parallel.redistribute import (alltoallv_rows, owner_counts, pack_rows, received_in_order, row_bytes,
                                          unpack_rows)
from hpcflow.parallel.reduce import allgatherv, max_value
from hpcflow.progress import progress

#: lines per sampling block; fixed so that a seed gives the same points whatever N, R and threads are.
LINES_PER_BATCH = 2048
#: a first wave whose random lines meet X in more than this fraction of points that cannot be placed on X (roots
#: too ill-conditioned for float64), beyond chance (`max_off_x`), stops the sampling: the rest would be a biased sample
#: (Dwork(3) leaves out 0.1%, 0.8%, 6.5% and 37% of its points at psi = 3e4, 5e4, 1e5 and 3e5)
MAX_OFF_X = 0.01
#: binomial standard errors that the fraction dropped of a first wave may lie above MAX_OFF_X by chance (`max_off_x`)
OFF_X_SIGMAS = 3.0
#: the entropy of the one block of lines that `check_placeable` draws (a fixed stream: the same verdict every time)
PSI_CHECK_ENTROPY = 0
#: a first wave with more than this fraction of intersection points where dp vanishes (`check_placed`: Newton step
#: above NEWTON_TOL) stops the sampling: X is then singular along a part of it. A repeated factor q^k of p puts
#: k deg(q) of each line's n+1 roots there (>= 2/(n+1)); a smooth X puts none (an isolated singular point, e.g. Dwork
#: at psi = 1, is met by a vanishing fraction of lines)
MAX_FLAT = 0.01
#: Newton step |p(z)| / (|grad p(z)| |z|) above which an intersection point counts as lying where dp vanishes: a
#: simple root is placed to ~eps times its condition number (below 1e-12 for every smooth X measured: Fermat and
#: Dwork up to dim 16, Dwork at psi = 1 and up to the |psi| that `check_placed` admits); float64 places a root of
#: multiplicity k only to ~eps^(1/k) (1e-8 for k = 2, measured 1e-9 and above)
NEWTON_TOL = 1e-10
#: the chance, over a whole sampling, that `chart_hopeless` stops a chart whose rate could give the points asked for
#: within max_batches (for Poisson counts: it spends CHART_RATE_RISK / (d (d + 1)) on the test after d batches, which
#: sums to it over every d; a line's n+1 points fall into one chart nearly independently: the variance of a line's
#: count is ~1.3 times the Poisson one for each chart of the Fermat quintic, which the Poisson bound leaves out)
CHART_RATE_RISK = 1e-6
#: a chart whose points so far fall short of the rate the points asked for need, and whose `chart_hopeless` stop
#: (the count unchanged) would come only past this many times the batches sampled, or never before max_batches (too
#: few points asked for to tell it from a chart just rich enough), is said in one line once (`chart_slow_note`)
CHART_NOTE_FACTOR = 10
#: what `sample_points` returns on each rank: everything, this rank's contiguous share, or all on rank 0
LAYOUTS = ("all", "share", "root")
#: how the sampler's lines name max_batches where they advise another, unless the caller names its own setting (a job
#: file's [SECTION].max_batches, `hpcflow sample`'s --max-batches: `sampling_arguments`' batches_said)
BATCHES_SAID = "max_batches (hpcflow sample: --max-batches)"
#: `sampling_arguments` that must be equal on every rank (threads and the backend are each rank's own)
AGREED = ("n_points", "seed", "chart", "max_batches", "layout", "jacobian")
_FIELDS = ("points", "weights", "omega2", "g_fs", "chart", "jacobian")


def sample_block(surface, k: int, entropy, chart, xp, jacobian: bool = True) -> tuple[PointSet, int, float, int]:
    """The points of block k (with their data), kept to `chart` if given; n_dropped counts unusable points.
    jacobian=False forms no dz/dx (half a quintic point's bytes). Also: how many of the block's intersection points
    could not be placed on X, the 99th percentile of |p(z)|/|z|^deg over all of them, and how many lie where dp
    vanishes (Newton step above NEWTON_TOL) (`check_placed`)."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(k,)))
    z, n_bad, residual, newton = surface.line_points(LINES_PER_BATCH, rng, xp=xp, residuals=True)
    # the chart's points only: their data alone is formed; z are on X (line_points kept residuals < RESIDUAL_TOL)
    ps = surface.point_set(z, only=chart, jacobian=jacobian, check=False)
    ps.n_dropped += n_bad
    return (ps, n_bad, float(np.percentile(np.where(np.isnan(residual), np.inf, residual), 99)),
            int(np.sum(newton > NEWTON_TOL)))


def check_sample_sizes(n_points, threads, max_batches, seed=None, *, error=ValueError, names=None):
    """(n_points, threads, max_batches, seed) checked: integers (integral floats such as 1e5 taken as such), N >= 1,
    threads None or in [1, MAX_THREADS], max_batches >= 1, and seed None or an integer >= 0 of any size
    (`arguments.api_seed`); `error` naming the argument otherwise (a fractional N is not truncated, threads=0 is not
    taken as 1), as the caller calls it (`names`: {"n_points": "n_val"})."""
    names = {"n_points": "n_points", "seed": "seed", **(names or {})}
    errors = dict(type_error=error if error is not ValueError else TypeError, value_error=error)
    if isinstance(seed, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence,
                         np.random.RandomState)):
        raise errors["type_error"](
            f"{names['seed']}={type(seed).__name__}(...) is invalid: a sample is drawn from an integer seed, which its "
            f"set and file record (@seed) to draw it again; pass an integer >= 0, e.g. {names['seed']}="
            "int(rng.integers(2**63)) for a NumPy Generator rng, or None for a fresh random seed")
    if seed is not None:  # (an integral float is taken as its int: SeedSequence takes ints only)
        seed = api_seed(names["seed"], seed, "an integer >= 0 (of any size), or None for a fresh random seed",
                        **errors)
    given = n_points
    n_points = api_integer(names["n_points"], given, "a whole number of points >= 1, e.g. 1000", lo=1, bounded=False,
                           **errors)
    n_points = api_integer(names["n_points"], given, f"a whole number of points in [1, {int_text(INT_LIMIT)}], e.g. "
                           "1000", lo=1, **errors)  # (the bound of every count, as --n: said where it is passed)
    max_batches = api_integer("max_batches", max_batches, f"an integer in [1, {int_text(INT_LIMIT)}]", lo=1, **errors)
    return n_points, api_threads(threads, **errors), max_batches, seed


def sample_points(surface, n_points: int, seed=None, *, chart=None, threads: int | None = None,
                  backend: str | None = None, max_batches: int = MAX_BATCHES, comm=None, layout: str = "all",
                  jacobian: bool = True, error=ValueError, memory_check: bool = True, batches_said: str | None = None):
    """(PointSet, counters): the global sample's rows this rank gets by `layout` ("all", "share", "root").
    jacobian=False: the set has no Jacobian (flows do not use it), every other field bitwise the same.

    "share" is rows decompose.share(N, R, r); "root" gives all N rows to rank 0 and none elsewhere. Memory
    per rank: its own blocks (~N/R points, ~0.5 kB each for the quintic) plus send and receive buffers of
    its share; "all" and "root" add the whole set where it lands. `counters`: this rank's sampled blocks and
    lines, the points its blocks kept, the points it owns, bytes it sent to other ranks, seconds.
    A bad argument (`error` naming it, `sampling_arguments`) on any rank, or a surface, n_points, seed, chart,
    max_batches, layout or jacobian that differs between ranks, is refused by every rank together; so is, with
    `memory_check`, an n_points whose sampling would peak above the memory a rank may use (`check_sample_memory`).
    `batches_said`: how the refusals past max_batches name the setting to change (default BATCHES_SAID).
    """
    c = resolve(comm)
    args = {}

    def check():
        args.update(sampling_arguments(surface, n_points, seed, chart=chart, threads=threads, backend=backend,
                                       max_batches=max_batches, layout=layout, jacobian=jacobian, error=error,
                                       batches_said=batches_said))
        if memory_check:
            check_sample_memory(surface, args["n_points"], layout=layout, ranks=c.Get_size(), jacobian=jacobian,
                                threads=1 if args["xp"] is not np else args["threads"], chart=args["chart"],
                                error=error)

    arguments_together(check, comm=c, same=lambda: agreed(surface, args))
    return sample_checked(surface, **args, comm=c)


def sample_memory(dim: int, n_points: int, *, layout: str = "all", ranks: int = 1, threads: int = 1,
                  one_chart: bool = False, jacobian: bool = True) -> dict:
    """{part: bytes} of the peak of the busiest rank (rank 0) while `sample_points` samples n_points points in
    dimension dim on `ranks` ranks and returns them by `layout`: `hpcflow.resources.sample_peak`, the model `hpcflow
    sample` checks by too (`hpcflow.resources.estimate_sample`: layout "root", the Jacobian kept). Non-decreasing in
    n_points (`sample_fits` relies on it)."""
    from hpcflow.resources import sample_peak

    return sample_peak(dim, n_points, layout=layout, ranks=ranks, threads=threads, one_chart=one_chart,
                       jacobian=jacobian)


def sample_fits(limit: float, model) -> int:
    """The largest n >= 0 with sum(model(n).values()) <= limit (model non-decreasing in n), 0 where not even one
    point fits: the count a memory refusal states, which that check then takes, and one point more it refuses."""
    def fits(n):
        return sum(model(n).values()) <= limit

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def check_sample_memory(surface, n_points: int, *, layout: str = "all", ranks: int = 1, jacobian: bool = True,
                        threads: int | None = None, chart=None, error=ValueError, name: str = "n_points",
                        said: str | None = None, advice: str | None = None) -> None:
    """`error` naming `name` (shown as `said`, default "name=n_points") when the peak the sampling of n_points
    points would reach on its busiest rank (`sample_memory`: the set's arrays, the sampler's blocks and batches
    with their temporaries, the rows gathered under MPI, the interpreter) exceeds the memory one of `ranks` ranks
    may use (`hpcflow.resources.memory_limit`; under an address-space limit, RLIMIT_AS, the part of it left once
    what the process maps and its threads' stacks, arenas and OpenBLAS buffers are counted, the rule of the run's
    address-space check: `hpcflow.resources.address_space_room`; under a data limit, RLIMIT_DATA, the part of it
    left once what it counts now and the threads' stacks and OpenBLAS buffers are: `data_room`), so that it could
    only end in a MemoryError or the out-of-memory killer after minutes of work. The refusal states the largest count
    whose peak fits (`sample_fits`, by the same model and limit: that count passes this check, one more is refused),
    in `advice` where given (its "{fits}" replaced by that count; a command's own words, e.g. its option), and how to
    raise the process's own limit (`ulimit -v`, `ulimit -d`) where that is the one. `threads` None:
    this process's (`backend.default_threads`). Skipped under HPCFLOW_IGNORE_MEMORY_CHECK=1 (the override of the
    commands' checks, read by the same parser: another value is a ConfigError)."""
    from hpcflow.resources import (ENV_IGNORE, address_space_room, data_room, fmt_bytes, ignore_requested, limit_kib,
                                   memory_limit)

    if ignore_requested():
        return
    threads = default_threads() if threads is None else threads

    def model(n):
        return sample_memory(surface.dim, n, layout=layout, ranks=ranks, threads=threads,
                             one_chart=chart is not None, jacobian=jacobian)

    parts = model(n_points)
    peak = sum(parts.values())
    limit, where = memory_limit(ranks=ranks)
    raise_limit = ""  # a process's own limit (ulimit -v, -d): how to raise it for n_points
    # an address-space limit: what the libraries, threads and buffers leave of it; a data limit (Linux >= 4.7: the
    # heap and private writable mappings): what is held now, the threads' stacks and buffers leave
    for room, flag, text in ((address_space_room(threads), "-v", "RLIMIT_AS, ulimit -v: {} of address space less the "
                              "{} this process maps and what its threads' stacks, malloc arenas and OpenBLAS buffers "
                              "take"),
                             (data_room(threads), "-d", "RLIMIT_DATA, ulimit -d: {} of data (heap and private writable "
                              "mappings) less the {} this process holds and what its threads' stacks and OpenBLAS "
                              "buffers take")):
        if room is not None and room[0] < limit:
            limit, where = max(0.0, room[0]), text.format(fmt_bytes(room[1]), fmt_bytes(room[2]))
            raise_limit = (f"raise the limit (ulimit {flag} unlimited, or at least "
                           f"{limit_kib(room[1] - room[0] + peak)} KiB)")
    if peak <= limit:
        return
    fits = sample_fits(limit, model)
    big = max(parts, key=parts.get)
    if not fits:
        fix = f"not even one point fits: free memory or {raise_limit or 'raise the limit'}"
    else:
        fix = (advice.replace("{fits}", str(fits)) if advice is not None
               else f"sample at most {fits} points a call (several calls with other seeds for more)")
        fix = f"{raise_limit}, or {fix}" if raise_limit else fix
    base = f"; {fmt_bytes(parts['base'])} the interpreter's" if big != "base" else ": the interpreter's"
    raise error(f"{said or f'{name}={n_points}'}: sampling it would peak at about {fmt_bytes(peak)} per rank (largest "
                f"part: {big} {fmt_bytes(parts[big])}{base}), more than the {fmt_bytes(limit)} this process may use "
                f"({where}); {fix}, or set {ENV_IGNORE}=1 if you know better")


def sampling_arguments(surface, n_points, seed=None, *, chart=None, threads=None, backend=None,
                       max_batches=MAX_BATCHES, layout="all", jacobian=True, error=ValueError, names=None,
                       batches_said=None) -> dict:
    """`sample_checked`'s keywords from `sample_points`' arguments: sizes and seed (`check_sample_sizes`), the
    chart (`check_chart`), layout, backend (`get_xp`: its ConfigError; auto, the default, samples on the host: CuPy
    only where asked for) checked; `error` names the first bad one as the caller calls it (`names`:
    {"surface": "X", "n_points": "n_val"}). No collective: each rank's are checked alone (`sample_points` then
    refuses them on every rank together). The environment the sampling reads ($HPCFLOW_THREADS where `threads` is
    None, $HPCFLOW_QUIET) is checked here too, as the commands check it.
    `batches_said`: the caller's name of max_batches in the sampler's advice (a job's "[geometry].max_batches",
    `hpcflow sample`'s "--max-batches"; default BATCHES_SAID), passed on to `sample_checked`."""
    env_quiet()
    if threads is None:
        env_threads()
    if not callable(getattr(surface, "definition_json", None)):
        raise TypeError(f"{(names or {}).get('surface', 'surface')} is a {type(surface).__name__}, not a "
                        "Hypersurface; pass one, e.g. hpcflow.geometry.Hypersurface.fermat(3)")
    n_points, threads, max_batches, seed = check_sample_sizes(n_points, threads, max_batches, seed, error=error,
                                                              names=names)
    chart = check_chart(surface, chart, error=error)
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
    return dict(n_points=n_points, seed=None if seed is None else int(seed), chart=chart, threads=threads,
                xp=get_xp(backend, auto_on_host=True), max_batches=max_batches, layout=layout,
                jacobian=bool(jacobian), batches_said=batches_said or BATCHES_SAID)


def agreed(surface, args: dict, names=None) -> dict:
    """{name: value} of `sampling_arguments`' `args` that every rank must share (AGREED) and the surface
    (`surface_key`), for `arguments_together`'s `same`; each named as the caller calls it (`names`)."""
    names = names or {}
    return {names.get("surface", "surface"): surface_key(surface), **{names.get(k, k): args[k] for k in AGREED}}


def surface_key(surface) -> str:
    """The surface's name and parameters and a digest of its definition: equal exactly when the definitions are.
    Stricter than `==` (the polynomial): the draws follow the monomials' order, so ranks that sample one set need
    the same definition, not only the same polynomial."""
    params = ", ".join(f"{k}={v}" for k, v in surface.params)
    digest = hashlib.blake2b(surface.definition_json().encode(), digest_size=8).hexdigest()
    return f"{surface.name}({params}) #{digest}"


def sample_checked(surface, *, n_points, seed, chart, threads, xp, max_batches, layout, jacobian, comm,
                   batches_said=BATCHES_SAID):
    """`sample_points` with its arguments checked on every rank together (`sampling_arguments`' keywords)."""
    R = comm.Get_size()
    t0 = time.perf_counter()
    entropy = np.random.SeedSequence(seed).entropy
    if R > 1 and seed is None:
        entropy = comm.bcast(entropy, root=0)  # one fresh seed for the whole job
    threads = default_threads() if threads is None else threads
    if xp is not np:
        threads = 1
    width = int(max_value(threads, comm=comm)) if R > 1 else threads  # the same wave on every rank
    mine, yields = sample_waves(surface, n_points, entropy, chart, xp, threads, width, max_batches, comm=comm,
                                jacobian=jacobian, batches_said=batches_said)
    fields = _FIELDS if jacobian else _FIELDS[:-1]
    offset = displs(yields[:, 0])
    last = int(np.searchsorted(np.cumsum(yields[:, 0]), n_points, side="left"))  # block of point N-1
    used = [k for k in sorted(mine) if k <= last and yields[k, 0] > 0]
    take = [min(int(yields[k, 0]), n_points - int(offset[k])) for k in used]
    n_blocks, n_kept = len(mine), int(sum(len(p) for p in mine.values()))
    idx = np.concatenate([offset[k] + np.arange(m) for k, m in zip(used, take)] or [np.zeros(0, np.int64)])
    sent, drawn = 0, None
    if R == 1:
        arrays = [np.concatenate([getattr(mine[k], f)[:m] for k, m in zip(used, take)]) for f in fields]
    else:
        lo = displs(counts(n_points, R)) if layout == "share" else np.array([0] + [n_points] * (R - 1))
        bounds = np.append(lo, n_points)
        sent, arrays = rows_to_layout(surface, mine, used, take, idx, bounds, comm=comm, fields=fields)
        if layout != "all":  # this rank's rows are rows bounds[r]:bounds[r+1] of the draw (PointSet.drawn)
            r = comm.Get_rank()
            drawn = subset_or_none(n_points, np.arange(bounds[r], bounds[r + 1], dtype=np.int64))
        if layout == "all":
            buf, lay = pack_rows(arrays)
            del arrays
            arrays = unpack_rows(allgatherv(buf, comm=comm), lay)
    ps = PointSet(surface, *arrays, n_dropped=int(yields[: last + 1, 1].sum()),
                  seed=int(entropy if seed is None else seed),  # a Python int: JSON in files
                  drawn=drawn,  # a share: its rows of the draw, which its subsets and a save of the shares name
                  sampled_chart=chart)  # @sampled_chart: with @seed it reproduces the points (docs/outputs.md)
    ps.mark_sampled()
    hits = (last + 1) * LINES_PER_BATCH * surface.degree  # the points n_dropped counts among
    # with a chart: those of them placed in another chart (neither kept nor dropped); the rest lie in the chart
    other = None if chart is None else hits - ps.n_dropped - int(yields[: last + 1, 0].sum())
    # a whole draw's counts (PointSet.intersections): a share of it has none, but keeps the draw's for a save of
    # all the shares together (`PointSet.save`)
    ps._draw_counts = (hits, other)
    if drawn is None:
        ps.intersections, ps.other_charts = hits, other
    counters = {"sampled_blocks": n_blocks, "sampled_lines": n_blocks * LINES_PER_BATCH,
                "sampled_points": n_kept, "points_owned": len(ps),
                "sample_bytes_sent": int(sent), "sample_seconds": time.perf_counter() - t0}
    return ps, counters


def sample_waves(surface, n_points, entropy, chart, xp, threads, width, max_batches, *, comm, jacobian=True,
                 batches_said=BATCHES_SAID):
    """This rank's blocks {k: PointSet} and every block's (points kept, points dropped), until N points exist.

    A wave is the blocks that the points still missing need (as many on every rank count, up to 4·width a rank, and
    never more than max_batches blocks in all: past them the refusal says how many points they gave), not a fixed
    number a rank: R ranks together sample the blocks one rank would, and a wave of fewer blocks than
    ranks leaves some ranks idle. Block k is sampled by rank k % R; one Allgather per wave settles the yields. With
    a chart, after each wave that leaves points missing, `chart_hopeless` may refuse it (every rank together); where
    that stop is far or cannot come, `chart_slow_note` says so once, from the second wave on (rank 0).
    A progress bar (points found) shows on rank 0's terminal, plain lines at most one a minute where its stderr is
    no terminal (hpcflow.progress).
    """
    R, r = comm.Get_size(), comm.Get_rank()
    mine, yields, have, k0, noted, first = {}, [], 0, 0, False, None  # first: (batches, time) of the first wave
    per = len(surface.charts) if chart is not None else 1
    with ThreadPoolExecutor(max_workers=threads) as pool, \
            progress(total=n_points, desc="sampling", unit="pt", unit_scale=True, comm=comm, lines=True) as bar:
        while have < n_points:
            if k0 >= max_batches:  # k0 and have come from the allgathered yields: every rank raises it here
                where = f" in chart {chart}" if chart is not None else ""
                raise_together(ConfigError(
                    f"could not find {n_points} points{where} in {max_batches} batches (found {have}); raise "
                    f"{batches_said}" + (" or choose a chart that more points have" if where else "")),
                    comm=comm)
            need = -(-(n_points - have) * per // (LINES_PER_BATCH * surface.degree))
            # blocks k0 .. k0 + n_wave - 1, all ranks together; never past max_batches (the refusal above says so)
            n_wave = max(1, min(need, R * 4 * width, max_batches - k0))
            own = list(range(k0 + (r - k0) % R, k0 + n_wave, R))  # this rank's: k % R == r (none may be left)
            blocks = list(pool.map(lambda k: sample_block(surface, k, entropy, chart, xp, jacobian), own))
            parts = [b[0] for b in blocks]
            mine.update(zip(own, parts))
            local = np.array([[len(p), p.n_dropped, off, np.float64(q).view(np.int64), flat]
                              for p, off, q, flat in blocks], dtype=np.int64).reshape(len(own), 5)
            # the rows arrive in rank order (rank q's blocks k % R == q); put them back in block order
            order = np.concatenate([np.arange(k0 + (q - k0) % R, k0 + n_wave, R) for q in range(R)]) - k0
            wave = np.empty((n_wave, 5), dtype=np.int64)
            wave[order] = allgatherv(local, comm=comm)
            if k0 == 0:  # every rank decides on the same numbers
                check_placed(surface, wave[:, 2], wave[:, 3].copy().view(np.float64), wave[:, 4], comm=comm)
            wave = wave[:, :2]
            yields.append(wave)  # row j is block k0 + j (rank (k0 + j) % R sampled it)
            bar.update(min(int(wave[:, 0].sum()), n_points - have))
            have += int(wave[:, 0].sum())
            k0 += n_wave
            if chart is not None and have < n_points and k0 < max_batches:  # the same numbers on every rank
                hopeless = chart_hopeless(surface, chart, n_points, have, k0, max_batches, batches_said)
                if hopeless is not None:
                    raise_together(ConfigError(hopeless), comm=comm)
                # (from the second wave on: the first's time holds the start's, not the pace)
                said = None if noted or first is None else chart_slow_note(
                    surface, chart, n_points, have, k0, max_batches, (time.perf_counter() - first[1]) / (k0 - first[0]),
                    batches_said)
                first = first or (k0, time.perf_counter())
                if said is not None:
                    noted = True
                    if r == 0:  # (above the progress bar, where one shows; not silenced with it)
                        tqdm.write(said, file=sys.stderr)
                        sys.stderr.flush()
    return mine, np.concatenate(yields)


def chart_hopeless(surface, chart, n_points: int, have: int, done: int, max_batches: int,
                   batches_said: str = BATCHES_SAID) -> str | None:
    """The refusal (one line) when the `have` points found in `chart` among the intersection points of the first
    `done` batches show its rate too small for all max_batches batches to give n_points: the upper bound of its rate
    (points an intersection point), from the Poisson mean whose chance to give `have` or fewer is CHART_RATE_RISK /
    (done (done + 1)), times the intersection points of max_batches batches, falls short of n_points; else None.

    The test after d batches concerns the count in the first d batches (the same whatever waves brought them), and a
    chart whose rate r gives n_points in max_batches batches in expectation (r x their points >= n_points) fails it
    only where that count lies in the lower CHART_RATE_RISK / (d (d + 1)) tail of its Poisson law: over all d >= 1
    (whichever are tested) such a chart is stopped with a chance of at most CHART_RATE_RISK, where the counts are
    Poisson. A count whose variance is v times its mean (v ~ 1.3 for the charts of the Fermat quintic: a line's n+1
    points are not quite independent) has wider tails, which this bound leaves out: by the normal approximation
    (each tail's z shrunk by sqrt(v)) the chance summed over all d is then about 3e-5 at v = 1.3 (1.5e-4 at 1.5),
    not 1e-6. A chart no point lies in (a tiny coefficient can leave one empty) is stopped once the d batches
    sampled are a fraction L_d / n_points of max_batches, L_d = ln(d (d + 1) / CHART_RATE_RISK) (~20 at d = 20):
    2% for 1000 points; for n_points <= L_d never (a rate too small for so few points is told from one just large
    enough only by sampling all the batches): the refusal past max_batches says so then."""
    per = LINES_PER_BATCH * surface.degree
    seen, total = done * per, max_batches * per
    if have * total >= n_points * seen:  # the rate measured suffices: so does its upper bound
        return None
    from scipy.special import gammainccinv  # (here: an import of ~0.14 s that only such a stop needs)

    risk = CHART_RATE_RISK / (done * (done + 1.0))
    rate = float(gammainccinv(have + 1, risk)) / seen  # P(Poisson(rate seen) <= have) = risk
    if rate * total >= n_points:
        return None
    return (f"chart {chart} holds too few points: {have} of the {seen} points where the lines of {done} batches meet "
            f"X lie in it, a rate of at most {rate:.2g} (at confidence 1 - {risk:.2g}), so all max_batches="
            f"{max_batches} batches would give about {rate * total:.3g} at most, not the {n_points} asked for; "
            f"sample a chart that more points have, or every chart (chart=None), or fewer points, or raise "
            f"{batches_said}")


def chart_slow_note(surface, chart, n_points: int, have: int, done: int, max_batches: int,
                    pace: float, batches_said: str = BATCHES_SAID) -> str | None:
    """The one line said where the `have` points found in `chart` in the first `done` batches fall short of the rate
    n_points need within max_batches, and `chart_hopeless` with that count would stop the sampling only past
    CHART_NOTE_FACTOR x `done` batches, or never before max_batches (n_points too few to tell a chart too poor for
    them from one just rich enough: the sampling then goes on to max_batches), else None. It names the batch of that
    stop where there is one (the first d with the count unchanged, by bisection: past the first d the bound falls
    with d), the time to it or to max_batches at `pace` seconds a batch, and the fix."""
    per = LINES_PER_BATCH * surface.degree
    if have * max_batches >= n_points * done:  # the rate found so far gives them
        return None

    def stops(d):
        return d < max_batches and chart_hopeless(surface, chart, n_points, have, d, max_batches) is not None

    lo, hi = done, max_batches  # the first d > done that stops, max_batches where none does
    if stops(min(CHART_NOTE_FACTOR * done, max_batches)):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if stops(mid) else (mid, hi)
    more = f"about {pace * (hi - done):.0f} s more at the pace so far"
    until = (f"unless more are found, the sampling stops at about batch {hi} ({more})" if hi < max_batches else
             f"{n_points} points are too few to tell it from a chart just rich enough before all {max_batches} "
             f"batches are sampled ({more})")
    return (f"chart {chart}: only {have} of the {done * per} points where the lines of {done} "
            f"batch{'es' if done > 1 else ''} meet X lie in it, too few at that rate for the {n_points} asked for "
            f"within max_batches={max_batches} batches; {until}; sample a chart that more points have, or every chart "
            f"(chart=None), or lower {batches_said} to stop sooner")


def max_off_x(total: int) -> float:
    """The largest unplaced fraction of a first wave's `total` points accepted: MAX_OFF_X + OFF_X_SIGMAS binomial
    standard errors sqrt(f(1-f)/total) at f = MAX_OFF_X (1.3% for one quintic batch): 1% refused by chance <= 0.25%."""
    # the points of one line are dropped nearly independently (Dwork(3): the variance of a line's count is 1.0-1.2
    # times the binomial one at 0.1% .. 37% dropped), so the points, not the lines, count as the draws
    return MAX_OFF_X + OFF_X_SIGMAS * float(np.sqrt(MAX_OFF_X * (1 - MAX_OFF_X) / total))


def check_placeable(surface) -> None:
    """The sampler's ConfigError (`check_placed`'s message, e.g. "use |psi| <= 5.2e+04" for Dwork(3, 1e5)) when one
    block of LINES_PER_BATCH lines, drawn from a fixed stream (PSI_CHECK_ENTROPY: the verdict depends on the surface
    alone), leaves more of its points unplaced than any first wave would accept: its fraction lies above `max_off_x`
    of one block by more than OFF_X_SIGMAS binomial standard errors of the fraction itself. A first wave of one
    block or more accepts at most that `max_off_x`, so what this refuses the sampler refuses too (but for a chance
    below ~0.2%), and a surface at the sampler's edge (one wave may take it, another not) is left to the sampler.
    Milliseconds (25 ms at dim 3, ~1 s at dim 16); a job's checks call it before any work (`hpcflow.jobs.schema`).
    A surface with dp vanishing along a part of X is not refused here (`check_flat` is the sampler's)."""
    rng = np.random.default_rng(np.random.SeedSequence(PSI_CHECK_ENTROPY, spawn_key=(0,)))
    _, n_bad, residual, _ = surface.line_points(LINES_PER_BATCH, rng, xp=np, residuals=True)
    total = LINES_PER_BATCH * surface.degree
    frac = n_bad / total
    if frac - OFF_X_SIGMAS * np.sqrt(frac * (1 - frac) / total) <= max_off_x(total):
        return
    q99 = float(np.percentile(np.where(np.isnan(residual), np.inf, residual), 99))
    check_placed(surface, np.array([n_bad]), np.array([q99]), np.array([0]), comm=SerialComm())


def check_placed(surface, off_x, q99, flat, *, comm) -> None:
    """ConfigError when more than `max_off_x` (about MAX_OFF_X) of the first wave's intersection points (off_x of each
    block's) could not be placed on X to |p(z)|/|z|^deg < RESIDUAL_TOL, or more than MAX_FLAT lie where dp vanishes
    (flat of each block's, `check_flat`), before more batches run in vain; off_x, q99 and flat are the allgathered
    wave's, so every rank of `comm` raises it together (`raise_together`).

    A point z = a + t b of a line is computed with absolute rounding ~eps |a|, so |p(z)| cannot fall below about
    eps |dp/dz|: for Dwork at large |psi| the points lie within ~1/|psi| of a coordinate plane, where |dp/dz| ~
    (n+1)|psi|, and that floor grows like |psi| eps. Dropping those points would bias the sample (Shiffman-Zelditch
    needs every intersection point of a line). In that regime the residual of each point is proportional to
    |psi|, so q99 (the largest block's 99th percentile) gives the |psi| at which 99% of the points would be placed."""
    from hpcflow.geometry.hypersurface import RESIDUAL_TOL

    total = len(off_x) * LINES_PER_BATCH * surface.degree
    frac = float(np.sum(off_x)) / total
    params = dict(surface.params)
    psi = complex(params["psi"]) if "psi" in params else None
    shown = {**params, **({"psi": f"{psi.real:g}" if psi.imag == 0 else f"{psi:g}"} if psi is not None else {})}
    what = f"{surface.name}({', '.join(f'{k}={v}' for k, v in shown.items())})"
    batches = f"{len(off_x)} batch{'es' if len(off_x) > 1 else ''}"

    def points(share: float, digits: int = 0) -> str:
        return f"{what}: {share:.{digits}%} of the {total} points where the random lines of the first {batches} meet X "

    if frac <= max_off_x(total):
        check_flat(float(np.sum(flat)) / total, points, comm=comm)
        return
    why = (points(frac, 1) +
           f"cannot be placed on X to |p(z)|/|z|^{surface.degree} < {RESIDUAL_TOL:g} (99% of them have residuals up "
           f"to {np.max(q99):.1e}): float64 rounding of a point on its line moves p by about eps |dp/dz|, too much "
           f"for these ill-conditioned roots, and sampling without them would be biased (at most {MAX_OFF_X:.0%} may "
           "be left out); ")
    if psi is not None and np.isfinite(np.max(q99)):
        fix = (f"use |psi| <= {abs(psi) * RESIDUAL_TOL / np.max(q99):.2g} (the residuals grow in proportion to |psi|; "
               "there 99% of the points are placed)")
    elif psi is not None:
        fix = "use a smaller |psi|"
    else:
        fix = "use coefficients of comparable sizes (large ratios make the roots ill-conditioned)"
    raise_together(ConfigError(why + fix), comm=comm)


def check_flat(frac: float, points, *, comm) -> None:
    """ConfigError (every rank together) when a fraction frac > MAX_FLAT of the first wave's intersection points has
    a Newton step |p(z)| / (|grad p(z)| |z|) above NEWTON_TOL: dp vanishes on a part of X (a repeated factor of p,
    e.g. a power of a linear form), where X is singular and the weights |Omega|^2 / det g_FS diverge (~1e31 for
    (z0 + z1)^5), so sigma would be meaningless. `points(frac)` begins the message, naming the wave's points."""
    if frac > MAX_FLAT:
        raise_together(ConfigError(
            points(frac) + f"lie where dp vanishes (|p(z)|/(|dp(z)| |z|) > {NEWTON_TOL:g}: float64 places a "
            "root of multiplicity k only to eps^(1/k)), so X is singular along a part of it (p has a repeated "
            "factor, e.g. a power of a linear form); pass a polynomial without repeated factors (a smooth X)"),
            comm=comm)


def rows_to_layout(surface, mine, used, take, idx, bounds, *, comm, fields=_FIELDS):
    """(bytes sent to other ranks, field arrays): the first take[i] rows of blocks used[i] (global rows idx) moved to
    the rank r with bounds[r] <= idx < bounds[r+1], in global order; blocks are packed and freed one by one."""
    lay = [(np.dtype(np.int64).str, ())] + [(e.dtype.str, e.shape[1:]) for e in (_empty(surface, f) for f in fields)]
    send, pos = np.empty((idx.size, row_bytes(lay)), dtype=np.uint8), 0
    for k, m in zip(used, take):
        p = mine.pop(k)
        pack_rows([idx[pos:pos + m]] + [getattr(p, f)[:m] for f in fields], out=send[pos:pos + m])
        pos += m
    mine.clear()
    to = owner_counts(idx, bounds)
    sent = (int(to.sum()) - int(to[comm.Get_rank()])) * send.shape[1]  # the rows it keeps are not sent
    recv, _ = alltoallv_rows(send, to, comm=comm)
    del send
    return sent, received_in_order(recv, lay)[1]


def _empty(surface, field: str) -> np.ndarray:
    """A field of a zero-point set, with the dtype and trailing shape sampled sets have."""
    n1, m = surface.n + 1, surface.dim
    shapes = {"points": (n1,), "weights": (), "omega2": (), "g_fs": (m, m), "chart": (2,), "jacobian": (m, n1)}
    dtype = {"chart": np.int64, "weights": np.float64, "omega2": np.float64}.get(field, np.complex128)
    return np.zeros((0,) + shapes[field], dtype=dtype)


def check_chart(surface, chart, *, error=ConfigError, name="chart"):
    """The chart as a tuple (I, J) of ints, or `error` naming argument `name` and the valid range (ValueError:
    TypeError for what is not a pair of integers). Indices are Python or NumPy integers; a float (1.0 too) or a bool
    is refused, not converted: a chart is a pair of coordinate indices, never a count that 1e5 may spell."""
    if chart is None:
        return None
    type_error = error if error is not ValueError else TypeError
    if np.ndim(chart) != 1 or np.size(chart) != 2:
        raise type_error(f"{name}={chart!r} is not a pair; pass {name}=(I, J): scale index I, eliminated index J")
    given = tuple(x.item() if isinstance(x, np.generic) else x for x in chart)
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in given):
        raise type_error(f"{name}={given!r}: an index is not an integer; pass integers I, J (scale index I, "
                         "eliminated index J), e.g. (0, 1)")
    if given not in surface.charts:
        raise error(f"{name} {given} does not exist on P^{surface.n}: need 0 <= I, J <= {surface.n} and I != J")
    return given

