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

from hpcflow.atomic import atomic_file, temporaries_of
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


def refuse_not_own(out, names, record: str, *, tool: str, flag: str = "--out") -> None:
    """Refuse (OutputPathError, before anything is written) a file of `names` in `out` that the tool did not write
    there (`not_own`): --force replaces only the tool's own files; another's is never lost."""
    path = not_own(out, names, record)
    if path:
        raise OutputPathError(f"{flag} {out}: {path} was not written by {tool} ({record} there does not list it), "
                              f"and --force replaces only files it wrote; move it away or choose another {flag}")


def write_owned(out, record: str, names, write) -> None:
    """write() the files `names` into `out` (created, as mkdir -p) under the record: it lists them (with the tool's
    earlier files) before they are written, so a call stopped half-way is still recognised; once written, the tool's
    earlier files that this call did not write are removed and the record lists this call's files with their SHA-256.
    The debris of an earlier call's interrupted writes (`.NAME.tmp-*` of these names) is removed first. Where the call
    ends without its result (a write failure, a stop request, an error) in an `out` it created, what it wrote there
    and the directories it created are removed: no partial result is left; in an `out` that existed without the
    tool's earlier output, the files it added there are removed and the record is as before, so that the call made
    again, as its error advises, is not refused over its own debris. Where it was replacing the tool's earlier output
    (--force), nothing is removed but the temporaries: the record lists the earlier files and this call's (as being
    written), so that the same --force call made again replaces them all, and a document this call wrote (report.md)
    keeps the figures it links."""
    from hpcflow.analysis.script import make_dir

    names = list(names)
    created = _missing(out)
    make_dir(out)
    added = [n for n in names if not os.path.lexists(os.path.join(out, n))]  # removed again should the call fail
    recorded = os.path.lexists(os.path.join(out, record))
    listing = None  # the record as this call rewrote it, before writing
    old = {}
    try:
        old = listed(out, record) or {}
        old = {n: old[n] for n in own(out, old)}
        _remove_debris(out, [*old, *names, record])
        listing = {**old, **dict.fromkeys(names)}
        write_record(out, record, listing)
        write()
        for name in set(old) - set(names):
            try:
                os.unlink(os.path.join(out, name))
            except OSError:
                pass
        write_record(out, record, {name: sha256(os.path.join(out, name)) for name in names})
    except BaseException:
        if created:
            _remove_debris(out, [*names, record], files=True)
            for d in created:
                try:
                    os.rmdir(d)
                except OSError:  # another's file appeared there meanwhile: it stays
                    break
        elif not old:  # nothing of the tool's own was there: the directory as it was before the call
            _undo(out, record, added, listing, recorded=recorded)
        else:  # a --force over its earlier output: the new files stay (a report.md written links them), all listed
            _remove_debris(out, [*names, record])
        raise


def _undo(out, record: str, added, listing: dict | None, *, recorded: bool) -> None:
    """Remove the files `added` by a failed call in `out` (and every temporary of theirs and the record's), and the
    record where the call made it (not `recorded` before), else, where the call rewrote it (`listing`), rewrite it
    without them (best effort: on a full disk even that may fail, and the record then lists files that are gone,
    which a later call passes over)."""
    _remove_debris(out, [*added, record])
    _remove_debris(out, added, files=True)
    if listing is None:  # the call failed before it touched the record
        return
    try:
        if not recorded:
            os.unlink(os.path.join(out, record))
        else:
            write_record(out, record, {n: h for n, h in listing.items() if n not in added})
    except OSError:
        pass


def _missing(out) -> list:
    """The directories `out` and its ancestors that do not exist yet, deepest first (what mkdir -p would create)."""
    missing, d = [], os.path.abspath(out)
    while not os.path.lexists(d) and os.path.dirname(d) != d:
        missing.append(d)
        d = os.path.dirname(d)
    return missing


def _remove_debris(out, names, *, files: bool = False) -> None:
    """Remove the temporaries of interrupted atomic writes (`.NAME.tmp-*`) of `names` in `out`, and (`files`) the files
    `names` themselves."""
    doomed = {e for name in names for e in temporaries_of(out, name)}
    if files:
        doomed.update(n for n in names if os.path.lexists(os.path.join(out, n)))
    for entry in sorted(doomed):
        try:
            os.unlink(os.path.join(out, entry))
        except OSError:
            pass
