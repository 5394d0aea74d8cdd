"""Low-rank adapters (LoRA) on the encoder's Linear layers, and their export as adapter.npz.

Only the adapters (and the head) train; the base weights stay frozen, so the shipped delta
is a few hundred KB and `nlp.onnx_export.merge_adapter` folds it into the pinned weights at
set-up time (``W += scaling * B @ A``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# The Linear layers of a BERT block that get adapters.
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


class LoraLinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update, B initialised to zero (no-op start)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.randn(rank, base.in_features) / rank**0.5 * 0.1)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Base output plus the scaled low-rank update."""
        update: torch.Tensor = (x @ self.lora_A.T) @ self.lora_B.T
        result: torch.Tensor = self.base(x) + self.scaling * update
        return result


def add_lora(model: Any, layers: Sequence[int], rank: int, alpha: float) -> dict[str, LoraLinear]:
    """Freeze the model and wrap the target Linears of the given layers; returns them by name."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped: dict[str, LoraLinear] = {}
    for index in layers:
        block = model.encoder.layer[index]
        for target in TARGETS:
            parent_path, _, attr = target.rpartition(".")
            parent = block.get_submodule(parent_path)
            lora = LoraLinear(getattr(parent, attr), rank, alpha)
            setattr(parent, attr, lora)
            wrapped[f"encoder.layer.{index}.{target}.weight"] = lora
    return wrapped


def save_adapter(wrapped: dict[str, LoraLinear], path: Path) -> int:
    """Write adapter.npz (float32) in merge_adapter's format; returns its size in bytes."""
    scalings = {round(w.scaling, 8) for w in wrapped.values()}
    if len(scalings) != 1:
        raise ValueError("one scaling per adapter file")
    arrays: dict[str, Any] = {"scaling": np.float32(scalings.pop())}
    for name, lora in wrapped.items():
        arrays[f"{name}::lora_A"] = lora.lora_A.detach().numpy().astype(np.float32)
        arrays[f"{name}::lora_B"] = lora.lora_B.detach().numpy().astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path.stat().st_size


def add_finetune_args(p: argparse.ArgumentParser, cache_dir: Path) -> None:
    """Options every LoRA fine-tuning command shares."""
    p.add_argument("--encoder-dir", type=Path, default=None)
    p.add_argument("--cache-dir", type=Path, default=cache_dir)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--layers", default="0,1,2,3,4,5")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--distill", type=float, default=1.0, help="weight of the 1-cos term")
    p.add_argument("--threads", type=int, default=2)


def length_bucketed_batches(
    lengths: np.ndarray, size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Row batches, length-sorted within shuffled pools of 50 batches: little padding, still
    a random order."""
    order = rng.permutation(len(lengths))
    pool = size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches
