"""Optuna studies as analysis reads them: open a storage (a run directory's study.journal, a journal file or
an SQLAlchemy URL) and map trials to their run directories (user attribute `run_dir`)."""

from __future__ import annotations

import contextvars
import os
from contextlib import contextmanager

from hpcflow.analysis import trial_dirs
from hpcflow.analysis.rundir import JOURNAL, MissingData, command_path, rerun_command
from hpcflow.jobs.output import enclosing_study
from hpcflow.tune.storage import is_sqlite_file, masked, recorded_storage, sqlite_path, storage_file, storage_shown

#: the way out a study input that cannot be read is advised: what analysis scripts take (`advice`)
HINT = "pass a tune directory holding study.journal, a journal file or a storage URL (sqlite:///...)"
#: ... and what `hpcflow report` takes: run and tune directories only (`report_advice`)
REPORT_HINT = ("give hpcflow report a tune directory whose storage (its study.journal, or the database its study.json "
               "names) can be read")
#: ... for a study whose storage URL is recorded without its password, which only the analysis scripts can be given
REPORT_URL = ("hpcflow report takes directories: draw the study with analysis/optuna_view.py and that URL with its "
              "password")
_ADVICE = contextvars.ContextVar("hpcflow_study_advice", default=HINT)


def advice() -> str:
    """The way out that messages on a study input advise: HINT, or REPORT_HINT within `report_advice`."""
    return _ADVICE.get()


@contextmanager
def report_advice():
    """Within the block, messages on a study input advise what `hpcflow report` takes (REPORT_HINT)."""
    token = _ADVICE.set(REPORT_HINT)
    try:
        yield
    finally:
        _ADVICE.reset(token)


class NoSuchStudy(MissingData):
    """--study NAME where the storage holds no study of that name."""


#: what `hpcflow tune` writes into a study directory: the study's name and storage
RECORD = "study.json"


def is_study(path) -> bool:
    """True for a directory holding study.journal or study.json, a *.journal file or a storage URL."""
    path = os.fspath(path)
    return ("://" in path or path.endswith(".journal") or os.path.isfile(os.path.join(path, JOURNAL))
            or os.path.isfile(os.path.join(path, RECORD)))


def check_study_flag(paths, study_name: str | None, *,
                     inputs: str = "a tune directory, a journal file or a storage URL") -> None:
    """Refuse (UserError, before any work) --study NAME where no input is a study: the name would go unused, and a
    mistyped one could not be told wrong without a storage to look it up in. `inputs`: the study inputs the command
    takes (the report: tune directories only)."""
    from hpcflow.errors import UserError

    if study_name is not None and not any(is_study(p) for p in paths):
        raise UserError(f"--study {study_name}: the option applies only to study inputs ({inputs}) and none was "
                        "given; drop --study or pass the study")


def other_study(path, study_name: str | None) -> str:
    """Why study directory `path` is not read as study `study_name` of --study: its study.json names another study,
    whose directory it is (its trials/ are that study's; read as --study's, it would show the other directory's
    trials under its own name); "" without --study, where it names that study or where no study.json names one (a
    journal file, a URL, a directory of an older layout: --study chooses among its storage's studies)."""
    recorded = _record(path).get("study") if study_name is not None and os.path.isdir(path) else None
    if not isinstance(recorded, str) or recorded == study_name:
        return ""
    return (f"its {RECORD} names study {recorded!r}, not {study_name!r} of --study (the directory holds the trials of "
            f"{recorded!r}): give it without --study (or with --study {recorded}), and study {study_name!r} by its own "
            "directory")


def merged_studies(paths, study_name: str | None = None) -> tuple[list, list]:
    """(the inputs with each study once, in the order given; [(input left out, why: the input it is read as)]): study
    inputs that read one study of one storage (`_storage_key`: the same journal or SQLite file resolved, or URL) are
    one study, read from the first given: a tune directory and its shared journal file or URL, two directories of
    one shared storage that record one study. A directory given after the storage itself is read instead of it, at
    its place (its trials' run directories are found from it, and `hpcflow report` takes directories only). The study
    is the one a directory's study.json names, else --study's, else the only one its storage holds; inputs whose
    study cannot be told so are left as they are (their reader says why)."""
    paths = list(map(os.fspath, paths))
    keys = [_storage_key(p) for p in paths]
    unique, left, first = [], [], {}
    for p, storage in zip(paths, keys):
        name = _study_named(p, study_name) if storage is not None and keys.count(storage) > 1 else None
        if name is None:
            unique.append(p)
            continue
        kept = first.setdefault((storage, name), p)
        if kept != p and os.path.isdir(p) and not os.path.isdir(kept):  # the directory is read instead
            unique[unique.index(kept)] = first[storage, name] = p
            kept, p = p, kept
        if kept == p:
            unique.append(p)
        else:
            left.append((p, name, storage))
    return unique, [(p, f"the same study as {first[storage, name]} (study {name!r} in {masked(storage)}): read once")
                    for p, name, storage in left]


