"""`hpcflow sample`: sample points on a Calabi-Yau hypersurface and write a PointSet HDF5 file."""

from __future__ import annotations

import argparse
import os
import sys
import time

from hpcflow.arguments import MAX_BATCHES
from hpcflow.errors import ConfigError, OutputPathError
from hpcflow.resources import add_memory_check_argument

MANIFOLDS = ("fermat", "dwork")
#: the options every rank must be given alike (each rank's --threads is its own): ranks of an MPMD launch with
#: different ones sampled into a traceback (`n_points differs between ranks`), or, with another --out, only failed
#: in the write after all the sampling
AGREED_OPTIONS = ("manifold", "dim", "psi", "n", "seed", "chart", "max_batches", "out", "force")
#: --max-batches's default is the sampler's (`Hypersurface.sample`): hpcflow.arguments.MAX_BATCHES


def check_arguments(args, *, memory: bool = True) -> dict:
    """Validate the sampling arguments like job-file values (hpcflow.jobs.schema fields), then (with `memory`) the
    memory the sample needs (`check_sample_resources`, for this process's threads); returns them as the "sample"
    configuration."""
    from hpcflow.jobs.schema import MANIFOLD_FIELDS, MAX_PSI, MAX_THREADS, Field, placeable, validate_field
    from hpcflow.resources import check_environment

    check_environment()
    fields = {"manifold": MANIFOLD_FIELDS["manifold"], "dim": MANIFOLD_FIELDS["dim"],
              "n": Field(int, lo=1, help="number of points"),
              "threads": Field(int, None, lo=1, hi=MAX_THREADS, help="sampling threads"),
              "max_batches": Field(int, MAX_BATCHES, lo=1, help="the most batches sampled")}
    cfg = {k: validate_field(f"--{k.replace('_', '-')}", getattr(args, k, f.default), f) for k, f in fields.items()
           if getattr(args, k, f.default) is not None}
    check_seed(args.seed)
    psi = complex(args.psi)
    for part in (psi.real, psi.imag):  # finite; a |psi| too large for float64 roots is refused by the sampler's
        validate_field("--psi", part, Field(float))  # accuracy check, as the API's `sample` refuses it
    if abs(psi) > MAX_PSI:
        raise ConfigError(f"--psi = {args.psi}: |psi| = {abs(psi):.6g} must be <= {MAX_PSI:g} (float64 roots are "
                          "placed on X only far below it: the sampler refuses |psi| above ~5e4 at dim 3); change it")
    if psi and cfg.get("manifold", "fermat") == "fermat":
        raise ConfigError("--psi applies to --manifold dwork only; add --manifold dwork or drop --psi")
    if psi and cfg.get("manifold") == "dwork":  # the sampler's accuracy check, before --out is touched
        try:
            placeable(cfg.get("dim", MANIFOLD_FIELDS["dim"].default), psi)
        except ConfigError as exc:
            said = f"{psi.real:g}" if psi.imag == 0 else f"{psi:g}"
            raise ConfigError(f"--psi {said} is refused by the sampler: {exc}; give a --psi inside that bound") \
                from None
    cfg.update(psi=psi, chart=args.chart, threads=args.threads)
    if memory:
        check_sample_resources(args, cfg)
    return cfg


def check_sample_resources(args, cfg: dict, threads: int | None = None) -> None:
    """The memory checks of `check_arguments` (`check_memory`, then `hpcflow.resources.check_resources`) for ranks
    of `threads` sampling threads each (None: --threads, else this process's, `backend.default_threads`). `run`
    makes them after `limit_threads`, with the count the sampler then uses (under mpiexec a rank's share of the CPUs,
    not all those its process may use)."""
    from hpcflow.parallel.comm import size

    if cfg.get("threads") is None and threads is not None:
        cfg = {**cfg, "threads": threads}
    if not getattr(args, "no_memory_check", False):
        check_memory(cfg, size())
    from hpcflow.resources import check_resources

    check_resources({"sample": cfg}, "sample", ranks=size(), force=getattr(args, "no_memory_check", False),
                    source=f"--n {cfg['n']} --dim {cfg['dim']}")


