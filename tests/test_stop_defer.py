"""`stop_signals.defer` (while --out's lock is taken) holds stop requests back, standing in for the handler it
replaced: a preemption then (submitit's signal, `submit.task`) asks whether a checkpoint writer holds SIGUSR1, and
must not take the holder for one where only the command's ending was there (it would end with 138, not requeue)."""

import signal

from hpcflow.stop_signals import defer, deliver


def test_the_holder_is_a_checkpoint_writer_only_where_one_was_replaced():
    def writer(signum, frame):
        calls.append(signum)

    calls = []
    before = signal.getsignal(signal.SIGUSR1)
    try:
        for old, ends in ((signal.SIG_DFL, True), (writer, False)):
            signal.signal(signal.SIGUSR1, old)
            deferred = defer()
            holder = signal.getsignal(signal.SIGUSR1)
            assert holder is not old and getattr(holder, "default_action", False) is ends, old
            signal.raise_signal(signal.SIGUSR1)  # held, not acted on
            if ends:
                deliver(deferred, held=False)  # (delivered, SIG_DFL would end this process)
            else:
                assert calls == []
                deliver(deferred)
                assert calls == [signal.SIGUSR1]  # the writer gets the held request once the block ends
            assert signal.getsignal(signal.SIGUSR1) is old
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_a_bound_method_handler_keeps_its_marks_once_installed():
    """`install` wraps a handler to note the requests it takes (`taken`); a bound method's marks are its function's
    (getattr on the method reads them), which the handler installed must carry as well."""
    from hpcflow.stop_signals import forget_taken, install, restore

    class Writer:
        def on_signal(self, signum, frame):
            self.calls.append(signum)

        on_signal.stop_request = True

    writer = Writer()
    writer.calls = []
    assert getattr(writer.on_signal, "stop_request", False)
    old = install(writer.on_signal)
    try:
        installed = signal.getsignal(signal.SIGUSR1)
        assert installed is not writer.on_signal and getattr(installed, "stop_request", False) is True
        signal.raise_signal(signal.SIGUSR1)
        assert writer.calls == [signal.SIGUSR1]
    finally:
        restore(old, stopping=False)
        forget_taken()  # (the request noted: not this process's later tests')