def _storage_key(path: str) -> str | None:
    """The storage that study input `path` reads, as one string for every spelling of it: the real path of its
    journal or SQLite file (a directory's as its study.json records it, else its study.journal), another database's
    URL as given; None where `path` is no study input."""
    if "://" in path:
        file = storage_file(path, os.getcwd())
    elif (label := _recorded(path)) is not None:
        file = storage_file(label, path)
        path = label
    elif os.path.isdir(path):
        file = os.path.join(path, JOURNAL) if os.path.isfile(os.path.join(path, JOURNAL)) else None
        if file is None:
            return None
    elif os.path.isfile(path) and (path.endswith(".journal") or is_sqlite_file(path)):
        file = path
    else:
        return None
    return os.path.realpath(file) if file is not None else path


def _study_named(path: str, study_name: str | None) -> str | None:
    """The study that input `path` is read as (`merged_studies`): the one its study.json names (another than --study's
    is refused by `other_study`), else --study's, else the only one its storage holds; None where none of these
    tells it (a storage of several studies without --study, one that cannot be read)."""
    recorded = _record(path).get("study") if os.path.isdir(path) else None
    if isinstance(recorded, str):
        return recorded
    if study_name is not None:
        return study_name
    try:
        return load_study(path)[0].study_name
    except (MissingData, ImportError):
        return None


