"""Plain entries of a file written by torch.save, read without torch and without unpickling.

Such a file is a zip archive: DIR/data.pkl describes the saved object, DIR/data/N hold the tensors' bytes. The
opcodes of data.pkl are walked as a stream of tokens (`pickletools.genops`, which builds no object, imports no class
and calls nothing); only the str, int, float, bool and None values stored in nested dicts (under str keys) and lists
are kept, every other value (a tensor, a tuple, anything a class builds) is an opaque placeholder. So a run's checkpoint.pt says
its epoch, status and job configuration on a machine without torch, and reading it cannot run code.
"""

from __future__ import annotations

import pickletools
import re
import zipfile

#: data.pkl of a torch zip archive: one top-level folder (named after the file, or "archive") holds it
_DATA = re.compile(r"^[^/]+/data\.pkl$")
#: opcodes that push the str or number of their argument; NEWTRUE, NEWFALSE and NONE push a constant
_SCALARS = ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING",
            "BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "BINFLOAT", "FLOAT")
_CONSTANTS = {"NEWTRUE": True, "NEWFALSE": False, "NONE": None}
_PUT = ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE")
_GET = ("BINGET", "LONG_BINGET", "GET")
_OPAQUE = object()


class _Dict:
    """A dict of the saved object: its plain, dict and list values by key."""

    def __init__(self):
        self.items: dict = {}

    def add(self, pairs: list) -> None:
        """Set key, value, key, value, ... (str keys; nothing from a malformed stream's odd count)."""
        if len(pairs) % 2 == 0:
            self.items.update((k, v) for k, v in zip(pairs[::2], pairs[1::2]) if isinstance(k, str))


class _List:
    """A list of the saved object: its items."""

    def __init__(self):
        self.items: list = []

    def add(self, items: list) -> None:
        self.items += items


#: opcodes that fill a container: (its class, how many items they take, or 0: down to the MARK; a new container)
_FILLS = {"APPEND": (_List, 1, False), "APPENDS": (_List, 0, False), "LIST": (_List, 0, True),
          "SETITEM": (_Dict, 2, False), "SETITEMS": (_Dict, 0, False), "DICT": (_Dict, 0, True)}


def plain_entries(path) -> dict:
    """{key path: value} of every str, int, float, bool or None value of the saved object's nested dicts (str keys)
    and lists (int positions), e.g. {('train', 'epoch'): 97, ('status',): 'running', ('legs', 0, 'to_step'): 5, ...};
    ValueError when the file is no zip archive of torch.save or its data.pkl does not parse as a dict."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if _DATA.match(n)]
            if len(names) != 1:
                raise ValueError(f"{len(names)} data.pkl entries, not one")
            data = zf.read(names[0])
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"not a zip archive of torch.save ({exc})") from None
    root = _walk(data)
    if not isinstance(root, _Dict):
        raise ValueError("data.pkl does not hold a dict")
    out: dict = {}
    _flatten(root, (), out, set())
    return out


def _walk(data: bytes):
    """The top of the stack at STOP: a _Dict, a plain value or _OPAQUE (ValueError for a stream that is no pickle)."""
    stack, marks, memo = [], [], {}
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in _PUT:
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in _GET:
                stack.append(memo.get(arg, _OPAQUE))
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "EMPTY_DICT":
                stack.append(_Dict())
            elif name == "EMPTY_LIST":
                stack.append(_List())
            elif name in _FILLS:
                kind, taken, new = _FILLS[name]
                start = len(stack) - taken if taken else marks.pop()
                items = stack[start:]
                del stack[start:]
                if new:
                    stack.append(kind())
                if isinstance(stack[-1], kind):  # the items of an opaque container are not kept
                    stack[-1].add(items)
            elif name == "STOP":
                return stack[-1]
            elif name in _SCALARS:
                stack.append(arg)
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name])
            else:
                _generic(op, stack, marks)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"data.pkl does not parse ({exc})") from None
    raise ValueError("data.pkl has no STOP")


def _generic(op, stack: list, marks: list) -> None:
    """Any other opcode by its stack effect alone: what it takes is dropped, what it leaves is opaque."""
    before = op.stack_before
    if pickletools.markobject in before:
        del stack[marks.pop():]
        before = before[:before.index(pickletools.markobject)]
    if len(stack) < len(before):
        raise IndexError(f"{op.name} on a stack of {len(stack)}")
    del stack[len(stack) - len(before):]
    stack.extend([_OPAQUE] * len(op.stack_after))


def _flatten(node, prefix: tuple, out: dict, seen: set) -> None:
    if id(node) in seen:  # a container that holds itself: each is read once
        return
    seen.add(id(node))
    for key, value in node.items.items() if isinstance(node, _Dict) else enumerate(node.items):
        if isinstance(value, (_Dict, _List)):
            _flatten(value, (*prefix, key), out, seen)
        elif value is not _OPAQUE:
            out[(*prefix, key)] = value


def crc_fault(path: str) -> str | None:
    """The first entry of zip archive `path` (torch.save's format) whose bytes fail their CRC-32, or None. torch.load
    does not check them, so a flipped bit in a tensor (a disk or copy error) loads as other, finite values. A file that
    is no zip archive (cut short, not a torch file) is left to torch.load, which refuses it."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip()
    except Exception:  # noqa: BLE001 - not a zip archive, or one cut short: torch.load says so
        return None
