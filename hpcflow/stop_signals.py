"""Stop requests (SIGTERM, SIGUSR1: Slurm's notice before a time limit or preemption; SIGINT: Ctrl-C) and their
handlers.

A request is often delivered twice: `scancel --full --signal=USR1` signals each task directly and through srun
(which the batch step forwards it to). A process that has honoured the first (checkpoint written, stopping) must
not be killed by the repeat while it writes its summary and leaves, so where it restores a default action it
ignores the signal instead. Ctrl-C is the exception: a second SIGINT, while the first is still being honoured,
interrupts at once (KeyboardInterrupt), so a user at a terminal is never stuck waiting for a step boundary; once the
stop is complete (its checkpoint written, its status decided: `finished`), it is ignored as SIGTERM is.
A SIGINT ignored when a handler is installed (a job started in the background by a non-interactive shell) stays
ignored.

Once a command's result is final (its work done, its status decided: just before summary.json or best.toml is
written, or once `hpcflow sample` has written its file), SIGTERM, SIGUSR1 and SIGINT are ignored until the process
ends, over any handler (`finished`): such a request has nothing left to checkpoint or stop; a Ctrl-C would turn the
status into 130, or into death by SIGINT after the command returned, and the default action (SIGUSR1's
too under MPI, where `hpcflow.parallel.comm` puts it back in place of MPICH's handler) would turn the finished run's
status 0 into 143 / 138, under mpiexec into the bare signal number with the launcher's banner, and Slurm would record
the job as failed. Nothing is said: the run has said what it wrote, and it ends as it would have a moment later.

Before that, a request that a run honours where it ends anyway (a flow's last step, or the step its early stop ends it
at: `hpcflow.flow.FlowView.ends`; a network run's last epoch, or later, where only its outputs are left to write) has
nothing left to stop either: the run finishes as without it (final checkpoint, status "finished", exit 0), and the
request goes on to the handler of an enclosing `requests` (a tune worker's, which stops before its next trial).

Two requests that arrive together (scancel's SIGTERM just after Slurm's --signal=USR1 notice, or the other order)
are one stop, named by the first to arrive (`arrived`): Python runs the handlers of signals pending at once in the
order of their numbers (SIGUSR1's before SIGTERM's), not of their arrival, so the handlers here read the arrival order
from the wakeup fd (`watch_arrivals`) and take the first request's name for the line, `taken`, the exit status and the
stop's record; the later ones are its repeats. While MPI_Init blocks (`ends_if_blocked`) the wakeup fd is the watcher's
pipe: two requests that arrive then, honoured by the command (MPI_Init returned within BLOCKED_GRACE), are named in the
order of their numbers (SIGUSR1 first); past the grace the watcher names the first to arrive.

Where no checkpoint is written (`hpcflow sample`; kinds without one: distance_scaling, noise_scan, clustering), a
SIGTERM or SIGUSR1 ends the command as Ctrl-C does (`Stopped`, a KeyboardInterrupt: the lock and a fresh --out the
run wrote nothing into are removed on the way out), with one line and the status the signal's default action gives
a shell (128 + the signal: 143, 138), under mpiexec too (where a rank killed by the signal itself made the launcher
print a banner and exit with the bare signal number).
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from hpcflow.launcher_output import wait_until_read

#: the stop requests: SIGTERM (scancel, preemption), SIGUSR1 (`--signal=USR1@120` before a time limit) and SIGINT
#: (Ctrl-C at a terminal; mpiexec forwards it to every rank)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))

#: the stop requests whose default action ends the process without Python's clean-up
ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


#: the pipe Python's C-level signal handler writes each signal's number to, in the order the signals arrive
#: (`signal.set_wakeup_fd`): {"pid": the process that set it, "read": its read end, "write": its write end}; empty
#: where none is set (off the main thread, or where the wakeup fd was another's: an asyncio loop's); "for": the list
#: of held requests of the `defer` that set it, whose `deliver` takes it away again
_ARRIVALS = {}


def watch_arrivals() -> None:
    """Have the signals' arrival order recorded (`arrived`): a pipe of this process's as the wakeup fd, where none is
    set (main thread; a process forked from one that set it takes a pipe of its own). Nothing where the wakeup fd is
    another's: the handlers then name a request by the order Python runs them in. Where it is set already, what it
    holds is dropped: the requests of an earlier block, which their handlers have taken (a handler runs at the first
    instruction after its signal arrives), or handlers that do not look (a finished command's)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if _ARRIVALS.get("pid") == os.getpid():
        _arrivals()
        return
    inherited = _ARRIVALS.get("write")
    try:
        read, write = os.pipe()
    except OSError:  # no file descriptors left
        return
    for fd in (read, write):
        os.set_blocking(fd, False)
    try:
        old = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (ValueError, OSError):
        old = None
    if old not in (-1, inherited):  # another's (or none could be set): left as it was
        if old is not None:
            signal.set_wakeup_fd(old)
        os.close(read)
        os.close(write)
        return
    _ARRIVALS.update(pid=os.getpid(), read=read, write=write)


def _not_in_a_child() -> None:
    """In a process forked from one that set `watch_arrivals`'s pipe: no wakeup fd, as before it was set, so that the
    child's signals do not reach the parent's record (its write end is the parent's)."""
    if _ARRIVALS.get("pid") in (None, os.getpid()):
        return
    try:
        old = signal.set_wakeup_fd(-1)
        if old not in (-1, _ARRIVALS["write"]):  # another's: left as it was
            signal.set_wakeup_fd(old)
    except (ValueError, OSError):
        pass


os.register_at_fork(after_in_child=_not_in_a_child)


def _arrivals(among=SIGNALS) -> list:
    """The signals of `among` that arrived since the last look, in the order they arrived (`watch_arrivals`'s pipe
    read out); [] where no pipe of this process's records them."""
    if _ARRIVALS.get("pid") != os.getpid():
        return []
    data = b""
    while True:
        try:
            chunk = os.read(_ARRIVALS["read"], 512)
        except OSError:  # (BlockingIOError: nothing more to read)
            break
        if not chunk:
            break
        data += chunk
    return [sig for sig in data if sig in among]


def arrived(signum: int, among=SIGNALS) -> int:
    """The request a handler called for `signum` takes: the first of `among` to arrive of those that arrived since the
    last look (`_arrivals`), else `signum`. Signals pending at once reach their handlers in the order of their numbers
    (SIGUSR1 before SIGTERM), whichever came first: the first handler called names the stop by the first arrival, and
    the later calls, the first's repeats, find nothing new (their own number)."""
    got = _arrivals(among)
    return got[0] if got else signum


def _arrived_in_order(signum: int, into: list, among=SIGNALS) -> None:
    """Append to `into` the requests that arrived since the last look, in their order, and `signum` where it is not
    among them or already there (its arrival read by an earlier call, or not recorded)."""
    into.extend(_arrivals(among))
    if signum not in into:
        into.append(signum)


class Stopped(KeyboardInterrupt):
    """A SIGTERM/SIGUSR1 where no handler of a checkpoint writer took it: the command ends as for Ctrl-C, with the
    status 128 + the signal (`exit_status`), the shell's for a process the signal ended."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_status = 128 + int(signum)

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def _raise_stopped(signum, frame):  # noqa: ARG001 - signal handler signature
    """Raise `Stopped` once; a repeat of the request (often delivered twice) is ignored while the command leaves."""
    first = arrived(signum, ENDING)  # (SIGTERM then SIGUSR1, pending at once: SIGUSR1's handler runs first)
    _repeats_ignored(over=None)
    raise Stopped(first)


_raise_stopped.default_action = True  # `restore` ignores a repeat after an honoured request, as for SIG_DFL
_raise_stopped.raises_stop = True  # a handler that replaced it and would end the process passes the request on


def _repeat_ignored(signum, frame):  # noqa: ARG001 - signal handler signature
    """A repeat of the request `_raise_stopped` honoured: ignored, as SIG_IGN would, but a handler of Python's, so
    that the other request pending with it (SIGTERM and SIGUSR1 together: Python runs their handlers one after the
    other) finds one still set, where SIG_IGN made Python print "OSError: Signal 15 ignored due to race condition"
    with a traceback beside the command's one line."""


_repeat_ignored.default_action = True  # (`restore`, `submit.task`: it stands in for SIG_IGN, no checkpoint writer)


def _repeats_ignored(over=None) -> None:
    """SIGTERM and SIGUSR1 to `_repeat_ignored` (where their handler is one of `over`; None: whatever it is), and
    SIG_IGN where it is still set as the interpreter ends (`_ignored_at_exit`): the stop's status is decided."""
    for sig in ENDING:
        if over is None or signal.getsignal(sig) in over:
            signal.signal(sig, _repeat_ignored)
    _ignored_at_exit_once()


def _ignored_at_exit_once() -> None:
    """`_ignored_at_exit` registered to run at the interpreter's exit, once however often it is asked."""
    atexit.unregister(_ignored_at_exit)
    atexit.register(_ignored_at_exit)


def _early_request(signum, frame):  # noqa: ARG001 - signal handler signature
    """A SIGTERM/SIGUSR1 before the command installed its stop handlers (`record_early`): recorded, for
    `interrupts_end_the_job` (or the CLI, `early_handover`) to honour."""
    _arrived_in_order(signum, _EARLY, ENDING)


_early_request.early = True  # `hpcflow.parallel.comm.default_stop_signals` sets it again after MPI_Init
#: the stop requests `_early_request` recorded, in order
_EARLY = []


def record_early() -> None:
    """From the interpreter's start (`python -m hpcflow`, before NumPy, mpi4py and MPI_Init: a few tenths of a second
    under mpiexec) a SIGTERM/SIGUSR1 is recorded instead of ending the process by its default action (under mpiexec:
    the launcher's banner and the bare signal number), so that the command ends with its one line and 128 + the signal
    as later (`interrupts_end_the_job` raises it). Only where the action is the default; main thread."""
    if threading.current_thread() is threading.main_thread():
        for sig in ENDING:
            if signal.getsignal(sig) is signal.SIG_DFL:
                watch_arrivals()
                signal.signal(sig, _early_request)


def early_handover(*, honour: bool = True) -> None:
    """The default action back where `record_early`'s handler is still set; with `honour`, a request it recorded
    ends the command now (`Stopped`, the repeats ignored), as one that came a moment later would."""
    for sig in ENDING:
        if signal.getsignal(sig) is _early_request:
            signal.signal(sig, signal.SIG_DFL)
    if _EARLY:
        first = _EARLY[0]
        _EARLY.clear()
        if honour:
            _raise_stopped(first, None)


#: the command's name in the line `ends_if_blocked` says ("hpcflow run"), named by the CLI once it has parsed it
_COMMAND = ["hpcflow"]

#: seconds a SIGTERM/SIGUSR1 recorded by `record_early` waits for a start-up call that holds the main thread (MPI_Init)
#: before `ends_if_blocked` ends the process in its stead: a call that returns by then leaves it to the command
BLOCKED_GRACE = 1.0

#: each launcher's variables: its task count and this process's rank among them, before MPI_Init (Hydra and PMI-2,
#: Open MPI, PMIx, srun), the innermost launcher first: one started inside an srun task (an mpiexec) sets its own and
#: inherits Slurm's, which tell of that srun task, not of this process; srun's own PMI variables (--mpi=pmi2, pmix)
#: agree with its SLURM_ ones
LAUNCHERS = (("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"), ("PMIX_SIZE", "PMIX_RANK"),
             ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"))
#: launcher variables holding this process's rank before MPI_Init
RANK_VARIABLES = tuple(rank for _, rank in LAUNCHERS)


def early_command(prog: str) -> None:
    """Name the command ("hpcflow run") for the line `ends_if_blocked` says."""
    _COMMAND[0] = prog


def command_name() -> str:
    """The command's name as `early_command` named it ("hpcflow run"); "hpcflow" before it is named."""
    return _COMMAND[0]


@contextmanager
def ends_if_blocked():
    """Around a start-up call that may block in C for ever with the GIL held (mpi4py's MPI_Init waiting for a process
    manager that never answers: a rank that never arrives, a hung PMI server), where `record_early`'s handler, which
    only runs between Python instructions, would leave a SIGTERM/SIGUSR1 (and Python's own handler a Ctrl-C, said
    "interrupted", 130) to Slurm's SIGKILL. Python's C-level handler
    still writes the signal's number to the wakeup fd: a process forked for the block reads it and, where the call has
    not returned BLOCKED_GRACE seconds later, says the command's one line ("hpcflow run: stopped by SIGTERM") and has
    this process leave with 128 + the signal, through a POSIX message queue whose notification runs _exit in a thread
    of the C library's (no GIL needed). A call that returns in time leaves the request to the command, which honours
    it as it would any other. Only where `record_early`'s handler is set (main thread); where a piece is missing (no
    message queues, no fork), the block runs unwatched."""
    watch = _watch_blocked()
    try:
        yield
    finally:
        if watch is not None:
            _stop_watching(watch)


#: sigev_notify's value for a notification that runs a function in a new thread (Linux)
SIGEV_THREAD = 2


def _exits_on_message(statuses) -> tuple:
    """(the C library, {status: message queue}): a message sent to a queue makes this process _exit(status) in a
    thread the C library starts (mq_notify, SIGEV_THREAD). OSError or AttributeError where this cannot be set up."""
    import ctypes

    class SigEvent(ctypes.Structure):  # Linux's struct sigevent (64 bytes), as SIGEV_THREAD reads it
        _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                    ("function", ctypes.c_void_p), ("attributes", ctypes.c_void_p), ("pad", ctypes.c_int * 8)]

    for name in (None, "librt.so.1"):  # mq_* are in libc from glibc 2.34, in librt before
        libc = ctypes.CDLL(name, use_errno=True)
        if hasattr(libc, "mq_notify"):
            break
    attr = (ctypes.c_long * 8)(0, 1, 1, 0)  # struct mq_attr: flags, at most 1 message of 1 byte
    end = ctypes.cast(libc._exit, ctypes.c_void_p).value
    queues = {}
    try:
        for status in statuses:
            name = f"/hpcflow-{os.getpid()}-{status}-{os.urandom(4).hex()}".encode()
            queue = libc.mq_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600, attr)
            if queue < 0:
                raise OSError(ctypes.get_errno(), "mq_open")
            libc.mq_unlink(name)
            queues[status] = queue
            if libc.mq_notify(queue, ctypes.byref(SigEvent(status, 0, SIGEV_THREAD, end))) != 0:
                raise OSError(ctypes.get_errno(), "mq_notify")
    except OSError:
        _close_queues(libc, queues)
        raise
    return libc, queues