def _record(path) -> dict:
    """A study directory's study.json ({} when there is none or it is unreadable)."""
    import json

    try:
        with open(os.path.join(path, RECORD), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _recorded(path) -> str | None:
    """The storage that study directory `path`'s study.json records, as it reads for the directory now
    (`hpcflow.tune.storage.recorded_storage`: a moved or copied directory's own SQLite file); None for no record."""
    label = _record(path).get("storage") if os.path.isdir(path) else None
    return recorded_storage(label, path) if isinstance(label, str) else None


def _storage(path):
    from optuna.storages.journal import JournalStorage

    if "://" in path:
        return _url_storage(path), os.getcwd()
    from hpcflow.tune.storage import journal_backend

    label = _recorded(path)
    if label is not None and label != JOURNAL:  # the study directory of another storage
        if "***" in label:
            fix = "pass that URL with its password" if advice() == HINT else REPORT_URL
            raise MissingData(f"{path}: the study lives in {label} (recorded without its password); {fix}")
        if "://" in label:
            try:
                return _url_storage(storage_shown(label, path)), path
            except MissingData as exc:
                raise MissingData(f"{path}: its {RECORD} names the storage {exc}") from None
        storage, _ = _storage(storage_shown(label, path))
        return storage, path

    if not os.path.exists(path):
        raise MissingData(f"{path}: does not exist; {advice()}")
    if os.path.isfile(path) and is_sqlite_file(path):  # a database file given by its path
        return _url_storage(f"sqlite:///{os.path.abspath(path)}"), os.path.dirname(os.path.abspath(path))
    journal = path if os.path.isfile(path) else os.path.join(path, JOURNAL)
    if not os.path.isfile(journal):
        raise MissingData(f"{path}: no {JOURNAL}; {advice()}")
    problem = _journal_problem(journal)  # Optuna's reader would skip a cut-off last line
    if problem:
        raise MissingData(f"{journal}: {problem}")
    return JournalStorage(journal_backend(journal)), os.path.dirname(os.path.abspath(journal))


#: seconds a reader reads a journal again while its lock is held and its last line is unended (an append in progress)
READ_WAIT = 2.0


def _journal_problem(journal: str) -> str | None:
    """`hpcflow.tune.storage.journal_problem` of a journal read without its lock: a reader only reads, so it never
    makes, waits for or takes over the writers' lock (a lock left by a killed worker would hold it up, then be taken
    over inside the study directory); only a lock link that names no file is removed, as tune removes it. A problem
    found while the lock link exists (a worker's append in progress leaves an unended last line) is read again every
    50 ms, for READ_WAIT seconds at most, and said with the lock."""
    import time

    from hpcflow.tune.storage import journal_problem, remove_dangling_lock

    remove_dangling_lock(journal)  # a link to no file (an older hpcflow's, a moved study): no writer's, said in a line
    lock, deadline = os.path.abspath(journal) + ".lock", time.monotonic() + READ_WAIT
    while True:
        try:
            problem = journal_problem(journal, instead=advice())
        except OSError as exc:
            return f"cannot read it ({exc.strerror}); fix its permissions, or {advice()}"
        held = os.path.lexists(lock)
        if not problem or not held:
            return problem
        seen = _identity(journal, lock)
        if (seen and _WAITED.get(os.path.realpath(journal)) == seen) or time.monotonic() > deadline:
            _WAITED[os.path.realpath(journal)] = seen  # unchanged since: said again without a wait
            return (f"{problem} (its lock {lock} was held meanwhile: if a worker is still appending, read the study "
                    "again)")
        time.sleep(0.05)


#: journal -> the identity (`_identity`) of it and its lock when a wait for its problem ended: a report reads a study
#: several times (its row, each figure), and waits once
_WAITED: dict = {}


def _identity(journal: str, lock: str) -> tuple:
    """(size, mtime) of a journal and (inode, mtime) of its lock link: what an append in progress changes; () when
    either is gone meanwhile."""
    try:
        st, ln = os.stat(journal), os.lstat(lock)
    except OSError:
        return ()
    return st.st_size, st.st_mtime_ns, ln.st_ino, ln.st_mtime_ns


def _url_storage(url: str):
    """Optuna's storage at an SQLAlchemy URL, opened only once its database is known to hold Optuna's tables
    (`_check_database`: Optuna would create them, writing into a database analysis only reads); MissingData naming
    the URL and the fix for one that cannot be opened."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    shown = _check_database(url)
    try:
        return optuna.storages.get_storage(url)
    except (ImportError, SQLAlchemyError, RuntimeError) as exc:  # RuntimeError: a schema of another Optuna version
        raise MissingData(f"{shown}: the storage cannot be opened ({_phrase(exc)}); {advice()}") from None


def _phrase(exc) -> str:
    """An exception's first line, shortened, for a one-line message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _check_database(url: str) -> str:
    """The URL as messages show it (no password) once its database is known to be an Optuna one, read without
    writing: MissingData for a string that is not an SQLAlchemy URL, an unknown database or a driver not installed,
    a server that cannot be reached, an in-memory SQLite database (no study), an SQLite file that does not exist
    (opening it would create it), one that is not an SQLite database, and a database without Optuna's tables."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = masked(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise MissingData(f"{shown}: not a storage URL; {advice()}") from None
    if parsed.get_backend_name() == "sqlite":
        tables = _sqlite_tables(shown, url)
    else:
        from sqlalchemy import create_engine, inspect

        try:
            engine = create_engine(parsed)
        except NoSuchModuleError:
            raise MissingData(f"{shown}: SQLAlchemy knows no database {parsed.drivername!r}; {advice()}") from None
        except ImportError as exc:
            raise MissingData(f"{shown}: the database driver is not installed ({_phrase(exc)}); install it with pip, "
                              f"or {advice()}") from None
        try:
            with engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
        except SQLAlchemyError as exc:
            raise MissingData(f"{shown}: the database cannot be opened ({_phrase(exc)}); check the URL and that the "
                              f"server is reachable, or {advice()}") from None
        finally:
            engine.dispose()
    if OPTUNA_TABLES - tables:
        raise MissingData(f"{shown}: not an Optuna database (it has no table {sorted(OPTUNA_TABLES - tables)[0]!r}); "
                          f"{advice()}")
    return shown


#: tables every Optuna RDB storage holds (`optuna.storages._rdb.models`)
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})


def _sqlite_tables(shown: str, url: str) -> set:
    """The table names of the SQLite database of URL `url` (a path, or with ?uri=true SQLite's own file: URI: the file
    SQLAlchemy opens, `sqlite_path`), read through a read-only connection: nothing is created or written; MissingData
    for an in-memory database, a file that does not exist or is not an SQLite database."""
    import sqlite3
    from urllib.parse import quote

    path = sqlite_path(url)
    if path is None:
        raise MissingData(f"{shown}: an in-memory database holds no study; {advice()}")
    if not os.path.isfile(path):
        raise MissingData(f"{shown}: the database file {path} does not exist; {advice()}")
    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise MissingData(f"{shown}: {path} is not a readable SQLite database ({_phrase(exc)}); {advice()}") from None


def load_study(path, study_name: str | None = None):
    """(study, base directory for relative run_dir attributes); MissingData when the storage has no study. The study
    is a copy in memory of the storage's as read now (`_frozen`: a study still running shows the same trials to every
    reader of it), and inside `rundir.one_snapshot` read once: a report's runs table and its Optuna section show one
    snapshot of it."""
    from hpcflow.analysis.rundir import snapshot_of

    path = os.fspath(path)
    key = ("study", path if "://" in path else os.path.abspath(path), study_name)
    return snapshot_of(key, lambda: _load_study(path, study_name))


def _frozen(study, shown: str):
    """A copy of `study` in Optuna's in-memory storage (its trials, attributes and directions as read now): read from
    it, no database connection of the storage's is held open (`_load_study` closes them)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    memory = optuna.storages.InMemoryStorage()
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        optuna.copy_study(from_study_name=study.study_name, from_storage=study._storage, to_storage=memory)
    except (ValueError, SQLAlchemyError) as exc:  # a database that fails a read
        raise MissingData(f"{shown}: the storage cannot be read ({' '.join(str(exc).split())[:120]}); restore it "
                          f"from a copy or {advice()}") from None
    finally:
        optuna.logging.set_verbosity(level)
    return optuna.load_study(study_name=study.study_name, storage=memory)


