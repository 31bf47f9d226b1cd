"""Job-file schemas: typed fields with defaults and checks; `load_job` validates a TOML file before any work.

A schema is `dict[section, dict[key, Field]]`. A section absent from the file takes its defaults (an optional
table is one whose fields all have defaults, e.g. `default=None` for "not set"). Every error (unknown section/key, missing required key,
wrong type, impossible value) is one `ConfigError("FILE: [section].key ...: fix")`, raised before anything
is computed or written.
"""

from __future__ import annotations

import datetime
import difflib
import functools

import math
import os
import re
import sys
import tomllib
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

from hpcflow.arguments import INT_LIMIT, MAX_BATCHES, MAX_DIM, MAX_THREADS
from hpcflow.arguments import short_repr as _short
from hpcflow.arguments import escaped, invisible, short_text
from hpcflow.errors import ConfigError
from hpcflow.jobs.toml_out import key as toml_key

__all__ = ["INT_LIMIT", "JOB_SECTION", "MANIFOLD_FIELDS", "MAX_DIM", "MAX_LIST", "MAX_PSI", "MAX_STEPS", "MAX_THREADS",
           "MAX_BATCHES", "MAX_BATCHES_FIELD", "batches_said",
           "REQUIRED", "SEED_MAX", "Field", "apply_overrides", "at_least", "chart_pair", "check_manifold", "in_range",
           "load_job", "named_keys", "non_negative", "parse_override", "positive", "projective_coordinates",
           "read_toml", "refuse_inapplicable", "shown",
           "validate", "validate_field", "with_defaults", "zero_or_at_least"]


