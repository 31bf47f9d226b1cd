"""Checks of Python API arguments: counts, sizes, widths, switches and thread numbers refused in one line, never
coerced.

A low-level module (standard library and hpcflow.errors only) so geometry and kernels can check their arguments
without importing the job-file layer; job files share its bounds (INT_LIMIT, MAX_THREADS), and the counts read from
environment variables are bounded here too (`env_integer`). hpcflow's own variables are parsed here, once, for the
Python API and the commands alike (`env_threads`, `env_quiet`, `env_backend`, on/off switches: `env_switch`; the
thread counts of BLAS and OpenMP: `env_thread_count`): a bad value is the same one-line ConfigError from either.
"""
from __future__ import annotations

import math
import os
import re
from numbers import Integral, Real

from hpcflow.errors import ConfigError

#: every integer of a job file or API call lies within +-INT_LIMIT (int64 with room for offsets such as seed + 1000 i)
INT_LIMIT = 2**62
#: most threads or workers a job or call may ask for
MAX_THREADS = 1024
#: largest complex dimension of a hypersurface family (sampling cost grows like dim^4 per point): the API's
#: Hypersurface.fermat/dwork, the job files' [geometry].dim and `hpcflow sample --dim`
MAX_DIM = 16
#: the most batches of lines the sampler draws by default (`Hypersurface.sample`'s max_batches, `hpcflow sample
#: --max-batches`, a job file's max_batches beside its chart)
MAX_BATCHES = 100_000
#: what $HPCFLOW_BACKEND may say (auto: CuPy where a GPU is usable, else NumPy)
BACKENDS = ("numpy", "cupy", "auto")
#: most significant digits of a count read from text (an environment variable): 10^18 is beyond every count and size,
#: and longer digit strings reach Python's limit on int(str) (4300 digits, a ValueError) or overflow a float
MAX_DIGITS = 18


def int_text(x: int) -> str:
    """An integer bound as a message writes it: +-INT_LIMIT as 2**62 (not its 19 digits), others as they are."""
    return ("-2**62" if x < 0 else "2**62") if abs(x) == INT_LIMIT else str(x)


#: characters that a terminal shows as nothing though str.isprintable() holds them printable (so repr() keeps them):
#: variation selectors, the combining grapheme joiner, Mongolian free variation selectors, Khmer inherent vowels, the
#: Hangul fillers and the blank Braille pattern
INVISIBLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
                       "\U000e0100-\U000e01ef]")


def invisible(c: str) -> bool:
    """Whether character `c` shows as nothing or is no printable character (`INVISIBLE`, not str.isprintable())."""
    return not c.isprintable() or INVISIBLE.match(c) is not None


def escaped(text: str) -> str:
    """`text` with each character that shows as nothing or is not printable (`invisible`) as its escape, as ascii()
    writes it (\ufe0f, \u3164, \xa0): a value shown in a message is not taken for one it differs from."""
    return "".join(ascii(c)[1:-1] if invisible(c) else c for c in text)


def short_repr(value) -> str:
    """repr of a value on one line (the rows of a NumPy array's repr joined by one space), cut to 60 characters, so
    that a huge, nested or multi-line value stays a one-line message; a character that shows as nothing as its
    escape (`escaped`: repr keeps a variation selector or a Hangul filler as it is)."""
    return _cut(escaped(_one_line(repr(value))))


def short_text(text: str) -> str:
    """`text` on one line, cut to 60 characters (`short_repr` of a value's own rendering)."""
    return _cut(_one_line(text))


def _one_line(text: str) -> str:
    """`text` with its line breaks (and the spaces around them) as one space."""
    return re.sub(r"\s*[\r\n]\s*", " ", text.strip())


