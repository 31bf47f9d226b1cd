"""Where a study lives: an Optuna journal file (default `DIR/study.journal`) or any SQLAlchemy URL.

A journal needs no server and is safe for several processes on a shared filesystem, but has no heartbeat:
`recover_stale` marks RUNNING trials whose process is gone (same host: the pid alone decides) or, run from
another host, that are older than a grace period as failed, and optionally queues their parameters again. RDB URLs use Optuna's own heartbeat.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import warnings

from hpcflow.errors import UserError


class StorageError(UserError):
    """The --storage URL or journal path cannot be opened."""


def open_storage(url: str | None, out: str, *, heartbeat: int = 60, retries: int = 0):
    """An Optuna storage: JournalStorage on `url` (a path; default out/study.journal) or RDBStorage (a URL)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
    from optuna.storages.journal import JournalFileBackend

    url = url or os.path.join(out, "study.journal")
    try:
        if "://" in url:
            retry = RetryFailedTrialCallback(max_retry=retries) if retries else None
            with warnings.catch_warnings():  # the heartbeat arguments are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                  failed_trial_callback=retry)
        check_journal(url)
        os.makedirs(os.path.dirname(os.path.abspath(url)), exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    except StorageError:
        raise
    except (OSError, ImportError, ValueError, optuna.exceptions.OptunaError) as exc:
        raise StorageError(f"--storage {url}: cannot open it ({' '.join(str(exc).split())[:200]}); pass a "
                           "writable journal path or an SQLAlchemy URL such as sqlite:///study.db") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's own errors (bad dialect, no server)
        raise StorageError(f"--storage {url}: cannot open it ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); check the URL and that the server answers") from None


def storage_label(url: str | None, out: str) -> str:
    """How study.json records a storage: a journal inside DIR relative to it ("study.journal" by default), another
    journal as an absolute path, a URL without its password (a relative sqlite path made absolute)."""
    url = url or os.path.join(out, "study.journal")
    if "://" not in url:
        path, base = os.path.abspath(url), os.path.abspath(out)
        return os.path.relpath(path, base) if path.startswith(base + os.sep) else path
    url = re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)  # never write a password to disk
    head, sep, tail = url.partition(":///")
    if head.split("+")[0] == "sqlite" and sep and tail and not tail.startswith("/") and not tail.startswith(":memory"):
        url = f"{head}:///{os.path.abspath(tail)}"
    return url


def storage_shown(label: str, out: str) -> str:
    """A recorded storage as a user passes it: a relative journal path joined to DIR."""
    return label if "://" in label or os.path.isabs(label) else os.path.join(out, label)


def storage_option(label: str, out: str) -> str:
    """The --storage option that opens the storage study.json records as `label` (for messages)."""
    if label == "study.journal":
        return f"no --storage (it is {os.path.join(out, label)})"
    return f"--storage {storage_shown(label, out)}"


def journal_problem(path: str, *, partial_tail_ok: bool = False) -> str | None:
    """What makes file `path` unreadable as an Optuna journal (one JSON operation with an op_code a line, every line
    ended by a newline), or None. `partial_tail_ok`: an unended last line may be a write in progress (readers)."""
    import json

    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail and not partial_tail_ok:
        return (f"line {len(lines) + 1} is incomplete (a write was cut off, e.g. by a full disk); remove that "
                f"partial last line (keep lines 1-{len(lines)}), or pass another --storage")
    for i, line in enumerate(lines, start=1):
        try:
            op = json.loads(line)
        except ValueError:
            op = None
        if not (isinstance(op, dict) and isinstance(op.get("op_code"), int)):
            what = "not an Optuna journal" if i == 1 else "damaged"
            return (f"line {i} is not an Optuna journal operation (the file is {what}); restore it from a copy, "
                    "or pass another --storage")
    return None


def check_journal(path: str) -> None:
    """Refuse (StorageError) a journal file that Optuna would fail on or write after a partial line, before any
    write; read under the journal's own lock so that another worker's append in progress is not taken for damage."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not os.path.isfile(path):
        return
    lock = JournalFileSymlinkLock(path)
    locked = False
    try:
        locked = lock.acquire()
    except OSError:
        pass  # an unwritable directory: read without the lock (opening the journal will refuse it)
    try:
        problem = journal_problem(path)
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror}); fix its permissions or pass another --storage"
    finally:
        if locked:
            lock.release()
    if problem:
        raise StorageError(f"study journal {path}: {problem}")


def is_journal(storage) -> bool:
    from optuna.storages import JournalStorage

    return isinstance(storage, JournalStorage)


def mark_worker(trial) -> None:
    """Record which process runs `trial` (user attrs host, pid) so a later worker can tell if it died."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def _process_gone(host, pid) -> bool:
    if host != socket.gethostname() or not isinstance(pid, int):
        return False  # another machine: only the grace period can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover_stale(study, storage, *, grace_seconds: float, retries: int = 0) -> list[int]:
    """Mark RUNNING trials of a journal study whose worker is gone as FAIL: its pid is gone (a worker on this host)
    or the trial is older than grace_seconds (a worker on another host).

    Their parameters are queued again when `retries` allows (user attr `attempt`). Returns the trial numbers.
    """
    from optuna.trial import TrialState

    now = datetime.datetime.now()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("pid") == os.getpid() and t.user_attrs.get("host") == socket.gethostname():
            continue
        if t.user_attrs.get("host") == socket.gethostname() and isinstance(t.user_attrs.get("pid"), int):
            gone = _process_gone(t.user_attrs["host"], t.user_attrs["pid"])  # this host: the pid settles it
        else:  # another host (or no record of the worker): only the age can tell
            gone = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace_seconds
        if not gone:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "failure", "worker gone (stale RUNNING trial)")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another worker finished or failed it first
            continue
        failed.append(t.number)
        requeue(study, t, retries)
    return failed


def requeue(study, trial, retries: int, *, preempted: bool = False) -> bool:
    """Queue the parameters of a failed trial again if it has attempts left (new points, new number); a preempted
    trial's parameters always, without counting an attempt (the signal says nothing about them)."""
    attempt = int(trial.user_attrs.get("attempt", 0))
    if not trial.params or (attempt >= retries and not preempted):
        return False
    study.enqueue_trial(trial.params, user_attrs={"attempt": attempt + (0 if preempted else 1),
                                                  "retry_of": trial.number})
    return True