class _Required:
    """Marker for a field without a default (it must be present in the job file)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()

#: seeds of job files lie in [0, SEED_MAX] (TOML integers are int64); the API's sample and `hpcflow sample --seed`
#: take any integer >= 0 (a PointSet file's @seed of a draw with seed=None is a 128-bit entropy)
SEED_MAX = 2**62
#: longest list a job file may give (sizes, widths, scales)
MAX_LIST = 1000
#: most steps / epochs / iterations a job may ask for
MAX_STEPS = 10**6

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a finite number", str: "a string", list: "a list",
               dict: "a table"}


@dataclass(frozen=True)
class Field:
    """One job-file key: its type, default (REQUIRED if none), optional value check, help and choices.

    `type` may be a type or a tuple of types; int values are accepted for float fields (TOML `1` vs `1.0`)
    and converted; floats must be finite. `items` gives the element type of a list. A default of None makes the
    key optional with no value. `lo`/`hi` bound a number (or every element of a list of numbers), inclusive
    unless `lo_open`; every int is bounded to [-INT_LIMIT, INT_LIMIT] in any case; `within` narrows them by the
    section's other keys. `max_len` bounds a list's length. `check(value)` returns an error string (or False) for an
    impossible value, or None/True when fine.
    """

    type: Any
    default: Any = REQUIRED
    check: Callable[[Any], Any] | None = None
    help: str = ""
    choices: tuple | list | None = None
    items: Any = None  # element type of a list field (each element is coerced like a scalar field)
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is excluded (e.g. a learning rate > 0)
    max_len: int = MAX_LIST
    #: (lo, hi, where) that a number must lie in given the section's keys validated before this one (a chart's
    #: indices on the section's P^n: `projective_coordinates`), within lo/hi; said as "must lie in [lo, hi] where",
    #: the section's keys that `where` names bare named in full ([SECTION].KEY: `named_keys`)
    within: Callable[[dict], tuple] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _type_name(t) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join(_TYPE_NAMES.get(x, x.__name__) for x in types)


class _NotFinite(ValueError):
    """A number of the right type for a float field whose value is NaN or infinite (or an int beyond a float)."""


def _coerce(value, ftype):
    """The value converted to `ftype`; TypeError for a wrong type (bool is never an int/float here), _NotFinite
    for a number a float field cannot hold (NaN, inf, an int beyond a float's range)."""
    types = ftype if isinstance(ftype, tuple) else (ftype,)
    for t in types:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                converted = float(value)
            except OverflowError:
                raise _NotFinite("is beyond a float's range") from None
            if not math.isfinite(converted):
                raise _NotFinite("is not a finite number")
            return converted
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is bool and isinstance(value, bool):
            return value
        if t not in (int, float, bool) and isinstance(value, t):
            return value
    raise TypeError


def _toml_text(value) -> str:
    """A parsed job-file value in TOML's spelling: true/false, [..], {key = ..}, dates and times as TOML writes them
    (2024-01-01, 1979-05-27T07:32:00+00:00); strings and numbers as Python writes them ('exp', 0.001, nan), which
    TOML reads the same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):  # (a datetime is a date)
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {_toml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int) and value.bit_length() > 256:  # (a TOML hex or octal integer: beyond decimal's str())
        return hex(value)
    return repr(value)


def shown(value) -> str:
    """A job-file value in an error message as the user wrote it (`steps = true`, not Python's True), on one line
    and cut to 60 characters."""
    return short_text(escaped(_toml_text(value)))


def _bound(x, none: str) -> str:
    """A range's end as written in a message: the int64-safe limit every integer has as 2**62, not its 19 digits."""
    if isinstance(x, int) and abs(x) == INT_LIMIT:
        return "-2**62" if x < 0 else "2**62"
    return none if x is None else str(x) if isinstance(x, int) else f"{x:g}"


def _range_error(v, field: Field) -> str | None:
    """Why the number v lies outside field's bounds (or the int64-safe range), or None."""
    lo, hi = field.lo, field.hi
    if isinstance(v, int) and not isinstance(v, bool):
        lo = -INT_LIMIT if lo is None else max(lo, -INT_LIMIT)
        hi = INT_LIMIT if hi is None else min(hi, INT_LIMIT)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or (lo is None and hi is None):
        return None
    below = lo is not None and (v <= lo if field.lo_open else v < lo)
    if below or (hi is not None and v > hi):
        left = "(" if field.lo_open else "["
        return f"must lie in {left}{_bound(lo, '-inf')}, {_bound(hi, 'inf')}]"
    return None


def _stricter(field: Field, value) -> str | None:
    """The refusal of `field`'s own check for a value outside its range, where the check says more (a size whose
    range starts at 0 but which must be >= 2 names the 2 and why); None where it does not refuse or cannot judge."""
    try:
        verdict = field.check(value)
    except Exception:  # noqa: BLE001 - a check written for values inside the range: the range's message stands
        return None
    return verdict if isinstance(verdict, str) else None


def _within_error(v, bounds) -> str | None:
    """Why the number v lies outside `Field.within`'s (lo, hi, where), or None (also where there are none)."""
    if bounds is None or not isinstance(v, (int, float)) or isinstance(v, bool) or bounds[0] <= v <= bounds[1]:
        return None
    return f"must lie in [{bounds[0]}, {bounds[1]}] {bounds[2]}"


def validate_field(where: str, value, field: Field, *, section: dict | None = None, name: str = ""):
    """Return the value checked and coerced for `field`; `where` is the 'FILE: [section].key' prefix; `section`:
    the section's keys validated before this one, for `Field.within`, and `name` its name (the keys a `within`
    refusal depends on are named as [name].KEY, so that the --set of one is cited: `registry.set_values_named`)."""
    try:
        value = _coerce(value, field.type)
    except _NotFinite as exc:
        raise ConfigError(f"{where} = {shown(value)} {exc}; give a finite value") from None
    except TypeError:
        if value == "none" and field.default is not None:  # the word that unsets an optional key: this one is not
            has = "is required" if field.required else f"defaults to {shown(field.default)}"
            raise ConfigError(f"{where} = 'none' cannot unset it: only optional keys unset, and this one {has}; "
                              f"give {_type_name(field.type)}") from None
        raise ConfigError(f"{where} = {shown(value)} must be {_type_name(field.type)}; fix its type") from None
    hint = f" ({field.help})" if field.help else ""
    if field.items is not None:
        if len(value) > field.max_len:
            raise ConfigError(f"{where} has {len(value)} elements, more than {field.max_len}; shorten the list")
        coerced = []
        for v in value:
            try:
                coerced.append(_coerce(v, field.items))
            except _NotFinite as exc:
                raise ConfigError(f"{where} = {shown(value)}: element {shown(v)} {exc}; give a finite value"
                                  ) from None
            except TypeError:
                raise ConfigError(f"{where} = {shown(value)} must be a list whose elements are each "
                                  f"{_type_name(field.items)}; fix its elements") from None
        value = coerced
    bounds = field.within(section) if field.within is not None and section is not None else None
    if bounds is not None and name:
        bounds = (*bounds[:2], named_keys(bounds[2], name, section))
    for v in value if isinstance(value, list) else [value]:
        reason = _within_error(v, bounds) or _range_error(v, field)
        stricter = reason and not isinstance(value, list) and field.check is not None and _stricter(field, value)
        if stricter:  # n_train = -5: "must be >= 2 (...)", as for 1, not "must lie in [0, ...]"
            raise ConfigError(f"{where} = {shown(value)} {stricter}{hint}; change it")
        if reason:
            what = f"element {shown(v)}" if isinstance(value, list) else ""
            raise ConfigError(f"{where} = {shown(value)}: {what + ' ' if what else ''}{reason}{hint}; change it")
    if field.choices is not None and value not in field.choices:
        opts = ", ".join(repr(c) for c in field.choices)
        raise ConfigError(f"{where} = {shown(value)} is not one of {opts}; use one of these")
    if field.check is not None:
        verdict = field.check(value)
        if verdict is False or isinstance(verdict, str):
            reason = verdict if isinstance(verdict, str) else "is not allowed"
            raise ConfigError(f"{where} = {shown(value)} {reason}{hint}; change it")
    return value


def _unsets(value, field: Field) -> bool:
    """An optional key (default None) given as the word "none" is unset, as if absent (so `--set
    clustering.method=none` switches clustering off); not where "none" is one of the key's own choices (there the
    kind's checks unset it where the key does not apply, e.g. `flow_job.check_kernel`'s [kernel].normalize)."""
    return value == "none" and field.default is None and "none" not in (field.choices or ())


def validate(data: dict, schema: dict, *, source: str = "job", also: tuple = ()) -> dict:
    """Validate a parsed job dict against `schema`; return {section: {key: value}} with defaults filled (an
    optional key given as "none" is unset). `also`: sections the job may carry that others validate ([tune]),
    named among the known ones of a refusal."""
    for section, table in data.items():
        if section not in schema:
            names = [*schema, *(s for s in also if s not in schema)]
            known = ", ".join(f"[{s}]" for s in names)
            close = difflib.get_close_matches(section, names, n=1)
            guess = f"did you mean [{close[0]}]? " if close else ""
            raise ConfigError(f"{source}: unknown section [{toml_key(section)}]; {guess}known sections are {known}")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table ([{section}] header with keys)")
        for key in table:
            if key not in schema[section]:
                known = ", ".join(schema[section]) or "none"
                close = difflib.get_close_matches(key, list(schema[section]), n=1)
                guess = f"did you mean {close[0]}? " if close else ""
                raise ConfigError(f"{source}: [{section}].{toml_key(key)} is an unknown key; {guess}known keys: "
                                  f"{known}")
    out: dict = {}
    for section, fields in schema.items():
        table = data.get(section, {})
        values = {}
        for key, field in fields.items():
            where = f"{source}: [{section}].{key}"
            if key in table and _unsets(table[key], field):
                values[key] = None
            elif key in table:
                values[key] = validate_field(where, table[key], field, section=values, name=section)
            elif field.required:
                raise ConfigError(f"{where} is required but missing; add it to the job file")
            else:
                values[key] = field.default
        out[section] = values
    return out


def read_toml(path) -> dict:
    """Parse a TOML job file; a missing or malformed file is a ConfigError naming it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory, not a job file; pass the path of a TOML job file{_toml_in(path)}")
    if not os.path.isfile(path):
        what = "is not a regular file" if os.path.exists(path) else "job file does not exist"
        raise ConfigError(f"{path}: {what}; pass the path of a TOML job file (see jobs/)")
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8-sig")  # (a leading byte-order mark, as some editors write, is no TOML)
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; pass a TOML job file") from None
    except ValueError:  # tomllib's int() of a number of more digits than Python reads
        raise ConfigError(f"{path}: {_long_integer(text)}, beyond any value of a job; fix it") from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested too deeply; fix the syntax") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the job file ({exc.strerror}); check its permissions") from None


def _long_integer(text: str) -> str:
    """Where TOML text `text` holds an integer of more digits than Python reads (sys.get_int_max_str_digits()), as
    'line N holds an integer of more than L digits' (without the line where none is found)."""
    limit = sys.get_int_max_str_digits()
    long = re.compile(f"(?:^|[=\\[,\\s])[+-]?(?:0[xob])?[0-9a-fA-F_]{{{limit + 1},}}")
    line = next((n for n, ln in enumerate(text.splitlines(), 1) if long.search(ln)), None)
    return f"{f'line {line} ' if line else ''}holds an integer of more than {limit} digits"


def _toml_in(directory: str) -> str:
    """' in it, e.g. DIR/NAME.toml' naming its first TOML file, or ' (see jobs/)' when it holds none."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".toml"))
    except OSError:
        names = []
    return f" in it, e.g. {os.path.join(directory, names[0])}" if names else " (see jobs/)"


#: the SECTION and KEY of a --set: one ASCII word, as a job file's keys are
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.+-]*")

#: what ends a line (str.splitlines'), which a --set VALUE must not hold, at its end either
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def _bare_word(raw: str) -> bool:
    """Whether a --set VALUE that is not TOML is one bare word, taken as a string: a letter (of any script) or _,
    then letters, digits, combining marks and _ . + - (reim_abs2, cosine, fërmat); none of them a character that shows
    as nothing (`arguments.invisible`: a variation selector, a Hangul filler), which would make a word that looks like
    another, or like no word at all (such a string is given quoted)."""
    def letter(c):
        return c == "_" or unicodedata.category(c).startswith("L")

    return bool(raw) and not any(map(invisible, raw)) and letter(raw[0]) and all(
        letter(c) or c in ".+-" or unicodedata.category(c) in ("Nd", "Mn", "Mc") for c in raw[1:])


def is_utf8(text: str) -> bool:
    """Whether `text` is valid Unicode, so encodes as UTF-8: no lone surrogate, as a command-line argument or file
    name with bytes that are not UTF-8 holds one per such byte (os.fsdecode's surrogateescape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_override(text: str) -> tuple[str, str, Any]:
    """`SECTION.KEY=VALUE` (a command-line --set) -> (section, key, value); VALUE is exactly one TOML value
    (3e-3, true, [64, 128], "x"); a bare word that is not TOML (reim_abs2) is a string. Anything else (a
    newline, a second key or table, trailing text) is refused, so an override can never add other keys."""
    name, sep, raw = text.partition("=")
    parts = name.strip(" \t").split(".")
    if not sep or len(parts) != 2 or not all(_BARE_WORD.fullmatch(p) for p in parts):
        raise ConfigError(f"--set {_short(text)}: expected SECTION.KEY=VALUE, e.g. --set training.lr=3e-3")
    if any(c in raw for c in _LINE_BREAKS + "\x00"):  # (a trailing one too, which strip() would drop)
        raise ConfigError(f"--set {_short(text)}: VALUE must be one line (one TOML value); remove the line break")
    raw = raw.strip(" \t")  # TOML's whitespace, as the key's: another space (U+00A0) is part of the value
    if not raw:
        raise ConfigError(f"--set {_short(text)}: the value is empty; give one, or unset an optional key with "
                          f"--set {parts[0]}.{parts[1]}=none")
    if not is_utf8(raw):  # (a job file must be UTF-8 too): job.toml, summary.json would not hold it as given
        raise ConfigError(f"--set {_short(text)}: VALUE holds bytes that are not UTF-8 (as a job file must be); "
                          "give it in UTF-8")
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except RecursionError:
        raise ConfigError(f"--set {_short(text)}: VALUE is nested too deeply; give one plain value") from None
    except tomllib.TOMLDecodeError:
        if _bare_word(raw):
            return parts[0], parts[1], raw
        number = _number_form(raw)
        if number is not None:  # .5, 5., 05: Python's numbers, not TOML's
            raise ConfigError(f"--set {_short(text)}: VALUE {_short(raw)} is not a TOML number; write it as "
                              f"{parts[0]}.{parts[1]}={number}") from None
        first = _leading_value(raw)
        if first is not None:  # 1e-3 2: a value, then more
            raise ConfigError(f"--set {_short(text)}: VALUE holds more than one value ({short_text(first)} and more); "
                              f"give one, e.g. {parts[0]}.{parts[1]}={short_text(first)}") from None
        raise ConfigError(f"--set {_short(text)}: VALUE is not one TOML value; quote a string as "
                          f"{parts[0]}.{parts[1]}='\"...\"'") from None
    except ValueError:  # tomllib's int() of a number of more digits than Python reads
        raise ConfigError(f"--set {_short(text)}: VALUE is an integer of more than {sys.get_int_max_str_digits()} "
                          "digits, beyond any value of a job; give one within the key's bounds") from None
    if set(parsed) != {"v"}:
        raise ConfigError(f"--set {_short(text)}: VALUE must be one TOML value, not more keys; "
                          "set each with its own --set")
    return parts[0], parts[1], parsed["v"]


def _leading_value(raw: str) -> str | None:
    """The first whitespace-separated word of `raw` when it is a TOML value other than a bare word and more text
    follows (`1e-3 2`, `true false`), else None: such a VALUE is two values, not a string to quote."""
    words = raw.split(maxsplit=1)
    if len(words) < 2:
        return None
    head = words[0]
    try:
        tomllib.loads(f"v = {head}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return None
    return head


def _number_form(raw: str) -> str | None:
    """TOML's spelling of a number written as Python reads it but TOML does not (.5 -> 0.5, 5. -> 5.0, 05 -> 5), or
    None when `raw` is no such number."""
    if not re.fullmatch(r"[+-]?[0-9._]*[0-9][0-9._]*(?:[eE][+-]?[0-9]+)?", raw) or len(raw) > 100:
        return None
    try:
        return str(int(raw))
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return None
    return repr(value) if math.isfinite(value) else None


def apply_overrides(data: dict, overrides, *, source: str = "job") -> dict:
    """A copy of the parsed job dict with each `SECTION.KEY=VALUE` override set (validated later, as usual)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides or ():
        section, key, value = parse_override(text)
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] is not a table, so --set {text!r} cannot apply; fix the job file")
        table[key] = value
    return out


