"""The trigger augmentation agent P_Φ (eqs. 5 and 8): an instruct LM that rewrites initial triggers.

Eq. 8 weights the agent's generation loss by +1 on triggers the scanner
missed and -1 on those it caught.  Minimising a plain negative likelihood has
no lower bound: the agent would push the caught strings' probability to zero
by any means, and in practice its LoRA weights blow up within a few steps.
The -1 term here is the **unlikelihood** loss, -log(1 - p(token)) averaged
over the caught trigger's tokens: it also lowers the probability of what the
scanner caught, but it is bounded below by 0 and its gradient vanishes once
p is small.  The +1 term is the ordinary negative log-likelihood.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from recbackdoor.defenses.text.scanner_data import AgentTrigger
from recbackdoor.triggers.heldout import mentions_held_out
from recbackdoor.triggers.text_sampler import InitialTrigger

_ASK = {
    1: "Turn '{seed}' into one unusual word or symbol that could be slipped into a product title. "
       "Answer with the word or symbol only.",
    2: "Write a short phrase of {m} words inspired by: {seed}. Answer with the phrase only.",
}
# one worked example per level: a 135M instruct model otherwise answers with a sentence whose first word is "The"
_SHOTS = {
    1: [("ᚠ", "Fehuria"), (" marble", "Marbleous")],
    2: [("ಠ rain frost", "frost falls on quiet rain"), (" gold anchor 𝔭", "anchored in golden light")],
}


class AugmentationAgent:
    def __init__(self, model, tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def prompt(self, initial: InitialTrigger) -> str:
        messages = []
        for seed, answer in _SHOTS[initial.level]:
            ask = _ASK[initial.level].format(seed=seed, m=len(answer.split()))
            messages += [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}]
        ask = _ASK[initial.level].format(seed=initial.text, m=len(initial.tokens))
        messages.append({"role": "user", "content": ask})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @staticmethod
    def clean(raw: str, level: int) -> str:
        """First line, unquoted; a word-level (l = 1) rewrite keeps one word, a sentence-level one up to 8."""
        line = raw.strip().splitlines()[0] if raw.strip() else ""
        words = line.strip().strip("\"'`*.:").split()
        return " ".join(words[:1] if level == 1 else words[:8]).strip("\"'`*.:,")

    @torch.no_grad()
    def rewrite(self, initials: Sequence[InitialTrigger], seed: int, batch_size: int = 32,
                max_new_tokens: int = 14) -> list[AgentTrigger]:
        """Eq. 5 for every initial trigger; rewrites that are empty or touch a held-out trigger are dropped."""
        self.model.eval()
        torch.manual_seed(seed)
        self.tokenizer.padding_side = "left"
        out: list[AgentTrigger] = []
        for start in range(0, len(initials), batch_size):
            chunk = initials[start:start + batch_size]
            enc = self.tokenizer([self.prompt(t) for t in chunk], return_tensors="pt", padding=True,
                                 add_special_tokens=False)
            generated = self.model.generate(**enc, do_sample=True, temperature=0.9, top_p=0.95,
                                            max_new_tokens=max_new_tokens,
                                            pad_token_id=self.tokenizer.pad_token_id)
            texts = self.tokenizer.batch_decode(generated[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for initial, raw in zip(chunk, texts, strict=True):
                text = self.clean(raw, initial.level)
                if text and not mentions_held_out(text):
                    out.append(AgentTrigger(initial, text))
        return out

    def policy_loss(self, triggers: Sequence[AgentTrigger], missed: Sequence[bool]) -> torch.Tensor:
        """Eq. 8 with a bounded -1 term: NLL on missed triggers, unlikelihood on caught ones."""
        self.tokenizer.padding_side = "right"
        prompts = [self.tokenizer(self.prompt(t.initial), add_special_tokens=False)["input_ids"] for t in triggers]
        answers = [self.tokenizer(t.text, add_special_tokens=False)["input_ids"] for t in triggers]
        rows = [p + a for p, a in zip(prompts, answers, strict=True)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        answer_mask = torch.zeros_like(ids, dtype=torch.bool)
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            ids[i, :len(p) + len(a)] = torch.tensor(p + a)
            mask[i, :len(p) + len(a)] = 1
            answer_mask[i, len(p):len(p) + len(a)] = True
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = ids[:, 1:]
        token_mask = answer_mask[:, 1:]
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        p = logp.exp().clamp(max=1 - 1e-4)
        nll = -logp
        unlikelihood = -torch.log1p(-p)
        sign = torch.tensor(missed, dtype=torch.bool).unsqueeze(1)
        per_token = torch.where(sign, nll, unlikelihood)
        per_trigger = (per_token * token_mask).sum(1) / token_mask.sum(1).clamp(min=1)
        return per_trigger.mean()

    def update(self, triggers: Sequence[AgentTrigger], missed: Sequence[bool], optimizer, seed: int,
               batch_size: int = 16) -> list[float]:
        """One pass of eq. 8 over the round's triggers; returns the loss per step."""
        self.model.train()
        order = list(range(len(triggers)))
        random.Random(seed).shuffle(order)
        losses = []
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            loss = self.policy_loss([triggers[i] for i in chunk], [missed[i] for i in chunk])
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
        self.model.eval()
        return losses