def _close_queues(libc, queues: dict) -> None:
    for queue in queues.values():
        libc.mq_notify(queue, None)
        libc.mq_close(queue)


def _watch_blocked():
    """Start `ends_if_blocked`'s watcher: its state, or None where it is not needed or cannot run."""
    if threading.current_thread() is not threading.main_thread():
        return None
    watched = [sig for sig in ENDING if signal.getsignal(sig) is _early_request]
    if not watched:
        return None
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C (mpiexec passes it on): 130
        watched.append(signal.SIGINT)
    try:
        libc, queues = _exits_on_message([128 + int(sig) for sig in watched])
    except (OSError, AttributeError):
        return None
    fds = []
    try:
        for _ in range(2):
            fds += os.pipe()
    except OSError:  # no file descriptors left
        for fd in fds:
            os.close(fd)
        _close_queues(libc, queues)
        return None
    wake_r, wake_w, done_r, done_w = fds
    os.set_blocking(wake_w, False)
    old = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        pid = os.fork()
    except OSError:
        pid = None
    if pid == 0:  # the watcher: never returns into the command's code
        status = 1
        try:
            os.close(wake_w)
            os.close(done_w)
            status = _watcher(wake_r, done_r, libc, queues)
        finally:
            os._exit(status)
    os.close(done_r)
    state = {"pid": pid, "done": done_w, "pipe": (wake_r, wake_w), "old": old, "libc": libc, "queues": queues}
    if pid is None:
        _stop_watching(state)
        return None
    if _EARLY:  # requests recorded before the wakeup fd was set: the watcher takes them as it would a new one
        os.write(wake_w, bytes(int(sig) for sig in _EARLY))
    return state