def load_job(path, schema: dict) -> dict:
    """Read and validate the TOML job file at `path` against `schema` (defaults filled in)."""
    return validate(read_toml(path), schema, source=os.fspath(path))


def with_defaults(saved: dict, schema: dict, legacy: dict | None = None) -> dict:
    """A saved (checkpoint) job configuration with keys added to `schema` since it was written set to their
    defaults, or to legacy[(section, key)] where older code behaved otherwise (so a resume compares like with
    like; a key that existed must still match)."""
    legacy = legacy or {}
    out = {sec: dict(vals) if isinstance(vals, dict) else vals for sec, vals in saved.items()}
    for section, fields in schema.items():
        table = out.setdefault(section, {})
        if isinstance(table, dict):
            for key, field in fields.items():
                if key not in table and not field.required:
                    table[key] = legacy.get((section, key), field.default)
    return out


def without(cfg: dict, keys) -> dict:
    """Job configuration `cfg` without `keys`, (section, key) pairs, key None for the whole section (e.g. the keys a
    --resume may change: `hpcflow.checkpoint.RESUMABLE_CHANGES`, `hpcflow.nn.job.RESUMABLE_CHANGES`); its tables are
    copied, `cfg` is left as it is."""
    out = {sec: dict(vals) if isinstance(vals, dict) else vals for sec, vals in cfg.items()}
    for section, key in keys:
        if key is None:
            out.pop(section, None)
        elif isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


