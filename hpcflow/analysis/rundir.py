"""Run directories as offline analysis reads them: the files a run wrote, its completeness, named datasets.

Layout and completeness follow the run-directory contract (README, "Job files"): summary.json is written
last; a run is complete when summary.json exists and its `checkpoint_step` equals checkpoint.h5's `step`, and
checkpoint.h5 is one that --resume reads (else the run is damaged, whatever its summary says).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass

import h5py
import numpy as np

from hpcflow.errors import InputFileError
from hpcflow.h5read import DAMAGED, IN_USE_FIX, in_use, locked, one_line, permission_denied, read_h5
from hpcflow.jobs.outlock import live_holder
from hpcflow.jobs import output as _output
from hpcflow.names import shown
from hpcflow.nn import files as nn_files
from hpcflow.nn import torch_available
from hpcflow.nn._torch import INSTALL_HINT as TORCH_HINT

CHECKPOINT = "checkpoint.h5"
SUMMARY = "summary.json"
NN = "nn.h5"
#: a network run's training checkpoint (before nn.h5 exists: the only record of an interrupted run)
NN_CHECKPOINT = nn_files.CHECKPOINT
NOISE_SCAN = "noise_scan.h5"
LOCAL_LIMIT = "local_limit.h5"
DISTANCES = "distances.h5"
FIG2 = "fig2_distances.h5"
JOURNAL = "study.journal"
#: the data files a run writes under these names (a path to one of them stands for its run directory)
DATA_FILES = (CHECKPOINT, NN, NN_CHECKPOINT, NOISE_SCAN, DISTANCES, FIG2)


class _Snapshot:
    """What `one_snapshot` holds: the data files of live runs pinned as first opened, their summaries as first read,
    and each directory's lock holder as first asked."""

    def __init__(self):
        self.dir = None  # links to the pinned files under their own names, made at the first
        self.fds, self.files, self.summaries, self.holders = [], {}, {}, {}
        self.read = {}  # what `snapshot_of` read, by its key

    def link(self, fd: int, name: str) -> str:
        """A new link named `name` to descriptor `fd` (/proc/self/fd/FD)."""
        import tempfile

        self.dir = self.dir or tempfile.mkdtemp(prefix="hpcflow-snapshot-")
        link = os.path.join(self.dir, str(len(os.listdir(self.dir))), name)
        os.mkdir(os.path.dirname(link))
        os.symlink(f"/proc/self/fd/{fd}", link)
        return link

    def close(self) -> None:
        import shutil

        for fd in self.fds:
            os.close(fd)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


#: the snapshot of `one_snapshot`, None outside it
_SNAPSHOT: _Snapshot | None = None


@contextmanager
def one_snapshot():
    """Read every run as it was when the block first read it: a live run (one whose directory's lock a process
    holds: `hpcflow.jobs.outlock.live_holder`) replaces its checkpoint, and writes its summary, while a report reads
    its row, its Table 1 row and its figures one after another, which then showed two checkpoints (the row step 75's
    sigma, the sigma histories step 90's). Inside the block each data file of a live run is read through a descriptor
    opened at its first read (`pinned`: the file as it was then, however often it is replaced since), its summary.json
    as first read, and each directory's holder as first asked (`holder`: a run that ends meanwhile is still the live
    run its row says). Other runs' files are read as they are (nothing writes them). Without /proc/self/fd (not Linux)
    the files are read by their names."""
    global _SNAPSHOT
    if _SNAPSHOT is not None:
        yield
        return
    _SNAPSHOT = _Snapshot()
    try:
        yield
    finally:
        snapshot, _SNAPSHOT = _SNAPSHOT, None
        snapshot.close()


def snapshot_of(key, read):
    """read(), inside `one_snapshot` once per `key` (its first value returned again: a study still running read by
    a report's runs table and by its Optuna section is one snapshot of it); an error is raised each time."""
    if _SNAPSHOT is None:
        return read()
    if key not in _SNAPSHOT.read:
        _SNAPSHOT.read[key] = read()
    return _SNAPSHOT.read[key]


#: the real paths of the directories this process writes into holding their locks (`writing_into`), each with the
#: bytes its lock file held when this process took it (b"": none)
_WRITING: dict = {}


@contextmanager
def writing_into(out, found: bytes = b""):
    """In the block this process holds directory `out`'s lock to write into it (an analysis script's --out, a
    report's): a run directory there that it reads is no live run's (`holder`), though its lock is held, and its lock
    file is a run's only where it held `found` when this process took it (a killed run's record: `found_lock`)."""
    key = os.path.realpath(out)
    _WRITING[key] = found
    try:
        yield
    finally:
        _WRITING.pop(key, None)


@contextmanager
def out_locked(out, command: str):
    """Hold --out's lock (`hpcflow.jobs.outlock`, as a run holds its directory's) for the block, as `writing_into` it
    (an analysis script's, a report's): another script, report or run writing into `out` meanwhile is refused
    (OutdirBusy, exit 2, naming its pid) before any work; an `out` the lock created is removed again where the block
    fails (nothing was written); a killed run's lock file there is left as it was (`acquire`'s keep)."""
    from hpcflow.jobs.outlock import acquire

    lock = acquire(out, command=command, keep=True)
    failed = True
    try:
        with writing_into(out, lock.found):  # a run directory it reads there is no live run's: the lock is its own
            yield lock
        failed = False
    finally:
        lock.release(remove_dir=failed)


def found_lock(run_dir) -> bytes | None:
    """For a directory this process writes into (`writing_into`), the bytes its lock file held when this process took
    its lock: a killed run's record, b"" where there was none (the lock file is this process's own); None for any
    other directory (its lock file, if any, is a run's)."""
    return _WRITING.get(os.path.realpath(run_dir))


def holder(run_dir) -> str:
    """`live_holder` of directory `run_dir`, as first asked inside `one_snapshot`; "" for a directory this process
    writes into (`writing_into`: the lock is its own)."""
    if os.path.realpath(run_dir) in _WRITING:
        return ""
    if _SNAPSHOT is None:
        return live_holder(run_dir)
    key = os.path.realpath(run_dir)
    if key not in _SNAPSHOT.holders:
        _SNAPSHOT.holders[key] = live_holder(run_dir)
    return _SNAPSHOT.holders[key]


def pinned(path):
    """The path by which to read data file `path`: inside `one_snapshot`, for a live run's file (`holder` of its
    directory), a link under the file's own name to the descriptor opened at its first read (the file as it was then,
    though the run has replaced it since); `path` itself otherwise, and where it cannot be opened or linked (no
    /proc/self/fd, a temporary directory that cannot be written)."""
    if _SNAPSHOT is None or not os.path.isfile(path):
        return path
    real = os.path.realpath(path)
    if real in _SNAPSHOT.files:
        return _SNAPSHOT.files[real]
    if not holder(os.path.dirname(real)):
        return path
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return path
    try:  # (a temporary directory that cannot be made or written: read by name, as without /proc/self/fd)
        link = _SNAPSHOT.link(fd, os.path.basename(real))
    except OSError:
        link = None
    if link is None or not os.path.isfile(link):  # no /proc/self/fd
        os.close(fd)
        return path
    _SNAPSHOT.fds.append(fd)
    _SNAPSHOT.files[real] = link
    return link


@contextmanager
def h5_source(path):
    """What h5py opens for HDF5 file `path` in the block: `path` itself, or for a file `pinned` inside
    `one_snapshot` a Python file object on it (HDF5 resolves a path to its real name, which a replaced file no
    longer has)."""
    link = pinned(path)
    if link is path:
        yield path
        return
    with open(link, "rb") as fh:
        yield fh


def read_summary(run_dir) -> dict | None:
    """`hpcflow.jobs.output.read_summary` of run directory `run_dir`; inside `one_snapshot` a live run's (`holder`)
    as first read (a copy each time)."""
    if _SNAPSHOT is None or not holder(run_dir):
        return _output.read_summary(run_dir)
    import copy

    key = os.path.realpath(os.path.join(os.fspath(run_dir), SUMMARY))
    if key not in _SNAPSHOT.summaries:
        _SNAPSHOT.summaries[key] = _output.read_summary(run_dir)
    return copy.deepcopy(_SNAPSHOT.summaries[key])


def checkpoint_progress(path) -> int | None:
    """`hpcflow.jobs.output.checkpoint_progress` of a checkpoint, read as `pinned`."""
    return _output.checkpoint_progress(pinned(path))


class MissingData(InputFileError):
    """A run directory or HDF5 file lacks the data a figure or table needs (exit status 2)."""


def _unreadable(h5_path, exc, hint: str) -> MissingData:
    """The error for a file h5py cannot open: one that another process holds locked (`hpcflow.h5read.locked`: in
    use, not damaged, and not to be rewritten), another of hpcflow's files (`other_kind`: said so, with `hint`, as
    rewriting a run would lose a good one), or damaged (cut short by a crash, a full disk or a partial copy) or not
    HDF5 at all; both fixes are named."""
    if locked(exc):
        return MissingData(in_use(h5_path, exc))
    if permission_denied(exc):  # not damaged: a rerun would throw away a run that may be whole
        return MissingData(no_permission(h5_path))
    if what := other_kind(h5_path):
        return MissingData(f"{h5_path}: {what}, not an HDF5 data file; {hint}")
    run_dir = os.path.dirname(os.path.abspath(h5_path))
    if os.path.basename(os.fspath(h5_path)) == NN:  # its checkpoint.pt may write it again (as its row says)
        fix = nn_damaged_fix(os.path.dirname(os.fspath(h5_path)) or ".")
    else:
        fix = rerun_fix(run_dir)
    said = f"{h5_path}: not a readable HDF5 file ({one_line(exc)})"
    if is_rerun(fix) and not has_job(run_dir):  # no job to rerun there
        where = os.path.dirname(os.fspath(h5_path)) or "."
        other = "" if hint == fix else f"; else {hint}"
        return MissingData(f"{said}; {no_job(where)}{other}")
    if hint == fix or _its_run(h5_path):  # a reader whose advice is the fix itself, or a file its run wrote: one
        return MissingData(f"{said}: the file is damaged; {fix}")  # sentence, not "if ...: FIX; else FIX"
    fix = fix.replace("the job", "that job", 1)
    return MissingData(f"{said}; if the run wrote it, it is damaged: {fix}; else {hint}")


