"""The decoder stack of a Hugging Face causal LM, cut where :class:`~recbackdoor.victims.text.split_lm.SplitLM` needs.

Why a wrapper: Llama-style models keep their layers in ``model.layers`` and
GPT-2 in ``transformer.h``, with different final norms and GPT-2's learned
positions; the split LM swaps the layer list (bottom only, top only, all)
around a forward call, and this is the one place that knows both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recbackdoor.errors import UserError


class DecoderStack:
    """Uniform access to the decoder stack of Llama-style and GPT-2 models."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        if hasattr(model, "model") and hasattr(model.model, "layers"):
            self.owner, self.layers_attr, self.norm_attr = model.model, "layers", "norm"
            self.pattern, self.wpe = "layers", None
        elif hasattr(model, "transformer") and hasattr(model.transformer, "h"):
            self.owner, self.layers_attr, self.norm_attr = model.transformer, "h", "ln_f"
            self.pattern, self.wpe = "h", model.transformer.wpe  # learned absolute positions
        else:
            raise UserError(f"{type(model).__name__}: unsupported decoder layout (need Llama-style or GPT-2)")
        self.all_layers = list(getattr(self.owner, self.layers_attr))
        self.norm = getattr(self.owner, self.norm_attr)

    def set(self, layers: list[nn.Module], final_norm: bool) -> None:
        setattr(self.owner, self.layers_attr, nn.ModuleList(layers))
        setattr(self.owner, self.norm_attr, self.norm if final_norm else nn.Identity())

    def hidden(self, **kwargs) -> torch.Tensor:
        return self.owner(**kwargs, use_cache=False).last_hidden_state


def linear_names(layer: nn.Module) -> list[str]:
    """Names of the linear sub-modules of a decoder layer (GPT-2's Conv1D included): what LoRA adapts."""
    names = set()
    for name, module in layer.named_modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(name.split(".")[-1])
    return sorted(names)


def pad_batch(seqs: Sequence[list[int]], pad: int, left: bool = False, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists as one padded id tensor and its attention mask (``left`` pads on the left, for generation)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if left:
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        else:
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
    return ids.to(device), mask.to(device)