#: the `[job]` section common to every job file (job modules put it into their SCHEMA)
JOB_SECTION = {
    "kind": Field(str, help="job kind, e.g. 'flow' (see hpcflow.jobs.registry)"),
    "description": Field(str, "", help="free text, copied into the outputs"),
}


# ---- small reusable checks -----------------------------------------------------------------------------
def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def at_least(lo, why: str = ""):
    """Check v >= lo; `why` (e.g. "sigma needs two points") is said in the message."""
    reason = f" ({why})" if why else ""
    return lambda v: None if v >= lo else f"must be >= {lo}{reason}"


def zero_or_at_least(lo, zero: str, why: str):
    """Check of a size where 0 means `zero` (e.g. "every point") and any other value must be >= lo (`why`)."""
    return lambda v: None if v == 0 or v >= lo else f"must be 0 ({zero}) or >= {lo} ({why})"


def in_range(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must lie in [{lo}, {hi}]"


def projective_coordinates(section: dict) -> tuple:
    """`Field.within` of a chart [I, J] in a section of MANIFOLD_FIELDS: the homogeneous coordinates 0..n of its
    P^n, n = dim + 1."""
    n = section["dim"] + 1
    return 0, n, f"on the P^{n} of dim = {section['dim']}"


def chart_pair(v):
    """Check of a chart [I, J]: two distinct non-negative indices (bounds on P^n are checked per job)."""
    return None if len(v) == 2 and v[0] != v[1] and min(v) >= 0 else "must be [I, J] with I != J, both >= 0"


#: the largest complex dimension, MAX_DIM, is hpcflow.arguments'. |psi| is bounded only to keep the field finite,
#: far above what float64 roots can place on X in any dimension: the sampler's accuracy check
#: (`hpcflow.geometry.sampling`) refuses a larger |psi| after its first batches (above ~5e4 at dim 3, below 1e7 at
#: dim 1), with the |psi| it would take, as the API's `sample` refuses it; a job's psi meets the same check before any
#: work (`check_manifold`)
MAX_PSI = 1e9
#: the manifold keys every job's point section shares (family, complex dimension, Dwork psi)
MANIFOLD_FIELDS = {
    "manifold": Field(str, "fermat", choices=("fermat", "dwork"), help="Fermat or Dwork family"),
    "dim": Field(int, 3, lo=1, hi=MAX_DIM, help="complex dimension; 3 = the quintic in P^4"),
    "psi": Field(float, 0.0, lo=-MAX_PSI, hi=MAX_PSI,
                 help="Dwork parameter psi (real), dwork only; a |psi| whose roots float64 cannot place on X, "
                 "~5e4 at dim 3, is refused before any work, as the sampler refuses it"),
}

#: the sampling key beside a point section's chart: the most batches of lines its sampling draws (the sampler's
#: max_batches, `hpcflow sample --max-batches`); a chart whose rate is too low for them to give the points asked for is
#: refused, naming this key ([SECTION].max_batches: `batches_said`). It caps the work only: a sampling that ends gives
#: the same points whatever its value, so a --resume may change it
MAX_BATCHES_FIELD = Field(int, MAX_BATCHES, lo=1, help="the most batches of 2048 sampling lines drawn; raise it for "
                          "a chart too rare for the points asked for within the default")


def batches_said(section: str) -> str:
    """How the sampler's refusals past max_batches name the key of a job's point section `section`."""
    return f"[{section}].max_batches"


def refuse_inapplicable(cfg: dict, section: str, fields: dict, keys, setting: str, fix: str, source: str) -> None:
    """Refuse each of `keys` of cfg[section] whose value is not its default (`fields`: the section's schema): it has
    no effect under `setting` (e.g. "method = 'brute'", a key of the same section, named as [SECTION].KEY: the --set
    of either key is cited, `registry.set_values_named`), so a value given for it is surely a mistake; `fix` says
    what would make it apply. A key at its default is accepted: it changes nothing, and DIR/job.toml writes every
    key."""
    for key in keys:
        value = cfg[section][key]
        if value is not None and value != fields[key].default:
            d = fields[key].default
            undo = (f"remove it (--set {section}.{key}=none)" if d is None
                    else f"remove it or give its default {shown(d)} (--set {section}.{key}={shown(d)})")
            said = f"[{section}].{setting}" if setting.split(" ", 1)[0] in fields else setting
            raise ConfigError(f"{source}: [{section}].{key} = {shown(value)} does not apply to {said}; {undo}"
                              f"{', or ' + fix if fix else ''}")


def named_keys(text: str, section: str, keys) -> str:
    """`text` (a phrase naming keys bare, as an API's message does: "n_clusters = 5 ...; lower n_clusters") with each
    of `keys` of `section` that it names bare named in full as [SECTION].KEY, as a job file's refusals name keys (and
    `hpcflow.jobs.registry.set_values_named` finds the --set of one there); a name already in full is left, and so
    are one after a number, a unit there ("5.0 epochs"), and one before "(", a function ("lr(width=16)")."""
    names = sorted(keys, key=len, reverse=True)
    if not names:
        return text
    bare = re.compile(r"(?<![\w.\[\]])(?<!\d )(" + "|".join(map(re.escape, names)) + r")(?![\w\](])")
    return bare.sub(lambda m: f"[{section}].{m.group(1)}", text)


def check_manifold(cfg: dict, source: str) -> None:
    """A nonzero psi in a section of MANIFOLD_FIELDS with manifold = "fermat" is refused: psi belongs to the
    Dwork family (whose psi = 0 member is the Fermat quintic), and a job that names it surely meant that family.
    A Dwork psi whose roots float64 cannot place on X is refused as the sampler's first batches would refuse it, with
    its message and the |psi| it takes (`placeable`), so that --check, submit and tune's space checks refuse it too."""
    for section, table in cfg.items():
        if isinstance(table, dict) and table.get("manifold") == "fermat" and table.get("psi"):
            raise ConfigError(f"{source}: [{section}].psi = {table['psi']:g} applies to manifold = 'dwork' only; "
                              f"set [{section}].manifold = \"dwork\" or remove psi")
        if isinstance(table, dict) and table.get("manifold") == "dwork" and table.get("psi"):
            try:
                placeable(table["dim"], table["psi"])
            except ConfigError as exc:
                raise ConfigError(f"{source}: [{section}].psi = {table['psi']:g} is refused by the sampler: {exc}; "
                                  f"set [{section}].psi inside that bound") from None


@functools.lru_cache(maxsize=256)
def placeable(dim: int, psi: complex) -> None:
    """`hpcflow.geometry.sampling.check_placeable` of Dwork(dim, psi), once per (dim, psi): the sampler's accuracy
    check (roots float64 cannot place on X, ~|psi| > 5e4 at dim 3) before any work, as a job's run would meet it."""
    from hpcflow.geometry import Hypersurface
    from hpcflow.geometry.sampling import check_placeable

    check_placeable(Hypersurface.dwork(dim, psi))
