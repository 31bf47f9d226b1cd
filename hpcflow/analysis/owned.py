"""Files a tool wrote into an output directory, recorded in DIR/.hpcflow_TOOL.json ({"files": {name: SHA-256}}).

`hpcflow report` and the scripts in analysis/ write their figures and tables among other files of --out; the record
tells their own earlier files from the user's: --force replaces (and removes, where the new call does not write them)
only files the record lists (edited since or not: an edited report.md is replaced too; without --force an edited
one is refused) and refuses a same-named file of anyone else's, naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager

from hpcflow.atomic import _fsync_dir, atomic_file, temporaries_of
from hpcflow.errors import OutputPathError


def record_name(tool: str) -> str:
    """The record's file name of `tool` ("report", "sigma_history", ...)."""
    return f".hpcflow_{tool}.json"


def sha256(path) -> str | None:
    """The SHA-256 of file `path` in hex; None when it is not a regular file or cannot be read."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def listed(out, record: str) -> dict | None:
    """{name: SHA-256 or None} of record file `record` in directory `out`; None when it is missing or not such a
    list (None stands for a file being written when the tool stopped)."""
    try:
        with open(os.path.join(out, record), encoding="utf-8") as fh:
            files = json.load(fh).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, dict) or not all(isinstance(v, (str, type(None))) for v in files.values()):
        return None
    return {k: v for k, v in files.items() if "/" not in k and k not in (record, ".", "..")}


def own(out, files: dict) -> list:
    """The names of `files` (a record) that are files in `out` as the tool wrote them (same SHA-256; any content for
    a name it was writing when it stopped)."""
    return [n for n, h in files.items() if (digest := sha256(os.path.join(out, n))) and h in (None, digest)]


def write_record(out, record: str, files: dict) -> None:
    with atomic_file(os.path.join(out, record), "w") as fh:
        json.dump({"files": files}, fh, indent=1, sort_keys=True)
        fh.write("\n")


def not_own(out, names, record: str) -> str | None:
    """The path of the first of `names` that exists in `out` but is not a file the record lists (one the tool wrote
    there, though changed since, is its own); None."""
    mine = set(listed(out, record) or {})
    for name in names:
        if os.path.lexists(os.path.join(out, name)) and name not in mine:
            return os.path.join(out, name)
    return None


def unlisted(out, record: str) -> str:
    """Why a file in `out` is not known as the tool's: the record there does not list it, or there is no record."""
    if os.path.lexists(os.path.join(out, record)):
        return f"{record} there does not list it"
    return f"there is no {record} there, the record of the files it wrote"


def refuse_not_own(out, names, record: str, *, tool: str, flag: str = "--out") -> None:
    """Refuse (OutputPathError, before anything is written) a file of `names` in `out` that the tool did not write
    there (`not_own`): --force replaces only the tool's own files; another's is never lost."""
    path = not_own(out, names, record)
    if path:
        raise OutputPathError(f"{flag} {out}: {path} was not written by {tool} ({unlisted(out, record)}), "
                              f"and --force replaces only files it wrote; move it away or choose another {flag}")


def write_owned(out, record: str, names, write) -> dict:
    """write(open_) the files `names` into `out` (created, as mkdir -p) under the record, each through `open_(path,
    mode="wb")` (path OUT/NAME, mode "wb" or "w": `_staged`), a file object on a temporary beside it. Only once every
    file is written whole are they renamed onto their names, with stop requests held back until the record says so
    (`stop_signals.defer`): a call that fails or is stopped while it writes (a full disk, Ctrl-C, SIGTERM) leaves the
    directory as it was, an earlier output whole (its report.md never beside another call's figures, none of its
    files removed) and an `out` it created removed, so that the call made again, as its error advises, is neither
    refused over its own debris nor left with a half-replaced result. Before the renames the record lists this call's
    files (as being written) beside the tool's earlier ones, so that a call killed among them (SIGKILL) is still
    recognised; after them the tool's earlier files that this call did not write are removed and the record lists
    this call's with their SHA-256. The debris of an earlier call's interrupted writes (`.NAME.tmp-*` of these names)
    is removed first. {'replaced': the tool's earlier files found in `out` (as its record listed them, unchanged),
    'removed': those of them this call did not write, now gone}, names sorted."""
    from hpcflow.analysis.script import make_dir
    from hpcflow.stop_signals import defer, deliver

    names = list(names)
    created = _missing(out)
    make_dir(out)
    staged = {}  # name -> its temporary, written whole
    old = {}
    held = None
    try:
        old = listed(out, record) or {}
        old = {n: old[n] for n in own(out, old)}
        _remove_debris(out, [*old, *names, record])
        write(lambda path, mode="wb": _staged(staged, path, mode))
        if missing := [n for n in names if n not in staged]:
            raise ValueError(f"{out}: {missing[0]} was not written")
        held = defer()  # from the record on, the renames are not cut in two by a stop request
        write_record(out, record, {**old, **dict.fromkeys(names)})
    except BaseException:
        try:
            for tmp in staged.values():
                _unlink(tmp)
            _remove_debris(out, [*names, record])
            for d in created:  # (an `out` where another's file appeared meanwhile stays, with that file)
                try:
                    os.rmdir(d)
                except OSError:
                    break
        finally:
            if held is not None:
                deliver(held)
        raise
    try:
        for name in names:
            os.replace(staged[name], os.path.join(out, name))
        _fsync_dir(out)  # the renames on disk before the record says they are done
        for name in set(old) - set(names):
            _unlink(os.path.join(out, name))
        write_record(out, record, {name: sha256(os.path.join(out, name)) for name in names})
    finally:
        deliver(held)
    return {"replaced": sorted(old), "removed": sorted(set(old) - set(names))}


@contextmanager
def _staged(staged: dict, path, mode: str = "wb"):
    """A file object ("wb": binary, readable too; "w": UTF-8 text) on a new temporary beside `path`
    (`.NAME.tmp-<hex>`: debris of an interrupted write where left), created with O_EXCL and never through a link,
    synced to disk at the end of the block and then recorded as staged[NAME]; on any error the temporary is removed,
    and a write failure (`hpcflow.atomic.write_failure`: a full disk) is raised as WriteFailed naming `path`."""
    from hpcflow.atomic import _tmp_name, write_failure
    from hpcflow.errors import WriteFailed

    path = os.fspath(path)
    tmp = _tmp_name(path)
    try:
        with os.fdopen(os.open(tmp, _CREATE, 0o644), "w" if mode == "w" else "w+b",
                       encoding="utf-8" if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        _unlink(tmp)
        failed = write_failure(exc)
        if failed is not None and not isinstance(exc, WriteFailed):
            raise WriteFailed(failed.errno, failed.strerror or os.strerror(failed.errno), path) from exc
        raise
    staged[os.path.basename(path)] = tmp


#: how a staged file is created: new (never an existing name, a planted link), readable for PNG writers
_CREATE = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone; or not removable now (EIO): debris the next call removes
        pass


def _missing(out) -> list:
    """The directories `out` and its ancestors that do not exist yet, deepest first (what mkdir -p would create)."""
    missing, d = [], os.path.abspath(out)
    while not os.path.lexists(d) and os.path.dirname(d) != d:
        missing.append(d)
        d = os.path.dirname(d)
    return missing


def _remove_debris(out, names) -> None:
    """Remove the temporaries of interrupted writes (`.NAME.tmp-*`) of `names` in `out`."""
    for entry in sorted({e for name in names for e in temporaries_of(out, name)}):
        _unlink(os.path.join(out, entry))