def _load_study(path: str, study_name: str | None):
    """`load_study` read from the storage, whose database connections are closed when it is read or refused."""
    from hpcflow.tune.storage import close_storage

    storage, base = _storage(path)
    try:
        return _frozen(_stored_study(path, storage, study_name), masked(path)), base
    finally:
        close_storage(storage)


def _stored_study(path: str, storage, study_name: str | None):
    """The study of `load_study` in its `storage`."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    shown = masked(path)
    try:
        names = [s.study_name for s in optuna.study.get_all_study_summaries(storage)]
    except (ValueError, SQLAlchemyError) as exc:  # a journal line that is not JSON; a database that fails a read
        raise MissingData(f"{shown}: the storage cannot be read ({' '.join(str(exc).split())[:120]}); restore it "
                          f"from a copy or {advice()}") from None
    if not names:
        empty = _empty_journal(path)
        raise MissingData(f"{shown}: {empty}, or {advice()}" if empty else
                          f"{shown}: the storage holds no study; {advice()}")
    if study_name is None and os.path.isdir(path) and _record(path).get("study") in names:
        study_name = _record(path)["study"]
    if study_name is None:
        if len(names) > 1:
            raise MissingData(f"{shown}: holds studies {names}; choose one with --study NAME")
        study_name = names[0]
    elif study_name not in names:
        raise NoSuchStudy(f"{shown}: no study {study_name!r} (it holds {names}); fix --study")
    return optuna.load_study(study_name=study_name, storage=storage)


def _empty_journal(path: str) -> str | None:
    """Why study input `path` holds no study where its journal is an empty file (a copy cut short, a truncated file),
    as `hpcflow tune` says it of its --out: "its storage DIR/study.journal, which study.json names, is an empty file;
    restore it (from a backup)"; None otherwise (a journal with content, a database)."""
    if "://" in path:
        return None
    if os.path.isdir(path):
        label = _recorded(path)
        journal = os.path.join(path, JOURNAL) if label is None else storage_file(label, path)
        named = "" if label is None else f", which {RECORD} names,"
        what = f"its storage {journal if label is None else storage_shown(label, path)}{named} is"
    else:
        journal, what = path, "the journal is"
    try:
        empty = journal is not None and os.path.isfile(journal) and os.path.getsize(journal) == 0
    except OSError:
        return None
    return f"{what} an empty file; restore it (from a backup)" if empty else None


def trial_run_dir(trial, base) -> str | None:
    """The trial's run directory under study directory `base` (`trial_dirs.trial_run_dir`): also where the trial was
    written (user attribute study_dir) when the storage is not the directory's own journal (a URL, or one journal
    several study directories share), never for a copied study directory, whose trials are its own or missing."""
    return trial_dirs.trial_run_dir(trial, base, shared=not _own_journal(base))


def _own_journal(base) -> bool:
    """Whether `base` is a study directory whose storage is its own: its study.journal (study.json names no other),
    or a journal or SQLite file inside it that study.json names (relative to it, `_recorded`)."""
    rel = storage_file(_recorded(base) or JOURNAL, "")  # (joined to "": the path as recorded)
    return rel is not None and not os.path.isabs(rel) and os.path.isfile(os.path.join(base, rel))


