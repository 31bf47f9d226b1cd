"""Command lines shown to the user (a --resume to paste, best.toml's Run: line, a log's command) as one line that a
POSIX shell splits back into the same argv, file names that are not UTF-8 included."""


def shell_line(argv) -> str:
    """A command line shown to the user as one line that a POSIX shell splits back into `argv` (`shell_word` of each:
    shlex.join's quoting), so that it can be pasted as it is (a --set value with spaces or quotes, a file name that
    is not UTF-8)."""
    return " ".join(shell_word(a) for a in argv)


def shell_word(word) -> str:
    """One word of `shell_line`: shlex.quote's, but where `word` holds a byte that is not UTF-8 (a Latin-1 file name:
    one lone surrogate per such byte, os.fsdecode's) or a control character other than a tab (which shlex.quote
    leaves raw: the line would be no valid UTF-8, or not one line), the whole word in ANSI-C quotes $'...' (bash,
    zsh, ksh, POSIX.1-2024 sh) with such bytes as \\xNN: pasted, the shell passes the same bytes."""
    import shlex

    word = str(word)
    if not needs_escapes(word):
        return shlex.quote(word)
    out = []
    for ch in word:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # the byte code - 0xDC00 that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a surrogate no byte gave (a caller's str): its UTF-8 bytes
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch in "\\'":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def needs_escapes(word: str) -> bool:
    """Whether `shell_word` writes `word` in ANSI-C quotes: not UTF-8, or a control character other than a tab."""
    from hpcflow.jobs.schema import is_utf8

    return not is_utf8(word) or any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in word)


def shell_unword(text: str) -> str:
    """`shell_word`'s ANSI-C quoted $'...' word back as the str it was made from (its bytes decoded as os.fsdecode
    does); any other text as it is."""
    import re

    if not (len(text) >= 3 and text.startswith("$'") and text.endswith("'")):
        return text
    body, out, i = text[2:-1], bytearray(), 0
    while i < len(body):
        hexed = re.match(r"\\x([0-9a-fA-F]{2})", body[i:])
        if hexed:
            out.append(int(hexed.group(1), 16))
            i += 4
        elif body[i] == "\\" and i + 1 < len(body) and body[i + 1] in "\\'":
            out.append(ord(body[i + 1]))
            i += 2
        elif body[i] in "\\'":  # not a word `shell_word` wrote
            return text
        else:
            out += body[i].encode("utf-8")
            i += 1
    return out.decode("utf-8", "surrogateescape")