def no_permission(path, *, directory: bool = False) -> str:
    """The one-line refusal of a file (or with `directory`, a directory) that this user may not read: 'PATH:
    permission denied' and the chmod that lets it be read (a directory needs its x bit as well, to open the files
    in it), never the advice for a damaged file, which would replace a run that may be whole."""
    from hpcflow.jobs.shell import shell_word

    path = os.fspath(path)
    if directory:
        return f"{path}: permission denied (chmod u+rx {shell_word(path)})"
    return f"{path}: permission denied; make it readable (chmod u+r {shell_word(path)})"


def file_refusal(path) -> str:
    """`no_permission` of file `path` where opening it for reading is refused for lack of permission, "" otherwise
    (readable, missing, or failing otherwise: judged by its reader)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return no_permission(path) if permission_denied(exc) else ""
    return ""


#: the files of a run or tune directory that the readers open (`access_refusal` checks each one it holds)
READ_FILES = (*DATA_FILES, LOCAL_LIMIT, SUMMARY, "job.toml", JOURNAL, "study.json")


def access_refusal(path) -> str:
    """Why input `path` (a run or tune directory, with a tune directory's trials, or a data file) cannot be read for
    lack of permission (`no_permission`: the directory that cannot be listed or entered, or the first of its
    READ_FILES that cannot be opened), "" where it can; a path that does not exist is left to its reader."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return file_refusal(path) if os.path.isfile(path) else ""
    try:
        names = os.listdir(path)
        os.stat(os.path.join(path, os.curdir))  # its x bit: the files in it can be opened
    except OSError as exc:
        return no_permission(path, directory=True) if permission_denied(exc) else ""
    for name in sorted(names):
        full = os.path.join(path, name)
        if name in READ_FILES and (why := file_refusal(full)):
            return why
    trials = os.path.join(path, "trials")
    if "trials" in names and os.path.isdir(trials):
        if why := access_refusal(trials):
            return why
        for name in sorted(os.listdir(trials)):
            if os.path.isdir(os.path.join(trials, name)) and (why := access_refusal(os.path.join(trials, name))):
                return why
    return ""


def check_access(paths) -> None:
    """Refuse (InputFileError, exit 2, before any work) the inputs `paths` that this user may not read
    (`access_refusal`), each named in one line with its chmod; storage URLs are left to their readers."""
    refused = [why for p in paths if "://" not in os.fspath(p) and (why := access_refusal(p))]
    if refused:
        raise InputFileError("; ".join(refused))


def _its_run(path) -> bool:
    """Whether data file `path` is its run's: its directory holds the job.toml (`has_job`) and a summary.json of the
    kind that writes a file of its name (DATA_KINDS), so that the run wrote it."""
    run_dir = os.path.dirname(os.path.abspath(path))
    kind = DATA_KINDS.get(os.path.basename(os.fspath(path)))
    return kind is not None and has_job(run_dir) and (read_summary(run_dir) or {}).get("kind") == kind


def has_job(run_dir) -> bool:
    """Whether run directory `run_dir` holds its job.toml (the job that `rerun` reruns)."""
    return os.path.isfile(os.path.join(os.fspath(run_dir), "job.toml"))


#: the beginnings of files hpcflow writes that are not HDF5 (`other_kind`)
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's archive
SQLITE_MAGIC = b"SQLite format 3\x00"
#: what the files of these names in a run or tune directory are
KNOWN = {NN_CHECKPOINT: "a network run's training checkpoint (a torch archive)",
         "model.pt": "a network run's trained model (a torch archive)", SUMMARY: "a run's summary.json (JSON)",
         "job.toml": "a job file (TOML)", JOURNAL: "an Optuna study's journal",
         "study.json": "a tune directory's study record (JSON)",
         "model.pt.json": "a network model's description (JSON)"}


def other_kind(path) -> str:
    """What file `path` is where it is recognisably one of hpcflow's files that are not HDF5 data (a torch archive,
    a job file, a summary, a study's journal or SQLite storage), by its name or its first bytes; "" for an HDF5 file
    (damaged or not) or one of unknown kind."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return ""
    if head.startswith(HDF5_MAGIC):
        return ""
    base = os.path.basename(os.fspath(path))
    if base in KNOWN and (head.startswith(ZIP_MAGIC) or not base.endswith(".pt")):
        return KNOWN[base]
    if head.startswith(ZIP_MAGIC):
        return "a zip archive (as torch saves a network's checkpoint or model)"
    if head.startswith(SQLITE_MAGIC):
        return "an SQLite database (as an Optuna study's storage)"
    ext = os.path.splitext(base)[1]
    return {".toml": "a job file (TOML)", ".json": "a JSON file", ".journal": "an Optuna study's journal"}.get(ext, "")


def data_file(path, name: str, *, hint: str) -> str:
    """`path` itself when it is a file, else `path/name`; MissingData naming the file when it is absent, and when
    `path` is another of hpcflow's files (`other_kind`), naming what it is and the directory beside it that holds
    `name` where there is one (the run's other file was given for its data file)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        what = other_kind(path) if os.path.basename(path) != name else ""
        if what:
            beside = os.path.join(os.path.dirname(path) or ".", name)
            need = (f"pass its run directory {os.path.dirname(path) or '.'} (which holds {name}) or {beside}"
                    if os.path.isfile(beside) else hint)
            raise MissingData(f"{path}: {what}, not {name}{' (HDF5)' if name.endswith('.h5') else ''}; {need}")
        return path
    if not os.path.isdir(path):
        raise MissingData(f"{path}: no such run directory; {hint}")
    full = os.path.join(path, name)
    if not os.path.isfile(full):
        raise MissingData(f"{path}: no {name}; {hint}")
    return full


def check_array(path, name: str, value, *, ndim=None, nonempty: bool = True, hint: str) -> np.ndarray:
    """`value` as a numeric (integer or real) array of `ndim` dimensions (an int or a tuple of them), non-empty
    unless told; MissingData naming the file, the dataset and what it holds otherwise."""
    arr = np.asarray(value)
    what = f"{path}: dataset '{name}'"
    if arr.dtype.kind not in "iuf":
        raise MissingData(f"{what} holds {arr.dtype} data, not numbers; {hint}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        dims = " or ".join(map(str, allowed))
        raise MissingData(f"{what} has shape {arr.shape}, not {dims}-dimensional; {hint}")
    if nonempty and arr.size == 0:
        raise MissingData(f"{what} is empty (shape {arr.shape}); {hint}")
    return arr


def read_datasets(h5_path, names, *, hint: str, optional=(), ndim=None) -> dict:
    """Arrays of the named datasets ("group/name") of an HDF5 file; MissingData naming the first absent one, or
    the first that is not a non-empty numeric array of the dimension `ndim` gives it (`ndim`: {name: int or
    tuple of ints}; names it omits are not checked for dimension).

    Names in `optional` are returned only when present (and may be empty).
    """
    ndim = ndim or {}
    with h5_source(h5_path) as source, read_h5(source, lambda exc: _unreadable(h5_path, exc, hint)) as f:
        for name in names:
            if not isinstance(f.get(name), h5py.Dataset):
                raise MissingData(f"{h5_path}: no dataset '{name}'; {hint}")
        raw = {name: f[name][()] for name in (*names, *optional) if isinstance(f.get(name), h5py.Dataset)}
    return {name: check_array(h5_path, name, value, ndim=ndim.get(name), nonempty=name in names, hint=hint)
            for name, value in raw.items()}


def same_length(path, data: dict, names, *, hint: str) -> int:
    """The common first-axis length of data[name] for `names` (those present); MissingData when they differ."""
    lengths = {name: len(data[name]) for name in names if name in data}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"'{k}' {v}" for k, v in lengths.items())
        raise MissingData(f"{path}: datasets of one table have different lengths ({listed}); {hint}")
    return next(iter(lengths.values()), 0)


def check_range(path, name: str, values, lo: float, hi: float, *, what: str, low_open: bool = False,
                item: str = "dataset") -> None:
    """MissingData naming the file, the dataset (or attribute: `item`) and its first value that is not a finite
    number in [lo, hi] ((lo, hi] with `low_open`), with the index where `values` is an array, as a damaged file
    (`file_rerun`): what a run wrote is always in range, so a value outside it is a damaged or edited file. `what`
    says what the values are ("FS distance", "silhouette score")."""
    arr = np.asarray(values, dtype=float)
    inside = np.isfinite(arr) & (arr <= hi) & ((arr > lo) if low_open else (arr >= lo))
    if inside.all():
        return
    index = np.argwhere(~inside)[0]
    value = float(arr[tuple(index)])
    at = f" at {'row ' if arr.ndim == 1 else 'index '}{', '.join(map(str, index.tolist()))}" if arr.ndim else ""
    top = "pi/2" if hi == np.pi / 2 else f"{hi:g}"
    bounds = f"> {lo:g} and <= {top}" if low_open else f"in [{lo:g}, {top}]"
    raise MissingData(f"{path}: {item} '{name}' holds {value!r}{at}, not a finite {what} {bounds}: the file is "
                      f"damaged; {file_rerun(path)}")


def read_strings(h5_path, name: str, *, hint: str) -> list | None:
    """The text dataset `name` as a list of str (None when absent); MissingData when it holds no 1-D text."""
    with h5_source(h5_path) as source, read_h5(source, lambda exc: _unreadable(h5_path, exc, hint)) as f:
        if not isinstance(f.get(name), h5py.Dataset):
            return None
        value = np.asarray(f[name][()])
    if value.ndim != 1 or value.dtype.kind not in "SOU":
        raise MissingData(f"{h5_path}: dataset '{name}' is not a 1-D list of strings ({value.dtype}, shape "
                          f"{value.shape}); {hint}")
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value]


def _fault(h5_path) -> BaseException | None:
    """h5py's error opening HDF5 file `h5_path` and walking its groups and datasets (`hpcflow.h5read.DAMAGED`), None
    where it reads."""
    try:
        with h5_source(h5_path) as source, h5py.File(source, "r") as f:
            f.visititems(lambda _name, _obj: None)
    except DAMAGED as exc:
        return exc
    return None


def refusal(h5_path, *, hint: str) -> MissingData | None:
    """The error for HDF5 file `h5_path` that h5py cannot open or walk (`_unreadable`: in use, another of hpcflow's
    files, or damaged), None where it reads."""
    exc = _fault(h5_path)
    return None if exc is None else _unreadable(h5_path, exc, hint)


def unreadable(h5_path) -> bool:
    """Whether h5py cannot open an HDF5 file or walk its groups and datasets (cut short, overwritten, not HDF5:
    `hpcflow.h5read.DAMAGED`); not for one that another process holds locked (`in_use_file`), which may be whole."""
    exc = _fault(h5_path)
    return exc is not None and not locked(exc)


def unopenable(h5_path) -> bool:
    """Whether h5py cannot open an HDF5 file or walk it at all: damaged (`unreadable`) or in use (`in_use_file`),
    asked with one open."""
    return _fault(h5_path) is not None


def in_use_file(h5_path) -> bool:
    """Whether h5py cannot open an HDF5 file because another process holds its lock (`hpcflow.h5read.locked`: a run
    or a program writing it), not because it is damaged."""
    exc = _fault(h5_path)
    return exc is not None and locked(exc)


def dataset_names(h5_path) -> list:
    """Every dataset path in an HDF5 file (empty when the file cannot be read)."""
    names = []
    try:
        with h5_source(h5_path) as source, h5py.File(source, "r") as f:
            f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
    except DAMAGED:
        return []
    return names


#: how a damaged run is made again: a run directory outside a study (`rerun`), the words before its command
RERUN = "rerun the job with --force"


def rerun(run_dir) -> str:
    """How the run of damaged run directory `run_dir` outside a study is made again: 'rerun the job with --force:
    hpcflow VERB DIR/job.toml --out DIR --force', the command to paste (`rerun_command`, VERB that of its kind, DIR
    absolute); the words alone (RERUN) where the directory holds no job.toml (`has_job`) or lies inside a study
    directory, where `hpcflow run` refuses --force (`rerun_fix` names the study's way)."""
    if not has_job(run_dir) or _output.enclosing_study(run_dir) is not None:
        return RERUN
    return f"{RERUN}: {rerun_command(run_dir, run_dir, '--force')}"


def file_rerun(path) -> str:
    """`rerun` of the directory holding data file `path`: its command where that is a run directory, else the
    words."""
    return rerun(os.path.dirname(os.path.abspath(path)))


def is_rerun(fix: str) -> bool:
    """Whether `fix` is the advice to rerun the job with --force (`rerun`, with its command or without)."""
    return fix == RERUN or fix.startswith(f"{RERUN}: ")


def rerun_fix(run_dir) -> str:
    """How the run of a damaged run directory is made again: `rerun`, or for a trial's directory inside the study
    directory of `hpcflow tune`, where `hpcflow run` refuses --force, what the study did or does with the trial, or
    its job.toml rerun into an --out outside the study (`hpcflow.analysis.study.continuation`)."""
    from hpcflow.analysis.study import continuation

    return continuation(run_dir, refused="--force") or rerun(run_dir)


def restore_fix(run_dir, what: str = "it") -> str:
    """How the lost files (`what`) of a run directory are had again: 'restore WHAT from a copy or rerun the job with
    --force'; inside a study, whose fix (`rerun_fix`) says what the study does with the trial before its action,
    'restore WHAT from a copy; without a copy: it is trial N of the study in DIR, ...' (or '...: it lies in ...'),
    each way an action."""
    fix = rerun_fix(run_dir)
    if is_rerun(fix):
        return f"restore {what} from a copy or {fix}"
    return f"restore {what} from a copy; without a copy: {'it is ' if fix.startswith('trial ') else ''}{fix}"


def data_missing(run_dir, kind: str, files) -> str:
    """Why a `kind` run directory whose summary.json is there holds none of its data `files` (a partial copy): they
    are named, with the fix: a copy, or the run made again (`restore_fix`: inside a study, what the study does with
    the trial or its job.toml rerun outside it)."""
    one = len(files) == 1
    return (f"the {kind} run's {' and '.join(files)} {'is' if one else 'are'} missing (its summary.json is there); "
            f"{restore_fix(run_dir, 'it' if one else 'them')}")


#: the data files of a flow and a network run, any one of which holds the run (`lost_data`)
RUN_FILES = {"flow": (CHECKPOINT,), "nn": (NN, NN_CHECKPOINT)}


def lost_data(path, kinds=tuple(RUN_FILES)) -> str:
    """'PATH: ' and `data_missing` where `path` is the directory of a run of one of `kinds` (its summary.json's
    `kind`) that holds none of its data files (RUN_FILES: a partial copy, or files removed), "" otherwise: the reader
    of such a directory says the run's files are missing and how to have them again, not that it is no run."""
    path = os.fspath(path)
    kind = (read_summary(path) or {}).get("kind") if os.path.isdir(path) else None
    if kind not in kinds or any(os.path.isfile(os.path.join(path, n)) for n in RUN_FILES[kind]):
        return ""
    return f"{path}: {data_missing(path, kind, RUN_FILES[kind])}"


#: the mark of a flow run whose checkpoint.h5 h5py cannot open (`judged`'s reason, `unread_checkpoint`, each with
#: the run's fix after it: `checkpoint_unreadable`)
CHECKPOINT_UNREADABLE = "checkpoint.h5 unreadable (damaged)"


def in_use_reason(name: str) -> str:
    """The reason of a run whose data file `name` another process holds locked (`in_use_file`): its status unknown
    (UNKNOWN: the file may be whole, and is not judged), and how it is read (`hpcflow.h5read.IN_USE_FIX`), never a
    rerun, which would replace it."""
    return f"{UNKNOWN}{name} in use (locked by another process); {IN_USE_FIX}"


def no_job(where: str = "the directory") -> str:
    """The fix of a damaged file in directory `where` that holds no job.toml (`has_job`): there is no job to rerun."""
    return (f"{where} holds no job.toml, so there is no job to rerun: if a run wrote the file, restore it from a copy "
            "of that run's directory")


def set_aside_note(run_dir, *, verb: str = "read") -> str:
    """Where run directory `run_dir` holds an earlier run's files that a --force run killed hard left set aside
    (`hpcflow.jobs.replaced`), which a reader does not `verb`: the folder and what to do (what the next run on it does,
    `hpcflow.jobs.replaced.settling`); "" where there is none, or a live run holds the directory (its own folder)."""
    from hpcflow.jobs.replaced import leftovers, settling

    left = leftovers(run_dir) if os.path.isdir(run_dir) else []
    if not left or holder(run_dir):
        return ""
    aside = os.path.join(run_dir, left[0])
    more = f" (and {len(left) - 1} more such folders)" if len(left) > 1 else ""
    how = settling(run_dir, aside)
    fix = (f"the next 'hpcflow run' or 'hpcflow nn' on {run_dir} removes it, as that run has finished (summary.json: "
           "status \"finished\"; move it out to keep it)" if how == "remove" else
           f"the next 'hpcflow run' or 'hpcflow nn' on {run_dir} puts them back, as that run wrote nothing of its own"
           if how == "put back" else
           f"that folder itself can be {verb}, or move its files back into {run_dir} in place of the killed run's")
    return f"{aside}{more} holds an earlier run's files, set aside by a --force run that was killed, not {verb}: {fix}"


def checkpoint_unreadable(run_dir) -> str:
    """The reason of a flow run whose checkpoint.h5 h5py cannot open: CHECKPOINT_UNREADABLE and its fix
    (`rerun_fix`; `no_job` where the directory holds no job.toml and lies in no study)."""
    fix = rerun_fix(run_dir)
    return f"{CHECKPOINT_UNREADABLE}; {no_job() if is_rerun(fix) and not has_job(run_dir) else fix}"


def is_checkpoint_unreadable(reason: str) -> bool:
    """Whether `reason` is that of a flow run whose checkpoint.h5 h5py cannot open: damaged (`checkpoint_unreadable`)
    or in use (`in_use_reason`)."""
    return reason.startswith((CHECKPOINT_UNREADABLE + "; ", in_use_reason(CHECKPOINT)))


def unread_checkpoint(path) -> str:
    """The status mark of a flow run whose checkpoint.h5 h5py cannot open, where `path` is its run directory or its
    checkpoint.h5 itself: 'incomplete: ' and `checkpoint_unreadable` where it is damaged (`unreadable`), its
    `in_use_reason` where another process holds it locked (`in_use_file`); "" otherwise. A call on several runs
    marks such a run and draws the others; one on this run alone is refused by the reader's one-line error."""
    path = os.fspath(path)
    ckpt = os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path
    if os.path.basename(ckpt) != CHECKPOINT or not os.path.isfile(ckpt) or (exc := _fault(ckpt)) is None:
        return ""
    return in_use_reason(CHECKPOINT) if locked(exc) else (
        f"incomplete: {checkpoint_unreadable(os.path.dirname(os.path.abspath(ckpt)))}")


def dataset_shapes(h5_path, names) -> dict:
    """{name: shape} of those of `names` that are datasets of an HDF5 file, their data unread ({} when the file cannot
    be read)."""
    try:
        with h5_source(h5_path) as source, h5py.File(source, "r") as f:
            return {n: f[n].shape for n in names if isinstance(f.get(n), h5py.Dataset)}
    except DAMAGED:
        return {}


def read_attrs(h5_path, *, hint: str = "pass a complete run directory") -> dict:
    """Root attributes of an HDF5 file; JSON strings (dicts, lists) decoded; MissingData when it cannot be read."""
    out = {}
    with h5_source(h5_path) as source, read_h5(source, lambda exc: _unreadable(h5_path, exc, hint)) as f:
        for key, value in f.attrs.items():
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
    return out


def config_table(cfg: dict, section: str, source, *, hint: str) -> dict:
    """Table [section] of job configuration `cfg` read from `source`; MissingData naming the file and the section
    when it is missing or not a table."""
    table = cfg.get(section)
    if not isinstance(table, dict):
        raise MissingData(f"{source}: config [{section}] is {'missing' if table is None else 'not a table'}; {hint}")
    return table


class _Unreadable(Exception):
    """checkpoint.h5 exists but is not a readable HDF5 file."""


class _InUse(Exception):
    """checkpoint.h5 exists but another process holds it locked (`hpcflow.h5read.locked`): not judged."""


class _Damaged(Exception):
    """checkpoint.h5 opens but is no complete flow checkpoint: --resume refuses it (the message says why)."""


#: each checkpoint's step or refusal, by file identity, while `judging_once` is active (None: judged every time)
_JUDGED: dict | None = None


@contextmanager
def judging_once():
    """Judge each checkpoint.h5 once in the block: a report asks for a run's state for its row, its Table 1 row and
    its figure legend, and each judgement reads every row (`load_resume`'s NaN/inf check). A file replaced or
    changed meanwhile (another inode, size or mtime) is judged again."""
    global _JUDGED
    outer = _JUDGED
    _JUDGED = {} if outer is None else outer
    try:
        yield
    finally:
        _JUDGED = outer


def _checkpoint_step(path) -> int:
    """checkpoint.h5's `step` as --resume reads it (`_judge`), once per file inside `judging_once`."""
    if _JUDGED is None:
        return _judge(path)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _JUDGED:
        try:
            _JUDGED[key] = _judge(path)
        except (_Unreadable, _InUse, _Damaged) as exc:
            _JUDGED[key] = exc
    if isinstance(_JUDGED[key], Exception):
        raise _JUDGED[key]
    return _JUDGED[key]


def _judge(path) -> int:
    """checkpoint.h5's `step` as --resume reads it (`hpcflow.checkpoint.load_resume`, the one judge of a readable
    and complete flow checkpoint); _InUse when another process holds it locked, _Unreadable when h5py cannot open the
    file (cut short, not HDF5), _Damaged with
    the loader's reason in a short phrase when it refuses the file (a dataset missing, another HDF5 file)."""
    from hpcflow.checkpoint import load_resume
    from hpcflow.parallel.comm import SerialComm

    try:
        h5py.File(path, "r").close()
    except DAMAGED as exc:
        raise (_InUse if locked(exc) else _Unreadable)(path) from None
    try:  # this process alone (under mpiexec only rank 0 reports): no collective with the other ranks
        return load_resume(path, comm=SerialComm()).step
    except (InputFileError, OSError) as exc:
        raise _Damaged(_phrase(path, exc)) from None


def _phrase(path, exc) -> str:
    """The checkpoint loader's message without the file name and the fix ("dataset history/dt is missing")."""
    return str(exc).removeprefix(f"{path}: ").split("; ")[0]


#: why a network's training checkpoint is not read where torch is not installed (`training_history`): not damaged
TORCH_NEEDED = "reading its training history needs torch"


def training_history(path, names, *, hint: str, optional=()) -> dict:
    """{name: array} of `train.history` in a network's training checkpoint (an interrupted run has no nn.h5 yet);
    MissingData when torch is missing or the file is not such a checkpoint. Names in `optional` are returned only
    when the history holds them."""
    try:
        import torch
    except ImportError:
        raise MissingData(f"{path}: {TORCH_NEEDED}; run {TORCH_HINT}") from None
    try:
        hist = torch.load(pinned(path), map_location="cpu", weights_only=True)["train"]["history"]
        return {name: np.asarray(hist[name].numpy(), dtype=np.float64)
                for name in (*names, *(n for n in optional if n in hist))}
    except Exception as exc:  # noqa: BLE001 - unreadable file, or not a training checkpoint
        raise MissingData(f"{path}: no training history readable ({type(exc).__name__}); {hint}") from None


#: the reason of a run whose summary.json is there but not a JSON object (`completeness`), its fix after it
GARBLED = "summary.json is not a JSON object (damaged)"


def completeness(run_dir) -> tuple[bool, str]:
    """(complete, reason): complete when summary.json exists, says the run was not preempted, and describes the
    step (flow, checkpoint.h5) or epoch (network, checkpoint.pt) of the run's checkpoint; a checkpoint.h5 that
    cannot be read, or that --resume refuses (a dataset missing, another HDF5 file), and a network's nn.h5 that
    cannot be read, make the run incomplete (damaged, the reason in a short phrase), whatever its summary says; one
    of them that another process holds locked leaves its status unknown (`in_use_reason`)."""
    run_dir = os.fspath(run_dir)
    ckpt = os.path.join(run_dir, CHECKPOINT)
    for name in (CHECKPOINT, SUMMARY, NN, NN_CHECKPOINT):  # readable only with permission: not damaged
        if os.path.isfile(os.path.join(run_dir, name)) and (why := file_refusal(os.path.join(run_dir, name))):
            return False, why
    try:
        step = _checkpoint_step(ckpt) if os.path.isfile(ckpt) else None
    except _InUse:
        return False, in_use_reason(CHECKPOINT)
    except _Unreadable:
        return False, checkpoint_unreadable(run_dir)
    except _Damaged as exc:
        return False, f"checkpoint.h5 damaged: {exc}; {rerun_fix(run_dir)}"
    summary = read_summary(run_dir)
    pt = os.path.join(run_dir, NN_CHECKPOINT)
    garbled = summary is None and os.path.exists(os.path.join(run_dir, SUMMARY))
    if garbled and step is None and not os.path.isfile(pt):  # no checkpoint its --resume would write it from
        return False, f"{GARBLED}; {rerun_fix(run_dir)}"
    if summary is not None and summary.get("status") != "preempted" and not os.path.isfile(ckpt) and (
            why := nn_h5_damage(run_dir, summary)):  # before the summary's judgement: nn.h5 is written again
        return False, why
    if summary is not None and (why := _disagreement(summary, run_dir, step)):
        return False, why
    if summary is None or summary.get("status") == "preempted":  # a garbled summary.json beside a checkpoint too:
        # --resume writes it again from the checkpoint (no step run where that is the run's end), as a missing one
        what = GARBLED if garbled else "no summary.json" if summary is None else "preempted"
        if not os.path.isfile(ckpt) and os.path.isfile(pt) and checkpoint_progress(pt) is None:
            # --resume refuses a network checkpoint it cannot read: not a run to continue
            return False, (f"{what}; {NN_CHECKPOINT} unreadable (damaged): {rerun_fix(run_dir)}"
                           if torch_available() else
                           f"{what}; torch needed to read {NN_CHECKPOINT} ({TORCH_HINT})")
        return False, f"{what}; {_resume_fix(run_dir, network=not os.path.isfile(ckpt) and os.path.isfile(pt))}"
    if not os.path.isfile(ckpt):
        if os.path.isfile(nn := os.path.join(run_dir, NN)) and (exc := _fault(nn)) is not None:  # (whatever
            return False, in_use_reason(NN) if locked(exc) else f"{NN_UNREADABLE}{nn_damaged_fix(run_dir)}"  # pt says)
        epoch = checkpoint_progress(pt) if os.path.isfile(pt) else None
        done = summary.get("checkpoint_step")
        if epoch is None and os.path.isfile(pt):  # it may be further on than the summary: not passed off as finished
            return False, UNKNOWN + (f"{NN_CHECKPOINT} unreadable (damaged); {restore_fix(run_dir)}"
                                     if torch_available() else f"torch needed to read {NN_CHECKPOINT} ({TORCH_HINT})")
        if epoch is not None and done is not None and int(done) != epoch:
            fix = _resume_fix(run_dir, nn_resume_command(run_dir), network=True)
            return False, (f"{NN_CHECKPOINT} is at epoch {epoch} but summary.json describes epoch {done} "
                           f"(interrupted or extended run; {fix})")
        return True, ""
    described = _int(summary.get("checkpoint_step", summary.get("steps_taken")))
    if step is not None and described is not None and described != step:
        return False, (f"checkpoint.h5 is at step {step} but summary.json describes step {described} "
                       f"(interrupted or extended run; {_resume_fix(run_dir)})")
    return True, ""


#: the checkpoint.pt statuses of a run whose nn.h5 is judged against the checkpoint (`nn_h5_damage`)
NN_WRITTEN_WITH = ("finished", "diverged")


def nn_h5_damage(run_dir, summary: dict) -> str:
    """'nn.h5 damaged (why); <fix>' of a network run directory whose nn.h5, which h5py reads, is not what a run writes:
    `hpcflow.nn.h5schema.fault`, the judge `hpcflow nn --resume` asks (so the report calls damaged what that resume
    writes again), against the status, epochs and job of its checkpoint.pt (its plain entries, read without torch)
    where that is a finished or diverged run's that `summary` (summary.json) describes (its checkpoint_step: else an
    interrupted or extended run, which `completeness` says as such); the fix `nn_damaged_fix` (that resume, where
    checkpoint.pt holds the whole training). '' where nn.h5 is missing, unreadable (judged by `completeness` as such)
    or whole."""
    from hpcflow.nn.h5schema import fault

    nn = os.path.join(os.fspath(run_dir), NN)
    if not os.path.isfile(nn):
        return ""
    entries = network_checkpoint(run_dir)
    epoch, state = entries.get(("train", "epoch")), None
    if entries.get(("status",)) in NN_WRITTEN_WITH and isinstance(epoch, int) and _int(
            summary.get("checkpoint_step")) == epoch:
        state = {"status": entries[("status",)], "config": entries.get(("config",)),
                 "train": {"epoch": entries[("train", "epoch")]}}
    why = fault(nn, state=state)
    if why is None or not why.startswith("damaged ("):  # (missing, or h5py cannot read it: said where it is judged)
        return ""
    return f"{NN} {why}; {nn_damaged_fix(run_dir)}"


#: the `status` values of summary.json (docs/outputs.md, "summary.json"); a summary without one is of an older hpcflow
SUMMARY_STATUSES = ("finished", "diverged", "stopped", "not_positive_definite", "preempted")
#: a flow checkpoint's `@status` that --resume continues from (a summary.json that says otherwise is not its own)
RESUMABLE = ("running", "preempted")


def _disagreement(summary: dict, run_dir: str, step: int | None, attrs: dict | None = None) -> str:
    """Why summary.json cannot be taken for the run's record, "" when it can: its `status` is none of
    SUMMARY_STATUSES (damaged or edited), its `kind` is not that of the directory's data file (`_other_kind`), or it
    describes the run's data file (`_data_file`: a flow's checkpoint.h5 at
    its judged `step`, a network's nn.h5 at its `epoch`, a scan's file) with another status than the file's `@status`:
    the data file, which --resume and the figures read, is the truth (a "preempted" checkpoint under a "finished"
    summary is a preempted run); or a scan's table is not its data file's (`_other_scan_record`); or it is of another
    job than the flow's checkpoint.h5 or the network's checkpoint.pt
    (`_other_job`), at whatever step or epoch. A summary of the same job at another step or epoch is judged by
    `completeness` (an interrupted or extended run). `attrs`: the data file's root attributes (`_data_attrs`), where
    the caller has read them."""
    status = summary.get("status")
    if "status" in summary and (not isinstance(status, str) or status not in SUMMARY_STATUSES):
        return (f"summary.json status {str(status)[:40]!r} is none of {', '.join(SUMMARY_STATUSES)} (damaged or "
                f"edited); {rerun_fix(run_dir)}")
    if other := _other_kind(summary, run_dir):
        return other
    name = _data_file(run_dir)
    if name is not None and attrs is None:
        attrs = _data_attrs(os.path.join(run_dir, name))
    if name == CHECKPOINT and step is not None and (other := _other_job(summary, attrs, CHECKPOINT)):
        return f"{other} at step {step} (inconsistent: {name} holds the run); {rerun_fix(run_dir)}"
    if name != CHECKPOINT and (other := _other_network_job(summary, run_dir)):
        return other
    if name in SCAN_TABLES and (other := _other_scan_record(summary, os.path.join(run_dir, name))):
        return f"{other} (inconsistent: {name} holds the run); {rerun_fix(run_dir)}"
    if name is None or status in (None, "preempted"):
        return ""
    unit, at = {CHECKPOINT: ("step", step), NN: ("epoch", _int(attrs.get("epoch")))}.get(name, ("", None))
    if unit and (at is None or _int(summary.get("checkpoint_step", summary.get("steps_taken"))) != at):
        return ""
    held = _text(attrs.get("status"))
    if held and SAME_STATUS.get(status, status) != held:
        fix = _resume_fix(run_dir) if name == CHECKPOINT and held in RESUMABLE else rerun_fix(run_dir)
        return (f"summary.json says {status!r} but {name} says {held!r}{f' at {unit} {at}' if unit else ''} "
                f"(inconsistent: {name} holds the run); {fix}")
    other = _other_record(summary, attrs, os.path.join(run_dir, name)) if name == CHECKPOINT else ""
    return f"{other} at step {at} (inconsistent: {name} holds the run); {rerun_fix(run_dir)}" if other else ""


#: a scan's data file -> its rows' parameter and {summary.json table key: the file's dataset of it}; None: a noise
#: scan's train gain, that of its level's own history (scale_i/sigma_train, first / last)
SCAN_TABLES = {NOISE_SCAN: ("scale", {"scale": "table/scale", "gain": "table/gain", "gain_train": None}),
               LOCAL_LIMIT: ("width", {"width": "table/width", "gain_train": "table/gain_train",
                                       "gain_test": "table/gain_test"})}


def scan_rows(path) -> list:
    """The table of scan data file `path` (noise_scan.h5, local_limit.h5: SCAN_TABLES) as its summary.json's `table`
    holds it: one dict per row of the parameter and the gains (non-finite ones None, as summary.json writes them; a
    noise scan's train gain left out of a row whose history is not in the file); MissingData where the file or its
    table cannot be read."""
    from hpcflow.jobs.output import jsonable

    name = os.path.basename(os.fspath(path))
    columns = SCAN_TABLES[name][1]
    sets = [d for d in columns.values() if d]
    fix = file_rerun(path)
    data = read_datasets(path, sets, hint=fix, ndim=dict.fromkeys(sets, 1))
    rows = [{k: float(data[d][i]) for k, d in columns.items() if d}
            for i in range(same_length(path, data, sets, hint=fix))]
    if name == NOISE_SCAN:
        names = [f"scale_{i}/sigma_train" for i in range(len(rows))]
        hist = read_datasets(path, (), hint=fix, optional=names, ndim=dict.fromkeys(names, 1))
        for row, key in zip(rows, names):
            if len(st := hist.get(key, ())):  # the job's gain: sigma initial / final (inf where the final is 0)
                row["gain_train"] = float(st[0] / st[-1]) if st[-1] > 0 else float("inf")
    return jsonable(rows)


def _other_scan_record(summary: dict, path) -> str:
    """What shows that a scan's summary.json is not the record of its data file `path` (SCAN_TABLES: a summary copied
    from another run, edited by hand, or a file altered since): its table holds another number of rows, or a row's
    parameter or gain that is not the file's (`scan_rows`); "" where they agree, where the summary holds no table and
    where the file's cannot be read or holds a gain that is not a finite number > 0 (its readers say why:
    `fig3_noise.load` calls a NaN that no reason explains damage, as `hpcflow.report.detect` does any in
    local_limit.h5, and a gain <= 0 in either)."""
    mine = summary.get("table")
    if not isinstance(mine, list):
        return ""
    try:
        rows = scan_rows(path)
    except MissingData:
        return ""
    name = os.path.basename(os.fspath(path))
    if any(isinstance(v, float) and v <= 0 for row in rows for k, v in row.items() if k.startswith("gain")):
        return ""  # a gain no scan writes (<= 0): the file is damaged, which its readers say, not another record
    if len(mine) != len(rows):
        return f"summary.json's table holds {len(mine)} rows but {name}'s {len(rows)}"
    param = SCAN_TABLES[name][0]
    for i, (says, its) in enumerate(zip(mine, rows)):
        says = says if isinstance(says, dict) else {}
        for key, value in its.items():  # a value the file holds non-finite: the file's readers judge it (damaged)
            if key in says and value is not None and not _same_figure(says[key], value):
                return (f"summary.json says {key} = {_shown(says[key])} in row {i} ({param} {_shown(its[param])}) but "
                        f"{name}'s table gives {_shown(value)}")
    return ""


#: the kind of run (summary.json's `kind`) that each data file holds, in the order in which the first a directory
#: holds decides the kind it is reported as (`hpcflow.report.detect.FILES`)
DATA_KINDS = {CHECKPOINT: "flow", NN: "nn", NN_CHECKPOINT: "nn", NOISE_SCAN: "noise_scan",
              DISTANCES: "distance_scaling", FIG2: "clustering", LOCAL_LIMIT: "local_limit"}


def _other_kind(summary: dict, run_dir) -> str:
    """Where summary.json's `kind` is not the kind of run that the first data file of `run_dir` (DATA_KINDS) holds
    (the summary of another job: a directory holding two runs' files, a summary copied or edited), why, with the fix;
    "" otherwise (and where the summary says no kind)."""
    kind = summary.get("kind")
    name = next((n for n in DATA_KINDS if os.path.isfile(os.path.join(run_dir, n))), None)
    if not isinstance(kind, str) or name is None or DATA_KINDS[name] == kind:
        return ""
    return (f"summary.json is another job's: it says kind {_shown(kind)}, but {name} holds a {DATA_KINDS[name]} run "
            f"(inconsistent: {name} holds the run); {rerun_fix(run_dir)}")


def inconsistency(run_dir) -> str:
    """Why a run directory's summary.json is not the record of its data file (`_disagreement`), "" when it is or there
    is no summary: the check of `completeness` without its judgement of checkpoint.h5 (its `@step` taken as it is, not
    every row read), for a study's best trial, whose summary gives the study's row its numbers. The data file's root
    attributes are read once."""
    summary = read_summary(run_dir)
    if summary is None:
        return ""
    name = _data_file(run_dir)
    attrs = _data_attrs(os.path.join(run_dir, name)) if name is not None else None
    step = _int(attrs.get("step")) if name == CHECKPOINT else None
    return _disagreement(summary, os.fspath(run_dir), step, attrs)


#: how close a summary.json figure must be to the one its checkpoint.h5's histories give (both are the same float64,
#: written as JSON, which keeps every digit): a summary of another run or edited by hand differs far beyond it
SAME_FIGURE = 1e-9


def _data_attrs(path) -> dict:
    """The root attributes of a data file that `_disagreement` reads: `status`, `step`, `epoch`, `n_test` and `config`
    (decoded from JSON; absent where it is none or not a table); {} when the file cannot be read."""
    attrs = _state_attrs(path, ("status", "step", "epoch", "n_test", "config"))
    try:
        config = json.loads(_text(attrs.pop("config", "")))
    except ValueError:
        config = None
    return {**attrs, "config": config} if isinstance(config, dict) else attrs


def _other_record(summary: dict, attrs: dict, ckpt) -> str:
    """What shows that a finished summary.json is not the record of the flow checkpoint.h5 whose step it describes
    (copied from another run, edited by hand), "" when nothing does: its `config` is not the checkpoint's `@config`
    (in `attrs`, its root attributes: `_data_attrs`), or one of its sigma figures (`hpcflow.experiments.flow_job.
    sigma_figures`) is not what the checkpoint's histories give. Reads the two sigma histories only, not the metrics."""
    from hpcflow.experiments.flow_job import sigma_figures
    from hpcflow.jobs.output import jsonable

    config, n_test = attrs.get("config"), _int(attrs.get("n_test"))
    if config is None:
        return ""
    if "config" in summary and (where := _first_difference(summary["config"], config)):
        return _config_says(where, CHECKPOINT)
    try:
        with h5_source(ckpt) as source, h5py.File(source, "r") as f:
            st, se = f["history/sigma_train"][()], f["history/sigma_test"][()]
    except DAMAGED:  # changed since `_judge` found it whole (a dataset gone): judged again on the next read
        return ""
    if not len(st) or n_test is None:
        return ""
    for key, its in jsonable(sigma_figures(st, se, n_test)).items():
        if key in summary and not _same_figure(summary[key], its):
            return f"summary.json says {key} = {_shown(summary[key])} but {CHECKPOINT}'s history gives {_shown(its)}"
    return ""


def _other_job(summary: dict, attrs: dict, name: str, resumable=None) -> str:
    """What shows that summary.json is of another job than the data file `name` whose root attributes or plain entries
    `attrs` hold its job as `config` (`_data_attrs`), whatever step or epoch each describes: its `config` differs from
    the file's beyond what --resume may change (`resumable`; default `hpcflow.checkpoint.RESUMABLE_CHANGES`: [flow].
    steps, [checkpoint], [job].description), so no --resume of either run makes them one record; "" when it does not
    (or either says no configuration)."""
    from hpcflow.checkpoint import RESUMABLE_CHANGES
    from hpcflow.jobs.schema import without

    mine, its = summary.get("config"), attrs.get("config")
    if not (isinstance(mine, dict) and isinstance(its, dict)):
        return ""
    resumable = RESUMABLE_CHANGES if resumable is None else resumable
    where = _first_difference(without(mine, resumable), without(its, resumable))
    return _config_says(where, name) if where else ""


def _other_network_job(summary: dict, run_dir) -> str:
    """Where summary.json is of another job than a network run's checkpoint.pt (`_other_job` beyond what `hpcflow nn
    --resume` may change: `hpcflow.nn.job.RESUMABLE_CHANGES`, [training].epochs, ... [job].description), why, at the
    checkpoint's epoch, with the fix; "" otherwise, and for a run without a checkpoint.pt readable without torch."""
    if not isinstance(summary.get("config"), dict) or not os.path.isfile(os.path.join(run_dir, NN_CHECKPOINT)):
        return ""
    from hpcflow.nn.job import RESUMABLE_CHANGES

    entries = network_checkpoint(run_dir)
    config, _ = network_config(entries)
    if config is None:  # no job, or not JSON: judged by completeness (`_resume_refusal`)
        return ""
    other = _other_job(summary, {"config": config}, NN_CHECKPOINT, RESUMABLE_CHANGES)
    epoch = _int(entries.get(("train", "epoch")))
    at = f" at epoch {epoch}" if epoch is not None else ""
    return f"{other}{at} (inconsistent: {NN_CHECKPOINT} holds the run); {rerun_fix(run_dir)}" if other else ""


def _config_says(where, name: str) -> str:
    """'summary.json's config says K = A but NAME's says K = B' of `_first_difference`'s (key, mine, its)."""
    key, mine, its = where
    return f"summary.json's config {_says(key, mine)} but {name}'s {_says(key, its)}"


#: a configuration entry that one side lacks (`_first_difference`)
_ABSENT = object()


def _first_difference(mine, its, key: str = ""):
    """(key, value in `mine`, value in `its`) of the first entry where two job configurations differ ('[geometry].seed';
    _ABSENT where one lacks it), None where they are equal."""
    if not (isinstance(mine, dict) and isinstance(its, dict)):
        return None if mine == its else (key or "config", mine, its)
    for k in sorted(set(mine) | set(its), key=str):
        sub = f"{key}.{k}" if key else f"[{k}]"
        if k not in mine or k not in its:
            return sub, mine.get(k, _ABSENT), its.get(k, _ABSENT)
        if found := _first_difference(mine[k], its[k], sub):
            return found
    return None


def _says(key: str, value) -> str:
    return f"has no {key}" if value is _ABSENT else f"says {key} = {_shown(value)}"


def _shown(value) -> str:
    """A JSON value as a message shows it: numbers to 6 digits, "a table" for a dict, other values as JSON (at most 40
    characters)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return "a table"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _same_figure(mine, its) -> bool:
    """Whether a summary.json figure agrees with the checkpoint's (`jsonable`: null where not finite)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (mine, its))
    if not numbers:
        return mine is None and its is None
    return abs(mine - its) <= SAME_FIGURE * max(abs(mine), abs(its))


#: a summary.json status -> the data file's status that agrees with it, where they differ: an nn tune trial pruned
#: for its metric (hpcflow.tune.trial) trained to its end
SAME_STATUS = {"not_positive_definite": "finished"}


def _data_file(run_dir) -> str | None:
    """The data file whose `@status` a flow, network or scan run directory's summary.json describes, None when none."""
    return next((n for n in (CHECKPOINT, NN, NOISE_SCAN, LOCAL_LIMIT) if os.path.isfile(os.path.join(run_dir, n))),
                None)


def _resume_fix(run_dir, command: str | None = None, *, network: bool = False) -> str:
    """How an interrupted run is continued: "continue it with hpcflow run DIR/job.toml --out DIR --resume" (`command`,
    by default that of its kind, `rerun_command`: a bare --resume of a run made with --set values is refused, its
    job.toml holds them), the rerun with --force (`rerun`) for a job kind without checkpoints (`resumable_kind`), or
    for a trial's directory inside the study directory of `hpcflow tune`, where --resume is refused, what the study
    did or does with it (`hpcflow.analysis.study.continuation`). A `network` run's checkpoint.pt that `hpcflow nn
    --resume` refuses (`_resume_refusal`: its config entry damaged, an entry failing its zip CRC-32) is named instead,
    with the rerun."""
    from hpcflow.analysis.study import continuation

    study = continuation(run_dir)
    if not study and not network and not resumable_kind(run_dir):  # --resume refuses a kind without checkpoints
        return rerun(run_dir)
    bad = _resume_refusal(run_dir) if network and not study else ""
    return study or (f"{bad}; {rerun(run_dir)}" if bad else
                     f"continue it with {command or rerun_command(run_dir, run_dir, '--resume')}")


#: the head of the reason of a network run whose nn.h5 h5py cannot open (`completeness`), the fix after it
NN_UNREADABLE = f"{NN} unreadable (damaged); "
#: the reason of a run whose directory's lock a live process holds (`hpcflow.jobs.outlock.live_holder`)
RUNNING = "running: "
#: the reason of a run whose checkpoint cannot be read: it may be finished or further on than its summary
UNKNOWN = "status unknown: "


@dataclass(frozen=True)
class RunState:
    """What a run directory says about how its run ended: completeness, status, last step on disk, stop reason."""

    complete: bool
    reason: str  # why incomplete ("" when complete)
    status: str  # summary.json `status`, else the data file's `status` attribute ("" when neither says)
    step: int | None  # last step (flow) or epoch (network) written
    stopped: str  # why the run stopped early ("" when it did not say)
    unit: str  # "step" or "epoch"
    missing: str = ""  # a complete network run's: its nn.h5 is gone, and how it is written again (`nn_missing`)

    def note(self) -> str:
        """'' for a finished run, else a short mark: 'incomplete: ...', 'diverged after step k; <why>', 'finished;
        nn.h5 missing: ...' (`missing`), ..."""
        at = f"{self.unit} {self.step}" if self.step is not None else ""
        if self.reason.startswith(RUNNING):  # a live run (its lock held): its progress so far
            return self.reason + (f", at {at}" if at else "")
        if self.reason.startswith(UNKNOWN):
            return self.reason
        if not self.complete:
            if self.reason.startswith(NN_UNREADABLE):  # its fix, as a missing nn.h5's (`missing`) is said with it
                return self.status_line()
            short = self._head()
            return f"incomplete: {short}{self._progress(short)}"
        if self.status in ("", "finished"):
            ended = "finished" if self.missing else ""
        else:
            ended = " ".join(filter(None, (self.status, f"after {at}" if at else ""))) + (
                f"; {self.stopped}" if self.stopped else "")
        return "; ".join(filter(None, (ended, self.missing)))

    def status_line(self) -> str:
        """The runs table's status of an incomplete run: note()'s judgement with the whole reason (what is damaged,
        how to continue) after it; note() for a complete, live or unknown one."""
        if self.complete or self.reason.startswith((RUNNING, UNKNOWN)):
            return self.note()
        head = self._head()
        return f"incomplete: {head}{self._progress(head)}{self.reason[len(head):]}"

    def _head(self) -> str:
        """The reason up to its parenthesis or fix ('preempted', 'no summary.json')."""
        return self.reason.split(" (")[0].split(";")[0]

    def _progress(self, head: str) -> str:
        """How far an incomplete run got, where its reason's `head` does not say: ' at step S' after a head naming how
        it ended, else ', interrupted at step S' (or preempted, from its data file's status); '' when unknown."""
        at = f"{self.unit} {self.step}" if self.step is not None else ""
        word = _ended(self.status)
        if not (word and at) or at in head:
            return ""
        return f" at {at}" if word in head else f", {word} at {at}"

    def suffix(self) -> str:
        """' (note)' for legends and printed lines; '' for a finished run."""
        note = self.note()
        return f" ({note})" if note else ""


def _ended(status: str) -> str:
    """How a run whose data file has `status` and no finished summary ended: "preempted" (SIGTERM/SIGUSR1), or
    "interrupted" for "running", which says only that the run was running when it last wrote the file (a
    SIGKILL, a node failure or a crash leaves it so; a run still in progress holds its lock: `run_state`), and for a
    network's "trained" (killed after training, before its outputs); '' for other states."""
    return {"preempted": "preempted", "running": "interrupted", "trained": "interrupted"}.get(status, "")


def _state_attrs(path, keys=("status", "stopped", "step", "epoch")) -> dict:
    """`status`, `stopped` and `step`/`epoch` attributes (or those named in `keys`) of a data file ({} when absent or
    unreadable)."""
    try:
        with h5_source(path) as source, h5py.File(source, "r") as f:
            return {k: f.attrs[k] for k in keys if k in f.attrs}
    except DAMAGED:
        return {}


def network_config(entries: dict) -> tuple[dict | None, str]:
    """(job configuration, "") of a network run's checkpoint.pt from the `config` entry of its plain entries
    (`network_checkpoint`: the job's JSON text, `hpcflow.nn.checkpoint`); (None, why) where that entry is missing,
    no JSON text or no JSON object: "checkpoint.pt's config entry is missing (damaged)" (or 'is not JSON', 'is not a
    JSON object'), a damaged checkpoint that `hpcflow nn --resume` refuses (`hpcflow.nn.job.check_same_job`). The one
    reader of that entry for the analysis and the report."""
    text = entries.get(("config",), _ABSENT)
    if text is _ABSENT:
        return None, _CONFIG_FAULT.format("is missing")
    try:
        cfg = json.loads(text) if isinstance(text, str) else _ABSENT
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser follows
        cfg = _ABSENT
    if cfg is _ABSENT:
        return None, _CONFIG_FAULT.format("is not JSON")
    return (cfg, "") if isinstance(cfg, dict) else (None, _CONFIG_FAULT.format("is not a JSON object"))


#: why `network_config` finds no job in a checkpoint.pt
_CONFIG_FAULT = NN_CHECKPOINT + "'s config entry {} (damaged)"


def network_checkpoint(run_dir) -> dict:
    """The plain entries of a network run's checkpoint.pt (`hpcflow.jobs.torch_file.plain_entries`: status,
    train.epoch, config, ranks), read without torch; {} when there is none or it cannot be read so."""
    from hpcflow.jobs.torch_file import plain_entries

    path = os.path.join(os.fspath(run_dir), NN_CHECKPOINT)
    try:
        return plain_entries(pinned(path)) if os.path.isfile(path) else {}
    except ValueError:
        return {}


def network_legs(entries: dict) -> list:
    """The `legs` of a network run's checkpoint.pt from its plain entries (`network_checkpoint`): one dict per leg, of
    its plain values (from_step, to_step, ranks, ...), first to last; [] where it records none."""
    legs = {}
    for key, value in entries.items():
        if len(key) == 3 and key[0] == "legs" and isinstance(key[1], int):
            legs.setdefault(key[1], {})[key[2]] = value
    return [legs[i] for i in sorted(legs)]


def _network_state(run_dir, summary: dict) -> dict:
    """nn.h5's `status`, `stopped` and `epoch` attributes (`_state_attrs`) with the status and epoch of checkpoint.pt,
    the newest record of a network run (written every [checkpoint].every epochs and on a signal; nn.h5 at its end),
    but for the status of a summary that describes the checkpoint's epoch (a preempted run's: its checkpoint says
    "running")."""
    attrs = _state_attrs(os.path.join(run_dir, NN))
    entries = network_checkpoint(run_dir)
    for key, path in (("status", ("status",)), ("epoch", ("train", "epoch"))):
        if path in entries:
            attrs[key] = entries[path]
    if "epoch" in attrs and _int(summary.get("checkpoint_step")) == _int(attrs["epoch"]) and summary.get("status"):
        attrs["status"] = summary["status"]
    return attrs


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _int(value) -> int | None:
    try:
        return int(value) if not isinstance(value, (bool, np.bool_)) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: inf
        return None


def run_dir_of(path) -> str | None:
    """The run directory `path` stands for: itself, or the directory of a data file passed by its own name
    (DATA_FILES); None for a file of another name (a copy without its run directory)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return path
    return os.path.dirname(os.path.abspath(path)) if os.path.basename(path) in DATA_FILES else None


def judged(run_dir) -> tuple[bool, str]:
    """completeness() of a run directory, or (False, "running: hpcflow run, pid P@HOST, since T") while a live run
    holds its lock (`hpcflow.jobs.outlock.live_holder`): its data file is still being written, and not judged."""
    running = holder(run_dir)
    return (False, f"{RUNNING}{running}") if running else completeness(run_dir)


def stop_reason(run_dir, status: str, said: str) -> str:
    """Why the run of `run_dir` stopped early: its own words `said` (summary.json's or its data file's `stopped`),
    but for a trial that its study's pruner stopped (status "stopped") the study's record of it
    (`hpcflow.analysis.study.pruned_by`), which says by what."""
    if status != "stopped" or _output.enclosing_study(run_dir) is None:
        return said
    from hpcflow.analysis.study import pruned_by

    return pruned_by(run_dir) or said


def run_state(run_dir) -> RunState:
    """The RunState of a flow or network run directory (or of one of its data files), from its lock (a live run:
    "running: ..."), completeness(), summary.json and the attributes of checkpoint.h5 (flow) or nn.h5 (network),
    which a run writes before its summary; a data file of another name is judged by its own attributes alone."""
    path, run_dir = os.fspath(run_dir), run_dir_of(run_dir)
    if run_dir is None:
        attrs = _state_attrs(path)
        status = _text(attrs.get("status"))
        step = _int(attrs.get("step", attrs.get("epoch")))
        unit = "step" if "step" in attrs else "epoch"
        if _ended(status):
            return RunState(False, f"{_ended(status)} (status {status!r} of {os.path.basename(path)})", status, step,
                            "", unit)
        return RunState(True, "", status, step, _text(attrs.get("stopped")), unit)
    complete, reason = judged(run_dir)
    summary = read_summary(run_dir) or {}
    ckpt, nn = os.path.join(run_dir, CHECKPOINT), os.path.join(run_dir, NN)
    flow = os.path.isfile(ckpt)
    attrs = _state_attrs(ckpt) if flow else _network_state(run_dir, summary)
    # a complete run's summary describes its data file; an incomplete one's data file is newer than its summary
    first, second = (summary, attrs) if complete else (attrs, summary)
    status = _text(first.get("status")) or _text(second.get("status"))
    stopped = stop_reason(run_dir, status, _text(first.get("stopped")) or _text(second.get("stopped")))
    step = _int(attrs.get("step" if flow else "epoch"))
    if step is None:
        step = _int(summary.get("checkpoint_step", summary.get("steps_taken")))
    network = not flow and (os.path.isfile(nn) or os.path.isfile(os.path.join(run_dir, NN_CHECKPOINT)))
    missing = nn_missing(run_dir) if complete and network else ""
    return RunState(complete, reason, status, step, stopped, "epoch" if network else "step", missing)


def job_kind_of(run_dir) -> str | None:
    """The job kind of a run directory: the [job] kind of its job.toml, else of its summary.json's config, else the
    kind whose output files it holds (`hpcflow.jobs.registry.OUTPUTS`, a network's nn.h5 or checkpoint.pt first);
    None when nothing says."""
    from hpcflow.errors import UserError
    from hpcflow.jobs.registry import OUTPUTS
    from hpcflow.jobs.schema import read_toml

    job = os.path.join(run_dir, "job.toml")
    try:
        cfg = read_toml(job) if os.path.isfile(job) else None
    except (UserError, OSError):
        cfg = None
    if not isinstance(cfg, dict):
        cfg = (read_summary(run_dir) or {}).get("config")
    kind = (cfg.get("job") or {}).get("kind") if isinstance(cfg, dict) and isinstance(cfg.get("job"), dict) else None
    if isinstance(kind, str):
        return kind
    order = sorted(OUTPUTS, key=lambda k: k != "nn")  # a network run's files before a flow's checkpoint.h5
    return next((k for k in order if any(os.path.isfile(os.path.join(run_dir, n)) for n in OUTPUTS[k])), None)


def job_verb(run_dir) -> str:
    """The `hpcflow` command that runs the job of a run directory: "nn" for a network job (`job_kind_of`; `hpcflow
    run` runs one too, but the README's command for network jobs is `hpcflow nn`, the only one that continues them),
    else "run"."""
    return "nn" if job_kind_of(run_dir) == "nn" else "run"


def resumable_kind(run_dir) -> bool:
    """False where the job kind of a run directory (`job_kind_of`) writes no checkpoints, so that --resume refuses it
    (`hpcflow.jobs.registry.checkpointed`: noise_scan, distance_scaling, local_limit, clustering); True otherwise,
    an unknown kind included."""
    from hpcflow.jobs.registry import KINDS, checkpointed

    kind = job_kind_of(run_dir)
    return kind not in KINDS or checkpointed(kind)


def nn_resume_command(run_dir) -> str:
    """`hpcflow nn DIR/job.toml --out DIR --resume` of a network run directory (JOB where it holds no job.toml), quoted
    for a shell (`shell_line`: a directory name with a space or quote)."""
    return rerun_command(run_dir, run_dir, "--resume", verb="nn")


def nn_continuation(run_dir) -> str:
    """How a network run interrupted before it wrote nn.h5 is continued: 'continue it with <hpcflow nn --resume>'
    (`nn_resume_command`), or what `_resume_fix` says instead (inside a study, the study's; a checkpoint.pt failing its
    CRC-32, which that resume refuses: the failure and the rerun)."""
    return _resume_fix(run_dir, nn_resume_command(run_dir), network=True)


def command_path(path) -> str:
    """A path as every command that the report and the analysis scripts advise names it: absolute, so that the
    command, pasted in any directory (the report is read later, from anywhere), means the directory it was made for;
    `shell_line` quotes it."""
    return os.path.abspath(os.fspath(path))


def rerun_command(run_dir, out, *flags, verb: str | None = None) -> str:
    """`hpcflow VERB DIR/job.toml --out OUT FLAGS...`: the job of run directory `run_dir` (JOB where it holds no
    job.toml) run into `out`, VERB the one for its kind (`job_verb`) unless given, DIR and OUT absolute
    (`command_path`); one line that a POSIX shell splits back into its words (`commands.run.shell_line`), so that it
    can be pasted as it is, in any directory."""
    from hpcflow.jobs.shell import shell_line

    job = os.path.join(command_path(run_dir), "job.toml")
    return shell_line(["hpcflow", verb or job_verb(run_dir), job if os.path.isfile(job) else "JOB", "--out",
                       command_path(out), *flags])


def nn_missing(run_dir) -> str:
    """'nn.h5 missing: <fix>' of a network run directory whose run is complete (`completeness`: its summary.json
    describes its checkpoint.pt) but whose nn.h5 is gone (a partial copy): `hpcflow nn --resume` writes it again
    from checkpoint.pt, or inside a study what the study does (`_resume_fix`); "" when nn.h5 is there."""
    if os.path.isfile(os.path.join(run_dir, NN)) or not os.path.isfile(os.path.join(run_dir, NN_CHECKPOINT)):
        return ""
    from hpcflow.analysis.study import continuation

    whole, crc = _mendable(run_dir, network_checkpoint(run_dir))
    study = continuation(run_dir, nn_h5_from=whole)
    if study or whole:
        return f"{NN} missing: {study or 'write it again with ' + nn_resume_command(run_dir)}"
    return f"{NN} missing{crc}: {rerun(run_dir)}"


def _mendable(run_dir, entries: dict) -> tuple:
    """(whether checkpoint.pt, whose plain entries are `entries`, holds the whole training (`whole_training`) and
    passes its zip CRC-32 check, which `hpcflow nn --resume` and tune's mend apply before they redo what follows
    training from it; ', checkpoint.pt fails its CRC-32 check (ENTRY)' where it does not, ', checkpoint.pt's config
    entry ... (damaged)' where that entry holds no job (`network_config`), else ''). The CRC is read only here, for a
    run whose nn.h5 is missing or damaged."""
    if not whole_training(entries):
        fault = network_config(entries)[1] if entries else ""  # a job that says no epoch count
        return False, f", {fault}" if fault else ""
    bad = _crc_failure(run_dir)
    return not bad, f", {bad}" if bad else ""


def _resume_refusal(run_dir) -> str:
    """Why `hpcflow nn --resume` refuses a network run's checkpoint.pt that is a zip archive of torch.save: its config
    entry missing or damaged (`network_config`), or an entry failing its CRC-32 (`_crc_failure`); '' when neither
    (and for a file that is no such archive, which its reader judges)."""
    entries = network_checkpoint(run_dir)
    return (network_config(entries)[1] if entries else "") or _crc_failure(run_dir)


def _crc_failure(run_dir) -> str:
    """'checkpoint.pt fails its CRC-32 check (ENTRY)' where an entry of a network run's checkpoint.pt fails its zip
    CRC-32 (`hpcflow.jobs.torch_file.crc_fault`: `hpcflow nn --resume` and tune's mend refuse it), else '' (and for a
    file that is no zip archive, which its reader judges). Reads every entry: asked only where a resume or a mend would
    read the checkpoint."""
    from hpcflow.jobs.torch_file import crc_fault

    bad = crc_fault(os.path.join(os.fspath(run_dir), NN_CHECKPOINT))
    return "" if bad is None else f"{NN_CHECKPOINT} fails its CRC-32 check ({bad})"


def whole_training(entries: dict) -> bool:
    """Whether the plain entries of a network run's checkpoint.pt (`network_checkpoint`) hold the whole training of a
    finished run, or of one whose width-sweep or kernel-flow network diverged after it: the checkpoint that
    `hpcflow nn --resume` (inside a study, the study's `hpcflow tune`) writes a missing or damaged nn.h5 again from
    (`commands.nn.redoes_nn_h5`)."""
    status, epoch, position = (entries.get(k) for k in (("status",), ("train", "epoch"), ("train", "position")))
    epochs = _job_epochs(entries)
    return status in ("finished", "diverged") and position == 0 and epochs is not None and epoch >= epochs


def _job_epochs(entries: dict) -> int | None:
    """[training].epochs of the job in a network checkpoint's plain entries, None where they do not say (or say no
    whole epoch count) or its train.epoch is not one."""
    training = (network_config(entries)[0] or {}).get("training")
    epochs = training.get("epochs") if isinstance(training, dict) else None
    return epochs if isinstance(epochs, int) and isinstance(entries.get(("train", "epoch")), int) else None


def nn_damaged_fix(run_dir) -> str:
    """How a network run whose nn.h5 cannot be read is made whole: where its checkpoint.pt (read without torch) holds
    the whole training (`whole_training`), 'write it again with <hpcflow nn --resume>', which redoes what follows
    training from it, or for a finished trial inside a study the study's `hpcflow tune`, which does the same; the
    continuation of a run that it holds part way; else (checkpoint.pt missing or damaged, the main network
    diverged, another trial inside a study) `rerun_fix`."""
    from hpcflow.analysis.study import continuation

    entries = network_checkpoint(run_dir)
    whole, crc = _mendable(run_dir, entries)
    study = continuation(run_dir, refused="--force", nn_h5_from=whole)
    if study or whole:
        return study or f"write it again with {nn_resume_command(run_dir)}"
    if entries.get(("status",)) in ("running", "preempted", "trained") and _job_epochs(entries) is not None:
        return _resume_fix(run_dir, nn_resume_command(run_dir), network=True)
    return f"{crc.removeprefix(', ')}; {rerun(run_dir)}" if crc else rerun(run_dir)  # (outside a study: `study` "")


def once(paths, *, by_run: bool = False, grouped: bool = False) -> tuple[list, list]:
    """(each input once, in the order given; the repeats left out): a path given twice, or by two spellings of one
    file or directory (its resolved path), is read once; `by_run`: so are a run directory and its data files (by
    their own names, `run_dir_of`), which stand for one run. `grouped` (with `by_run`), for a reader that reads the
    paths of one run together itself (`histories.by_run`): the repeats are those `by_run` names where the run's
    directory is given, but only a path given twice is left out; a run's data files given without its directory (a
    network's nn.h5 and checkpoint.pt, read together) are no repeat."""
    paths = list(map(os.fspath, paths))
    dirs = {os.path.realpath(p) for p in paths if os.path.isdir(p)} if grouped else set()
    unique, twice, seen, given = [], [], set(), set()
    for p in paths:
        key = exact = os.path.realpath(p)
        run = os.path.realpath(run_dir_of(p) or p) if by_run else exact
        if not grouped or run in dirs:
            key = run
        if key in seen:
            twice.append(p)
        if exact not in given if grouped else key not in seen:
            unique.append(p)
        seen.add(key)
        given.add(exact)
    return unique, twice


def names(paths) -> list:
    """Names that tell runs apart in one table or legend: each run's base name (`label`), and where two share one,
    their paths below the deepest directory they share (x/run and y/run, not run twice); a directory given twice
    keeps its one name."""
    short = [label(p) for p in paths]
    dirs = [os.path.abspath(run_dir_of(p) or p) for p in paths]
    out = []
    for d, s in zip(dirs, short):
        twins = [q for q, t in zip(dirs, short) if t == s]
        out.append(s if len(set(twins)) == 1 else shown(os.path.relpath(d, os.path.commonpath(twins))))
    return out


def label(run_dir) -> str:
    """A short name for a run directory in legends and tables (its base name, of its absolute path: '.' or '..'
    names the directory they stand for; for a data file passed by its own name, its directory's), as `shown`."""
    path = os.path.abspath(run_dir_of(run_dir) or os.fspath(run_dir))
    return shown(os.path.basename(path) or path)