def more_trials(path, study) -> str:
    """How study input `path` (a tune directory, a journal file or a storage URL) gets the completed trials it lacks:
    its `hpcflow tune` command (`tune_command`) for a tune directory, else hpcflow tune on its storage."""
    path = os.fspath(path)
    if os.path.isdir(path):
        command, note = tune_command(path, study)
        return f"run more trials into it: {command}{note}"
    dirs = {t.user_attrs.get("study_dir") for t in study.get_trials(deepcopy=False)} - {None}
    home = next((d for d in sorted(dirs) if isinstance(d, str) and os.path.isfile(os.path.join(d, RECORD))), None)
    if home is not None:  # a study directory that wrote into this storage: its own command, with its --storage
        command, note = tune_command(home, study)
        return f"run more trials into it: {command}{note}"
    from hpcflow.jobs.shell import shell_line

    argv = ["hpcflow", "tune", "JOB.toml", "--trials", "N", "--out", "DIR", "--storage", masked(path), "--study",
            study.study_name]
    return (f"run more trials into it: {shell_line(argv)} (JOB.toml: the study's job file with its --set values, "
            "DIR: a study directory)")


def too_few_trials(path, study, few: str, why: str, *, other: str = "", base=None) -> MissingData:
    """The refusal of study input `path` whose completed trials are too few (`few`) for what is asked (`why`): the
    input, the study, its trials by state as the runs table counts them (`judged_states`: a gone worker's RUNNING
    trial "interrupted") and the fix (`other`, an alternative said first, then `more_trials`). `base`: the study's
    base directory (`load_study`), else found again from `path`."""
    if base is None:
        from hpcflow.tune.storage import close_storage

        store, base = _storage(os.fspath(path))
        close_storage(store)  # (its base directory alone is asked for)
    _, trials, states = judged_states(study, base)
    held = state_counts(states, diverged_count(trials)) or "none"
    running = states.get("running", 0)  # trials whose workers still run: their results may be all that is missing
    wait = (f"wait for the {'trial' if running == 1 else f'{running} trials'} still running to end (then read it "
            "again), or " if running else "")
    return MissingData(f"{masked(os.fspath(path))}: study {study.study_name!r}: {few} (trials: {held}){why}; "
                       f"{wait}{other}{more_trials(path, study)}")


def best_run_dirs(study, base, path=None) -> list:
    """(trial number, run directory) of the best trial(s) of a finished study (given as `path`, default `base`);
    MissingData when none."""
    try:
        best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        raise too_few_trials(path or base, study, "no completed trial", ", so no best trial's run directory to read",
                             other="pass a run directory, or ", base=base) from None
    try:
        out = [(t.number, trial_run_dir(t, base)) for t in best]
    except MissingData as exc:  # a run directory of another trial
        raise MissingData(f"study {study.study_name!r}, {exc}") from None
    if not any(rd for _, rd in out):
        raise MissingData(f"study {study.study_name!r}: best trial has no user attribute 'run_dir'")
    for n, rd in out:
        if rd and not os.path.isdir(rd):
            raise MissingData(f"study {study.study_name!r}, trial {n}: no run directory {rd}; {trial_dirs.RESTORE}")
    return [(n, rd) for n, rd in out if rd]


#: trial states in the order the runs table lists them (Optuna's TrialState names, lower case; "interrupted": RUNNING
#: in the storage, its worker gone, `interrupted`)
STATES = ("complete", "pruned", "fail", "preempted", "running", "interrupted", "waiting")


def state_counts(states: dict, diverged: int = 0) -> str:
    """'a complete, b pruned, c failed, ...' of {state: count}, in the order of STATES, then the others'; the pruned
    count says how many of them diverged (`diverged`, `pruned_why`), as `hpcflow tune`'s closing line does."""
    order = [k for k in STATES if k in states] + sorted(k for k in states if k not in STATES)
    return ", ".join(f"{states[k]} {'failed' if k == 'fail' else k}"
                     f"{pruned_why(states[k], diverged) if k == 'pruned' else ''}" for k in order)


def pruned_why(pruned: int, diverged: int) -> str:
    """What the count of `pruned` trials holds besides those the pruner stopped, in `hpcflow tune`'s words: the
    `diverged` ones (pruned as diverged, or as a network whose metric is not positive definite:
    `hpcflow.tune.study.pruned_infeasible`), in parentheses; "" where none diverged."""
    if not diverged:
        return ""
    if diverged == pruned:
        return " (diverged)" if pruned == 1 else " (all diverged)"
    return f" ({diverged} of them diverged, {pruned - diverged} stopped by the pruner)"


