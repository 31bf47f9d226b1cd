"""Whether a Slurm job's request can ever start in its partition, from what `sinfo` says the partition's nodes offer.

sbatch accepts a request no node of the partition can hold (more CPUs or GPUs per node than its largest node has,
more nodes than it has or allows, a time limit above its MaxTime) where EnforcePartLimits=NO, Slurm's default: the
job then stays pending for ever (reason PartitionConfig, PartitionNodeLimit or PartitionTimeLimit). `misfit` names
the option and the limit before anything is queued. Every configured node counts, whatever its state (a drained
node comes back); a value sinfo does not give exactly (a range "4+", "n/a") limits nothing, so that nothing that
could run is refused. The partition is the one the job goes to: --partition (each of a list "a,b": the job is
refused when it fits none), else Slurm's default (marked "*" by sinfo).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, replace

#: one line per partition and kind of node in it: name, CPUs, node count, gres, MaxTime, job size in nodes
#: (MinNodes-MaxNodes), MaxCPUsPerNode, memory per node (MiB, RealMemory). --noconvert: 1024 CPUs are "1024", not "1K"
SINFO = ["sinfo", "--noconvert", "-h", "-a", "-o", "%P|%c|%D|%G|%l|%s|%B|%m"]


@dataclass(frozen=True)
class Nodes:
    """`count` nodes of a partition alike (None: not given exactly by sinfo; no limit)."""

    count: int
    cpus: int | None
    gpus: int | None
    memory_mib: int | None = None  # RealMemory; None: not given (sinfo's 0 or "n/a": memory is not tracked)


@dataclass
class Partition:
    name: str
    default: bool
    nodes: list
    max_time: str  # as sinfo gives it ("infinite", "1-00:00:00")
    max_time_min: float | None  # None: unlimited
    min_nodes: int | None
    max_nodes: int | None
    max_cpus_per_node: int | None


def _number(text: str) -> int | None:
    """sinfo's count: "4" -> 4, "2-8" (a range) -> 8; "4+" (at least 4), "infinite", "n/a" -> None."""
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text.strip())
    return None if m is None else int(m.group(2) or m.group(1))


def _job_size(text: str) -> tuple[int | None, int | None]:
    """sinfo's %s, MinNodes-MaxNodes: "1-infinite" -> (1, None), "2-4" -> (2, 4), "3" -> (3, 3)."""
    m = re.fullmatch(r"(\d+)(?:-(\d+|infinite))?", text.strip())
    if m is None:
        return None, None
    low = int(m.group(1))
    high = m.group(2)
    return low, (low if high is None else None if high == "infinite" else int(high))


def minutes(text: str) -> float | None:
    """A Slurm time in minutes, in any of sbatch --time's forms (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S); None for
    "infinite"/"UNLIMITED" and for what is not a time (no limit known)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if m is None:
        return None
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # D-H[:M[:S]]
        h, mins, s = a, b or 0, c or 0
    elif c is not None:  # H:M:S
        h, mins, s = a, b, c
    else:  # M[:S]
        h, mins, s = 0, a, b or 0
    return (days or 0) * 1440 + h * 60 + mins + s / 60


def gpus(gres: str) -> int:
    """GPUs in a node's gres: "gpu:4", "gpu:a100:4(S:0-1)", "gpu:a:2,gpu:b:2,mps:200" -> 4; "(null)" -> 0."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = item.strip().split(":")
        if fields[0] == "gpu":
            total += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return total


def read_sinfo(text: str) -> dict:
    """{name: Partition} from the lines of SINFO (several lines of a partition: its kinds of node)."""
    parts: dict = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) not in (7, 8):  # (7: without the memory, which then limits nothing)
            continue
        name, cpus, count, gres, max_time, size, max_cpus, memory = (f.strip() for f in [*fields, ""][:8])
        default = name.endswith("*")
        name = name.rstrip("*")
        if name not in parts:
            low, high = _job_size(size)
            parts[name] = Partition(name, default, [], max_time, minutes(max_time), low, high, _number(max_cpus))
        parts[name].nodes.append(Nodes(_number(count) or 0, _number(cpus), gpus(gres), _number(memory) or None))
    return parts


