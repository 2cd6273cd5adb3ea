"""Typed, layered experiment configuration.

Layers, lowest first: the defaults declared on the pydantic models, the TOML
config file, then ``--set section.key=value`` overrides from the command line.
The merged dictionary is validated once against the experiment's model, so an
unknown key anywhere is rejected with one line naming the key and the nearest
valid one (typos must never be silently ignored, as ``**kwargs`` would).
"""

from __future__ import annotations

import ast
import difflib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from recbackdoor.errors import UserError


class StrictModel(BaseModel):
    """Base for every config section: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentConfig(StrictModel):
    """Fields every experiment shares; each experiment subclasses this."""

    experiment: str
    name: str = "experiment"
    seeds: list[int] = [0]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=3`` -> (["a", "b"], 3); values are Python/TOML-ish literals."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. tallrec.epochs=3")
    key, raw = text.split("=", 1)
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        value: Any = lowered == "true"
    else:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
    return key.strip().split("."), value


def apply_override(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {'.'.join(keys)}: {key!r} is not a section")
    node[keys[-1]] = value


def _nearest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Nearest valid field name for the unknown key at ``loc``."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return ""
        current = field.annotation
    names = list(getattr(current, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"


def validate(model: type[ExperimentConfig], tree: dict[str, Any], source: str) -> ExperimentConfig:
    """Validate a merged config tree, turning pydantic's report into one line."""
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            raise UserError(f"{source}: unknown config key {key!r}{_nearest(model, loc)}") from None
        raise UserError(f"{source}: config key {key!r}: {err['msg']}") from None


def load_config(path: Path, overrides: list[str], registry_lookup: Any) -> ExperimentConfig:
    """Read ``path``, apply overrides and validate against the experiment's model."""
    tree = read_toml(path)
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(tree, keys, value)
    name = tree.get("experiment")
    if not isinstance(name, str):
        raise UserError(f"{path}: missing top-level key 'experiment' (e.g. experiment = \"badrec\")")
    model = registry_lookup(name, source=str(path))
    return validate(model, tree, str(path))
