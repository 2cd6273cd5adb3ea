"""Whether bf16 autocast pays off on the machine at hand.

bf16 autocast made a SmolLM2 step faster than fp32 on the CPU the early rungs were measured on (one with
native bf16), and every committed text result ran with it. On a CPU without native bf16 instructions (no
AVX512-BF16 / AMX: AMD Zen 3, older Intel) torch emulates it around fp32 kernels, and the same forward
pass ran 6.5 times slower than fp32, a training step far more (docs/results.md, "bf16 autocast on a CPU
without native bf16"). So ``model.autocast`` defaults to "auto", resolved here when the config is read;
a run on such a CPU says in one line what that means, and ``results.json`` records the fact.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import torch

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first processor's feature flags; empty where the file does not exist (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


@cache
def _host_flags() -> frozenset[str]:
    """This machine's flags, read once: every config load, model and results.json asks."""
    return frozenset(cpu_flags())


def native_bf16(device: torch.device | str = "cpu", flags: set[str] | frozenset[str] | None = None) -> bool | None:
    """True when ``device`` runs bf16 matmuls natively, False when torch would emulate them, None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:  # a V100 "supports" bf16 only by emulation, which torch counts unless told not to
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch without the argument
            return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return None
    flags = _host_flags() if flags is None else flags
    if not flags:
        return None
    return any(flag in flags for flag in _CPU_BF16_FLAGS)


def bf16_pays_off(device_setting: str = "auto") -> bool:
    """What ``model.autocast = "auto"`` means: bf16 unless this machine would emulate it (unknown: bf16, as before)."""
    on_gpu = device_setting in ("auto", "cuda") and torch.cuda.is_available()
    native = native_bf16("cuda" if on_gpu else "cpu")
    return True if native is None else native


_warned = False


def note_precision(autocast: bool, device: torch.device | str = "cpu", flags: set[str] | None = None) -> bool:
    """Say once per process, on stderr, what the missing native bf16 means for this run; returns whether it did.

    With bf16 forced: that it is emulated and slow. In fp32: that the committed text cells ran in bf16, so a
    re-run here lands near them, not on them (a change of precision moved a LastFM AUC by 0.06, docs/results.md).
    """
    global _warned
    if _warned or native_bf16(device, flags) is not False:
        return False
    _warned = True
    where = "this GPU" if torch.device(device).type == "cuda" else "this CPU (no avx512_bf16 / amx_bf16)"
    if autocast:
        text = ("bf16 autocast is emulated and several times slower than fp32 here; model.autocast = \"auto\" "
                "(the default) or false trains in fp32")
    else:
        text = ("training in fp32; the committed text cells ran in bf16, so expect numbers near them, not equal "
                "(model.autocast = true matches their precision, about 14x slower here)")
    print(f"recbackdoor: note: {where} has no native bf16: {text}", file=sys.stderr)
    return True
