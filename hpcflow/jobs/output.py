"""Job outputs: the output directory (refused if it holds results, unless --force), atomic JSON and HDF5.

Writers take `comm=None` keyword-only and decide inside whether to write: only rank 0 of `comm` (default:
MPI world when mpi4py is usable, else a single rank) writes; callers never test the rank themselves.
Files appear atomically (temporary file in the same directory, then rename), so an interrupted run never
leaves a half-written result under the final name.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
from contextlib import contextmanager

import h5py
import numpy as np

from hpcflow import __version__
from hpcflow.atomic import TMP_MARK, atomic_file
from hpcflow.errors import InputFileError, OutputPathError


def rank(comm=None) -> int:
    """This process's rank in `comm` (default: `hpcflow.parallel.comm.resolve`); 0 without MPI."""
    from hpcflow.parallel.comm import rank as _rank

    return _rank(comm)


#: file systems that are not storage: an output there is refused
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
#: files every job run writes into its output directory (kinds add theirs: registry.OUTPUTS)
RUN_FILES = ("summary.json", "job.toml")
#: the record of an `hpcflow tune` study in its directory (hpcflow.tune.study.read_record)
STUDY_RECORD = "study.json"
#: the first line of the job.toml a run writes (`hpcflow.commands.run.saved_job`'s header)
SAVED_JOB_HEADER = re.compile(r"# hpcflow \S+: the validated configuration of ")
#: the "format" entry of the checkpoint.pt of 'hpcflow nn' (`hpcflow.nn.checkpoint.FORMAT`, read here without torch)
NN_CHECKPOINT_FORMAT = "hpcflow.nn_checkpoint"
#: bytes at the head of a run's file that cannot be parsed (cut short, damaged) in which its writer's mark is looked
#: for (a run's HDF5 files hold their root attributes, hpcflow_version among them, within their first few KiB)
MARK_WINDOW = 1 << 20
#: a network run's files that carry no mark of their own (`hpcflow.nn.checkpoint.save_model`): a run's only beside
#: that run's nn.h5 (written just before them) or its job.toml
UNMARKED = ("model.pt", "model.pt.json")


def is_debris(name: str) -> bool:
    """A temporary `.NAME.tmp-*` left by an interrupted atomic write (never a result)."""
    return name.startswith(".") and TMP_MARK in name


def is_result(name: str) -> bool:
    """Whether an entry of an output directory is a result: neither debris nor the directory's lock file."""
    from hpcflow.jobs.outlock import LOCK_NAME

    return not is_debris(name) and name != LOCK_NAME


def saved_job_kind(path) -> str | None:
    """[job].kind of DIR/job.toml (`path` the directory) where a run wrote it (its first line is the header of
    `SAVED_JOB_HEADER`); "" where such a file's kind cannot be read (cut short); None where it is missing, not a
    file, or not written by a run (a user's job file)."""
    import tomllib

    try:
        with open(os.path.join(os.fspath(path), "job.toml"), "rb") as fh:
            data = fh.read(MARK_WINDOW + 1)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    if not SAVED_JOB_HEADER.match(text):
        return None
    try:
        kind = tomllib.loads(text)["job"]["kind"]
    except Exception:  # noqa: BLE001 - cut short or damaged: still the run's own file
        return ""
    return kind if isinstance(kind, str) else ""


def _head_holds(file: str, mark: bytes) -> bool:
    """Whether the first MARK_WINDOW bytes of `file` hold `mark` (False where it cannot be read)."""
    try:
        with open(file, "rb") as fh:
            return mark in fh.read(MARK_WINDOW)
    except OSError:
        return False