def check_memory(cfg: dict, ranks: int) -> None:
    """ConfigError where the sampling's peak on rank 0 (`hpcflow.geometry.sampling.check_sample_memory`: layout
    "root", the model of `hpcflow.resources.estimate_sample`) for cfg["threads"] threads (None: this process's,
    `backend.default_threads`) exceeds what this process may use, stating the largest --n that fits by that model
    (which the check then takes: one point more is refused)."""
    from hpcflow.geometry import Hypersurface
    from hpcflow.geometry.sampling import check_sample_memory
    from hpcflow.jobs.schema import MANIFOLD_FIELDS
    from hpcflow.backend import default_threads
    from hpcflow.resources import local_ranks

    local = local_ranks(ranks)
    more = (f", or run fewer ranks on the node (its {local} ranks share its memory, and rank 0 gathers all the "
            "points beside its own share: more ranks raise its peak)" if local > 1 else
            " (more ranks or nodes do not lower the peak: rank 0 gathers all the points beside its own share)")
    dim = cfg.get("dim", MANIFOLD_FIELDS["dim"].default)
    threads = default_threads() if cfg.get("threads") is None else cfg["threads"]
    check_sample_memory(Hypersurface.fermat(dim), cfg["n"], layout="root", ranks=ranks, threads=threads,
                        chart=cfg.get("chart"), error=ConfigError, said=f"--n {cfg['n']} --dim {dim}",
                        advice="give --n {fits} or less (several files with different --seed for more) or ask for "
                        f"more memory{more}, or pass --no-memory-check")


def check_seed(seed) -> None:
    """--seed: any integer >= 0, as the API's `sample` takes (no int64 bound: a command line is not a TOML file), so
    that the seed a PointSet file records (@seed, also the 128-bit entropy of a draw with seed=None) can be given
    back to reproduce its points."""
    if seed is not None and seed < 0:
        raise ConfigError(f"--seed = {seed} must be an integer >= 0 (of any size); fix it")


def check_replaceable(path: str) -> None:
    """OutputPathError (one line) where the existing file --out names (through a link, the file it leads to, which
    the write replaces) cannot be replaced although its directory is writable: immutable or append-only (chattr +i,
    +a: EPERM), found by opening it for writing without truncating it, so that --force is refused before the
    sampling, not after it. A file only its permission bits keep from writing (EACCES) is replaced by the rename,
    as before; what is no regular file, and other errors, are left to the write."""
    import errno

    from hpcflow.atomic import link_target

    dest = link_target(path)
    if not os.path.isfile(dest):
        return
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno != errno.EPERM:  # (EACCES, ETXTBSY: the rename replaces the file all the same)
            return
        via = f" (the target of the link {path})" if dest != path else ""
        raise OutputPathError(f"--out {path}: the existing file {dest}{via} cannot be replaced ({exc.strerror}: e.g. "
                              f"immutable or append-only, chattr +i / +a), so --force could not write it; make it "
                              f"replaceable (chattr -i -a {dest}) or choose another --out") from None
    os.close(fd)


def pointset_refusal(path: str) -> str | None:
    """Why the file --out names (through a link, the file it leads to) is not one --force may replace, or None: it
    replaces only a PointSet file (root attribute kind = 'hpcflow.PointSet', as `PointSet.save` writes it), never a
    file of another kind (a run's checkpoint.h5 or nn.h5, a text file, a device or FIFO: its type read with os.stat,
    never opened) nor any file in a run's output directory (DIR/job.toml written by a run), whose file it would be.
    None where there is no such file (a new file is written)."""
    import stat

    import h5py

    from hpcflow.atomic import link_target
    from hpcflow.geometry.pointcheck import KIND, attribute_text
    from hpcflow.jobs.output import saved_job_kind

    dest = link_target(path)
    try:
        mode = os.stat(dest).st_mode
    except (OSError, ValueError):
        return None  # (missing, a dangling link: nothing replaced; what cannot be read is left to the write)
    what = f"the existing file {dest} (the target of the link {path})" if dest != path else "the existing file"
    if not stat.S_ISREG(mode):
        return f"{what} is not a regular file"
    parent = os.path.dirname(dest) or os.curdir
    if saved_job_kind(parent) is not None:
        return f"{what} is in the output directory of an hpcflow run ({os.path.join(parent, 'job.toml')})"
    try:
        with h5py.File(dest, "r") as f:
            kind = attribute_text(f.attrs, "kind") if "kind" in f.attrs else None
    except Exception:  # noqa: BLE001 - not HDF5, damaged, cut short or unreadable: not known to be a PointSet
        return f"{what} is not an HDF5 file that can be read"
    if kind != KIND:
        of = f"of kind {kind!r}" if isinstance(kind, str) else "without attribute 'kind'"
        return f"{what} is an HDF5 file {of}, not a PointSet file"
    return None


