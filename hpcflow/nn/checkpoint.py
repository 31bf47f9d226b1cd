"""Model checkpoints: `torch.save` of the state dict only (+ a JSON file with the architecture).

Loading uses `torch.load(..., weights_only=True)`, which refuses arbitrary pickled objects, so a checkpoint
file can only carry tensors. The architecture (MetricMLP.config) lives in `<path>.json` next to it.
"""

from __future__ import annotations

import json
import os

from hpcflow.errors import InputFileError, OutputPathError
from hpcflow.nn._torch import require_torch
from hpcflow.nn.model import MetricMLP

torch = require_torch()


def _config_path(path: str) -> str:
    return path + ".json"


def save_model(path, model, *, force: bool = False) -> None:
    """Write model.state_dict() to `path` and its config to `path`.json, atomically; no overwrite unless force."""
    path = os.fspath(path)
    for p in (path, _config_path(path)):
        if os.path.exists(p) and not force:
            raise OutputPathError(f"{p} exists; choose another path or pass --force to overwrite it")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(model.state_dict(), tmp)
        with open(tmp + ".json", "w", encoding="utf-8") as fh:
            json.dump(model.config, fh, indent=2, sort_keys=True)
        os.replace(tmp + ".json", _config_path(path))
        os.replace(tmp, path)
    finally:
        for p in (tmp, tmp + ".json"):
            if os.path.exists(p):
                os.remove(p)


def load_model(path) -> MetricMLP:
    """Rebuild the MetricMLP saved by `save_model` (weights loaded with weights_only=True)."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not os.path.isfile(_config_path(path)):
        raise InputFileError(f"{path} or {_config_path(path)} is missing; pass a checkpoint written by 'hpcflow nn'")
    with open(_config_path(path), encoding="utf-8") as fh:
        config = json.load(fh)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable / non-tensor file
        raise InputFileError(f"{path} is not a tensor-only state dict ({type(exc).__name__}); "
                             "pass a checkpoint written by 'hpcflow nn'") from None
    model = MetricMLP(**config)
    model.load_state_dict(state)
    model.eval()
    return model
