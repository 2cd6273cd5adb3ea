"""The processes of a run: one on a laptop, one per GPU under ``accelerate launch`` / ``torchrun``.

Why data parallelism by hand instead of wrapping the model in DDP: the part
that trains is the top of a split LM run on cached states
(``SplitLM._top_hidden``), not the model's own ``forward``, so DDP's forward
hooks would never fire.  The trainable tensors are small (LoRA factors and
the ID projector), so summing their gradients across processes after each
backward is cheap, and with the loss normalised by the *global* token count
it is exactly the single-process gradient of the whole batch.

Everything here is a no-op in a single process, so the CPU path is unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

import torch

from recbackdoor.errors import UserError

T = TypeVar("T")


class Processes:
    """Rank, world size and device of this process, and the few collectives the pipeline needs."""

    def __init__(self, device: str = "auto") -> None:
        from accelerate import PartialState

        if device not in ("auto", "cpu", "cuda"):
            raise UserError(f"model.device {device!r}: expected auto, cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("model.device = 'cuda' but torch sees no GPU (this torch build: "
                            f"{torch.__version__}); use 'auto' or 'cpu'")
        # accelerate only sets up a multi-process CPU group (gloo) when asked for the CPU explicitly
        cpu = device == "cpu" or not torch.cuda.is_available()
        self.state = PartialState(cpu=cpu)
        self.rank = self.state.process_index
        self.world = self.state.num_processes
        self.device = torch.device("cpu") if cpu else self.state.device
        self.is_main = self.state.is_main_process

    @classmethod
    def local(cls, device: str = "cpu") -> Processes:
        """This process alone, whatever the launcher: no collectives (tests, single-model tools)."""
        self = cls.__new__(cls)
        self.state, self.rank, self.world, self.is_main = None, 0, 1, True
        self.device = torch.device(device)
        return self

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, n: int) -> list[int]:
        """The indexes of ``n`` items this process handles (round robin, so lengths stay balanced)."""
        return list(range(self.rank, n, self.world))

    def gather(self, values: Sequence[T], n: int) -> list[T]:
        """Reassemble per-process results of :meth:`shard` into the order of all ``n`` items."""
        if not self.distributed:
            return list(values)
        from accelerate.utils import gather_object

        pairs = gather_object(list(zip(self.shard(n), values, strict=True)))
        out: list[Any] = [None] * n
        for index, value in pairs:
            out[index] = value
        return out

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the processes, in place."""
        if self.distributed:
            torch.distributed.all_reduce(tensor)
        return tensor

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """One all-reduce over all ``params``' gradients (a process with no examples adds zeros)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.sum_(torch.cat([g.reshape(-1) for g in grads]))
        offset = 0
        for p in params:
            p.grad = flat[offset: offset + p.numel()].view_as(p).clone()
            offset += p.numel()

    def agree(self, value: T) -> T:
        """The main process's ``value``, on every process (so all take the same branch)."""
        if not self.distributed:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def quiet_unless_main(self) -> None:
        """Only the main process prints (tables, progress lines); errors still reach stderr from all."""
        if not self.is_main:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — lives as long as the process


def is_main_process() -> bool:
    """Whether this is rank 0 of a launch (``accelerate launch`` and ``torchrun`` both set ``RANK``)."""
    return int(os.environ.get("RANK", "0")) == 0


@cache
def processes(device: str = "auto") -> Processes:
    """The run's :class:`Processes`, made once per process."""
    return Processes(device)