def _watcher(wake_r: int, done_r: int, libc, queues: dict) -> int:
    """The forked watcher's work: wait for a stop request's number on `wake_r` or the end of the call (EOF on
    `done_r`); past the grace, say the line and send the request's queue its message. Its exit status: 0, or the
    status it made the command leave with."""
    signal.set_wakeup_fd(-1)
    for sig in SIGNALS:  # a job step's scancel signals this process too: the command's requests come through the pipe
        signal.signal(sig, signal.SIG_IGN)
    asked = []
    while not asked:
        ready = select.select([wake_r, done_r], [], [])[0]
        if done_r in ready:
            return 0
        asked = [128 + sig for sig in os.read(wake_r, 512) if 128 + sig in queues]
    if select.select([done_r], [], [], BLOCKED_GRACE)[0]:
        return 0  # the call returned: the command honours the request
    status = asked[0]
    rank = launcher_rank()
    if rank:
        time.sleep(SAY_WAIT)  # rank 0, asked too, says it first, as in `interrupted`
    sig = signal.Signals(status - 128)
    what = ("interrupted" if sig == signal.SIGINT else f"stopped by {sig.name}") + (f" (rank {rank})" if rank else "")
    os.write(2, f"{_COMMAND[0]}: {what}\n".encode())
    libc.mq_send(queues[status], b"!", 1, 0)
    return status


