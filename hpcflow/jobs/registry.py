"""Job kinds: `[job] kind` → the module that defines its `SCHEMA` and `run(cfg, outdir) -> dict`.

A job module may also define `check(cfg, source)` for cross-field checks (raise ConfigError); `load` calls
it after the schema validation, so every job-file error still comes before any work; a kind with checkpoints
defines `run(..., resume=)`, `resume_state(cfg, outdir, comm=)` (the checkpoint checked, for --check too) and
`resume_done(state, cfg)` (a run ended by its own rule, which --resume has nothing to add to). Optional sections that
only some commands use (`[tune]`) are validated by their own module (`EXTRA_SECTIONS`) and left out of cfg.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re

from hpcflow.arguments import escaped
from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import apply_overrides, check_manifold, read_toml, shown, validate
from hpcflow.jobs.toml_out import key as toml_key
from hpcflow.nn.files import CHECKPOINT as NN_CHECKPOINT

#: one line per job kind (a job module defines SCHEMA and run(cfg, outdir) -> summary dict)
KINDS = {
    "flow": "hpcflow.experiments.flow_job",
    "noise_scan": "hpcflow.experiments.noise_scan",
    "distance_scaling": "hpcflow.experiments.distance_scaling",
    "local_limit": "hpcflow.experiments.local_limit",
    "clustering": "hpcflow.experiments.clustering_quality",
    "nn": "hpcflow.nn.job",
}

#: files each kind writes into its output directory besides summary.json and job.toml (checked before work)
OUTPUTS = {
    "flow": ("checkpoint.h5",),
    "noise_scan": ("noise_scan.h5",),
    "distance_scaling": ("distances.h5",),
    "local_limit": ("local_limit.h5",),
    "clustering": ("fig2_distances.h5",),
    "nn": ("nn.h5", "model.pt", "model.pt.json", NN_CHECKPOINT),
}

#: optional sections validated by their own module: section -> (module with validate_section(table, schema,
#: source=, kind=), job kinds that may carry it). `load` validates and drops them; `load_with_extras` returns them.
EXTRA_SECTIONS = {
    "tune": ("hpcflow.tune.space", ("flow", "nn")),
}


def job_module(kind: str, *, source: str = "job"):
    """The module implementing job kind `kind` (ConfigError naming the known kinds otherwise)."""
    if kind not in KINDS:
        known = ", ".join(repr(k) for k in KINDS)
        raise ConfigError(f"{source}: [job].kind = {kind!r} is not a known job kind; use one of {known}")
    return importlib.import_module(KINDS[kind])


def checkpointed(kind: str) -> bool:
    """Whether job kind `kind` writes checkpoints that --resume continues from: its module's `run` takes `resume`;
    ConfigError for an unknown kind."""
    return "resume" in inspect.signature(job_module(kind).run).parameters


def job_kind(data: dict, *, source: str = "job", example: str = "flow") -> str:
    """The `[job] kind` of a parsed job file; ConfigError where [job] is not a table or its kind is missing or not a
    string, its fix giving kind = "EXAMPLE" (a command that runs one kind names it: "nn" for `hpcflow nn`)."""
    job = data.get("job")
    if job is not None and not isinstance(job, dict):
        raise ConfigError(f"{source}: [job] must be a table ([job] header with keys), not job = {shown(job)}; "
                          f"write [job] with kind = \"{example}\" or similar")
    if job is None or "kind" not in job:
        raise ConfigError(f"{source}: [job].kind is required but missing; "
                          f"add [job] with kind = \"{example}\" or similar")
    if not isinstance(job["kind"], str):
        raise ConfigError(f"{source}: [job].kind = {shown(job['kind'])} must be a string; e.g. kind = \"{example}\"")
    return job["kind"]


def load(path, overrides=(), *, ranks: int = 1, memory_check: bool = True):
    """Read and validate a job file (with `SECTION.KEY=VALUE` overrides applied): (module, cfg) with defaults
    filled, or a ConfigError before any work. The HPCFLOW_* environment, the GPU the job asks for (not within
    `hpcflow.backend.gpu_checked_elsewhere`) and the estimated peak memory per rank
    (`hpcflow.resources.check_resources`; skipped with memory_check=False) are checked too."""
    module, cfg, _ = load_with_extras(path, overrides, ranks=ranks, memory_check=memory_check)
    return module, cfg


def load_with_extras(path, overrides=(), *, ranks: int = 1, memory_check: bool = True):
    """As `load`, and the validated optional sections (`EXTRA_SECTIONS`) present in the file: (module, cfg, extras).

    An error about a key that an override set names that `--set` too (the file itself may be fine;
    `set_values_named`)."""
    with set_values_named(overrides):
        return _load_with_extras(path, overrides, ranks=ranks, memory_check=memory_check)


@contextlib.contextmanager
def set_values_named(overrides):
    """Context: a ConfigError whose message names a key that one of the `overrides` (SECTION.KEY=VALUE) set (as
    [SECTION].KEY, or as KEY=... in a refusal of the section "[SECTION]: ...", as the kernels word theirs) or a
    section it made (unknown section [SECTION]) is raised again, itself (its class and marks kept), its message
    ending "(from --set SECTION.KEY=VALUE)" (a character that shows as nothing as its escape: `arguments.escaped`),
    the last --set of the key (the one in force), once for each key it names
    that a --set gave, in the order given ("... (from --set model.width=4096) (from --set model.depth=3)": a memory
    estimate of both; each its own, so a caller that drops the credit of values no --set gave, as `hpcflow tune` does
    of a trial's, drops each alone); other errors pass unchanged (`set_named`). Around the job file's checks
    (`load_with_extras`) and around a job's run, whose refusals after work has begun (a Birch threshold that leaves one
    cluster) name their --set alike."""
    try:
        yield
    except ConfigError as exc:
        texts = set_named(str(exc), overrides)
        if texts:  # the same error, its class and marks kept (`collective`: every rank refuses, one line)
            exc.args = (str(exc) + "".join(f" (from --set {escaped(t)})" for t in texts), *exc.args[1:])
        raise


def set_named(message: str, overrides) -> list:
    """The `overrides` (SECTION.KEY=VALUE) whose key or section `message` names (`set_values_named`), the last of each
    key (or of each section a message says is unknown), in the order given; [] too where the message already names a
    --set."""
    if "(from --set " in message:
        return []
    found = {}
    for i, text in reversed(list(enumerate(overrides or ()))):  # the last --set of a key is the one in force
        section, _, key = text.split("=", 1)[0].strip().partition(".")
        if not key:
            continue
        names = {(section, key), (toml_key(section), toml_key(key))}  # (a key a message quotes: "n+x")
        named = any(re.search(re.escape(f"[{s}].{k}") + r"(?![\w-])", message) for s, k in names)  # a whole key name
        said = f"[{section}]:" in message and re.search(rf"(?<![\w.\]-]){re.escape(key)} ?=", message)
        if named or said:
            found.setdefault((section, key), (i, text))
        elif f"unknown section [{toml_key(section)}];" in message:
            found.setdefault((section,), (i, text))
    return [text for _, text in sorted(found.values())]


def _load_with_extras(path, overrides, *, ranks: int, memory_check: bool):
    from hpcflow.backend import refuse_unusable
    from hpcflow.resources import check_environment

    check_environment()
    refuse_unusable()  # HPCFLOW_BACKEND=cupy without a usable GPU, before any work (not under --check)
    source = str(path)
    written = read_toml(path)
    data = apply_overrides(written, overrides, source=source)
    kind = job_kind(data, source=source)
    module = job_module(kind, source=source)
    extras = {}
    for section, (modname, kinds) in EXTRA_SECTIONS.items():
        if section in data:
            if kind not in kinds:
                raise ConfigError(f"{source}: [{section}] applies only to job kinds {', '.join(kinds)}; "
                                  f"{_drop_section(section, written, overrides)}")
            extras[section] = importlib.import_module(modname).validate_section(
                data.pop(section), module.SCHEMA, source=source, kind=kind)
    try:
        cfg = validate(data, module.SCHEMA, source=source,
                       also=tuple(s for s, (_, kinds) in EXTRA_SECTIONS.items() if kind in kinds))
    except ConfigError as exc:
        raise ConfigError(f"{exc}{_other_kind(written, kind)}") from None
    check_manifold(cfg, source)
    check = getattr(module, "check", None)  # optional cross-field checks, still before any work
    if check is not None:
        check(cfg, source)
    validate_job(cfg, source=source, ranks=ranks, memory_check=memory_check)
    return module, cfg, extras


def _drop_section(section: str, written: dict, overrides) -> str:
    """How to drop `section` from a job that may not carry it: "remove it" from the file, or, where only --set values
    made it, drop the last of them, named ("(from --set ...)", which `set_values_named` then adds no second time)."""
    if section in written:
        return "remove it"
    made = [t for t in overrides or () if t.split("=", 1)[0].strip().partition(".")[0] == section]
    return f"drop the --set of [{section}] (from --set {made[-1]})" if made else "remove it"


def _other_kind(written: dict, kind: str) -> str:
    """Where --set job.kind gave the job another kind than its file's: what a refusal of its sections then means
    (the file's keys are its own kind's), else ""."""
    table = written.get("job")
    own = table.get("kind") if isinstance(table, dict) else None
    if not isinstance(own, str) or own == kind:
        return ""
    return (f"; the file is a {own!r} job and [job].kind = {kind!r} takes other sections and keys: start from a job "
            f"file of kind {kind!r} (see jobs/), or drop that change")


def validate_job(cfg: dict, *, source: str = "job", ranks: int = 1, memory_check: bool = True):
    """The checks after the schema: the job's peak memory per rank against the limit (unless memory_check is
    False or HPCFLOW_IGNORE_MEMORY_CHECK=1). Returns the hpcflow.resources.Estimate."""
    from hpcflow.resources import check_resources

    return check_resources(cfg, cfg["job"]["kind"], ranks=ranks, force=not memory_check, source=source)
