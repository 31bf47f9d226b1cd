"""DIR/nn.h5 of an `hpcflow nn` run (docs/outputs.md, "nn: nn.h5"): what it holds, and the one judge of a file
against that, `fault`, which `hpcflow nn --resume` asks of a finished run's nn.h5 (a file that is not what the run
wrote is written again from checkpoint.pt) and the analysis asks of a run directory's (`hpcflow.analysis.rundir.
completeness`: such a run is damaged, and that resume is its fix), so that the two never disagree. Needs h5py and
NumPy, not torch: the analysis reads it where torch is not installed.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

#: of DIR/nn.h5 (docs/outputs.md), raised when a dataset or attribute changes meaning or place
SCHEMA_VERSION = 1
#: its root attributes
ATTRIBUTES = ("kind", "schema_version", "config", "status", "epoch", "conventions", "geometry_conventions",
              "hpcflow_version")
#: the root attributes that are text
TEXT_ATTRIBUTES = ("kind", "config", "status", "conventions", "geometry_conventions", "hpcflow_version")
#: its @status values (docs/outputs.md): the run trained all its epochs, a tune trial pruned, or a network diverged
STATUSES = ("finished", "stopped", "diverged")
#: the packed metric components of the networks' output (9 = 3 x 3: [geometry].dim = 3)
COMPONENTS = 9
#: the eigenvalues per train probe of a row of ntk/spectrum and ntk/spectrum_train_test (the 9 x 9 blocks pooled)
PER_PROBE = COMPONENTS * COMPONENTS


class Dataset(NamedTuple):
    """A dataset of nn.h5 as a run writes it: its shape, each axis an int (that length), a str (a length that every
    dataset naming it shares, whatever it is) or None (any), and its dtype (a NumPy dtype's str, or "str": h5py's
    variable-length UTF-8 text)."""

    shape: tuple
    dtype: str


F8, I8, C16, TEXT = "<f8", "<i8", "<c16", "str"
#: history/: name -> (rows: the epochs plus this, dtype)
HISTORY = {"sigma_train": (1, F8), "sigma_val": (1, F8), "loss": (0, F8), "epoch_seconds": (0, F8),
           "comm_seconds": (0, F8), "val_not_positive_definite": (1, I8)}
#: the per-epoch ntk/ datasets of one value per epoch
NTK_SERIES = ("ntk_seconds", "wasserstein", "wasserstein_full", "rel_frobenius")
#: ntk/ datasets written only with as many test as train probes (P = Q: the train x test blocks are square)
NTK_SQUARE = ("spectrum_train_test", "wasserstein_train_test")
#: width_sweep/: name -> dtype (one value per width)
SWEEP = {"width": I8, "lr": F8, "n_parameters": I8, "sigma_val_initial": F8, "sigma_val_final": F8,
         "rel_frobenius_final": F8, "wasserstein_final": F8, "seconds": F8, "stopped": TEXT}
#: kernel_flow/: name -> the length its axis shares (the flow's steps, which may stop early; the network's epochs,
#: which may end at a divergence)
KERNEL_FLOW = {"sigma_train": "flow steps", "sigma_test": "flow steps", "nn_sigma_train": "network epochs",
               "nn_sigma_test": "network epochs"}
#: datasets added to schema 1 after it was introduced: an nn.h5 of an earlier hpcflow is a whole schema-1 file without
#: them (the readers take them as optional: `analysis.histories.load` and `nn_definite_mark`), so `fault` checks
#: them where they are present and does not ask for them
ADDED = ("history/val_not_positive_definite", "width_sweep/stopped")
#: datasets that hold only finite values in a run's file, but for the last epoch of one whose @status is "diverged"
#: (its network diverged in epoch 0: there is no finite state to go back to); the others may hold NaN (the seconds in
#: collectives of epochs run at another rank count, a diverged width-sweep or kernel-flow network)
FINITE = ("history/sigma_train", "history/sigma_val", "history/loss", "ntk/spectrum", "ntk/spectrum_full",
          "ntk/wasserstein", "ntk/wasserstein_full", "ntk/rel_frobenius")
#: the histories of checkpoint.pt's train.history that nn.h5 holds as they are (not the wall-clock seconds, nor
#: comm_seconds, whose columns follow the rank count of the leg that wrote nn.h5)
SAME_AS_CHECKPOINT = ("sigma_train", "sigma_val", "loss", "val_not_positive_definite")
#: the checkpoint.pt statuses of a run whose nn.h5 the run wrote at the checkpoint's epoch (`fault`'s `state`)
WRITTEN_WITH = ("finished", "diverged")


def datasets(cfg: dict, epoch: int, status: str) -> dict:
    """{name: Dataset} of the nn.h5 of a run of job `cfg` that wrote it after `epoch` epochs with `status`: the
    histories, the NTK's where [ntk].enabled, and where the run trained all its epochs (not "stopped", nor its network
    diverged before the last) the width sweep's and the kernel flow's where it has them."""
    ntk, e = cfg["ntk"], int(epoch)
    out = {f"history/{k}": Dataset((e + extra,), dtype) for k, (extra, dtype) in HISTORY.items()}
    out["history/comm_seconds"] = Dataset((e, "ranks"), F8)
    if ntk["enabled"]:
        p, q, m, coords = ntk["n_train_points"], ntk["n_test_points"], COMPONENTS, cfg["geometry"]["dim"] + 2
        out.update({"ntk/points_train": Dataset((p, coords), C16), "ntk/points_test": Dataset((q, coords), C16),
                    "ntk/ntk_train_train": Dataset((e + 1, m, m, p, p), F8),
                    "ntk/ntk_train_test": Dataset((e + 1, m, m, p, q), F8),
                    "ntk/ntk_test_test": Dataset((e + 1, m, m, q, q), F8),
                    "ntk/spectrum": Dataset((e + 1, PER_PROBE * p), F8),
                    "ntk/spectrum_full": Dataset((e + 1, m * p), F8),
                    **{f"ntk/{k}": Dataset((e + 1,), F8) for k in NTK_SERIES}})
        if p == q:
            out.update({"ntk/spectrum_train_test": Dataset((e + 1, PER_PROBE * p), C16),
                        "ntk/wasserstein_train_test": Dataset((e + 1,), F8)})
    if status != "stopped" and e >= cfg["training"]["epochs"]:  # what follows the training ran
        if cfg["width_sweep"]["widths"]:
            w = len(cfg["width_sweep"]["widths"])
            out.update({f"width_sweep/{k}": Dataset((w,), dtype) for k, dtype in SWEEP.items()})
        if cfg["kernel_flow"]["enabled"]:
            out.update({f"kernel_flow/{k}": Dataset((rows,), F8) for k, rows in KERNEL_FLOW.items()})
    return out


def fault(path: str, *, epoch: int | None = None, state: dict | None = None) -> str | None:
    """Why the nn.h5 at `path` is not the file a run writes, or None: "missing", "damaged" (h5py cannot open it or
    walk it: cut short, not HDF5) or "damaged (...)": an attribute missing or not its kind (@kind, @schema_version,
    @config a job of kind "nn", @status one of STATUSES, @epoch a count), a dataset missing or of another shape or
    dtype than `datasets` of its own @config, @epoch and @status (but those added to schema 1 later, `ADDED`, which an
    earlier writer's file lacks), a NaN or inf where a run writes finite values (`FINITE`). Where given, `epoch` is the
    epochs of the run's checkpoint.pt, and `state` its entries (those a caller has: "status", "config", "train":
    {"epoch", "history"}): where that checkpoint is of a run that wrote nn.h5 (its status in WRITTEN_WITH), the file
    must say its epochs, its status and its job (but what --resume may change: `hpcflow.nn.job.resume_key`), and hold
    its histories (`SAME_AS_CHECKPOINT`), bit for bit. A run's files are judged by what they should hold, not only by
    whether they open: a partial copy, or an edit that dropped a dataset or changed a value, was a finished run's
    nn.h5 to `hpcflow nn --resume` ("nothing to do") while the analysis called it damaged."""
    import h5py

    from hpcflow.h5read import DAMAGED

    if not os.path.lexists(path):
        return "missing"
    if not os.path.isfile(path):
        return None  # (not a file: refused as an output path where it matters)
    if state is not None and epoch is None:
        epoch = _int(state.get("train", {}).get("epoch")) if isinstance(state.get("train"), dict) else None
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda _name, _obj: None)
            why = contents_fault(f, epoch=epoch, state=state)
    except DAMAGED:
        return "damaged"
    return None if why is None else f"damaged ({why})"


def contents_fault(f, *, epoch: int | None = None, state: dict | None = None) -> str | None:
    """`fault`'s judgement of the contents of open file `f`."""
    missing = [k for k in ATTRIBUTES if k not in f.attrs]
    if missing:
        return f"attribute {missing[0]} missing"
    attrs = {k: _text(f.attrs[k]) if k in TEXT_ATTRIBUTES else f.attrs[k] for k in ATTRIBUTES}
    wrong = next((k for k in TEXT_ATTRIBUTES if attrs[k] is None), None)
    if wrong is not None:
        return f"attribute {wrong} is not text"
    if attrs["kind"] != "hpcflow.nn":
        return f"attribute kind = {attrs['kind']!r}, not 'hpcflow.nn'"
    if _int(attrs["schema_version"]) != SCHEMA_VERSION:
        return f"attribute schema_version = {_short(attrs['schema_version'])}, not {SCHEMA_VERSION}"
    status, written = attrs["status"], _int(attrs["epoch"])
    if status not in STATUSES:
        return f"attribute status = {_short(status)}, none of {', '.join(STATUSES)}"
    if written is None or written < 0:
        return f"attribute epoch = {_short(attrs['epoch'])}, not a count of epochs"
    cfg, why = _job(attrs["config"])
    if cfg is None:
        return why
    try:
        want = datasets(cfg, written, status)
    except (TypeError, ValueError, KeyError, AttributeError):
        return "attribute config is not an nn job"
    if epoch is not None and written != int(epoch):
        return f"attribute epoch = {written}, where checkpoint.pt holds {int(epoch)} epochs"
    why = _datasets_fault(f, want, status)
    if why is None and state is not None and state.get("status") in WRITTEN_WITH:
        why = _checkpoint_fault(f, cfg, status, state)
    return why


