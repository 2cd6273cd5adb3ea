"""Run one experiment end to end and write ``results.json`` + ``tables.md``."""

from __future__ import annotations

import importlib.metadata
import platform
import time
from pathlib import Path
from typing import Any

from recbackdoor.cache import StageCache
from recbackdoor.experiments.config import ExperimentConfig, load_config
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import config_model, get_experiment
from recbackdoor.experiments.results import atomic_write_text, write_results
from recbackdoor.processes import is_main_process
from recbackdoor.report.defense_tables import defense_tables, is_defense_run, save_defense_figures
from recbackdoor.report.tables import markdown_tables

_VERSIONED = ("recbackdoor", "torch", "transformers", "peft", "numpy", "pandas", "scikit-learn",
              "tokenizers", "safetensors", "pydantic")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def machine_description() -> dict[str, Any]:
    import os

    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import torch

        from recbackdoor.victims.text.precision import native_bf16

        info["torch_threads"] = torch.get_num_threads()
        info["cpu_native_bf16"] = native_bf16("cpu")  # bf16 autocast is emulated, and slow, where False
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def run_experiment(config_path: Path, out_dir: Path, overrides: list[str], only: dict[str, str],
                   cache: StageCache | None = None) -> dict[str, Any]:
    cfg: ExperimentConfig = load_config(config_path, overrides, config_model)
    spec = get_experiment(cfg.experiment)
    ctx = RunContext(out_dir=out_dir, cache=cache or StageCache(), only=only)
    start = time.perf_counter()
    spec.run(cfg, ctx)
    ctx.timings["total"] = time.perf_counter() - start
    payload = {
        "config": cfg.model_dump(mode="json"),
        "config_file": str(config_path),
        "overrides": overrides,
        "only": only,
        "seeds": list(cfg.seeds),
        "versions": library_versions(),
        "machine": machine_description(),
        "timings": {k: round(v, 2) for k, v in ctx.timings.items()},
        "protocol": ctx.protocol,
        "data_checksums": ctx.data_checksums,
        "cells": [cell.to_json() for cell in ctx.cells],
    }
    if is_main_process():  # under several processes every one holds the same cells
        write_results(out_dir, payload)
        if is_defense_run(payload["cells"]):
            tables = defense_tables(payload["cells"])
            save_defense_figures(payload["cells"], out_dir)
        else:
            tables = markdown_tables(payload["cells"])
        atomic_write_text(out_dir / "tables.md", f"# {cfg.name}\n\n" + tables)
    return payload
