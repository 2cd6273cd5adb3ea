"""Experiment registry: a new experiment is one module plus one decorator.

An experiment is a function ``run(cfg, ctx)`` that adds result cells to the
:class:`~recbackdoor.experiments.context.RunContext`; its config model says
which keys its TOML file may hold.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recbackdoor.errors import UserError

if TYPE_CHECKING:
    from recbackdoor.experiments.config import ExperimentConfig
    from recbackdoor.experiments.context import RunContext


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    config: type[ExperimentConfig]
    run: Callable[[ExperimentConfig, RunContext], None]


_EXPERIMENTS: dict[str, ExperimentSpec] = {}

# Modules that register experiments when imported; imported lazily so that
# `recbackdoor --help` stays fast and the text side never imports vision code.
_PROVIDERS = {
    "badrec": "recbackdoor.experiments.badrec_experiment",
    "badembnets": "recbackdoor.experiments.badembnets_experiment",
    "defense": "recbackdoor.experiments.defense_experiment",
}


def register_experiment(name: str, config: type[ExperimentConfig]):
    def decorator(func):
        _EXPERIMENTS[name] = ExperimentSpec(name=name, config=config, run=func)
        return func

    return decorator


def get_experiment(name: str, source: str = "config") -> ExperimentSpec:
    if name not in _EXPERIMENTS and name in _PROVIDERS:
        importlib.import_module(_PROVIDERS[name])
    if name not in _EXPERIMENTS:
        close = difflib.get_close_matches(name, list(_PROVIDERS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(_PROVIDERS)}"
        raise UserError(f"{source}: unknown experiment {name!r}{hint}")
    return _EXPERIMENTS[name]


def config_model(name: str, source: str = "config") -> type[ExperimentConfig]:
    return get_experiment(name, source).config