def _datasets_fault(f, want: dict, status: str) -> str | None:
    """Why the datasets of open file `f` are not `want` (`datasets`), or None."""
    import h5py

    lengths = {}  # the shared lengths (str axes) as first met
    for name, spec in want.items():
        if name in ADDED and name not in f:
            continue  # a file of a writer before it (schema 1 all the same)
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset):
            return f"dataset {name} missing"
        if spec.dtype == TEXT:
            if h5py.check_string_dtype(ds.dtype) is None:
                return f"dataset {name} of dtype {ds.dtype}, not text"
        elif ds.dtype != np.dtype(spec.dtype):
            return f"dataset {name} of dtype {ds.dtype}, not {np.dtype(spec.dtype)}"
        if name == "history/comm_seconds" and ds.shape == (0,) == spec.shape[:1]:
            continue  # a run of 0 epochs of a writer before comm_seconds was (E, R) for E = 0 too
        if len(ds.shape) != len(spec.shape) or not all(_fits(n, axis, lengths) for n, axis in zip(ds.shape,
                                                                                                   spec.shape)):
            return f"dataset {name} of shape {ds.shape}, not {_shape_text(spec.shape, lengths)}"
    for name in FINITE:
        if name in want and f[name].size:
            values = f[name][()]
            rows = values if status != "diverged" else values[:-1]
            bad = np.flatnonzero(~np.isfinite(rows).reshape(rows.shape[0], -1).all(axis=1)) if rows.size else ()
            if len(bad):
                return f"dataset {name} holds a NaN or inf at epoch {bad[0]}, where a run writes finite values"
    return None


