"""The fast default scanner: a small network that reads a title three ways at once.

* **tokens** — the LM's byte-level BPE pieces, embedded with SmolLM2's own input
  embeddings (PCA to 48 dimensions, frozen, fp16): the word knowledge that lets
  it see an adjective that does not belong, at a fraction of the LM's cost;
* **code points** — every character with its Unicode script and category,
  through a small dilated CNN: a lone Malayalam letter or a zero-width joiner is
  visible here even where a tokenizer would merge or drop it;
* **Unicode evidence** — ICU script runs and UTS #39 spoof checks
  (``unicode_evidence``), weighed, never trusted alone.

It is trained on the same synthetic Netflix examples as P-Scanner (initial
and agent-written triggers) and, where teacher scores are given, also
matches P-Scanner's probabilities (distillation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recbackdoor.defenses.text.unicode_evidence import CODE_POINT_BUCKETS, N_EVIDENCE, char_arrays, title_evidence

MAX_TOKENS = 48
MAX_CHARS = 128


@dataclass(frozen=True)
class StudentShape:
    embed_dim: int = 48
    width: int = 128
    layers: int = 2
    heads: int = 4
    char_width: int = 64


class Block(nn.Module):
    """A pre-norm transformer block on ``scaled_dot_product_attention`` (torch's TransformerEncoderLayer with a
    padding mask ran ~30x slower than this on the CPU here)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + self.out(attn.transpose(1, 2).reshape(b, n, w))
        return x + self.ff(self.norm2(x))


class StudentNet(nn.Module):
    def __init__(self, token_table: torch.Tensor, shape: StudentShape) -> None:
        super().__init__()
        self.shape = shape
        self.token_table = nn.Embedding.from_pretrained(token_table.float(), freeze=True)
        self.token_in = nn.Linear(token_table.shape[1], shape.width)
        self.position = nn.Embedding(MAX_TOKENS, shape.width)
        self.blocks = nn.ModuleList(Block(shape.width, shape.heads) for _ in range(shape.layers))
        self.code_point = nn.Embedding(CODE_POINT_BUCKETS, 32)
        self.script = nn.Embedding(256, 16)
        self.category = nn.Embedding(32, 8)
        self.char_cnn = nn.ModuleList([
            nn.Conv1d(56, shape.char_width, 5, padding=2),
            nn.Conv1d(shape.char_width, shape.char_width, 5, padding=4, dilation=2),
            nn.Conv1d(shape.char_width, shape.char_width, 3, padding=4, dilation=4),
        ])
        self.head = nn.Sequential(nn.Linear(2 * shape.width + 2 * shape.char_width + N_EVIDENCE, 128), nn.GELU(),
                                  nn.Dropout(0.1), nn.Linear(128, 1))

    def forward(self, tokens, token_mask, chars, scripts, categories, char_mask, evidence) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1]).unsqueeze(0)
        x = self.token_in(self.token_table(tokens)) + self.position(positions)
        for block in self.blocks:
            x = block(x, token_mask)
        tmask = token_mask.unsqueeze(-1)
        token_mean = (x * tmask).sum(1) / tmask.sum(1).clamp(min=1)
        token_max = x.masked_fill(~tmask, -1e4).max(1).values
        c = torch.cat([self.code_point(chars), self.script(scripts), self.category(categories)], dim=-1)
        cmask = char_mask.unsqueeze(-1)
        c = (c * cmask).transpose(1, 2)
        for conv in self.char_cnn:  # re-zero the padding after every layer: a title scores the same in any batch
            c = F.gelu(conv(c)) * cmask.transpose(1, 2)
        c = c.transpose(1, 2)
        char_mean = (c * cmask).sum(1) / cmask.sum(1).clamp(min=1)
        char_max = c.masked_fill(~cmask, -1e4).max(1).values
        return self.head(torch.cat([token_mean, token_max, char_mean, char_max, evidence], dim=-1)).squeeze(-1)


