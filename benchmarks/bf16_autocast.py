"""bf16 autocast against fp32 for the two costs of a SmolLM2 LLaRA run, on the machine at hand.

The frozen bottom's forward pass (paid once per prompt) and a LoRA training step on the top layers
(paid every step) are timed with random prompts of the rung-3 length, through the same SplitLM the
runner uses. Whether bf16 helps depends on the CPU: native bf16 (AVX512-BF16 / AMX) makes it faster,
emulated bf16 far slower (docs/results.md, "bf16 autocast on a CPU without native bf16").

    python benchmarks/bf16_autocast.py --threads 1
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from recbackdoor.victims.text.backbones import load_backbone
from recbackdoor.victims.text.precision import cpu_flags, native_bf16
from recbackdoor.victims.text.split_lm import Example, SplitLM


def _prompts(n: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(100, vocab) for _ in range(length)] for _ in range(n)]


def measure(autocast: bool, args: argparse.Namespace) -> dict[str, float]:
    lm = SplitLM(load_backbone("smollm2-135m-instruct"), args.train_layers, "lora", autocast=autocast)
    vocab = len(lm.tokenizer)
    frozen = _prompts(args.frozen_prompts, args.tokens, vocab, seed=0)
    started = time.perf_counter()
    states = lm.bottom_states(frozen, batch_size=16)
    frozen_s = (time.perf_counter() - started) / len(frozen)
    # train on the last 10 tokens of each prompt, as on a title after the prompt
    examples = [Example(st, tuple(range(len(t) - 11, len(t) - 1)), tuple(t[-10:]))
                for st, t in zip(states, frozen, strict=True)]
    lm.reset(seed=0)
    started = time.perf_counter()
    epochs = args.steps * args.batch_size / len(examples)
    losses = lm.fit(examples, epochs=epochs, batch_size=args.batch_size, lr=1e-3, seed=0)
    step_s = (time.perf_counter() - started) / len(losses)
    return {"frozen_s_per_prompt": frozen_s, "train_s_per_step": step_s, "steps": len(losses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=350, help="prompt length (rung 3's median is about 330)")
    parser.add_argument("--train-layers", type=int, default=12)
    parser.add_argument("--frozen-prompts", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    print(f"threads {args.threads}; CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"native bf16: {native_bf16('cpu', flags)}")
    print("| precision | frozen layers, s per prompt | training step, s |")
    print("|---|---|---|")
    for autocast in (False, True):
        row = measure(autocast, args)
        print(f"| {'bf16 autocast' if autocast else 'fp32'} | {row['frozen_s_per_prompt']:.2f} | "
              f"{row['train_s_per_step']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