def _count(env, name: str) -> int | None:
    """Launcher variable `name` of environment `env` as a count, None where it is unset or no count."""
    value = env.get(name, "").strip()
    return int(value) if value.isdigit() else None


def launcher_task(environ=None) -> tuple[int, int] | None:
    """(tasks, rank): how many tasks the launcher that started this process says it started, and this process's rank
    among them, both from the first launcher of LAUNCHERS that sets its count (the rank 0 where it sets none: a task
    that says what each says, rather than none that does); None where none sets a count. Not a rank of another
    launcher's: an mpiexec without PMI_RANK inside srun task 3 gave each of its tasks SLURM_PROCID 3, so none was 0."""
    env = os.environ if environ is None else environ
    for tasks, rank in LAUNCHERS:
        count = _count(env, tasks)
        if count is not None:
            return count, _count(env, rank) or 0
    return None


def launcher_rank(environ=None) -> int:
    """This process's rank as its launcher set it, 0 where none does: its rank before MPI_Init, that of the launcher
    whose task count `launcher_task` reads; where none sets a count, the first of RANK_VARIABLES set."""
    env = os.environ if environ is None else environ
    task = launcher_task(env)
    if task is not None:
        return task[1]
    return next((c for c in (_count(env, k) for k in RANK_VARIABLES) if c is not None), 0)


def _stop_watching(state: dict) -> None:
    """The call returned (or raised): end the watcher and wait for it; where it has made the command leave already,
    leave with that status at once (its line said). Else the queues, the wakeup fd before and the pipes back."""
    os.close(state["done"])
    if state["pid"] is not None:
        try:
            status = os.waitstatus_to_exitcode(os.waitpid(state["pid"], 0)[1])
        except ChildProcessError:  # reaped elsewhere: it said nothing this process can know of
            status = None
        if status in state["queues"]:
            sys.stdout.flush()
            os._exit(status)
    _close_queues(state["libc"], state["queues"])
    ours = state["old"] != -1 and state["old"] == _ARRIVALS.get("write")
    signal.set_wakeup_fd(state["old"], warn_on_full_buffer=not ours)
    for fd in state["pipe"]:
        os.close(fd)


#: whether a SIGINT reached an installed handler since the outermost `install`: the next one interrupts
_asked = False

#: [the signal of the first stop request an installed handler took] since `forget_taken`; empty before any
_TAKEN = []