def check_force_replaces(path: str) -> None:
    """OutputPathError (one line, the file left as it is) where --force would replace a file that is not a PointSet
    file `hpcflow sample` wrote (`pointset_refusal`)."""
    why = pointset_refusal(path)
    if why is not None:
        raise OutputPathError(f"--out {path}: {why}; --force replaces only a PointSet file written by hpcflow sample: "
                              "choose another --out, or remove the file yourself")


def build_manifold(name: str, dim: int, psi: complex = 0.0):
    from hpcflow.geometry import Hypersurface

    if name not in MANIFOLDS:
        raise ConfigError(f"--manifold {name!r} is unknown; use one of {', '.join(MANIFOLDS)}")
    return Hypersurface.fermat(dim) if name == "fermat" else Hypersurface.dwork(dim, psi)


def run(args) -> int:
    """Sample (under mpiexec: ranks sample disjoint blocks, rank 0 gathers) and write one file from rank 0."""
    from hpcflow.geometry.sampling import check_chart
    from hpcflow.jobs.output import check_output_file, probed_directory, probes_shared
    from hpcflow.parallel.comm import (abort_on_error, agree_together, check_launch, is_root, limit_threads,
                                       oversubscribed, refuse_together)
    from hpcflow.resources import skipped_memory_check, work_began
    from hpcflow.stop_signals import finished, interrupts_end_the_job

    check_launch()

    def checks():
        # the environment too: a bad HPCFLOW_QUIET is refused before --quiet sets it; the memory after limit_threads
        cfg = check_arguments(args, memory=False)
        check_output_file(args.out, force=args.force)
        if args.force:
            check_force_replaces(args.out)
            check_replaceable(args.out)
        X = build_manifold(args.manifold, args.dim, complex(args.psi))
        check_chart(X, args.chart)
        return X, cfg

    with abort_on_error() as c, interrupts_end_the_job("hpcflow sample"):
        # a check failing on some ranks only (node-local paths): all refuse; --out's write probe made by rank 0 alone
        with probes_shared([probed_directory(args.out, file=True)], c):
            X, cfg = refuse_together(checks, c)
        agree_together({f"--{name}": getattr(args, name) for name in AGREED_OPTIONS}, comm=c,
                       fix="start every rank with the same options (one command line after mpiexec -n R)")
        # the CPUs this rank owns (HPCFLOW_THREADS, Slurm's, its share of the node), as hpcflow run; the points do not
        # depend on the threads, which each rank may choose (--threads too)
        threads = limit_threads(c, unequal_said=False)
        said = None if args.threads is None else oversubscribed(
            args.threads, f"--threads {args.threads}", "pass --threads {at_most}, or leave it out (each rank then "
            "takes its own CPUs)")  # (the line HPCFLOW_THREADS gets from limit_threads)
        if said is not None:
            print(said, file=sys.stderr, flush=True)
        # the memory a rank's sampling needs, for the threads it will sample with (those limit_threads gave, or
        # --threads), before any work; a rank whose node has less memory refuses for all
        refuse_together(lambda: check_sample_resources(args, cfg, threads), c)
        if getattr(args, "quiet", False):
            os.environ["HPCFLOW_QUIET"] = "1"  # no progress bars (hpcflow.progress); the summary lines stay
        work_began()  # memory that runs out from here on is the sampling's, not the start-up's
        t0 = time.perf_counter()
        # (the sampler's own memory check is the one check_sample_resources made, by the same model and threads
        # (`check_memory`), so it is not made again: under an address-space limit what this process maps grows by a
        # few MiB meanwhile, and a second measure would refuse the --n the first had stated)
        with skipped_memory_check():
            ps = X.sample(args.n, seed=args.seed, chart=args.chart, threads=args.threads, layout="root",
                          max_batches=args.max_batches, batches_said="--max-batches")
        dt = time.perf_counter() - t0
        if args.force:  # (a file put at --out while this one sampled: replaced only where it is a PointSet file too)
            refuse_together(lambda: check_force_replaces(args.out), c)
        try:
            ps.save(args.out, force=args.force)
        except OutputPathError:
            if args.force or not os.path.lexists(args.out):
                raise
            raise OutputPathError(f"--out {args.out} was created by another process while this one sampled; it is "
                                  "left as it is and nothing was written: choose another --out, or pass --force to "
                                  "overwrite it") from None
        finished()  # --out is written: a stop request from here on is ignored
        args.written = args.out  # (named where the log below cannot be written: `cli.log_refused`)
    if not is_root():
        return 0
    print(f"manifold      {X.name} dim={X.dim} (P^{X.n}, degree {X.degree})")
    if ps.other_charts is None:
        print(f"points        {len(ps)} (dropped {ps.n_dropped} of the {ps.intersections} intersection points "
              "sampled: ambiguous charts or unconverged roots)")
    else:  # the points sampled lie in every chart: those of the others are neither kept nor dropped
        chart = tuple(int(i) for i in ps.sampled_chart)
        print(f"points        {len(ps)} in chart {chart} (of the {ps.intersections} intersection points sampled, "
              f"{ps.other_charts} lie in other charts and {ps.n_dropped} were dropped: ambiguous charts or unconverged "
              "roots)")
    print(f"sigma_FS      {ps.sigma():.6f}")
    print(f"sample time   {dt:.3f} s ({len(ps) / dt:,.0f} points/s)")
    print(f"written       {args.out}")
    return 0


