"""A stop request delivered again while the handler of the first still runs (scancel signals a task directly and
through srun, microseconds apart) does not re-enter that handler: a checkpoint writer's handler sets a
threading.Event, whose lock a re-entered handler waited for, for good (a tune worker of an array job hung so)."""

from __future__ import annotations

import os
import signal
import threading

from hpcflow.stop_signals import install, restore


def test_a_request_repeated_inside_its_handler_does_not_reenter_it():
    lock, calls, waited = threading.Lock(), [], []

    def handler(signum, frame):  # holds a non-reentrant lock while the repeat arrives, as Event.set does
        calls.append(signum)
        with lock:
            if len(calls) == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # the repeat, handled at the next bytecode boundary
                for _ in range(1000):
                    pass
            else:
                waited.append(True)

    def guarded(signum, frame):  # a re-entered handler finds the lock held: without the guard, it would wait
        if lock.locked() and calls:
            waited.append("re-entered while the first held its lock")
            return
        handler(signum, frame)

    old = install(guarded)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
    finally:
        restore(old, stopping=False)
    assert calls == [signal.SIGTERM] and waited == [], (calls, waited)


def test_a_later_request_reaches_the_handler_again():
    calls = []
    old = install(lambda signum, frame: calls.append(signum))
    try:
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(1000):
                pass
    finally:
        restore(old, stopping=False)
    assert calls == [signal.SIGUSR1, signal.SIGUSR1]