def taken() -> int | None:
    """The first stop request (SIGNALS) that a handler set by `install` took in this process since `forget_taken`,
    whatever that handler did with it and whether its block has ended since (a trial's checkpoint writer that
    honoured it), None where none did: a tune worker's journal writes that wait for a stopped holder of its lock
    are bounded after one (`hpcflow.tune.storage`)."""
    return _TAKEN[0] if _TAKEN else None


def forget_taken() -> None:
    """Forget the request `taken` returns: a command run in this process after another starts afresh."""
    _TAKEN.clear()


def _note(signum: int) -> None:
    if not _TAKEN:
        _TAKEN.append(int(signum))


def _first_interrupt(handler):
    """`handler` for the first SIGINT; a later one raises KeyboardInterrupt (Python's own action) instead."""

    def on_sigint(signum, frame):
        global _asked
        signum = arrived(signum)  # (a SIGTERM that came before it is the request: its handler runs after this one)
        _note(signum)
        if _asked:
            raise KeyboardInterrupt
        _asked = True
        handler(signum, frame)

    on_sigint.stop_request = True
    return on_sigint


def _noted(handler):
    """`handler` for a SIGTERM/SIGUSR1, the request noted first (`taken`); its marks (`stop_request`,
    `default_action`) kept. A request delivered while `handler` runs (the repeat of a request signalled to a task
    directly and through srun) is noted only: re-entered, `handler` would wait for a lock it holds itself
    (threading.Event.set's), for good."""
    running = []

    def on_request(signum, frame):
        signum = arrived(signum)  # the first of the requests pending at once, whichever handler runs first
        _note(signum)
        if running:
            return None
        running.append(signum)
        try:
            return handler(signum, frame)
        finally:
            running.clear()

    try:  # (a bound method's vars are its function's: a method forwards __dict__ to __func__)
        on_request.__dict__.update(vars(handler))
    except TypeError:  # (a callable without a __dict__, a builtin's: no marks of its own)
        pass
    return on_request


def install(handler) -> dict:
    """Set `handler` for SIGNALS (SIGINT: only its first delivery, and not where it is ignored), each request it
    takes noted (`taken`); return the handlers it replaced, for `restore` ({} off the main thread, where Python
    cannot set handlers)."""
    global _asked
    if threading.current_thread() is not threading.main_thread():
        return {}
    watch_arrivals()
    old = {}
    for sig in SIGNALS:
        if sig == signal.SIGINT:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue
            if not getattr(current, "stop_request", False):  # the outermost handler: no Ctrl-C seen yet
                _asked = False
            old[sig] = signal.signal(sig, _first_interrupt(handler))
        else:
            old[sig] = signal.signal(sig, _noted(handler))
    return old


def restore(handlers: dict, *, stopping: bool, final: bool = False) -> None:
    """Put back `handlers` ({signal: handler} as signal.signal returned them); when `stopping`, a default action
    (SIG_DFL, which ends the process, or a handler that ends in it: `default_action`) becomes SIG_IGN: the process
    is already on its way out; when `final` (the run's result is written), it is ignored as after `finished`. SIGINT's
    becomes Python's KeyboardInterrupt instead: a second Ctrl-C interrupts."""
    for sig, old in handlers.items():
        if (stopping or final) and (old in (signal.SIG_DFL, None) or getattr(old, "default_action", False)):
            if sig != signal.SIGINT and not stopping:
                _ignore_until_exit(sig)
                continue
            old = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_IGN
        signal.signal(sig, old)


@contextmanager
def requests(said: str | Callable[[int], str | None] | None = None):
    """An Event set by a stop request (a SIGNALS handler installed for the block, SIGINT as in `install`), so that
    a request received before the work that honours it begins (a flow's setup: sampling, clustering) is recorded;
    its `handler` attribute is the handler installed. Handlers restored after (`restore`, stopping when the Event
    is set). A request recorded here is passed on to the SIGTERM handler the block replaced, where that is a
    handler of ours (an enclosing `requests`), so that a request after the inner work's last look is not lost.
    `said`: the line rank 0 prints on stderr at the block's first request, so that a person at a terminal, or a batch
    job's log, knows it was heard while the work that honours it has not begun: a string, said at a first Ctrl-C
    only, or a function of the signal's number returning the line (None: nothing said). Under MPI it is said where
    rank 0 received the request itself (mpiexec forwards Ctrl-C and SIGTERM to every rank; one sent to other ranks
    only is said when it is honoured)."""
    event = threading.Event()

    def record(signum, frame):  # noqa: ARG001 - signal handler signature
        first = not event.is_set()
        event.set()  # before the line: a repeat (mpiexec's forward beside Slurm's own) whose handler runs while
        # this one says it, inside the print, is not said again
        if said is not None and first:
            line = said(signum) if callable(said) else said if signum == signal.SIGINT else None
            world = _mpi_world()
            if line is not None and (world is None or world.Get_rank() == 0):
                _say(line)

    record.stop_request = True
    old = install(record)
    # the handler installed (`install` notes the requests it takes), which `hpcflow.tune.study.hand_over` looks for
    event.handler = signal.getsignal(signal.SIGTERM) if signal.SIGTERM in old else record
    try:
        yield event
    finally:
        restore(old, stopping=event.is_set())  # a repeat of an honoured stop request is ignored
        outer = old.get(getattr(signal, "SIGTERM", None))
        if event.is_set() and getattr(outer, "stop_request", False):
            outer(signal.SIGTERM, None)