def _complex(s: str) -> complex:
    try:
        return complex(s.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a complex number; write e.g. 0.5 or 0.1+0.2j") from None


class _AsTyped(int):
    """An integer that shows as it was typed: --n 1e30 in a message (`validate_field`, the memory check), not the
    31 digits of the float 1e30 is."""

    def __new__(cls, value: int, text: str):
        self = super().__new__(cls, value)
        self.text = text
        return self

    def __repr__(self):
        return self.text

    __str__ = __repr__

    def __getnewargs__(self):  # (pickled between ranks)
        return int(self), self.text


def _count(text: str) -> int:
    """--n as an integer, also written as a whole number in float notation (1e5, as the API's sample(1e5)), which
    then shows as typed (`_AsTyped`)."""
    import argparse
    import math

    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value.is_integer()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; write e.g. 100000 or 1e5")
    return _AsTyped(int(value), text.strip())


def _integer(example: str):
    """The argparse type of an integer option (--dim, --seed, --chart, --threads): digits, as `hpcflow run`'s job
    values and the counts of tune and submit are written (2.0 is refused there too; --n alone takes 1e5); the
    refusal says so, not argparse's "invalid int value"."""
    import argparse
    import re
    import sys

    def integer(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            pass
        if re.fullmatch(r"\s*[+-]?[0-9_]+\s*", text):  # digits beyond what int() reads (sys.set_int_max_str_digits)
            limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
            raise argparse.ArgumentTypeError(f"{text[:40]!r}... has more than {limit} digits; give a shorter integer")
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer; write it in digits, e.g. {example}")

    return integer


def register(sub) -> None:
    p = sub.add_parser("sample", help="sample points on a CY hypersurface (Shiffman-Zelditch) to HDF5")
    p.add_argument("--manifold", default="fermat", help="fermat | dwork (default fermat)")
    p.add_argument("--dim", type=_integer("3"), default=3,
                   help="complex dimension n of the hypersurface in P^(n+1), 1-16 (1 torus, 2 K3, 3 quintic; default "
                   "%(default)s)")
    p.add_argument("--psi", type=_complex, default=0.0,
                   help="Dwork parameter psi, e.g. 0.5 or 0.1+0.2j; a value starting with '-' as --psi=-0.5+0.2j "
                   "(dwork only; |psi| <= 1e9, and the sampler refuses a |psi| whose roots float64 cannot place "
                   "on X, above ~5e4 at dim 3, saying the |psi| it takes; default %(default)s)")
    p.add_argument("--n", type=_count, required=True, help="number of points (100000 or 1e5)")
    p.add_argument("--seed", type=_integer("0"), default=0,
                   help="random seed, any integer >= 0 (a file's @seed reproduces its points, with --chart I J where "
                   "the file records @sampled_chart = [I, J]; default 0)")
    p.add_argument("--chart", type=_integer("0 1"), nargs=2, metavar=("I", "J"), default=None,
                   help="keep only points whose chart is (scale index I, eliminated index J); recorded in the file "
                   "as @sampled_chart")
    p.add_argument("--threads", type=_integer("4"), default=None,
                   help="sampling threads (default: $HPCFLOW_THREADS, else the CPUs this rank owns, as in hpcflow run)")
    p.add_argument("--max-batches", type=_integer("1000"), default=MAX_BATCHES,
                   help="the most batches of lines sampled, an integer >= 1: past them (or once a --chart's rate "
                   "shows they cannot give --n points) the command stops with exit 2 (default %(default)s)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out file that is a PointSet file hpcflow sample wrote (any other file "
                        "is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, nor its plain lines in a log (as "
                   "HPCFLOW_QUIET=1)")
    add_memory_check_argument(p)
    p.set_defaults(func=run)