class Featurizer:
    """Titles -> padded tensors; the tokenizer is a `tokenizers` fast tokenizer (batch, in Rust)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, titles: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer.encode_batch([" " + t for t in titles], add_special_tokens=False)
        n = len(titles)
        token_len = max(1, min(MAX_TOKENS, max(len(e.ids) for e in encoded)))
        char_len = max(1, min(MAX_CHARS, max(len(t) for t in titles)))
        # filled as numpy rows and wrapped once: a torch.tensor per row and field cost a third of scoring
        tokens = np.zeros((n, token_len), dtype=np.int64)
        token_mask = np.zeros((n, token_len), dtype=bool)
        chars = np.zeros((3, n, char_len), dtype=np.int64)  # code point bucket, script, category
        char_mask = np.zeros((n, char_len), dtype=bool)
        evidence = np.zeros((n, N_EVIDENCE), dtype=np.float32)
        for i, (title, enc) in enumerate(zip(titles, encoded, strict=True)):
            ids = enc.ids[:token_len]
            tokens[i, :len(ids)] = ids
            token_mask[i, :max(1, len(ids))] = True
            infos = char_arrays(title, char_len)
            chars[:, i, :len(infos[0])] = infos
            char_mask[i, :max(1, len(infos[0]))] = True
            evidence[i] = title_evidence(title)
        return {name: torch.from_numpy(value) for name, value in (
            ("tokens", tokens), ("token_mask", token_mask), ("chars", chars[0]), ("scripts", chars[1]),
            ("categories", chars[2]), ("char_mask", char_mask), ("evidence", evidence))}


class StudentScorer:
    """A trained student with its featurizer; ``score`` is what ``PoisonScanner`` calls."""

    WEIGHTS = "student.safetensors"
    TOKENIZER = "tokenizer.json"

    def __init__(self, net: StudentNet, tokenizer) -> None:
        self.net = net.eval()
        self.featurize = Featurizer(tokenizer)

    @torch.no_grad()
    def score(self, titles: Sequence[str], batch_size: int = 512) -> np.ndarray:
        out = np.empty(len(titles), dtype=np.float32)
        order = sorted(range(len(titles)), key=lambda i: len(titles[i]))  # batches of similar length pad less
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            logits = self.net(**self.featurize([titles[i] for i in chunk]))
            out[chunk] = torch.sigmoid(logits).numpy()
        return out

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.net.state_dict().items() if k != "token_table.weight"}
        state["token_table.weight"] = self.net.token_table.weight.detach().half().contiguous()
        save_file(state, str(folder / self.WEIGHTS))
        self.featurize.tokenizer.save(str(folder / self.TOKENIZER))
        (folder / "student_shape.json").write_text(json.dumps(asdict(self.net.shape)))

    @classmethod
    def load(cls, folder: Path) -> StudentScorer:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        from recbackdoor.errors import UserError

        try:
            state = load_file(str(folder / cls.WEIGHTS))
            shape = StudentShape(**json.loads((folder / "student_shape.json").read_text()))
            tokenizer = Tokenizer.from_file(str(folder / cls.TOKENIZER))
        except (OSError, SafetensorError, ValueError, TypeError, json.JSONDecodeError) as exc:
            raise UserError(f"{folder}: cannot load the student scanner ({str(exc).splitlines()[0]})") from None
        net = StudentNet(state["token_table.weight"], shape)
        net.load_state_dict({k: v.float() for k, v in state.items()})
        return cls(net, tokenizer)


def reduced_token_table(embeddings: torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """PCA of the LM's input embeddings to ``dim`` columns, scaled to unit average row norm."""
    torch.manual_seed(seed)
    centred = embeddings.float() - embeddings.float().mean(0, keepdim=True)
    _u, _s, v = torch.pca_lowrank(centred, q=dim, center=False)
    reduced = centred @ v[:, :dim]
    return reduced / reduced.norm(dim=1).mean()