def diverged_count(trials) -> int:
    """How many of `trials` were pruned as diverged (`hpcflow.tune.study.pruned_infeasible`)."""
    from hpcflow.tune.study import pruned_infeasible

    return sum(pruned_infeasible(t) for t in trials)


def trial_counts(n: int, states: dict, diverged: int = 0) -> str:
    """'N trials: a complete, b pruned, ...' of a study of `n` trials, {state: count} (`state_counts`, the pruned
    that `diverged` said): the study's trials as the report's row and optuna_view.py's printed lines both count
    them."""
    counts = state_counts(states, diverged)
    return f"{n} trial{'' if n == 1 else 's'}" + (f": {counts}" if counts else "")


def by_state(trials) -> dict:
    """{state (`hpcflow.tune.study.counted_state`, lower case: Optuna's TrialState name, but "preempted" for a failed
    trial continued by another): count} of `trials`."""
    from hpcflow.tune.study import continued_numbers, counted_state

    states, continued = {}, continued_numbers(trials)
    for t in trials:
        state = counted_state(t, continued).lower()
        states[state] = states.get(state, 0) + 1
    return states


def interrupted(study, base) -> tuple[list, list]:
    """(numbers of the RUNNING trials whose worker is gone, the study's trials): `interrupted_trials`, the judgement
    a tune worker's closing count makes too, of the run directories analysis finds (`trial_dirs.known_run_dir`)."""
    from hpcflow.tune.study import interrupted_trials

    shared = not _own_journal(base)
    return interrupted_trials(study, lambda t: trial_dirs.known_run_dir(t, base, shared=shared))


def judged_states(study, base) -> tuple[list, list, dict]:
    """(`interrupted`'s numbers of the RUNNING trials whose worker is gone, the study's trials, {state: count} of
    them with those trials counted as "interrupted", not "running"): the study's trials by state as every message
    on it counts them."""
    stale, trials = interrupted(study, base)
    states = by_state(trials)
    if stale:
        states["running"] -= len(stale)
        states = {**{k: v for k, v in states.items() if v}, "interrupted": len(stale)}
    return stale, trials, states


def overview(path, study_name: str | None = None) -> dict:
    """A study's key numbers: {'trials': count, 'states': {state: count}, 'interrupted': numbers of the RUNNING
    trials whose worker is gone (`interrupted`; state "interrupted"), 'objective': [tune].objective (None
    for a study hpcflow did not create), and for a study with a completed trial 'best_trial', 'best_value' and
    'best_run_dir' (its run directory, None when the trial names none or the one found holds another trial's run),
    with 'best_run_dir_problem' saying why there is none to read}; MissingData when the storage cannot be read."""
    from hpcflow.tune.study import RECORD as JOB_RECORD

    study, base = load_study(path, study_name)
    stale, trials, states = judged_states(study, base)
    record = study.user_attrs.get(JOB_RECORD)
    out = {"trials": len(trials), "states": states, "interrupted": stale, "diverged": diverged_count(trials),
           "objective": record.get("objective") if isinstance(record, dict) else None}
    if len(study.directions) == 1 and "complete" in states:
        best = study.best_trial
        try:
            run_dir = trial_run_dir(best, base)
        except MissingData as exc:  # a run directory of another trial: not read
            run_dir, out["best_run_dir_problem"] = None, str(exc)
        if run_dir and not os.path.isdir(run_dir):
            out["best_run_dir_problem"] = f"trial {best.number}: no run directory {run_dir}"
        out.update(best_trial=best.number, best_value=best.value, best_run_dir=run_dir)
    return out


def pruned_by(run_dir) -> str:
    """How the run of a trial's directory `run_dir` inside a study directory was stopped where the study pruned it
    (its trial PRUNED, not as diverged: `hpcflow.tune.study.pruned_infeasible`): "pruned by the study's median
    pruner (trial N of the study in DIR)", the pruner [tune].pruner of the study's job (the flow's own words for such
    a stop, "callback asked to stop", name no cause); "" otherwise, or where the study cannot be read."""
    from hpcflow.tune.study import RECORD as JOB_RECORD
    from hpcflow.tune.study import pruned_infeasible

    study_dir = enclosing_study(run_dir)
    if study_dir is None:
        return ""
    try:
        study, base = load_study(study_dir)
    except (MissingData, ImportError):
        return ""
    found = [t for t in study.get_trials(deepcopy=False) if _runs_in(t, base, run_dir)]
    if not found or found[-1].state.name != "PRUNED" or pruned_infeasible(found[-1]):
        return ""
    record = study.user_attrs.get(JOB_RECORD)
    tune = record.get("job_data", {}).get("tune") if isinstance(record, dict) and isinstance(
        record.get("job_data"), dict) else None
    pruner = tune.get("pruner", "median") if isinstance(tune, dict) else "median"  # [tune].pruner's default
    return f"pruned by the study's {pruner} pruner (trial {found[-1].number} of the study in {study_dir})"


