"""Every entry of a network checkpoint.pt (saved again with torch.save, so that its CRC-32s hold), replaced by a value
of the wrong type or shape (a string, a tensor of another shape, a complex number or tensor where the training writes
a real one): `hpcflow nn --resume` refuses it in one line that names that entry (exit 2, the files left as they
were). The entries are those of a real checkpoint, so an entry added to the writer is covered here too."""

import shutil

import pytest
import torch

from test_nn_legs import JOB

#: the legs job's network and training alone (2 epochs, a checkpoint each), resumed to 3 epochs
NN_JOB = JOB.split("[width_sweep]")[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from hpcflow.cli import main

    base = tmp_path_factory.mktemp("nn")
    job, out = base / "job.toml", base / "out"
    job.write_text(NN_JOB)
    assert main(["nn", str(job), "--out", str(out), "--quiet"]) == 0
    return job, out


def _leaves(tree, prefix=""):
    """(dotted name, value) of every entry of `tree` that is not a dict (a list, such as legs, is one entry)."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, name + ".")
        else:
            yield name, value


def _wrong(value):
    """{how: a value of the wrong type or shape in place of `value`}."""
    if torch.is_tensor(value):
        shape = torch.stack([value, value], -1) if value.dim() else torch.zeros(2, 3, dtype=value.dtype)
        cplx = value.to(torch.complex128) + 0.5j if value.is_floating_point() else \
            torch.zeros(2, dtype=torch.complex128)
    else:
        shape, cplx = torch.zeros(2, 3), complex(1, 1)
    return {"string": "abc", "shape": shape, "complex": cplx}


def _set(state, name, value):
    """state's entry at dotted `name` (`_leaves`; the model's own keys hold dots) set to `value`."""
    node, rest = state, name
    while rest not in node:
        key = next(k for k in node if isinstance(node[k], dict) and rest.startswith(f"{k}."))
        node, rest = node[key], rest[len(str(key)) + 1:]
    node[rest] = value


def test_every_entry_of_the_wrong_type_or_shape_is_refused_by_name(finished, tmp_path, capsys):
    """A partial epoch's loss_sum of 'abc' was refused as "entry could not convert string to float: 'abc' is missing
    or malformed", a version tensor and a history of two columns stopped the resume with a traceback."""
    from hpcflow.cli import main

    job, run = finished
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    names = [name for name, _ in _leaves(state)]
    assert {"train.partial.loss_sum", "train.history.sigma_train", "version", "train.optimizer.param_groups"} <= \
        set(names)
    faults = []
    for name, value in _leaves(state):
        for how, new in _wrong(value).items():
            if name == "format" and how == "string":
                continue  # (another format: a foreign file, said so)
            out = tmp_path / f"{name}-{how}"
            shutil.copytree(run, out)
            bad = torch.load(out / "checkpoint.pt", weights_only=True)
            _set(bad, name, new)
            torch.save(bad, out / "checkpoint.pt")
            before = {p.name: p.read_bytes() for p in out.iterdir()}
            capsys.readouterr()
            try:
                code = main(["nn", str(job), "--out", str(out), "--resume", "--set", "training.epochs=3", "--quiet"])
            except Exception as exc:  # noqa: BLE001 - a traceback is a fault to report with the rest
                code = f"{type(exc).__name__}: {exc}"
            err = capsys.readouterr().err.strip()
            fix = "run without --resume" if name == "format" else "--force"  # (another format: not a checkpoint)
            if code != 2 or len(err.splitlines()) != 1 or name not in err or str(out) not in err or fix not in err \
                    or before != {p.name: p.read_bytes() for p in out.iterdir()}:
                faults.append(f"{name} {how}: {code} {err[:300]}")
            shutil.rmtree(out)
    assert not faults, "\n".join(faults)


@pytest.mark.parametrize("key", ["from_step", "to_step", "ranks", "wall_seconds", "threads"])
@pytest.mark.parametrize("value", ["abc", complex(1, 1), [1.0, 2.0]], ids=["string", "complex", "list"])
def test_a_leg_value_of_the_wrong_type_is_refused_by_name(finished, tmp_path, capsys, key, value):
    from hpcflow.cli import main

    job, run = finished
    out = tmp_path / "out"
    shutil.copytree(run, out)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["legs"][0][key] = value
    torch.save(state, out / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--resume", "--set", "training.epochs=3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"legs[0].{key}" in err and "--force" in err, err
    assert before == {p.name: p.read_bytes() for p in out.iterdir()}
