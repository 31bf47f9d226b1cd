"""A stop request delivered twice at once (Slurm signals mpiexec, its proxy and every rank: mpiexec's forward comes
beside the rank's own) is acknowledged in one line: the handler of the repeat may run while the first one's is
printing that line (Python runs a pending handler at any bytecode boundary, inside another handler too); it said the
line again ("hpcflow run: stop requested by SIGTERM: ..." twice)."""

import signal

from hpcflow import stop_signals


def test_a_repeat_arriving_while_the_line_is_said_is_not_said_again(monkeypatch):
    said = []

    def say(line):
        said.append(line)
        if len(said) == 1:
            signal.raise_signal(signal.SIGTERM)  # the repeat, taken by the handler inside this one

    monkeypatch.setattr(stop_signals, "_say", say)
    with stop_signals.requests(lambda signum: f"stop requested by {signal.Signals(signum).name}") as pending:
        signal.raise_signal(signal.SIGTERM)
        assert pending.is_set()
    assert said == ["stop requested by SIGTERM"]