def _say(line: str) -> None:
    """`line` on stderr from a signal handler: through sys.stderr, or straight to file descriptor 2 where the code the
    signal interrupted was itself writing to sys.stderr (a buffered writer refuses a reentrant call); a stderr that
    cannot be written (closed) leaves it unsaid rather than raise into the interrupted code."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (RuntimeError, OSError, ValueError):
        try:
            os.write(2, f"{line}\n".encode())
        except OSError:
            pass


def defer() -> tuple:
    """Hold back stop requests (SIGNALS) until `deliver`: for a step that must not be cut in two, such as taking
    --out's lock (a request there would leave the lock file and the directory it created). Off the main thread,
    nothing is held back."""
    if threading.current_thread() is not threading.main_thread():
        return {}, []
    watching = _ARRIVALS.get("pid") == os.getpid()
    watch_arrivals()
    held = []
    if not watching and _ARRIVALS.get("pid") == os.getpid():
        _ARRIVALS["for"] = held  # this hold set the pipe: `deliver` takes it away again

    def holding_for(old):
        def hold(signum, frame):  # noqa: ARG001 - signal handler signature
            _arrived_in_order(signum, held)  # `deliver` sends them in the order they arrived

        # it stands in for `old`: one that only ends the command is no checkpoint writer (`submit.task` asks)
        hold.default_action = old in (signal.SIG_DFL, None) or getattr(old, "default_action", False)
        return hold

    return {sig: signal.signal(sig, holding_for(signal.getsignal(sig))) for sig in SIGNALS}, held


def deliver(deferred: tuple, *, held: bool = True) -> None:
    """Put back the handlers `defer` replaced, then (`held`) send this process the requests held meanwhile (each
    once), which the handlers put back take as they would have."""
    handlers, signals = deferred
    for sig, old in handlers.items():
        signal.signal(sig, old)
    for sig in dict.fromkeys(signals) if held else ():
        signal.raise_signal(sig)  # (its handler runs before this returns)
    if _ARRIVALS.get("for") is signals:
        _unwatch()


def _unwatch() -> None:
    """The wakeup fd back to none where `defer` set `watch_arrivals`'s pipe outside any command's handlers (a
    library caller's `import torch`): a program that imports hpcflow keeps its wakeup fd free (trio, asyncio)."""
    try:
        old = signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        return
    if old != _ARRIVALS.get("write"):  # another's since: left as it is
        signal.set_wakeup_fd(old)
        return
    for fd in (_ARRIVALS["read"], _ARRIVALS["write"]):
        try:
            os.close(fd)
        except OSError:
            pass
    _ARRIVALS.clear()


def _after_the_result(signum, frame):  # noqa: ARG001 - signal handler signature
    """A SIGTERM/SIGUSR1 after the command's result is final (`finished`): nothing is left to stop or say."""


def finished() -> None:
    """The command's result is final (its work done, its status decided): SIGTERM and SIGUSR1 are ignored from here to
    the process's end, over any handler, as a request would only change a finished run's exit status (main thread).
    So is Ctrl-C, which would turn it into 130 (a KeyboardInterrupt while summary.json is written) or end the process
    by SIGINT itself (one raised after the command returned, in the interpreter's exit): after a stop the run ends with
    its 4 and its line, as after a repeated SIGTERM. A SIGINT ignored from the start stays ignored; an in-process
    command gives the caller its Ctrl-C back (`interrupts_again`)."""
    if threading.current_thread() is threading.main_thread():
        for sig in ENDING:
            _ignore_until_exit(sig)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            _ignore_until_exit(signal.SIGINT)


def interrupts_again(handler) -> None:
    """SIGINT back to `handler` (the one before the command) where `finished` left it ignored: a caller that ran a
    command in its own process (`hpcflow.cli.main(argv)`) keeps its Ctrl-C (main thread)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is _after_the_result:
        signal.signal(signal.SIGINT, signal.default_int_handler if handler is None else handler)


def stops_again(handlers: dict) -> None:
    """SIGTERM and SIGUSR1 back to `handlers` ({signal: the handler before the command}) where a `Stopped` left them
    ignored (`_repeat_ignored`): a caller that ran a command in its own process (`hpcflow.cli.main(argv)`) keeps its
    handlers, and a process it starts later their default action. `record_early`'s handler before the command (a
    job's task, `hpcflow.submit.task`, recording its command's start-up requests) is put back as it was: a request
    after the command is recorded, not honoured, and ignored at the interpreter's exit (`_ignored_at_exit`). Main
    thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is _repeat_ignored:
            signal.signal(sig, handler)