def _marked(file: str, name: str) -> bool:
    """Whether run file `file` (named `name` in its --out) carries the mark its writer stamps: summary.json and the
    HDF5 files (root attributes) their hpcflow_version, checkpoint.pt its format entry; one that cannot be parsed (cut
    short, damaged) where that mark is in its head. job.toml: `saved_job_kind`; model.pt(.json): none (`UNMARKED`)."""
    if name == "summary.json":
        try:
            with open(file, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError:
            return False
        except ValueError:
            return _head_holds(file, b'"hpcflow_version"')
        return isinstance(data, dict) and "hpcflow_version" in data
    if name.endswith(".h5"):
        try:
            with h5py.File(file, "r") as f:
                if "hpcflow_version" in f.attrs:
                    return True
        except Exception:  # noqa: BLE001 - not readable by h5py (cut short, damaged, held locked)
            pass
        return _head_holds(file, b"hpcflow_version")
    if name == "checkpoint.pt":
        from hpcflow.jobs.torch_file import plain_entries

        try:
            return plain_entries(file).get(("format",)) == NN_CHECKPOINT_FORMAT
        except ValueError:  # no zip archive (cut short): torch.save writes data.pkl, the format in it, first
            return _head_holds(file, NN_CHECKPOINT_FORMAT.encode())
    return False


def run_files_in(path) -> dict:
    """{name: whether an hpcflow run wrote it} for each file (or link) in directory `path` named as a run of some kind
    writes one (`all_run_files`; a directory of such a name is left out). Where DIR/job.toml is a run's
    (`saved_job_kind`), the files its kind writes are that run's whatever they hold (a damaged checkpoint.h5 too); a
    file of another name is the run's where it carries its writer's mark (`_marked`), model.pt and model.pt.json
    where the run's nn.h5 is there. A file that hpcflow did not write is taken for a user's: `refuse_foreign`."""
    from hpcflow.jobs.registry import OUTPUTS

    path = os.fspath(path)
    present = [n for n in all_run_files() if os.path.islink(os.path.join(path, n))
               or os.path.lexists(os.path.join(path, n)) and not os.path.isdir(os.path.join(path, n))]
    if not present:
        return {}
    kind = saved_job_kind(path)
    ours = set() if kind is None else {*RUN_FILES, *OUTPUTS.get(kind, all_run_files())}
    found = {n: n in ours or _marked(os.path.join(path, n), n) for n in present}
    for name in UNMARKED:
        if name in found and found.get("nn.h5"):
            found[name] = True
    return found


def foreign_said(path, foreign: list) -> str:
    """The refusal of directory `path` holding files `foreign` (names) that a run writes but no run wrote there."""
    files = " and ".join(os.path.join(path, n) for n in foreign)
    one = len(foreign) == 1
    it = "it" if one else "them"
    return (f"--out {path}: {files} {'is named as a file' if one else 'are named as files'} a run writes but "
            f"{'bears' if one else 'bear'} no mark of an hpcflow run, so {'it is' if one else 'they are'} taken for "
            f"the user's own, which neither a run nor --force replaces; move {it} out of {path} or choose another "
            "--out")


def refuse_foreign(path, *, job=None) -> None:
    """OutputPathError, before any work, where directory `path` holds a file named as a run's (`all_run_files`) that
    hpcflow did not write (`run_files_in`): a run would write over it and --force would remove it. First the
    refusals of a study directory (`refuse_study`), then the job file `job` being that user's DIR/job.toml, which
    the run writes anew (a run's own job.toml may be run again into its directory with --force: it holds the
    configuration the new one does; a --resume reads it instead and is not checked here)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return
    refuse_study(path)
    saved = os.path.join(path, "job.toml")
    if job is not None and saved_job_kind(path) is None and _same_file(job, saved):
        same = job if os.path.normpath(job) == os.path.normpath(saved) else f"{job} (that is, {saved})"
        raise OutputPathError(f"--out {path}: the job file {same} is the job.toml that the run writes there (the "
                              "validated configuration it ran, which --force would put in its place); copy the job "
                              "file elsewhere and run the copy, or choose another --out")
    foreign = [n for n, ours in run_files_in(path).items() if not ours]
    if foreign:
        raise OutputPathError(foreign_said(path, foreign))


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_path(path, *, flag: str = "--out", example: str = "runs/x", arg: str | None = None) -> str:
    """Common refusals of an output path: empty (the fix names `example`: a run directory, or a file to write), a
    NUL byte, under /proc, /sys or /dev; returns the str path. The messages name the path as the CLI option `flag`
    (--out PATH), or, where `arg` is given, as the Python-API argument of that name (path='PATH')."""
    said = (lambda p: f"{arg}={p!r}") if arg else (lambda p: f"{flag} {p}")
    if path is None or not os.fspath(path).strip():
        if arg:
            empty = "is empty" if path is None or not os.fspath(path) else "is blank"
            raise OutputPathError(f"{said(path)} {empty}; pass a file name, e.g. {arg}={example!r}")
        raise OutputPathError(f"{flag} is empty; give a path, e.g. {flag} {example}")
    path = os.fspath(path)
    if "\0" in path:
        raise OutputPathError(f"{said(path) if arg else f'{flag} {path!r}'} contains a NUL byte; choose another path")
    real = os.path.realpath(path)
    for root in PSEUDO_ROOTS:
        if real == root or real.startswith(root + os.sep):
            raise OutputPathError(f"{said(path)} lies under {root}, which is not storage; choose another path")
    return path


def check_output_file(path, *, force: bool, flag: str = "--out", force_flag: str = "--force",
                      arg: str | None = None) -> str:
    """An HDF5 output file's path as a str once it may be written (OutputPathError otherwise): `check_path`'s
    refusals, a path inside the study directory of `hpcflow tune` (`refuse_inside_study`) even with force, a directory,
    an existing file without force, a missing or unwritable parent directory, a name longer than the directory takes
    (`check_name_length`). `flag` names the path in the messages of a command (--out), `arg` instead that of a
    Python-API argument (`check_path`: path='...'; the other messages then start with the path itself), `force_flag`
    how to overwrite."""
    path = check_path(path, flag=flag, example="points.h5", arg=arg)  # (the HDF5 file to write)
    lead = "" if arg else f"{flag} "
    refuse_inside_study(path, lead=lead, fix=f"nothing is written among its files, with {force_flag} neither: choose "
                                             f"{'a path' if arg else f'an {flag}'} outside it")
    if path.endswith(os.sep) and not os.path.isdir(path):  # the OS reads NAME/ as a directory: no file is written there
        name = path.rstrip(os.sep) or os.sep
        raise OutputPathError(f"{lead}{path} ends with '{os.sep}', which names a directory; pass the name of the HDF5 "
                              f"file to write without it, e.g. {f'{arg}={name!r}' if arg else f'{flag} {name}'}")
    if os.path.isdir(path):
        raise OutputPathError(f"{lead}{path} is a directory; pass the name of the HDF5 file to write, e.g. "
                              f"{os.path.join(path, 'points.h5')}")
    from hpcflow.atomic import link_target

    dest = link_target(path)  # a symbolic link is written through (`atomic_file` follow=True): its target's directory
    via = f" (the target of the link {path})" if dest != path else ""
    if via:
        check_path(dest, flag=flag, arg=arg)
    # the directory as written, not os.path.abspath's (which drops NAME/.. lexically): the OS resolves `..` after a
    # missing directory or a file as a failure, where the temporary is created
    parent = os.path.dirname(dest) or os.curdir
    if via and not os.path.isdir(parent):  # a dangling link: force would not help, the directory must be made
        raise OutputPathError(f"{lead}{path} is a link to {dest}, whose directory {parent} is missing; create it or "
                              "pick another path")
    if os.path.lexists(path) and not force:
        raise OutputPathError(f"{lead}{path} exists; choose another path or pass {force_flag} to overwrite it")
    if not os.path.isdir(parent):
        why = not_a_directory(parent)
        fix = "create it or pick another path" if why.startswith("is missing") else "pick another path"
        raise OutputPathError(f"{lead}{path}: directory {parent}{via} {why}; {fix}")
    failed = write_probe(parent)
    if failed is not None:
        raise OutputPathError(f"{lead}{path}: directory {parent}{via} {unwritable_why(parent, failed)}; pick another "
                              "path or make it writable")
    check_name_length(dest, parent, lead)
    return path


def not_a_directory(path: str) -> str:
    """Why `path`, which is no directory, is not one, from the first of its leading parts (as written: `..` after a
    missing directory or a file is resolved by the OS, not dropped) that is not a directory: "is missing", "is not a
    directory", "is missing (X does not exist)" or "cannot be reached (X is not a directory)"."""
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        prefix = os.sep.join(parts[:i]) or os.sep
        if not parts[i - 1] or os.path.isdir(prefix):
            continue
        last = not any(parts[i:])
        if os.path.lexists(prefix):
            return "is not a directory" if last else f"cannot be reached ({prefix} is not a directory)"
        return "is missing" if last else f"is missing ({prefix} does not exist)"
    return "is not a directory"


def check_name_length(path: str, parent: str, lead: str, *, name: str | None = None,
                      fix: str = "choose a shorter name") -> None:
    """OutputPathError when the file name of `path` (or `name`, a directory `path` would need in `parent`) has more
    bytes than directory `parent` takes (NAME_MAX, `atomic.name_max`): it could not be created there
    (ENAMETOOLONG), after the work that writes it."""
    from hpcflow.atomic import name_max

    what = "the file name" if name is None else "a directory name in it"
    size, most = len(os.fsencode(os.path.basename(path) if name is None else name)), name_max(parent)
    if size > most:
        raise OutputPathError(f"{lead}{path}: {what} is {size} bytes long, more than the {most} that directory "
                              f"{parent} takes; {fix}")


def check_new_names(path: str, *, flag: str) -> None:
    """`check_name_length` for each directory that creating `path` makes below its nearest existing ancestor: a
    longer name is refused by mkdir (ENAMETOOLONG), so --check refuses it as the run does."""
    parent = nearest_existing(path)
    for name in os.path.relpath(os.path.abspath(path), parent).split(os.sep):
        check_name_length(path, parent, f"{flag} ", name=name, fix=f"give {flag} a shorter path")
        parent = os.path.join(parent, name)


def blocking_entry(path: str) -> str | None:
    """The first leading part of `path` (itself included) that exists and is not a directory, as creating `path`
    (mkdir -p) meets it: a part is taken as written while it exists (`..` after a file fails there), and as
    normalised once an earlier part is missing (mkdir -p creates that one, after which its `..` leads back); None
    when there is none. `nearest_existing` normalises first, so it misses a file that `..` steps over."""
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        if not parts[i - 1]:
            continue
        prefix = os.sep.join(parts[:i])
        at = prefix if os.path.lexists(prefix) else os.path.normpath(prefix)
        if os.path.lexists(at) and not os.path.isdir(at):
            return at
    return None


def nearest_existing(path: str) -> str:
    """The closest ancestor of `path` (itself included) that exists."""
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    return p


def checkpoint_progress(path) -> int | None:
    """Steps (checkpoint.h5's `step` attribute) or epochs (a network's checkpoint.pt, `train.epoch`) a checkpoint
    holds; None when it cannot be read (damaged; a checkpoint.pt that is no zip archive of torch.save, which only torch
    reads, where torch is missing)."""
    try:
        if os.fspath(path).endswith(".pt"):
            return _pt_epoch(path)
        with h5py.File(path, "r") as f:
            return int(f.attrs["step"])
    except Exception:  # noqa: BLE001 - not a readable checkpoint: the caller decides from summary.json alone
        return None


def checkpoint_damage(path) -> str | None:
    """Why a checkpoint file `path` is damaged, on one line: for a flow's checkpoint.h5, h5py cannot open it or read
    its root attributes or an integer `step` among them; for a network's checkpoint.pt, it is no zip archive of
    torch.save or an entry fails its CRC-32 (`_pt_damage`). None where it reads them, and where another process
    holds the HDF5 file's lock (in use, not damaged: `hpcflow.h5read.locked`). A look, not the checks of --resume
    (`hpcflow.checkpoint.load_resume`, `hpcflow.nn.checkpoint`), which may refuse a file read here."""
    from hpcflow.h5read import locked, one_line

    if os.fspath(path).endswith(".pt"):
        return _pt_damage(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}  # (a damaged attribute or global heap fails here)
            if "step" not in attrs:
                return "attribute step is missing"
            int(attrs["step"])
    except Exception as exc:  # noqa: BLE001 - whatever h5py raises on such a file
        return None if locked(exc) else one_line(exc) or type(exc).__name__
    return None


def _pt_damage(path) -> str | None:
    """Why a network's checkpoint.pt cannot be what --resume continues, in a few words: no zip archive (cut short by
    a copy) or an entry failing its CRC-32 (a flipped byte), read without torch; None where the archive reads (its
    contents are --resume's to check). A file that cannot be opened (no read permission) is left to the command's
    own refusal."""
    import zipfile
    import zlib

    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except OSError:
        return None
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"not a zip archive of torch.save: {exc}"
    except (RuntimeError, NotImplementedError, zlib.error) as exc:  # a flipped flag or method byte of an entry
        return f"unreadable zip archive: {exc}"
    return None if bad is None else f"entry {bad} fails its CRC-32"


def _pt_epoch(path) -> int:
    """checkpoint.pt's `train.epoch`, read from the zip archive without torch (`torch_file.plain_entries`), else
    by torch (an archive of another layout); an exception when neither reads it."""
    from hpcflow.jobs.torch_file import plain_entries

    try:
        epoch = plain_entries(path).get(("train", "epoch"))
    except ValueError:
        import torch

        return int(torch.load(path, map_location="cpu", weights_only=True)["train"]["epoch"])
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ValueError(f"{path}: train.epoch = {epoch!r}")
    return epoch


def read_summary(run_dir) -> dict | None:
    """summary.json of a run directory, or None when there is none (or it is not a JSON object)."""
    try:
        with open(os.path.join(os.fspath(run_dir), "summary.json"), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finished_summary(summary) -> bool:
    """Whether `summary` (`read_summary`'s: None where summary.json is missing or unreadable) is that of a run that
    ran to its end: status "finished" (every step or epoch, or a flow's early stop), not "preempted" (--resume
    continues it), "stopped" (a callback asked: a pruned tune trial) nor "diverged" (a numerical stop)."""
    return summary is not None and summary.get("status") == "finished"


def finished_run(path) -> bool:
    """Whether directory `path` holds a run that has finished: a finished summary.json (`finished_summary`) and no
    checkpoint there that --resume would continue (`interrupted`: one further on than that summary)."""
    return finished_summary(read_summary(path)) and not any(interrupted(path, name) for name in EXTENDS)


def interrupted(path, checkpoint: str) -> bool:
    """Whether directory `path` holds an interrupted run (what --resume continues): its `checkpoint` file beside no
    readable summary.json, beside one whose status is "preempted", or further on than the summary's
    `checkpoint_step` (a finished run extended with --resume and killed without a signal: SIGKILL, node failure)."""
    ckpt = os.path.join(path, checkpoint)
    if not os.path.isfile(ckpt):
        return False
    summary = read_summary(path)
    if summary is None or summary.get("status") == "preempted":
        return True
    done = summary.get("checkpoint_step")
    if isinstance(done, int) and not isinstance(done, bool):
        progress = checkpoint_progress(ckpt)
        return progress is not None and progress > done
    return False


#: the name of `write_probe`'s file, before its random part: debris (`is_debris`) should it be left behind
PROBE = f".hpcflow-probe{TMP_MARK}"
_PROBE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


#: `write_probe`'s verdicts made by rank 0 for every rank (`probes_shared`): absolute directory -> None, or the
#: (errno, strerror, filename) of the refused creation; None outside such a block
_SHARED_PROBES: dict | None = None


def write_probe(directory: str) -> OSError | None:
    """Whether a file can be created in `directory`, found by creating one (an empty `PROBE` file of a random name,
    O_EXCL) and removing it at once: None where it could, else the OSError of the creation. os.access answers for the
    permission bits alone, which root passes (while a read-only mount, an ACL or a file system's own rule refuses the
    write) and which the write itself may not follow (ACLs, network file systems). Inside `probes_shared`, the
    verdict rank 0 made for `directory` where it made one."""
    shared = _SHARED_PROBES.get(os.path.abspath(directory), False) if _SHARED_PROBES is not None else False
    if shared is not False:
        return None if shared is None else OSError(*shared)
    probe = os.path.join(directory, f"{PROBE}{secrets.token_hex(8)}")
    try:
        os.close(os.open(probe, _PROBE_FLAGS, 0o600))
    except OSError as exc:
        return exc
    try:
        os.unlink(probe)
    except OSError:  # (left as debris, which a run's remove_debris takes)
        pass
    return None


def probed_directory(path, *, file: bool = False) -> str | None:
    """The directory `write_probe` is made in for output directory `path` (`writable_dir`: itself where it is one,
    else its nearest existing ancestor) or, with `file`, for output file `path` (`check_output_file`: the directory
    of the file a link leads to); None where there is none to probe (refused otherwise)."""
    try:
        path = os.fspath(path)
        if file:
            from hpcflow.atomic import link_target

            probed = os.path.dirname(link_target(path)) or os.curdir
        else:
            probed = path if os.path.isdir(path) else nearest_existing(path)
    except (TypeError, ValueError, OSError):  # (a path check_path refuses: said by the checks themselves)
        return None
    return probed if os.path.isdir(probed) else None


@contextmanager
def probes_shared(directories, comm=None):
    """A block whose checks (`write_probe`) find the verdicts rank 0 made for `directories` (`probed_directory`'s,
    None dropped) on every rank of `comm`, one probe file in all for each, given by one bcast (collective: every
    rank enters it, before the checks). A probe on every rank at once is a storm of creations and removals in one
    directory for a parallel file system's metadata server; a directory no verdict is given for (a rank's own,
    node-local path) is probed by the rank itself. Nothing is shared at one rank."""
    global _SHARED_PROBES
    from hpcflow.parallel.comm import rank, resolve, size

    c = resolve(comm)
    if size(c) == 1 or _SHARED_PROBES is not None:
        yield
        return
    verdicts = None
    if rank(c) == 0:
        verdicts = {}
        for d in directories:
            if d is not None and os.path.abspath(d) not in verdicts:
                failed = write_probe(d)
                verdicts[os.path.abspath(d)] = None if failed is None else (failed.errno, failed.strerror,
                                                                            failed.filename)
    _SHARED_PROBES = c.bcast(verdicts, root=0)
    try:
        yield
    finally:
        _SHARED_PROBES = None


def unwritable_why(path: str, failed: OSError | None = None) -> str:
    """Why no file can be created in directory `path` (`failed`: `write_probe`'s error), in a few words: it "lies on a
    read-only file system" (EROFS, or mounted read-only), "is not writable" (permissions: EACCES, EPERM), or "cannot
    be written (STRERROR)" for another error (no inode left, the quota)."""
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    code = getattr(failed, "errno", None)
    if read_only or code == errno.EROFS:
        return "lies on a read-only file system"
    if code is None or code in (errno.EACCES, errno.EPERM):
        return "is not writable"
    return f"cannot be written ({failed.strerror or os.strerror(code)})"


def writable_dir(path, *, flag: str = "--out", resume: bool = False) -> str:
    """The refusals of a directory to write into, touching the disk only to create and remove a probe file
    (`write_probe`): `check_path`'s, an existing file, an
    unwritable directory, or a missing directory whose nearest existing ancestor is not a writable directory, or one
    of whose new names is longer than NAME_MAX (`check_new_names`). With `resume` (a --resume, which continues the run
    in that directory, not in another) an unwritable directory is to be made writable (`unwritable_said`)."""
    path = check_path(path, flag=flag)
    if os.path.islink(path) and not os.path.exists(path):  # (a dangling link: mkdir cannot create through it)
        why, fix = f"to a missing path ({os.readlink(path)})", "create the directory it points to, remove the link,"
        try:
            os.stat(path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # a loop of links (ELOOP)
            why, fix = f"that does not resolve ({exc.strerror})", "remove the link"
        raise OutputPathError(f"{flag} {path} is a symbolic link {why}; {fix} or choose another {flag}")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputPathError(f"{flag} {path} exists and is not a directory; choose another {flag}")
    blocked = blocking_entry(path)
    if blocked is not None:
        raise OutputPathError(f"cannot create {flag} {path}: {blocked} is not a directory; choose another {flag}")
    if os.path.isdir(path):
        failed = write_probe(path)
        if failed is not None:
            raise OutputPathError(unwritable_said(path, flag=flag, resume=resume, failed=failed))
        return path
    parent = nearest_existing(path)
    if not os.path.isdir(parent):
        raise OutputPathError(f"cannot create {flag} {path}: {parent} is not a directory; choose another {flag}")
    failed = write_probe(parent)
    if failed is not None:
        raise OutputPathError(f"cannot create {flag} {path}: {parent} {unwritable_why(parent, failed)}; choose "
                              f"another {flag}")
    check_new_names(path, flag=flag)
    return path


def unwritable_said(path: str, *, flag: str = "--out", resume: bool = False, failed: OSError | None = None) -> str:
    """The refusal of directory `path`, which this process may not write into (`failed`: `write_probe`'s error): on a
    read-only file system, by its permissions, or for another error (`unwritable_why`). A --resume (`resume`)
    continues the run there, so the fix is to make it writable, or to copy the run directory to a writable place and
    resume the copy; otherwise to choose another `flag`."""
    why = unwritable_why(path, failed)
    if not resume:
        return f"{flag} {path} {why}; choose another {flag}"
    fix = ("have its file system made writable again (mounted read-write)" if why.startswith("lies on") else
           f"make it writable (chmod u+w {path}, or ask its owner)" if why == "is not writable" else
           "free what it lacks (space, inodes, quota)")
    return (f"{flag} {path} {why}, and --resume continues the run in that directory; {fix}, or copy the directory to "
            f"a writable place and resume the copy ({flag} COPY --resume)")


def check_outdir(path, *, force: bool = False, outputs=(), job=None, resume: bool = False,
                 again: str | None = None) -> str:
    """Every refusal of prepare_outdir, touching the disk only with a probe file created and removed (`writable_dir`;
    also `hpcflow run --check`).

    Refused: what `writable_dir` refuses, a study directory of `hpcflow tune` (study.json) or a directory inside one
    (`refuse_inside_study`: a trial's) even with force (a run would write among its trials), a directory holding
    results (anything but debris of interrupted writes and the lock file: `is_result`; an earlier run's files and
    files no run writes are told apart) without force, and one
    where an output file (summary.json, job.toml, `outputs`) is a directory. An empty directory (e.g. left by a
    killed run) is accepted; one with files a killed --force run set aside is refused naming them before anything
    else (`refuse_set_aside`), one with a checkpoint but no readable summary.json (`interrupted`) with a pointer to
    --resume. A file named as a run's that hpcflow did not write is refused, with force too (`refuse_foreign`; `job`,
    the job file, being DIR/job.toml as well). `resume`: the --resume of the run in `path`, which keeps its files
    (force is True then, for the outputs it rewrites): neither of those checks, and an unwritable directory is said
    to be made writable (`writable_dir`). `again`: the command line that starts the run over (with --force), which
    the refusal of a damaged checkpoint gives (`refuse_interrupted`).
    """
    path = writable_dir(path, resume=resume)
    refuse_study(path)
    if os.path.isdir(path):
        results = [e for e in os.listdir(path) if is_result(e)]
        if not resume:  # a user's file first, then set-aside files: `refuse_set_aside`
            refuse_interrupted(path, "checkpoint.h5", force=force, job=job, again=again)
        if results and not force:
            raise OutputPathError(_not_empty(path, results, outputs))
        for name in (*RUN_FILES, *outputs):
            target = os.path.join(path, name)
            if os.path.isdir(target) and not os.path.islink(target):
                raise OutputPathError(f"--out {path}: {name} is a directory where the run writes a file; remove it "
                                      "or choose another --out")
    return path


def refuse_study(path) -> None:
    """OutputPathError where run directory `path` is the study directory of 'hpcflow tune' or lies inside one
    (`refuse_inside_study`), with --force too: a run does not write among its trials."""
    refuse_inside_study(path)
    if os.path.lexists(os.path.join(path, STUDY_RECORD)):
        raise OutputPathError(f"--out {path} is the study directory of 'hpcflow tune' ({STUDY_RECORD}); a run does "
                              "not write among its trials, with --force neither: choose another --out")


#: how `refuse_inside_study` ends for the output directory of a run
RUN_OUTSIDE_STUDY = ("a run does not write among its trials, with --force or --resume neither: choose an --out outside "
                     "it (a trial reruns from its job.toml into any other --out)")


def refuse_inside_study(path, *, lead: str = "--out ", fix: str = RUN_OUTSIDE_STUDY) -> None:
    """OutputPathError when `path` lies inside the study directory of `hpcflow tune` (an ancestor holding a study
    record, followed through symbolic links too): a run there would write over a trial (DIR/trials/NNNN) or among
    the study's files, which `hpcflow tune` writes itself, through `hpcflow.tune.trial.run_trial`, not through here.
    `lead` names the path in the message, `fix` ends it."""
    study_dir = enclosing_study(path)
    if study_dir is not None:
        raise OutputPathError(f"{lead}{path} lies inside {study_dir}, the study directory of 'hpcflow tune' "
                              f"({STUDY_RECORD}); {fix}")


def enclosing_study(path) -> str | None:
    """The study directory of `hpcflow tune` that `path` lies inside (an ancestor holding a study record, followed
    through symbolic links too), None when none."""
    for where in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        parent = os.path.dirname(where)
        while parent != where:
            if _study_record(parent):
                return parent
            where, parent = parent, os.path.dirname(parent)
    return None


def _study_record(directory: str) -> bool:
    """Whether `directory` holds a study record of `hpcflow tune`: study.json, a JSON object naming its study."""
    try:
        with open(os.path.join(directory, STUDY_RECORD), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("study"), str)


def refuse_interrupted(path, checkpoint: str, *, force: bool = False, resume: str = "--resume", job=None,
                       again: str | None = None) -> None:
    """Without force, OutputPathError when directory `path` holds an interrupted run (`interrupted`) of `checkpoint`;
    the line names `resume`, how to continue it (`hpcflow submit` resubmits it with its own --resume). A file named
    as a run's that hpcflow did not write (with force too: `refuse_foreign`, `job` the job file), then an earlier
    run's files that a killed --force run set aside there are named first (`refuse_set_aside`). A damaged checkpoint
    is said with `again`, the command line that starts over (`restart_said`), where the caller gives it."""
    refuse_foreign(path, job=job)
    if force:
        return
    killed = interrupted(path, checkpoint)
    damage = checkpoint_damage(os.path.join(path, checkpoint)) if killed else None
    refuse_set_aside(path, resume=resume if killed and not damage else None)  # (named before the killed run)
    if damage:  # --resume would refuse it: said here, not advised
        raise OutputPathError(damaged_said(path, checkpoint, damage, fix=restart_said(again)) if again else
                              damaged_said(path, checkpoint, damage))
    if killed:
        raise OutputPathError(f"--out {path} holds an interrupted run ({checkpoint} that no finished summary.json "
                              f"describes); continue it with {resume}, or pass --force to start over")


def damaged_said(path, checkpoint: str, damage: str, *, fix: str = "pass --force to start over (it replaces "
                 "that run's files), or choose another --out") -> str:
    """The refusal of directory `path` whose `checkpoint` (`damage`: `checkpoint_damage`) no finished summary.json
    describes: a run killed while it was copied or written, which --resume cannot continue; `fix` ends it."""
    return (f"--out {path} holds a damaged {checkpoint} ({damage}) that no finished summary.json describes, so "
            f"--resume cannot continue it; {fix}")


def restart_said(again: str) -> str:
    """How a refusal of a damaged checkpoint ends where the command line `again` (shell-quoted, with --force) starts
    the run over: that line to paste, or another --out; under R > 1 ranks first the launcher this process was
    started with (`hpcflow.commands.run.launch_note`, as the line that continues a run says it): pasted as it is,
    the line would start over on one rank."""
    from hpcflow.commands.run import launch_note

    return f"{launch_note()}start over with: {again} (it replaces that run's files), or choose another --out"


def refuse_set_aside(path, *, force: bool = False, resume: str | None = None) -> None:
    """Without force, OutputPathError when directory `path` holds an earlier run's files that a --force run set
    aside and was killed before it removed them or put them back (`hpcflow.jobs.replaced`): the line names the folder
    and what to do: move its files back (in place of the killed run's) to keep that run, remove it to drop them, or
    --force to replace them; where the killed run left a checkpoint to continue, `resume` (how to continue it), which
    keeps the folder (`hpcflow.jobs.replaced.replacing`)."""
    from hpcflow.jobs.replaced import leftovers

    left = leftovers(path) if not force and os.path.isdir(path) else []
    if left:
        raise OutputPathError(set_aside_said(path, left) + (
            f"; or continue the killed run with {resume}, which removes that folder once the run has finished" if resume
            else ""))


def set_aside_said(path, left: list) -> str:
    """The words naming the set-aside folders `left` (names) in directory `path` and how to keep or drop them; where
    the run itself settles the first one (`hpcflow.jobs.replaced.settling`: a command that does not take DIR's lock,
    --check, submit), what it does."""
    from hpcflow.jobs.replaced import settling

    aside = os.path.join(path, left[0])
    more = f" (and {len(left) - 1} more such folders)" if len(left) > 1 else ""
    how = settling(path, aside)
    if how == "remove":
        return (f"--out {path}: {aside}{more} holds an earlier run's files, set aside by a --force run that has since "
                f"finished (summary.json: status \"finished\"): the run (without --check) removes it first; to keep "
                f"them, move them out of {path}")
    if how == "put back":
        return (f"--out {path}: {aside}{more} holds an earlier run's files, set aside by a --force run that was killed "
                "before it wrote a file of its own: the run (without --check) puts them back first")
    return (f"--out {path}: {aside}{more} holds an earlier run's files, set aside by a --force run that was killed "
            f"before it removed them or put them back; to keep that earlier run, move its files back into {path} (in "
            f"place of the killed run's files there); to drop them, remove {aside}; or pass --force to replace them")


def refuse_no_checkpoint(path, checkpoint: str, *, command: str) -> None:
    """--resume's refusal (exit 2) of directory `path` without its `checkpoint` file: where a --force run killed
    before it put them back left an earlier run's files set aside, the folder holding them (`refuse_set_aside`: the
    checkpoint may be there, and a run without --resume is refused on that folder too); a `checkpoint` that is a
    directory, so said; the other command's checkpoint (a flow's for nn, a network's for run), with the command that
    continues it; else what a run without --resume then meets there: an earlier run's files (nothing to
    continue: --force without --resume starts over), files no run writes (--force runs beside them), or nothing (no
    `command` run is there)."""
    ckpt = os.path.join(path, checkpoint)
    if os.path.isfile(ckpt):
        return
    if os.path.isdir(path):
        refuse_set_aside(path)
    results = [e for e in os.listdir(path) if is_result(e)] if os.path.isdir(path) else []
    found = run_files_in(path) if results else {}
    own = [n for n in all_run_files() if found.get(n)]  # (hpcflow's; a user's file of such a name is no run's)
    if os.path.isdir(ckpt):
        rest = [e for e in own if e != checkpoint]
        then = (" and with --force (it replaces the earlier run's files there)" if rest else
                " and with --force to run beside the other files there" if len(results) > 1 else "")
        raise InputFileError(f"--resume: {ckpt} is a directory, not a checkpoint, so there is nothing to continue; "
                             f"remove it and run without --resume{then}, or choose another --out")
    other = {"checkpoint.h5": ("checkpoint.pt", "a network run's", "'hpcflow nn JOB --out DIR --resume'"),
             "checkpoint.pt": ("checkpoint.h5", "a kernel flow run's", "'hpcflow run JOB --out DIR --resume'")}
    theirs = other.get(checkpoint)
    if theirs and theirs[0] in own:
        raise InputFileError(f"--resume: {ckpt} does not exist: {path} holds {theirs[1]} {theirs[0]}, which "
                             f"'{command}' cannot continue; continue it with {theirs[2]} and that run's job file, or "
                             "choose another --out for this job (--force would replace that run)")
    if own:
        raise InputFileError(f"--resume: {ckpt} does not exist: {path} holds an earlier run's files "
                             f"({', '.join(own)}) but no {checkpoint}, so there is nothing to continue; to start over, "
                             "run without --resume and with --force (it replaces that run's files), or choose another "
                             "--out")
    if results:
        beside = ("" if not all(found.values()) else  # (--force refuses a user's file named as a run's)
                  ", or run without --resume and with --force to run beside its files")
        raise InputFileError(f"--resume: {ckpt} does not exist: {path} holds no earlier '{command}' run, so there is "
                             f"nothing to continue; choose another --out{beside}")
    raise InputFileError(f"--resume: {ckpt} does not exist (--resume needs the directory of an earlier '{command}' "
                         "run); run without --resume")


#: a checkpoint among a job kind's outputs -> the module whose RESUMABLE_SAID names what a --resume may change (the
#: key whose larger value extends its finished run first: the resume's own list, imported when said), and how
EXTENDS = {"checkpoint.h5": ("hpcflow.checkpoint", "--resume"),
           "checkpoint.pt": ("hpcflow.nn.job", "'hpcflow nn --resume'")}


def _not_empty(path: str, results: list, outputs=()) -> str:
    """The refusal of a directory with entries, without --force: an earlier run's results, or files no run writes
    (which --force leaves alone: it removes a run's own files only). Where they are a finished run of the kind that
    writes `outputs` with its checkpoint (`extendable`), the line adds how --resume extends it."""
    own = sorted(set(results) & set(all_run_files()))
    if own:
        extend = extendable(path, outputs)
        if extend:
            import importlib

            said = importlib.import_module(extend[0]).RESUMABLE_SAID
            return (f"--out {path} already holds results ({own[0]}); choose another --out, pass --force to overwrite "
                    f"them, or, where this job differs from that finished run's only in {said}, extend it with "
                    f"{extend[1]}")
        return f"--out {path} already holds results ({own[0]}); choose another --out or pass --force to overwrite them"
    first, more = sorted(results)[0], len(results) - 1
    others = f" and {more} more entr{'y' if more == 1 else 'ies'}" if more else ""
    return (f"--out {path} is not empty: it holds {first!r}{others}, which no run writes; choose another --out, or "
            "pass --force to run beside them (--force removes only an earlier run's files)")


def extendable(path, outputs=()) -> tuple | None:
    """(module, how) of `EXTENDS` when directory `path` holds a finished run (summary.json's status "finished", no
    early stop: `stopped` empty) beside the checkpoint that `outputs` (a job kind's) name, which --resume extends when
    the job differs only in what that module's RESUMABLE_SAID names; else None."""
    for name in outputs:
        if name in EXTENDS and os.path.isfile(os.path.join(path, name)):
            summary = read_summary(path)
            finished = finished_summary(summary) and not summary.get("stopped")
            return EXTENDS[name] if finished else None
    return None


def prepare_outdir(path, *, force: bool = False, outputs=(), comm=None) -> str:
    """Create the output directory (and missing parents) after `check_outdir`'s refusals.

    Only rank 0 creates it and removes debris of interrupted writes; the checks run on every rank so all ranks
    refuse alike. Rule: a directory that is empty (or holds only such debris) is reused silently, which is
    how a rerun continues after a run was killed before writing anything. With force, the files an earlier run
    of any kind wrote there are removed first (summary.json first), so no reader mixes its results with this
    run's and no --resume continues it; other files are left alone. The commands use
    `hpcflow.jobs.replaced.replacing` instead, which keeps them until the new run has written its own.
    """
    from hpcflow.jobs.replaced import discard, set_aside

    path = check_outdir(path, force=force, outputs=outputs)
    if rank(comm) == 0:
        make_outdir(path)
        if force:
            discard(path, set_aside(path))
        remove_debris(path)
    return path


def make_outdir(path: str) -> None:
    """Create directory `path` and missing parents (OutputPathError naming it when that fails)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create --out {path} ({exc.strerror}); choose a writable path") from None


def all_run_files() -> tuple:
    """Every file a run of any kind writes at the top of its --out, the most telling first: summary.json, the kinds'
    outputs (checkpoint.h5, ...), job.toml."""
    from hpcflow.jobs.registry import OUTPUTS

    return tuple(dict.fromkeys(("summary.json", *(name for names in OUTPUTS.values() for name in names), *RUN_FILES)))


def remove_debris(path, *, comm=None) -> None:
    """Remove the temporary files of interrupted atomic writes in directory `path` (rank 0; never a result)."""
    if rank(comm) != 0:
        return
    for name in os.listdir(path):
        if is_debris(name):
            try:
                os.unlink(os.path.join(path, name))
            except OSError:
                pass


def jsonable(obj):
    """Convert NumPy scalars/arrays and non-finite floats (-> None) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj, *, comm=None) -> None:
    """Write `obj` as indented JSON atomically (rank 0 only); non-finite numbers become null."""
    if rank(comm) != 0:
        return
    with atomic_file(path, "w") as fh:
        json.dump(jsonable(obj), fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")


def write_hdf5(path, datasets: dict, *, attrs: dict | None = None, comm=None) -> None:
    """Write an HDF5 file atomically (rank 0 only).

    `datasets` maps slash paths ("history/sigma_train") to arrays; groups are created as needed.
    `attrs` go on the root group; dicts/lists are stored as JSON strings.
    """
    if rank(comm) != 0:
        return
    with atomic_file(path) as fh, h5py.File(fh, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=np.asarray(data))
        f.attrs["hpcflow_version"] = __version__
        for key, value in (attrs or {}).items():
            if isinstance(value, (dict, list, tuple)):
                value = json.dumps(jsonable(value), sort_keys=True)
            elif value is None:
                value = "null"
            f.attrs[key] = value


def write_text(path, text: str, *, comm=None) -> None:
    """Write a UTF-8 text file atomically (rank 0 only), e.g. a copy of the job file."""
    if rank(comm) != 0:
        return
    with atomic_file(path, "w") as fh:
        fh.write(text)
