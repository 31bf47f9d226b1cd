"""hpcflow.progress: a tqdm bar on rank 0 when stderr is a terminal; silent otherwise or with quiet=True."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import termios

import pytest

from hpcflow.progress import enabled, progress


class _Rank:
    def __init__(self, r):
        self.r = r

    def Get_rank(self):
        return self.r

    def Get_size(self):
        return 2


@pytest.fixture
def tty():
    """A pseudo-terminal: (writer file object, function reading what was written)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    w = os.fdopen(slave, "w")

    def read():
        """Everything written so far: the terminal may pass it on in pieces, so read until it stays quiet
        for 0.2 s (one read once returned only the bar's first line on a loaded machine)."""
        w.flush()
        chunks = []
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunks.append(os.read(master, 65536))
            except OSError:  # the writer side closed
                break
        return b"".join(chunks).decode("utf-8", "replace")

    yield w, read
    w.close()
    os.close(master)


def test_bar_on_a_terminal_counts_every_item(tty, monkeypatch):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    w, read = tty
    assert sum(progress(range(7), desc="flow", unit="step", stream=w, mininterval=0)) == 21
    text = read()
    assert "flow" in text and "7/7" in text


@pytest.mark.parametrize("how", ["pipe", "quiet", "env", "rank1"])
def test_silent_off_terminal_quiet_or_other_rank(tty, monkeypatch, how):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    w, read = tty
    kw = {"stream": w}
    if how == "pipe":
        kw["stream"] = io.StringIO()
    elif how == "quiet":
        kw["quiet"] = True
    elif how == "env":
        monkeypatch.setenv("HPCFLOW_QUIET", "1")
    else:
        kw["comm"] = _Rank(1)
    assert not enabled(**kw)
    with progress(total=5, desc="sampling", mininterval=0, **kw) as bar:
        for _ in range(5):
            bar.update(1)
    assert list(progress(iter("abc"), **kw)) == ["a", "b", "c"]  # the items still pass through
    assert read() == "" and (how != "pipe" or kw["stream"].getvalue() == "")