def _cut(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _api_error(name, value, want, exc):
    return exc(f"{name}={short_repr(value)} is invalid; pass {want}")


def api_hook(name: str, value, want: str) -> None:
    """A Python API hook (callback, on_step, on_epoch, ...): None or callable; else TypeError naming it and `want`
    (what it is called with), before any work: one that is not callable failed only where it was first called."""
    if value is not None and not callable(value):
        raise TypeError(f"{name}={short_repr(value)} is not callable; pass {want}, or None")


def api_integer(name: str, value, want: str, *, lo: int | None = None, hi: int | None = None,
                type_error=TypeError, value_error=ValueError, bounded: bool = True) -> int:
    """A Python API count, size or index as an int: an int, a NumPy integer, or a float with an integral value
    (1e5); `type_error` for anything else (bool, str, None), `value_error` for a fractional or non-finite float
    or a value outside [lo, hi] (within +-INT_LIMIT, as job files, unless not `bounded`: a limit such as
    cache_bytes=sys.maxsize that means none). The message names `name` and says `want`."""
    out = _whole(name, value, want, type_error, value_error)
    if not bounded:
        lo, hi = (-math.inf if lo is None else lo), (math.inf if hi is None else hi)
    else:
        lo = max(-INT_LIMIT, lo if lo is not None else -INT_LIMIT)
        hi = min(INT_LIMIT, hi if hi is not None else INT_LIMIT)
    if not lo <= out <= hi:
        raise _api_error(name, value, want, value_error)
    return out


def api_seed(name: str, value, want: str = "an integer >= 0 (of any size)", *, type_error=TypeError,
             value_error=ValueError) -> int:
    """A Python API seed as an int: a whole number >= 0 of any size, taken as `api_integer` takes counts (an int, a
    NumPy integer or an integral float), without its +-INT_LIMIT bound: a PointSet file's @seed of a draw with
    seed=None is a 128-bit entropy that must reproduce its points (job files bound seeds to SEED_MAX, int64)."""
    out = _whole(name, value, want, type_error, value_error)
    if out < 0:
        raise _api_error(name, value, want, value_error)
    return out


def _whole(name, value, want, type_error, value_error) -> int:
    """`value` as an int when it is an integer (not a bool) or a finite float of integral value, else the error."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _api_error(name, value, want, type_error)
    if not isinstance(value, Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise _api_error(name, value, want, value_error)
    return int(value)


def api_number(name: str, value, want: str, *, lo: float | None = None, lo_open: bool = False,
               hi: float | None = None, type_error=TypeError, value_error=ValueError) -> float:
    """A Python API width, scale or threshold as a finite float (ints and NumPy numbers accepted), within
    [lo, hi] ((lo, hi] with lo_open); `type_error` for a non-number (bool, str, None), `value_error` for nan,
    +-inf or a value out of bounds."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _api_error(name, value, want, type_error)
    out = float(value)
    below = lo is not None and (out <= lo if lo_open else out < lo)
    if not math.isfinite(out) or below or (hi is not None and out > hi):
        raise _api_error(name, value, want, value_error)
    return out


def api_keys(d, name: str, keys) -> dict:
    """`d` (a section such as geo or sc) when it has every one of `keys`; else ValueError naming the first missing
    one (a KeyError on one rank is not a refusal that `arguments_together` shares)."""
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{name} has no key {missing[0]!r}; pass a {name} with {', '.join(map(repr, keys))}")
    return d


def api_bool(name: str, value, *, type_error=TypeError) -> bool:
    """A Python API switch as a bool: True, False, a NumPy bool (or a 0-d boolean array); `type_error` for anything
    else ("no", None, 0, 1), which truthiness would take silently for True or False."""
    if isinstance(value, bool):
        return value
    if getattr(getattr(value, "dtype", None), "kind", None) == "b" and getattr(value, "shape", None) == ():
        return bool(value)
    raise _api_error(name, value, "True or False", type_error)


def api_threads(value, name: str = "threads", **errors) -> int | None:
    """A `threads` argument: None (the default: $HPCFLOW_THREADS or the usable CPUs) or an integer in
    [1, MAX_THREADS]; 0 or a negative count is refused, not taken as 1."""
    if value is None:
        return None
    return api_integer(name, value, f"None or an integer in [1, {MAX_THREADS}]", lo=1, hi=MAX_THREADS, **errors)


def text_count(text: str, name: str, fix: str) -> int | None:
    """The integer that the ASCII digits `text` spell (leading zeros allowed), or None when `text` is not all ASCII
    digits; ConfigError naming variable `name` and `fix` for more than MAX_DIGITS significant digits, which are not
    read at all (no int() of thousands of digits, no product beyond a float)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        raise ConfigError(f"{name}={text[:40]!r}... has {len(digits)} digits, more than any count or size "
                          f"({MAX_DIGITS} at most); {fix}")
    return int(digits)


def env_integer(name: str, environ=None, *, lo: int = 0, hi: int | None = None, want: str, fix: str) -> int | None:
    """Environment variable `name` as an integer in [lo, hi] (`text_count`): None when unset or blank; ConfigError
    "NAME='VALUE' {want}; {fix}" for anything else (the value cut to 40 characters)."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return None
    n = text_count(text, name, fix)
    if n is None or n < lo or (hi is not None and n > hi):
        raise ConfigError(f"{name}={text[:40]!r} {want}; {fix}")
    return n


def env_threads(environ=None) -> int | None:
    """$HPCFLOW_THREADS (threads per rank): None when unset or blank, else an integer in [1, MAX_THREADS]; ConfigError
    naming it and the fix for anything else."""
    return env_integer("HPCFLOW_THREADS", environ, lo=1, hi=MAX_THREADS,
                       want=f"must be an integer in [1, {MAX_THREADS}]", fix="set e.g. HPCFLOW_THREADS=2 or unset it")


def env_switch(name: str, environ=None, *, on: str) -> bool:
    """An on/off environment variable `name` (HPCFLOW_QUIET, HPCFLOW_IGNORE_MEMORY_CHECK): True for 1 (`on` says
    what that does), False for 0, blank or unset; ConfigError naming it and the fix for anything else ("yes",
    "true", "2"), which one reader would take for on and another for off. One rule for every such variable."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if text not in ("", "0", "1"):
        raise ConfigError(f"{name}={text[:40]!r} must be 1 ({on}) or 0 (off); set {name}=1 or {name}=0, or unset it")
    return text == "1"


def env_quiet(environ=None) -> bool:
    """$HPCFLOW_QUIET (`env_switch`): True for 1 (no progress bars or lines), False for 0, blank or unset."""
    return env_switch("HPCFLOW_QUIET", environ, on="no progress bars")


def env_backend(environ=None) -> str | None:
    """$HPCFLOW_BACKEND in lower case, one of BACKENDS (any case, spaces around it ignored); None when unset or
    blank; ConfigError quoting the value as it is set for anything else."""
    text = (os.environ if environ is None else environ).get("HPCFLOW_BACKEND", "").strip()
    if text and text.lower() not in BACKENDS:
        raise ConfigError(f"HPCFLOW_BACKEND={text[:40]!r} is not one of {', '.join(BACKENDS)}; set numpy, "
                          "cupy or auto, or unset it")
    return text.lower() or None


def env_thread_count(name: str, environ=None) -> str | None:
    """A thread count a BLAS or OpenMP runtime reads from variable `name` as it loads (OMP_NUM_THREADS: a list of
    them, one per nesting level, "4,2"): None when unset or blank, else the value; ConfigError naming it for anything
    but positive integers ("abc", "0", "-1"), which the runtimes read as their default (every CPU) or refuse."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return None
    fix = f"set e.g. {name}=1 or unset it"
    parts = text.split(",") if name == "OMP_NUM_THREADS" else [text]
    if any((text_count(part.strip(), name, fix) or 0) < 1 for part in parts):
        want = "a positive integer" + (" (or a list of them, e.g. 4,2)" if name == "OMP_NUM_THREADS" else "")
        raise ConfigError(f"{name}={text[:40]!r} is not {want}; {fix}")
    return text


def whole_number(lo: int, hi: int):
    """The argparse type of a command-line count in [lo, hi]: a usage error naming the option for anything else, a
    number of thousands of digits included (its digits are counted before int() reads them); the range as messages
    write it (`int_text`: INT_LIMIT as 2**62)."""
    import argparse

    def whole(text: str) -> int:
        m = re.fullmatch(r"\+?0*([0-9]+)", text.strip())
        n = int(m.group(1)) if m and len(m.group(1)) <= len(str(hi)) else None
        if n is None or not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number in [{int_text(lo)}, {int_text(hi)}]")
        return n

    return whole