def _ignore_until_exit(sig: int) -> None:
    """`_after_the_result` for `sig` (a handler: a process this one starts does not inherit it, as it would SIG_IGN),
    and SIG_IGN at the interpreter's exit (`_ignored_at_exit`)."""
    signal.signal(sig, _after_the_result)
    _ignored_at_exit_once()


def _ignored_at_exit() -> None:
    """SIG_IGN where `finished` (or `_raise_stopped`: `_repeat_ignored`; `stops_again`: `_early_request`, the command
    over) left its handler: Python's finalization, after the atexit functions, puts SIG_DFL back in place of a
    handler, before the C-level exit functions (mpi4py's MPI_Finalize, which waits for the other ranks)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (*ENDING, signal.SIGINT):
            if signal.getsignal(sig) in (_after_the_result, _repeat_ignored, _early_request):
                signal.signal(sig, signal.SIG_IGN)


@contextmanager
def kept():
    """Within the block a stop request that Python could not pass on (a KeyboardInterrupt or `Stopped` raised in a
    weakref callback, such as importlib's module-lock clean-up, or in a __del__: Python prints "Exception ignored"
    and goes on) is raised again in the main thread's code, so that the command still stops, with its one line; so
    is a SystemExit (submitit's requeue on Slurm's signal ends the process so, from its handler); one
    not raised again yet when the block ends is raised there (the block's own exception, if any, goes on instead)."""
    previous = sys.unraisablehook

    def hook(unraisable):
        exc = unraisable.exc_value
        if (isinstance(exc, (KeyboardInterrupt, SystemExit)) and threading.current_thread() is threading.main_thread()
                and not sys.is_finalizing()):
            _raise_again(exc)
        else:
            previous(unraisable)

    _IN_THE_HOOK.add(hook.__code__)
    sys.unraisablehook = hook
    try:
        yield
    except BaseException:
        _settle()
        raise
    else:
        exc = _settle()
        if exc is not None:
            raise exc
    finally:
        if sys.unraisablehook is hook:
            sys.unraisablehook = previous


#: the code of `kept`'s hooks and what they call: a handler that interrupts them sends its signal again instead
_IN_THE_HOOK = set()

#: `_raise_again`'s requests not raised yet, each {"exc", "done", "sent", "taken", "lock", "timers", "settle"}
_pending = []


def _raise_again(exc: BaseException) -> None:
    """Raise `exc` in the main thread once it runs Python code again: a one-time SIGINT handler that puts the one
    before back and raises it, and a SIGINT sent to the main thread from another one (a real signal, not a simulated
    one, also ends a sleep the main thread is in). Where the handler would run inside the hook, which cannot raise,
    or in another callback of the kind, the signal is sent again and, where raised, the exception comes back here."""
    old = signal.getsignal(signal.SIGINT)
    if old is None:  # a handler not set from Python: Python's own takes its place once `exc` is raised
        old = signal.default_int_handler
    state = {"exc": exc, "done": False, "sent": 0, "taken": 0, "lock": threading.Lock(), "timers": []}

    def again(signum, frame):  # noqa: ARG001 - signal handler signature
        state["taken"] += 1
        if state["done"]:  # settled at the block's end: a signal sent before then, taken here, not Python's
            if state["taken"] >= state["sent"]:
                signal.signal(signal.SIGINT, old)
            return
        at = frame
        while at is not None:
            if at.f_code in _IN_THE_HOOK:
                _send_sigint_soon(state)
                return
            at = at.f_back
        state["done"] = True
        _pending.remove(state)
        signal.signal(signal.SIGINT, old)
        raise exc

    def settle():
        """Stop sending; `old` back unless a signal sent is still to come (`again` takes it)."""
        with state["lock"]:
            state["done"] = True
        for timer in state["timers"]:
            timer.cancel()
        if state["taken"] >= state["sent"] and signal.getsignal(signal.SIGINT) is again:
            signal.signal(signal.SIGINT, old)

    state["settle"] = settle
    _pending.append(state)
    signal.signal(signal.SIGINT, again)
    _send_sigint_soon(state)


def _settle():
    """End `_raise_again`'s requests not raised yet (the block of `kept` ends); the first one's exception, or None."""
    first = _pending[0]["exc"] if _pending else None
    while _pending:
        _pending.pop()["settle"]()
    return first


#: seconds before `_raise_again`'s SIGINT: the hook that sends it has returned by then
RESEND_DELAY = 0.01


def _send_sigint_soon(state: dict) -> None:
    """SIGINT to the main thread in RESEND_DELAY, from a thread of its own, unless `state` is settled by then."""
    main = threading.main_thread().ident

    def send():
        with state["lock"]:
            if state["done"]:
                return
            state["sent"] += 1
            signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(RESEND_DELAY, send)
    timer.daemon = True
    state["timers"].append(timer)
    timer.start()


_IN_THE_HOOK.update((_raise_again.__code__, _send_sigint_soon.__code__))


#: seconds a rank > 0 waits before it ends an interrupted job itself: rank 0, interrupted too, says it once first
SAY_WAIT = 0.5


def _mpi_world():
    """MPI.COMM_WORLD where MPI runs with several ranks, else None (never initialises MPI)."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
        return None
    return MPI.COMM_WORLD


def interrupted(prog: str, exc: BaseException | None = None) -> int:
    """Say on stderr in one line that `prog` ("hpcflow run") was interrupted (a KeyboardInterrupt `exc`: Ctrl-C where
    no checkpoint is written, or a second one; `Stopped`: a SIGTERM/SIGUSR1 there); returns EXIT_INTERRUPTED (a
    Stopped's 128 + signal; from there, as after Ctrl-C's 130, a SIGTERM/SIGUSR1 that would end the process is
    ignored to its end). Under MPI it ends every rank at once: where all stopped together inside `abort_on_error`,
    rank 0 alone says it and each leaves with that status (`stop_together`), else by Abort with it, said by each that
    stopped: the others may wait in a collective for this one, which would never come."""
    from hpcflow.errors import EXIT_INTERRUPTED

    status = getattr(exc, "exit_status", EXIT_INTERRUPTED)
    what = str(exc) if isinstance(exc, Stopped) else "interrupted"
    world = _mpi_world()
    if world is not None:
        rank = world.Get_rank()
    else:  # before MPI_Init under a launcher (a Ctrl-C in the imports) a rank > 0 waits: rank 0 says it first
        MPI = sys.modules.get("mpi4py.MPI")
        rank = launcher_rank() if MPI is None or not MPI.Is_initialized() else 0
    if world is not None and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, *ENDING):  # ending: a further request must not interrupt the goodbye
            signal.signal(sig, signal.SIG_IGN)
    if world is not None:
        from hpcflow.parallel.comm import release_shared_memory, stop_together
    # every rank stopped at once: rank 0 says it, and each leaves with its status (else, past the wait at
    # `stop_together`'s barrier or SAY_WAIT, this rank says it too before the Abort)
    if rank and not (world is not None and stop_together(status)):
        time.sleep(SAY_WAIT)
    sys.stdout.flush()  # what this rank printed (a batch log is block-buffered) is not lost in the Abort
    print(f"{prog}: {what}" + (f" (rank {rank})" if rank else ""), file=sys.stderr, flush=True)
    if world is not None:
        if not rank:
            stop_together(status)  # every rank stopped at once: each leaves with the status, the launcher cleans up
        wait_until_read()  # the launcher may drop what it has not read when the Abort ends the job
        release_shared_memory()  # MPICH's /dev/shm segment, which only Finalize removes
        world.Abort(status)
        os._exit(status)  # MPICH's Abort returns before the launcher ends the ranks: run nothing more here
    if threading.current_thread() is threading.main_thread():  # (a Stopped's status or Ctrl-C's 130)
        # the status is decided: a repeat of the request (or the other one) that comes while the process ends is
        # ignored, as under MPI above, not its default action (killed by the later signal); by a handler, not SIG_IGN,
        # which a process started later would inherit (SIG_IGN at the interpreter's exit)
        _repeats_ignored(over=(signal.SIG_DFL, _repeat_ignored))
    handled()
    return status


def handled() -> None:
    """Tell CPython that the KeyboardInterrupt caught was handled: one that left a string run by `exec` on its way
    (SciPy's array-API shim imports NumPy so, at an import a Ctrl-C can land in) sets a flag that nothing clears, and
    `python -m` then ends the process by SIGINT at its exit (status -2 to its parent), not with the command's status.
    Running a string by `exec` clears it (CPython's run_eval_code_obj)."""
    exec("None", {})


@contextmanager
def interrupts_end_the_job(prog: str, *, stops: bool = True):
    """Inside `hpcflow.parallel.comm.abort_on_error`: under MPI a KeyboardInterrupt ends the job in one line
    (`interrupted`) instead of a traceback; on one rank it goes on to the CLI, which says the same line. With
    `stops`, a SIGTERM/SIGUSR1 in the block raises `Stopped` (where its action is the default one), so that it ends
    the command as Ctrl-C does; a checkpoint writer's handler takes the signals over while it runs."""
    old = {}
    if stops and threading.current_thread() is threading.main_thread():
        watch_arrivals()
        # (`_after_the_result`: a command before this one finished in this process, a caller's or a test's;
        # `_early_request`: the interpreter's start, whose default action is put back after)
        old = {sig: signal.signal(sig, _raise_stopped) for sig in ENDING
               if signal.getsignal(sig) in (signal.SIG_DFL, _after_the_result, _early_request)}
        old = {sig: signal.SIG_DFL if handler is _early_request else handler for sig, handler in old.items()}
    stopped = False
    try:
        if old:
            early_handover()  # a request recorded since the interpreter's start stops the command here
        yield
    except KeyboardInterrupt as exc:
        stopped = isinstance(exc, Stopped)
        if _mpi_world() is not None:
            interrupted(prog, exc)
        raise
    finally:  # the handlers before, where ours is set still, or left the signals ignored as it raised
        for sig, handler in old.items():
            if signal.getsignal(sig) is _raise_stopped or (stopped and signal.getsignal(sig) in (signal.SIG_IGN,
                                                                                                 _repeat_ignored)):
                signal.signal(sig, handler)