def _checkpoint_fault(f, cfg: dict, status: str, state: dict) -> str | None:
    """Why open file `f` (of job `cfg` and @status `status`, its @epoch the checkpoint's) is not what the run of
    checkpoint entries `state` wrote: another @status, another job (but what --resume may change), a history
    (`SAME_AS_CHECKPOINT`) other than the checkpoint's where `state` holds them; None where it is."""
    from hpcflow.errors import UserError
    from hpcflow.nn.job import effective, resume_key, with_defaults

    if status != state["status"]:
        return f"attribute status = {status!r}, where checkpoint.pt says {state['status']!r}"
    theirs, _ = _job(state.get("config"))
    if theirs is not None:
        try:
            mine_key, their_key = (json.loads(resume_key(effective(with_defaults(c)))) for c in (cfg, theirs))
        except UserError:  # (a ConfigError is a ValueError too: a refusal is said, not taken for the same job)
            raise
        except (TypeError, ValueError, KeyError, AttributeError):
            mine_key = their_key = None
        if mine_key != their_key:
            keys = sorted(f"[{s}].{k}" for s in set(mine_key) | set(their_key)
                          for k in set(_table(mine_key, s)) | set(_table(their_key, s))
                          if _table(mine_key, s).get(k, _ABSENT) != _table(their_key, s).get(k, _ABSENT))
            return f"attribute config is another job than checkpoint.pt's (in {', '.join(keys[:3]) or 'its tables'})"
    train = state.get("train")
    hist = train.get("history") if isinstance(train, dict) else None
    for k in SAME_AS_CHECKPOINT if isinstance(hist, dict) else ():
        name = f"history/{k}"
        if k not in hist or name not in f:
            continue  # (a checkpoint or file written before the count was recorded)
        mine, theirs = f[name][()], np.asarray(hist[k])
        floats = mine.dtype.kind == "f" and theirs.dtype.kind == "f"  # (NaN as NaN: a diverged run's last epoch)
        if mine.shape != theirs.shape or not np.array_equal(mine, theirs, equal_nan=floats):
            at = _first_difference(mine, theirs)
            return f"dataset {name} differs from checkpoint.pt's train.history.{k}{at}"
    return None


