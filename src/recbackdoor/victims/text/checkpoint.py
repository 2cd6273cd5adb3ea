"""Mid-training checkpoints, so one model's training can span several sessions.

Why: on this CPU one poisoned LLaRA model trains for about an hour, and a
session (or a lent GPU's lease) can end in the middle.  The stage cache keeps
only finished models, so without this an interrupted model is lost and
retrained from step 0.  A checkpoint holds everything the next step depends
on — trainable weights, AdamW moments, the learning-rate schedule, the
example order still to come, the Python RNG that draws it and the losses so
far — so a resumed run takes exactly the steps an uninterrupted one would.
It also holds the training seconds spent so far, so a model trained across
sessions reports its whole training time, not the last session's share.

One safetensors file: the tensors as tensors, the rest as JSON in the header.
It is written under a temporary name and renamed, so a kill during the write
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FORMAT = "recbackdoor-train-checkpoint-1"


@dataclass
class TrainingState:
    """Where a training loop stands after ``step`` finished steps."""

    step: int
    weights: dict[str, torch.Tensor]
    optimiser: dict[str, Any]
    schedule: dict[str, Any]
    rng: Any  # random.Random.getstate()
    order: list[int]
    losses: list[float]
    shape: dict[str, float]  # what the run was: steps, examples, batch size, learning rate, seed
    seconds: float = 0.0  # training wall time up to ``step``, over all the sessions that took part


def save_checkpoint(path: Path, state: TrainingState) -> None:
    """Write ``state`` atomically to ``path``."""
    from safetensors.torch import save_file

    tensors = {f"weight/{k}": v.detach().cpu().contiguous().clone() for k, v in state.weights.items()}
    moments: dict[str, dict[str, Any]] = {}
    for index, slot in state.optimiser["state"].items():
        for name, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{index}/{name}"] = value.detach().cpu().contiguous().clone()
            else:
                moments.setdefault(str(index), {})[name] = value
    meta = {"format": FORMAT, "step": str(state.step), "shape": json.dumps(state.shape),
            "param_groups": json.dumps(state.optimiser["param_groups"]),
            "optim_scalars": json.dumps(moments), "schedule": json.dumps(state.schedule),
            "rng": json.dumps(state.rng), "order": json.dumps(state.order), "losses": json.dumps(state.losses),
            "seconds": repr(float(state.seconds))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, shape: dict[str, float]) -> TrainingState | None:
    """The checkpoint at ``path`` if it exists, is readable and belongs to a run of this ``shape``; else None.

    A checkpoint of another run shape (other data size, steps, batch or learning rate) is not resumed
    from: the caller starts over and overwrites it.
    """
    from safetensors import safe_open

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT or json.loads(meta["shape"]) != shape:
                return None
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception:  # safetensors raises several types for a corrupt file; a bad checkpoint means start over
        return None
    weights = {k.removeprefix("weight/"): v for k, v in tensors.items() if k.startswith("weight/")}
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            slots.setdefault(int(index), {})[name] = value
    for index, scalars in json.loads(meta["optim_scalars"]).items():
        slots.setdefault(int(index), {}).update(scalars)
    groups = json.loads(meta["param_groups"])
    for group in groups:  # JSON turned the tuple into a list
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    version, internal, gauss = json.loads(meta["rng"])
    return TrainingState(step=int(meta["step"]), weights=weights,
                         optimiser={"state": slots, "param_groups": groups},
                         schedule=json.loads(meta["schedule"]), rng=(version, tuple(internal), gauss),
                         order=json.loads(meta["order"]), losses=json.loads(meta["losses"]), shape=shape,
                         seconds=float(meta.get("seconds", "0")))  # checkpoints before the field: unknown, 0
