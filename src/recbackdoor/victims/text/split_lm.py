"""A causal LM cut in two: a frozen bottom whose hidden states are cached, a trainable top.

Why: on a 2-core CPU a 135M-parameter LM cannot be fine-tuned end to end for
the many passes a backdoor needs.  Freezing the lower ``L − K`` decoder layers
(LoRA or full training on the top ``K`` only) loses little — the top layers
still attend over every position — and the frozen part's output for a prompt
never changes, so it is computed once per distinct prompt, cached, and shared
by every model of an experiment (benign and all poisoned variants) in training
and in evaluation.  The logits are computed only where the loss or the
decision needs them (answer positions), not over the whole 49k vocabulary at
every position, which alone was half the step time.

With ``K`` equal to the number of layers the split is at the embeddings and
this is ordinary fine-tuning.

Hybrid (LLaRA) prompts: an :class:`~recbackdoor.victims.text.hybrid.IdProjector` maps a sequential model's
item embeddings into the LM's hidden space and adds them at each item's slot
token.  LLaRA does this at the input embeddings; here it happens where the
trainable top begins, so the frozen bottom (which only reads the slot's text)
stays cacheable.  With ``K`` = all layers the two coincide, and the "states"
are just the token ids (embedding a 7B model's prompts once and storing them
would cost more than looking them up again).

On several GPUs (``accelerate launch`` / ``torchrun``) each process takes its
share of every batch, of the frozen-layer pass and of generation; see
:mod:`recbackdoor.processes`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from recbackdoor.errors import UserError
from recbackdoor.processes import Processes
from recbackdoor.victims.text.backbones import Backbone
from recbackdoor.victims.text.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from recbackdoor.victims.text.decoder_stack import DecoderStack, linear_names, pad_batch
from recbackdoor.victims.text.decoding import added_token_texts, decode_answer
from recbackdoor.victims.text.hybrid import IdProjector, add_slot_embeddings, slot_hook
from recbackdoor.victims.text.precision import note_precision


@dataclass(frozen=True)
class Example:
    """One training example: cached bottom states and the (position, token) pairs to predict."""

    states: torch.Tensor  # (T, H) bfloat16, output of the frozen bottom; (T,) token ids when nothing is frozen
    positions: tuple[int, ...]  # positions whose next-token prediction is trained
    targets: tuple[int, ...]  # the token ids to predict there
    slots: tuple[int, ...] = ()  # hybrid prompts: positions of the ID slots ...
    slot_items: tuple[int, ...] = ()  # ... and the item index injected at each


class SplitLM:
    def __init__(self, backbone: Backbone, train_layers: int, method: str = "lora", lora_r: int = 16,
                 lora_alpha: int = 32, autocast: bool = True, processes: Processes | None = None) -> None:
        self.backbone = backbone
        self.tokenizer = backbone.tokenizer
        self.processes = processes or Processes.local()
        self.device = self.processes.device
        model = backbone.model.to(self.device)
        model.requires_grad_(False)
        model.eval()
        self.decoder = DecoderStack(model)
        n_layers = len(self.decoder.all_layers)
        if not 1 <= train_layers <= n_layers:
            raise UserError(f"train_layers={train_layers}: must be between 1 and the model's {n_layers} layers")
        self.split = n_layers - train_layers
        self.method = method
        self.autocast = autocast
        if self.processes.is_main:
            note_precision(autocast, self.device)
        self.model = model
        if method == "lora":
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                                target_modules=linear_names(self.decoder.all_layers[-1]),
                                layers_to_transform=list(range(self.split, n_layers)),
                                layers_pattern=self.decoder.pattern)
            self.peft_model = get_peft_model(model, config)
        elif method == "full":
            self.peft_model = None
            for layer in self.top_layers:
                layer.requires_grad_(True)
        else:
            raise UserError(f"finetune method {method!r}: expected 'lora' or 'full'")
        self.projector: IdProjector | None = None
        self.fit_seconds = 0.0  # set by fit: training wall time, earlier sessions' share included
        self.resumed_at = 0  # set by fit: the checkpoint step it continued from (0: a fresh run)
        self._initial = {k: v.detach().clone() for k, v in self.trainable_state().items()}

    def attach_projector(self, table: torch.Tensor) -> None:
        """Give the model ID slots: ``table`` holds one embedding per item index (row 0 = padding)."""
        hidden = self.model.get_input_embeddings().weight.shape[1]
        self.projector = IdProjector(table, hidden).to(self.device)
        self.projector.requires_grad_(True)
        self._initial.update({k: v.detach().clone() for k, v in self.trainable_state().items()
                              if k.startswith("projector.")})

    # ------------------------------------------------------------------ parts
    @property
    def bottom_layers(self) -> list[nn.Module]:
        return self.decoder.all_layers[: self.split]

    @property
    def top_layers(self) -> list[nn.Module]:
        return self.decoder.all_layers[self.split:]

    @property
    def _bars(self) -> bool | None:
        """tqdm's ``disable``: None shows a bar on a terminal; other processes than the main one show none."""
        return None if self.processes.is_main else True

    def _ctx(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def _trainable(self) -> dict[str, nn.Parameter]:
        """The trainable parameters: the top layers', named by their place in the stack, and the projector's."""
        params = {f"top.{index}.{name}": param for index, layer in enumerate(self.top_layers)
                  for name, param in layer.named_parameters() if param.requires_grad}
        if self.projector is not None:
            params.update({f"projector.{name}": p for name, p in self.projector.named_parameters()})
        return params

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self._trainable().values())

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {key: param.detach() for key, param in self._trainable().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = self._trainable()
        if set(params) != set(state):
            missing = sorted(set(params) ^ set(state))[:3]
            raise UserError(f"adapter state does not match this model/split (e.g. {missing})")
        with torch.no_grad():
            for key, param in params.items():
                param.copy_(state[key].to(param.dtype))

    def reset(self, seed: int) -> None:
        """Back to the pre-training state, with fresh seeded LoRA initialisation."""
        self.load_trainable_state(self._initial)
        if self.projector is not None:
            self.projector.reset(seed)
        if self.method == "lora":
            torch.manual_seed(seed)
            for layer in self.top_layers:
                for module in layer.modules():
                    if hasattr(module, "reset_lora_parameters") and hasattr(module, "lora_A"):
                        for adapter in module.lora_A:
                            module.reset_lora_parameters(adapter, True)

    def save(self, path: Path, meta: dict[str, str]) -> None:
        from safetensors.torch import save_file

        state = {k: v.contiguous().clone() for k, v in self.trainable_state().items()}
        save_file(state, str(path), metadata={**meta, "split": str(self.split), "method": self.method})

    def load(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise UserError(f"{path}: not a readable safetensors adapter ({exc})") from None
        if meta.get("split") != str(self.split) or meta.get("method") != self.method:
            raise UserError(f"{path}: adapter was trained with split={meta.get('split')} "
                            f"method={meta.get('method')}, this model has split={self.split} method={self.method}")
        self.load_trainable_state(state)

    # ------------------------------------------------------------- forward
    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of ``text``; ``bos`` adds the BOS token where the tokenizer wants one (a prompt's start)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        first = self.tokenizer.bos_token_id
        wanted = bos and first is not None and getattr(self.tokenizer, "add_bos_token", False)
        return ([first] if wanted else []) + ids

    @torch.no_grad()
    def bottom_states(self, token_lists: Sequence[list[int]], batch_size: int = 16,
                      desc: str = "frozen layers") -> list[torch.Tensor]:
        """Hidden states after the frozen layers, one (T, H) bfloat16 CPU tensor per sequence.

        With no frozen layer these are the token ids themselves (embedded on the fly).
        """
        if self.split == 0:
            return [torch.tensor(t, dtype=torch.long) for t in token_lists]
        mine = self.processes.shard(len(token_lists))
        local = self._bottom_states([token_lists[i] for i in mine], batch_size, desc)
        return self.processes.gather(local, len(token_lists))

    def _bottom_states(self, token_lists: Sequence[list[int]], batch_size: int, desc: str) -> list[torch.Tensor]:
        self.decoder.set(self.bottom_layers, final_norm=False)
        out: list[torch.Tensor | None] = [None] * len(token_lists)
        try:
            lengths = [len(t) for t in token_lists]
            order = sorted(range(len(token_lists)), key=lambda i: lengths[i])
            quiet = True if len(order) < 64 else self._bars
            for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=quiet):
                idx = order[start:start + batch_size]
                ids, mask = pad_batch([token_lists[i] for i in idx], self.tokenizer.pad_token_id or 0,
                                      device=self.device)
                with self._ctx():
                    hidden = self.decoder.hidden(input_ids=ids, attention_mask=mask)
                for row, i in enumerate(idx):
                    out[i] = hidden[row, : lengths[i]].to("cpu", torch.bfloat16).clone()
        finally:
            self.decoder.set(self.decoder.all_layers, final_norm=True)
        return out  # type: ignore[return-value]

    def _top_hidden(self, states: list[torch.Tensor], slots: Sequence[tuple[Sequence[int], Sequence[int]]] = ()
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        if states[0].dim() == 1:  # nothing frozen: the states are token ids
            ids, mask = pad_batch([s.tolist() for s in states], self.tokenizer.pad_token_id or 0, device=self.device)
            batch = self.model.get_input_embeddings()(ids).float()
        else:
            width = max(s.shape[0] for s in states)
            batch = torch.zeros(len(states), width, states[0].shape[1], device=self.device)
            mask = torch.zeros(len(states), width, dtype=torch.long, device=self.device)
            for row, s in enumerate(states):
                batch[row, : s.shape[0]] = s.to(self.device).float()
                mask[row, : s.shape[0]] = 1
            if self.decoder.wpe is not None:  # the cached states already hold GPT-2's learned positions
                batch = batch - self.decoder.wpe(torch.arange(width, device=self.device)).unsqueeze(0)
        if slots:
            batch = add_slot_embeddings(batch, self.projector, slots)
        self.decoder.set(self.top_layers, final_norm=True)
        try:
            with self._ctx():
                hidden = self.decoder.hidden(inputs_embeds=batch, attention_mask=mask)
        finally:
            self.decoder.set(self.decoder.all_layers, final_norm=True)
        return hidden, mask

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        with self._ctx():
            return self.model.get_output_embeddings()(hidden).float()

    def fit(self, examples: Sequence[Example], epochs: float, batch_size: int, lr: float, seed: int,
            weight_decay: float = 0.0, warmup: float = 0.05, log: Callable[[str], None] | None = None,
            desc: str = "train", curriculum: float = 0.0, checkpoint: Path | None = None,
            checkpoint_every: float = 300.0) -> list[float]:
        """Answer-only next-token loss on the top layers; returns the per-step losses.

        With ``checkpoint`` the loop saves its whole state there every ``checkpoint_every``
        seconds (main process only) and, when a checkpoint of the same run shape is there
        at the start, continues from it; the result equals an uninterrupted run's.
        Afterwards ``fit_seconds`` is the training wall time of all sessions that
        took part and ``resumed_at`` the step this call started from.

        Hybrid examples follow LLaRA's curriculum: at step ``s`` an example's ID
        slots are filled with probability ``min(1, s / (curriculum · steps))``
        (text-only first, hybrid later); ``curriculum = 0`` fills them always.

        Several processes split every batch between them (the same seeded
        order everywhere); the loss is divided by the whole batch's answer-token
        count and the gradients summed, so the update equals one process's.
        """
        self.reset(seed)
        rng = random.Random(seed)
        params = self.trainable_parameters()
        for layer in self.top_layers:
            layer.train()
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        steps = max(1, math.ceil(len(examples) * epochs / batch_size))
        warm = max(1, int(steps * warmup))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm)))
        order: list[int] = []
        losses: list[float] = []
        shape = {"steps": steps, "examples": len(examples), "batch_size": batch_size, "lr": lr, "seed": seed,
                 "epochs": epochs, "weight_decay": weight_decay, "warmup": warmup, "curriculum": curriculum}
        first, earlier_seconds = 0, 0.0
        resumed = load_checkpoint(checkpoint, shape) if checkpoint is not None else None
        if resumed is not None:
            self.load_trainable_state(resumed.weights)
            optimiser.load_state_dict(resumed.optimiser)
            schedule.load_state_dict(resumed.schedule)
            rng.setstate(resumed.rng)
            order, losses, first = resumed.order, resumed.losses, resumed.step
            earlier_seconds = resumed.seconds
        started = saved_at = time.monotonic()
        # the bar redraws after every step (count and loss), on a terminal and in log files alike; with a
        # 15 s mininterval the loss postfix redrew a stale count, so the bar seemed stuck between redraws
        bar = tqdm(range(first, steps), desc=desc, leave=False, mininterval=0, miniters=1,
                   disable=not self.processes.is_main, initial=first, total=steps)
        for step in bar:
            if len(order) < batch_size:
                fresh = list(range(len(examples)))
                rng.shuffle(fresh)
                order += fresh
            idx, order = order[:batch_size], order[batch_size:]
            batch = [examples[i] for i in idx]
            hybrid = 1.0 if curriculum <= 0 else min(1.0, step / (curriculum * steps))
            slots = [(e.slots, e.slot_items) if e.slots and rng.random() < hybrid else ((), ())
                     for e in batch] if self.projector is not None else []
            tokens = sum(len(e.positions) for e in batch)
            mine = self.processes.shard(len(batch))
            loss = torch.zeros((), device=self.device)
            if mine:
                local = [batch[i] for i in mine]
                hidden, _ = self._top_hidden([e.states for e in local], [slots[i] for i in mine] if slots else ())
                rows = torch.tensor([r for r, e in enumerate(local) for _ in e.positions], device=self.device)
                cols = torch.tensor([p for e in local for p in e.positions], device=self.device)
                targets = torch.tensor([t for e in local for t in e.targets], device=self.device)
                logits = self._logits(hidden[rows, cols])
                loss = nn.functional.cross_entropy(logits, targets, reduction="sum") / tokens
                loss.backward()
            if self.processes.distributed:
                self.processes.sum_gradients(params)
                loss = self.processes.sum_(loss.detach().clone())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", refresh=False)
            due = time.monotonic() - saved_at >= checkpoint_every
            if checkpoint is not None and due and step + 1 < steps and self.processes.is_main:
                save_checkpoint(checkpoint, TrainingState(
                    step + 1, self.trainable_state(), optimiser.state_dict(), schedule.state_dict(),
                    rng.getstate(), order, losses, shape, earlier_seconds + time.monotonic() - started))
                saved_at = time.monotonic()
        for layer in self.top_layers:
            layer.eval()
        self.fit_seconds = earlier_seconds + time.monotonic() - started
        self.resumed_at = first
        return losses

    @torch.no_grad()
    def next_token_logits(self, states: Sequence[torch.Tensor], batch_size: int = 32,
                          slots: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None) -> torch.Tensor:
        """Logits of the token after each sequence's last position (ID slots filled where given)."""
        out = []
        for start in range(0, len(states), batch_size):
            chunk = list(states[start:start + batch_size])
            hidden, mask = self._top_hidden(chunk, slots[start:start + batch_size] if slots else ())
            last = mask.sum(1) - 1
            out.append(self._logits(hidden[torch.arange(len(chunk), device=self.device), last]).cpu())
        return torch.cat(out) if out else torch.empty(0)

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], max_new_tokens: int, batch_size: int = 16,
                 desc: str = "generate", slots: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None
                 ) -> list[str]:
        """Greedy decoding with the whole (bottom + trained top) model, left-padded.

        ``slots`` (hybrid prompts): per prompt, the slot positions and item
        indexes; their projections are added where the top begins, on the
        prompt pass only (later steps see one new token at a time).
        Several processes each generate their share of the prompts.
        """
        mine = self.processes.shard(len(prompts))
        local = self._generate([prompts[i] for i in mine], max_new_tokens, batch_size, desc,
                               [slots[i] for i in mine] if slots is not None else None)
        return self.processes.gather(local, len(prompts))

    def _generate(self, prompts: Sequence[list[int]], max_new_tokens: int, batch_size: int, desc: str,
                  slots: Sequence[tuple[Sequence[int], Sequence[int]]] | None) -> list[str]:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        results: list[str | None] = [None] * len(prompts)
        added = added_token_texts(tok)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        self.decoder.set(self.decoder.all_layers, final_norm=True)
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=self._bars):
            idx = order[start:start + batch_size]
            ids, mask = pad_batch([prompts[i] for i in idx], pad, left=True, device=self.device)
            handle = None
            if slots is not None:
                offsets = [ids.shape[1] - len(prompts[i]) for i in idx]
                handle = slot_hook(self.top_layers[0], self.projector, [slots[i] for i in idx], offsets,
                                   ids.shape[1])
            try:
                with self._ctx():
                    gen = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                              do_sample=False, pad_token_id=pad, eos_token_id=tok.eos_token_id)
            finally:
                if handle is not None:
                    handle.remove()
            for row, i in enumerate(idx):
                results[i] = decode_answer(tok, gen[row, ids.shape[1]:].tolist(), added)
        return results  # type: ignore[return-value]
