"""Names that are not UTF-8 (a Latin-1 file name on a cluster) as hpcflow shows them in text it prints or writes."""

import os
import re

#: lone surrogates: a byte that is not UTF-8 in a file name or argument (os.fsdecode's), which no UTF-8 text holds
_SURROGATE = re.compile("[\ud800-\udfff]")


def shown(text) -> str:
    """`text` (a path, a name, or a message that holds them) as it can be drawn and written as UTF-8: a byte of a
    file name that is not UTF-8, which Python holds as a lone surrogate (os.fsdecode's surrogateescape: b'\\xff' as
    '\\udcff'), as the four characters \\xff; any other lone surrogate (from a JSON '\\ud800') as \\ud800. Other text
    is returned unchanged."""
    return _SURROGATE.sub(_escape_surrogate, os.fspath(text) if isinstance(text, os.PathLike) else str(text))


def _escape_surrogate(match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xdc00:02x}" if 0xdc80 <= code <= 0xdcff else f"\\u{code:04x}"