def continuation(run_dir, *, refused: str = "--resume", nn_h5_from: bool = False) -> str:
    """What continues an interrupted run (or, `refused` "--force", makes a damaged one again) whose directory lies
    inside a study directory (`jobs.output.enclosing_study`: a trial's, where `hpcflow run` refuses --resume and --force): the
    study's retry of that trial (continuing its checkpoint or afresh; queued for the study's next `hpcflow tune`, or
    run as trial M, whose directory holds the result), its job.toml rerun into an --out outside the study where the
    study does not retry it, or the study's command where the trial is not found; "" for a run outside a study.
    `nn_h5_from`: the run's nn.h5 is missing or damaged and its checkpoint.pt holds the whole training
    (`rundir.whole_training`): a finished (complete or pruned) trial's is written again by the study's next `hpcflow
    tune` (`hpcflow.tune.nn_h5`)."""
    from hpcflow.tune.budget import predecessor

    study_dir = enclosing_study(run_dir)
    if study_dir is None:
        return ""
    where = f"the study in {study_dir}"
    outside = f"rerun its job.toml into an --out outside it: `{rerun_command(run_dir, _outside(study_dir, run_dir))}`"
    try:
        study, base = load_study(study_dir)
        trials = study.get_trials(deepcopy=False)
    except (MissingData, ImportError):
        if refused == "--resume":
            command, note = tune_command(study_dir)
            return (f"it lies in {where}, where --resume is refused: the study's own `{command}`{note} continues its "
                    "trials")
        return f"it lies in {where}, where {refused} is refused: {outside}"
    command, note = tune_command(study_dir, study)
    found = [t for t in trials if _runs_in(t, base, run_dir)]
    if not found and refused == "--resume":
        return f"it lies in {where}, where --resume is refused: `{command}`{note} continues the study's trials"
    if not found:
        return f"it lies in {where}, where {refused} is refused: {outside}"
    trial = found[-1]
    if nn_h5_from and trial.state.name in ("COMPLETE", "PRUNED"):
        return (f"trial {trial.number} of {where}, {trial.state.name.lower()}: the study's next `{command}`{note} "
                "writes its nn.h5 again from its checkpoint.pt before it adds trials (its value stays as recorded)")
    retries = [t for t in trials if predecessor(t) == trial.number]
    if not retries:
        if trial.state.name == "RUNNING":
            return (f"trial {trial.number} of {where}, RUNNING in its storage: the study's next `{command}`{note} "
                    f"marks it failed and {_after_gone(trial, run_dir, study_dir, study)}")
        return (f"trial {trial.number} of {where}, {trial.state.name.lower()} and not retried by the study; {refused} "
                f"is refused inside a study: {outside}")
    retry = retries[-1]
    how = "continued" if retry.user_attrs.get("continues") == trial.number else "retried afresh"
    if retry.state.name == "WAITING":
        return f"trial {trial.number} of {where}, queued to be {how} as trial {retry.number} by `{command}`{note}"
    rd = _run_dir_or_none(retry, base)
    return (f"trial {trial.number} of {where}, {how} by the study as trial {retry.number}"
            + (f" ({rd}): report that directory" if rd else ""))


def tune_command(study_dir, study=None) -> tuple[str, str]:
    """(command, note): `hpcflow tune JOB --trials N --out DIR` of the study in `study_dir`: its job file and --set
    values as its study.json (else the study, where it could be read) records them, with `--study NAME` where its
    name is not the job file's stem (tune's default) and `--storage` where study.json names a storage other than DIR's
    own study.journal (`storage_shown`); one line that a POSIX shell splits back into its words (`shell_line`: a --set
    value with spaces or quotes), N the trials to add. The note, said after the command, is "" but for a URL recorded
    without its password, which cannot be pasted: the command names it URL, the note says which."""
    from hpcflow.jobs.shell import shell_line

    record = _record(study_dir)
    job, overrides = _recorded_job(study_dir, study)
    study_dir = command_path(study_dir)  # (its storage too, `storage_shown`: a path inside it absolute as well)
    argv = ["hpcflow", "tune", job or "JOB.toml", "--trials", "N", "--out", study_dir]
    name = record.get("study") if isinstance(record.get("study"), str) else getattr(study, "study_name", None)
    if name is not None and os.path.splitext(os.path.basename(job or "JOB.toml"))[0] != name:
        argv += ["--study", name]
    argv += [w for o in overrides for w in ("--set", o)]  # the study refuses a job without them
    label = _recorded(study_dir)
    if label is None or label == JOURNAL:
        return shell_line(argv), ""
    if "***" in masked(label):  # its password left out: not a URL to paste
        return (f"{shell_line(argv)} --storage URL", f" (URL: the study's storage URL with its password, which "
                                                     f"{RECORD} records as {masked(label)})")
    return shell_line([*argv, "--storage", storage_shown(label, study_dir)]), ""