def _first_difference(a, b) -> str:
    """' at epoch E' of the first differing value of two 1-d series of one length, '' otherwise."""
    if a.shape != b.shape or a.ndim != 1:
        return ""
    differ = np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b))) if a.dtype.kind == "f" else a != b)
    return f" at epoch {differ[0]}" if len(differ) else ""


#: a key one job lacks (`_checkpoint_fault`)
_ABSENT = object()


def _table(cfg, section) -> dict:
    value = cfg.get(section) if isinstance(cfg, dict) else None
    return value if isinstance(value, dict) else {}


def _job(text) -> tuple[dict | None, str]:
    """(the job, "") of an @config text (or checkpoint.pt's config entry), with the keys its schema added later
    (`hpcflow.nn.job.with_defaults`); (None, why) where it is not JSON, not a table or not a job of kind "nn"."""
    from hpcflow.nn.job import with_defaults

    try:
        cfg = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser follows
        cfg = None
    if not isinstance(cfg, dict):
        return None, "attribute config is not a JSON table"
    job = cfg.get("job")
    if not isinstance(job, dict) or job.get("kind") != "nn":
        return None, "attribute config is not an nn job ([job].kind is not \"nn\")"
    try:
        return with_defaults(cfg), ""
    except (TypeError, ValueError, KeyError, AttributeError):
        return None, "attribute config is not an nn job"


def _fits(n: int, axis, lengths: dict) -> bool:
    """Whether an axis of length n is the `axis` of a Dataset's shape (binding a shared length at its first use)."""
    if axis is None:
        return True
    if isinstance(axis, str):
        return lengths.setdefault(axis, n) == n
    return n == axis


def _shape_text(shape: tuple, lengths: dict) -> str:
    """A Dataset's shape as a message says it: its lengths, a shared one known as its value, else named."""
    axes = [str(lengths.get(a, a)) if isinstance(a, str) else "any" if a is None else str(a) for a in shape]
    return f"({axes[0]},)" if len(axes) == 1 else f"({', '.join(axes)})"


def _text(value) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _int(value) -> int | None:
    """An integer attribute or entry as an int (NumPy integers too), None for anything else (a bool, a float, text)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def _short(value) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."
