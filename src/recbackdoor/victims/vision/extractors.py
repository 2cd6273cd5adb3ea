"""AlexNet-style and ResNet-style CNNs sized for 28×28 product images.

torchvision does not import on this CPU torch, so both are written in plain
``torch.nn``.  ``features(x)`` returns the output of the last convolutional
block, flattened: the vector a visually-aware recommender reads (the paper
takes the same layer of AlexNet / ResNet50).  ``forward`` adds the classifier
head used to train the extractor.  Weights travel as safetensors with the
architecture's hyper-parameters in the file's metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from recbackdoor.errors import UserError


@dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild an extractor before loading its weights."""

    arch: str = "alexnet"
    width: int = 32
    num_classes: int = 10
    in_channels: int = 1
    image_size: int = 28


class AlexNetSmall(nn.Module):
    """Five conv layers (AlexNet's shape), ReLU, max-pool; two FC layers as the head."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        w = spec.width
        self.block = nn.Sequential(
            nn.Conv2d(spec.in_channels, w, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 3 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(3 * w, 3 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(3 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = spec.image_size // 8
        self.feature_dim = 2 * w * side * side
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, 4 * w), nn.ReLU(inplace=True),
                                  nn.Linear(4 * w, spec.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNetSmall(nn.Module):
    """ResNet with three stages of two basic blocks.

    The feature is the last stage's output map, flattened (the *last
    convolutional block's output*, as for AlexNet); the head is ResNet's own
    global average pool + linear layer on that map.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        w = spec.width
        self.stem = nn.Sequential(nn.Conv2d(spec.in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True))
        self.block = nn.Sequential(BasicBlock(w, w, 2), BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2),
                                   BasicBlock(2 * w, 2 * w, 1), BasicBlock(2 * w, 4 * w, 2),
                                   BasicBlock(4 * w, 4 * w, 1))
        side = -(-spec.image_size // 8)
        self.feature_dim = 4 * w * side * side
        self.head = nn.Sequential(nn.Unflatten(1, (4 * w, side, side)), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4 * w, spec.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.stem(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHS = {"alexnet": AlexNetSmall, "resnet": ResNetSmall}


def build_extractor(spec: ArchSpec, seed: int = 0) -> nn.Module:
    if spec.arch not in ARCHS:
        raise UserError(f"arch {spec.arch!r}: expected one of {', '.join(ARCHS)}")
    torch.manual_seed(seed)
    return ARCHS[spec.arch](spec)


def save_extractor(model: nn.Module, spec: ArchSpec, path: Path, extra: dict[str, str] | None = None) -> None:
    """Save weights as safetensors; the spec goes into the header metadata."""
    meta = {"recbackdoor_arch": json.dumps(asdict(spec))}
    meta.update(extra or {})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def read_spec(path: Path) -> ArchSpec | None:
    """The ArchSpec stored in a safetensors header, if any (reads the header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    raw = meta.get("recbackdoor_arch")
    if raw is None:
        return None
    try:
        return ArchSpec(**json.loads(raw))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: header metadata 'recbackdoor_arch' is invalid ({exc})") from None


def load_extractor(path: Path, arch: str | None = None) -> tuple[nn.Module, ArchSpec]:
    """Safe-load an extractor: safetensors only (never pickle); every problem is one UserError line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        spec = read_spec(path) or ArchSpec(arch=arch or "alexnet")
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    if arch is not None and arch != spec.arch:
        raise UserError(f"{path}: --arch {arch!r} but the file header says {spec.arch!r}")
    model = build_extractor(spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing tensor {missing[0]!r}" if missing else f"unexpected tensor {unexpected[0]!r}"
        raise UserError(f"{path}: not a {spec.arch} extractor: {what} "
                        f"({len(missing)} missing, {len(unexpected)} unexpected)")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{path}: tensor {key!r} has shape {tuple(state[key].shape)}, "
                            f"{spec.arch} width {spec.width} expects {tuple(tensor.shape)}")
    model.load_state_dict(state)
    model.eval()
    return model, spec