def _outside(study_dir, run_dir) -> str:
    """The --out advised for a rerun of a run directory of the study in `study_dir` outside the study: beside the
    study directory, named STUDY_RUN (runs/tune_0003 for runs/tune/trials/0003)."""
    study_dir = os.path.normpath(study_dir)
    name = f"{os.path.basename(study_dir)}_{os.path.basename(os.path.normpath(run_dir))}"
    return os.path.join(os.path.dirname(study_dir), name)


def _recorded_job(study_dir, study=None) -> tuple[str | None, list]:
    """(job file, --set values) of the study in `study_dir` as its study.json (else the study, where it could be read)
    records them: what its `hpcflow tune` command (`tune_command`) is given; None for a job file recorded nowhere."""
    from hpcflow.tune.study import RECORD as JOB_RECORD

    record = _record(study_dir)
    attrs = study.user_attrs.get(JOB_RECORD) if study is not None else None
    attrs = attrs if isinstance(attrs, dict) else {}
    job = record.get("job") if isinstance(record.get("job"), str) else attrs.get("job")
    overrides = record.get("overrides") if "overrides" in record else attrs.get("overrides")
    ok = isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)
    return (job if isinstance(job, str) else None), (list(overrides) if ok else [])


def _job_retries(study_dir, study) -> int | None:
    """[tune] retries of the job the study's `hpcflow tune` command reads (`_recorded_job`: its job file with its --set
    values), which decides whether the command retries a failed trial; None where that job cannot be read."""
    from hpcflow.errors import UserError
    from hpcflow.jobs.registry import load_with_extras

    job, overrides = _recorded_job(study_dir, study)
    if job is None:
        return None
    try:
        return int(load_with_extras(job, overrides, memory_check=False)[2]["tune"]["retries"])
    except (UserError, OSError, KeyError, TypeError, ValueError):
        return None


def _after_gone(trial, run_dir, study_dir, study) -> str:
    """What the study's next `hpcflow tune` does with RUNNING trial `trial`, whose worker is gone, once it has marked
    it failed (`hpcflow.tune.storage.recover_stale`): an nn trial whose checkpoint.pt holds its whole training
    (`tune.nn_h5.trained`), unless it continues one so queued, is continued from it, whatever [tune] retries says;
    any other is retried afresh (new points) while the retries of the command's job allow (`storage.retry_left`),
    else not run again."""
    from hpcflow.tune.nn_h5 import trained
    from hpcflow.tune.storage import AFTER_TRAINING, retries_used, retry_left

    if AFTER_TRAINING not in trial.user_attrs and trained(run_dir):
        return "continues it as a new trial from its checkpoint.pt, which holds its whole training"
    retries, used = _job_retries(study_dir, study), retries_used(trial)
    if not trial.params:
        return "does not run it again (it has no parameters to run)"
    if retries is None:
        return (f"retries it afresh (new points) as a new trial only if its job's [tune] retries is above {used}, the "
                "retries its parameters have had (the job file cannot be read here)")
    if retry_left(trial, retries):
        return f"retries it afresh (new points) as a new trial: retry {used + 1} of [tune] retries = {retries}"
    if retries == 0:
        return ("does not run it again: [tune] retries = 0 (retries = 1 in its job file would have it retried "
                "afresh)")
    return f"does not run it again: its parameters have had {used} of [tune] retries = {retries}"


def _run_dir_or_none(trial, base) -> str | None:
    try:
        return trial_run_dir(trial, base)
    except MissingData:
        return None


def _runs_in(trial, base, run_dir) -> bool:
    """Whether `trial`'s run directory is `run_dir`."""
    rd = _run_dir_or_none(trial, base)
    return bool(rd) and os.path.isdir(rd) and os.path.samefile(rd, run_dir)