#: seconds sinfo may take (it retries a controller that does not answer for about Slurm's MessageTimeout, 10 s)
TIMEOUT_S = 20


def ask(timeout: float | None = None) -> tuple[dict | None, str]:
    """(the partitions sinfo lists, ""), or (None, why in one phrase) where sinfo does not answer: not on PATH, not
    in `timeout` seconds (TIMEOUT_S), an error (its controller down), or no partition in what it printed."""
    timeout = TIMEOUT_S if timeout is None else timeout
    try:
        r = subprocess.run(SINFO, capture_output=True, text=True, errors="replace", timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return None, "not on PATH"
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    except subprocess.TimeoutExpired:
        return None, f"no answer in {timeout:g} s"
    said = next((line.strip() for line in (r.stderr + "\n" + r.stdout).splitlines() if line.strip()), "")[:200]
    if r.returncode != 0:
        return None, said or f"exit status {r.returncode}"
    parts = read_sinfo(r.stdout)
    return (parts, "") if parts else (None, "no partition listed" + (f": {said}" if said else ""))


def query(timeout: float | None = None) -> dict | None:
    """The partitions sinfo lists; None where sinfo does not answer (`ask` says why)."""
    return ask(timeout)[0]


def misfit(res, parts: dict) -> str | None:
    """Why `res` (executor.Resources) can never start in its partition(s) of `parts` (one line); None if it can."""
    if res.partition:
        names = [n for n in res.partition.split(",") if n]
    else:
        names = [p.name for p in parts.values() if p.default][:1]
        if not names:
            return (f"no --partition given and this Slurm has no default partition: pass --partition (one of "
                    f"{', '.join(parts)})")
    unknown = [n for n in names if n not in parts]
    if unknown or not names:
        what = f"this Slurm has no partition {unknown[0]}" if unknown else "names no partition"
        return f"--partition {res.partition}: {what}; pick one of {', '.join(parts)}"
    reasons = [_misfit(res, parts[n]) for n in names]
    return reasons[0] if all(reasons) else None


def _misfit(res, p: Partition) -> str | None:
    other = "pick another --partition"
    if p.max_time_min is not None and res.time > p.max_time_min:
        return (f"--time {res.time} (minutes) exceeds partition {p.name}'s time limit {p.max_time} (MaxTime): "
                f"lower --time or {other}")
    if p.max_nodes is not None and res.nodes > p.max_nodes:
        return (f"--nodes {res.nodes} exceeds partition {p.name}'s {p.max_nodes} node(s) per job (MaxNodes): "
                f"lower --nodes or {other}")
    if p.min_nodes is not None and res.nodes < p.min_nodes:
        return (f"--nodes {res.nodes} is below partition {p.name}'s {p.min_nodes} nodes per job (MinNodes): "
                f"raise --nodes or {other}")
    cpus = res.ntasks_per_node * res.cpus_per_task
    need = (f"--ntasks-per-node {res.ntasks_per_node} x --cpus-per-task {res.cpus_per_task} needs "
            f"{_count(cpus, 'CPU')} per node")
    lower = "lower --ntasks-per-node" + (" or --cpus-per-task" if res.cpus_per_task > 1 else "")
    if p.max_cpus_per_node is not None and cpus > p.max_cpus_per_node:
        return (f"{need}; partition {p.name} gives a job {p.max_cpus_per_node} per node (MaxCPUsPerNode): {lower} "
                f"or {other}")
    largest = _largest(p, "cpus")
    if largest is not None and cpus > largest:
        return f"{need}; {_nodes_have(p, 'cpus')} {largest}: {lower} or {other}"
    gpus_needed = res.gpus_per_node
    largest = _largest(p, "gpus")
    if gpus_needed and largest is not None and gpus_needed > largest:
        return (f"--gpus-per-node {gpus_needed} needs {_count(gpus_needed, 'GPU')} per node; {_nodes_have(p, 'gpus')} "
                f"{largest or 'none'}: lower --gpus-per-node or {other}")
    fit = sum(n.count for n in p.nodes if _holds(n, cpus, gpus_needed))
    if fit < res.nodes:
        total = sum(n.count for n in p.nodes)
        if fit == total:
            return (f"--nodes {res.nodes} needs {res.nodes} node(s); partition {p.name} has {total}: lower --nodes "
                    f"or {other}")
        each = _count(cpus, "CPU") + (f" and {_count(gpus_needed, 'GPU')}" if gpus_needed else "")
        return (f"--nodes {res.nodes} needs {res.nodes} node(s) of {each} each; partition {p.name} has {fit} such "
                f"node(s) (of {total}): lower --nodes, --ntasks-per-node or --gpus-per-node, or {other}")
    return None


def _count(n: int, thing: str) -> str:
    """`n` things: "1 GPU", "2 GPUs"."""
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _largest(p: Partition, field: str) -> int | None:
    """The largest node's value of `field`; None when a kind of node has it unknown (no limit then)."""
    values = [getattr(n, field) for n in p.nodes if n.count]
    return None if not values or None in values else max(values)


def _nodes_have(p: Partition, field: str) -> str:
    alike = len({getattr(n, field) for n in p.nodes if n.count}) == 1
    return f"partition {p.name}'s nodes have" if alike else f"partition {p.name}'s largest node has"


def _holds(n: Nodes, cpus: int, gpus_needed: int) -> bool:
    return (n.cpus is None or n.cpus >= cpus) and (not gpus_needed or n.gpus is None or n.gpus >= gpus_needed)


def node_memory(res, parts: dict) -> tuple[int | None, str]:
    """(MiB of memory of the largest node of the partition `res` goes to, the partition's name), or (None, name)
    where a kind of node there has no memory given (not tracked: no limit known). Of a list of partitions, the largest
    of their nodes (the job goes to one of them)."""
    names = [n for n in (res.partition or "").split(",") if n in parts] or \
        [p.name for p in parts.values() if p.default][:1]
    nodes = [n for name in names for n in parts[name].nodes if n.count]
    if not nodes or any(n.memory_mib is None for n in nodes):
        return None, ",".join(names)
    return max(n.memory_mib for n in nodes), ",".join(names)


def most_cpus_per_task(res, parts: dict, at_most: int) -> int:
    """The largest --cpus-per-task, up to `at_most`, with which `res` (executor.Resources) can start in its
    partition(s) of `parts` (`misfit` None); 0 where not even 1 can. More CPUs per task never fit where fewer do not:
    found by bisection."""
    return _most(res, parts, "cpus_per_task", at_most)


def most_tasks_per_node(res, parts: dict, at_most: int) -> int:
    """The largest --ntasks-per-node, up to `at_most`, with which `res` (executor.Resources, its --cpus-per-task and
    --gpus-per-node) can start in its partition(s) of `parts` (`misfit` None); 0 where not even 1 can. More tasks
    per node never fit where fewer do not: found by bisection."""
    return _most(res, parts, "ntasks_per_node", at_most)


def _most(res, parts: dict, field: str, at_most: int) -> int:
    """The largest value up to `at_most` of `res`'s `field` that fits (`misfit` None), 0 where 1 does not; by
    bisection, a larger value never fitting where a smaller does not."""
    low, high = 0, at_most
    while low < high:
        mid = (low + high + 1) // 2
        if misfit(replace(res, **{field: mid}), parts) is None:
            low = mid
        else:
            high = mid - 1
    return low


def cpus_said(res, parts: dict) -> str:
    """The CPUs of the nodes of the partition(s) `res` goes to, as a phrase: "partition debug, whose nodes have 2
    CPUs" ("whose largest node has 8 CPUs" where they differ); the partition's name alone where sinfo gives no exact
    count, or for a list of partitions."""
    names = [n for n in (res.partition or "").split(",") if n in parts] or \
        [p.name for p in parts.values() if p.default][:1]
    if len(names) != 1:
        return f"partitions {','.join(names)}" if names else "its partition"
    p = parts[names[0]]
    largest = _largest(p, "cpus")
    if largest is not None and p.max_cpus_per_node is not None and p.max_cpus_per_node < largest:
        return f"partition {p.name}, which gives a job {_count(p.max_cpus_per_node, 'CPU')} per node (MaxCPUsPerNode)"
    if largest is None:
        return f"partition {p.name}"
    has = _nodes_have(p, "cpus").replace(f"partition {p.name}'s", "whose")
    return f"partition {p.name}, {has} {_count(largest, 'CPU')}"
