"""Residual ANNs for TTRBR conversion, stored as plain data.

A model file is `torch.save({"format", "arch", "state_dict"})`: the architecture is a dict of
numbers (`ResNetSpec`), the weights a state_dict, so `torch.load(path, weights_only=True)` reads it
and no pickled user code ever runs. `build_ann(arch)` rebuilds the module from the dict, after
`check_resnet_size` has checked what the dict asks for against the memory budget.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikestack.errors import DataError, OptionsError, SpikestackError
from spikestack.memory import check_allocation, format_bytes, memory_budget
from spikestack.outputs import write_atomically

FORMAT = "spikestack-ann/1"
BLOCK_MODULE_BYTES = 32 * 2**10  # measured: one BasicBlock's eight torch modules, before any weight


@dataclass(frozen=True)
class ResNetSpec:
    """A narrow post-activation ResNet: stem conv, `blocks` basic blocks over `stages` stages (each
    later stage halves the resolution and doubles the width), global average pool, linear head."""

    in_shape: tuple[int, int, int] = (1, 28, 28)
    classes: int = 10
    width: int = 8
    blocks: int = 20
    stages: int = 2
    stem_stride: int = 2

    def __post_init__(self):
        if len(self.in_shape) != 3:
            raise OptionsError(f"ResNetSpec field 'in_shape' must be (C, H, W), got {self.in_shape}")
        for name in ("in_shape", "classes", "width", "blocks", "stages", "stem_stride"):
            value = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (value if name == "in_shape" else (value,))):
                raise OptionsError(f"ResNetSpec field '{name}' must hold positive integers, got {value!r}")
        if self.blocks < self.stages:
            raise OptionsError(f"need at least one block per stage, got {self.blocks} blocks for {self.stages} stages")

    def to_dict(self) -> dict:
        return {"kind": "resnet", **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}}

    @classmethod
    def from_dict(cls, arch: dict) -> "ResNetSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(arch) - fields - {"kind"}
        if arch.get("kind") != "resnet" or unknown:
            raise DataError(f"not a resnet description: kind={arch.get('kind')!r}, unknown keys {sorted(unknown)}")
        values = {}
        for key, value in ((k, v) for k, v in arch.items() if k != "kind"):
            items = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
                raise DataError(f"resnet description field '{key}' holds non-integer values: {value!r}")
            values[key] = tuple(int(v) for v in items) if isinstance(value, (list, tuple)) else int(value)
        return cls(**values)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); a 1x1 conv shortcut where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: deep stacks train from step one
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def check_resnet_size(spec: ResNetSpec) -> None:
    """Refuse, before building it, a ResNet whose weights and modules would exceed the memory budget.
    Counted stage by stage, stopping once over budget: the width doubles each stage, so 10^7 stages
    would otherwise be a count with millions of digits."""
    budget = memory_budget()
    bn = lambda ch: 4 * ch + 1  # noqa: E731  (weight, bias, running mean and variance, batch count)
    weights, channels, at_least = spec.in_shape[0] * spec.width * 9 + bn(spec.width), spec.width, ""
    for stage in range(spec.stages):
        count = spec.blocks // spec.stages + (stage < spec.blocks % spec.stages)
        out = spec.width * 2 ** stage
        shortcut = channels * out + bn(out) if stage > 0 or channels != out else 0
        weights += channels * out * 9 + out * out * 9 + 2 * bn(out) + shortcut + (count - 1) * (18 * out * out + 2 * bn(out))
        channels = out
        if weights * 4 > budget:
            at_least = "at least "
            break
    weights += channels * spec.classes + spec.classes
    check_allocation(f"a ResNet of width {spec.width}, {spec.blocks:,} blocks over {spec.stages:,} stages and "
                     f"{spec.classes:,} classes: {at_least}{weights:,} weights x 4 bytes + {spec.blocks:,} blocks x "
                     f"{format_bytes(BLOCK_MODULE_BYTES)} of torch modules", weights * 4 + spec.blocks * BLOCK_MODULE_BYTES)


def build_resnet(spec: ResNetSpec) -> nn.Sequential:
    check_resnet_size(spec)
    c, h, w = spec.in_shape
    layers: list[nn.Module] = [nn.Conv2d(c, spec.width, 3, spec.stem_stride, 1, bias=False), nn.BatchNorm2d(spec.width), nn.ReLU()]
    h, w = (h - 1) // spec.stem_stride + 1, (w - 1) // spec.stem_stride + 1
    channels = spec.width
    per_stage = [spec.blocks // spec.stages + (s < spec.blocks % spec.stages) for s in range(spec.stages)]
    for stage, count in enumerate(per_stage):
        out = spec.width * 2 ** stage
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(channels, out, stride))
            channels, h, w = out, (h - 1) // stride + 1, (w - 1) // stride + 1
    layers += [nn.AvgPool2d((h, w)), nn.Flatten(), nn.Linear(channels, spec.classes)]
    return nn.Sequential(*layers)


def build_ann(arch: dict) -> nn.Module:
    """The module an architecture description names (only "resnet" so far)."""
    if not isinstance(arch, dict) or arch.get("kind") != "resnet":
        raise DataError(f"unknown architecture description {arch!r}: expected a dict with kind 'resnet'")
    return build_resnet(ResNetSpec.from_dict(arch))


def save_ann(model: nn.Module, arch: dict, path: str | os.PathLike) -> Path:
    """Write weights + architecture as tensors and plain values (readable with weights_only=True)."""
    blob = {"format": FORMAT, "arch": arch, "state_dict": model.state_dict()}
    return write_atomically(path, lambda tmp: torch.save(blob, tmp))


def load_ann(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a model written by `save_ann`; never unpickles code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    try:
        # mmap: the tensors stay in the file until load_state_dict copies them into a checked model
        blob = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        if "GLOBAL" in str(exc):  # the weights-only unpickler met a class or function: it would run code
            raise DataError(f"{path}: refused by the weights-only loader, it holds Python objects beyond "
                            "tensors and plain containers (write models with save_ann)") from None
        raise DataError(f"{path}: not a readable weights-only torch file (damaged, truncated or not "
                        f"written by torch.save: {type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DataError(f"{path}: not a spikestack model file (expected format {FORMAT!r})")
    try:  # the stored architecture is checked, against the memory budget too, before anything is built
        model = build_ann(blob.get("arch"))
    except SpikestackError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: weights do not fit the described architecture ({str(exc).splitlines()[0][:120]})") from None
    return model.eval(), blob["arch"]
