"""Shared pieces of the training commands: seeds, metrics, cached embeddings, head files."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlp.encoder import Encoder

FloatArray = npt.NDArray[np.float32]


def seed_everything(seed: int) -> None:
    """Fix every random source a training run touches."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # torch is only needed by the fine-tuning commands
        return
    torch.manual_seed(seed)


def macro_recall(
    gold: Sequence[int] | npt.NDArray[Any],
    predicted: Sequence[int] | npt.NDArray[Any],
    n_classes: int,
) -> float:
    """Mean over classes of the recall (TweetEval sentiment's official metric)."""
    g, p = np.asarray(gold), np.asarray(predicted)
    recalls = [float((p[g == c] == c).mean()) for c in range(n_classes) if (g == c).any()]
    return float(np.mean(recalls))


def per_class_recall(
    gold: Sequence[int] | npt.NDArray[Any],
    predicted: Sequence[int] | npt.NDArray[Any],
    labels: Sequence[str],
) -> dict[str, float]:
    """Recall of each class, by label."""
    g, p = np.asarray(gold), np.asarray(predicted)
    return {
        label: round(float((p[g == c] == c).mean()), 4)
        for c, label in enumerate(labels)
        if (g == c).any()
    }


def expected_calibration_error(
    probs: FloatArray, gold: Sequence[int] | npt.NDArray[Any], bins: int = 15
) -> float:
    """ECE of the top-class probability, equal-width bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(gold)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def cached_text_vectors(
    encoder: Encoder, texts: Sequence[str], cache_dir: Path, tag: str
) -> FloatArray:
    """Mean-pooled text vectors, cached as .npy (outside the repo) keyed by model and texts."""
    digest = hashlib.sha256()
    digest.update(f"{encoder.name}|{encoder.runtime}|{encoder.options.max_length}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    path = cache_dir / f"{tag}-{digest.hexdigest()[:16]}.npy"
    if path.is_file():
        cached: FloatArray = np.load(path)
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    step = 2048
    for start in range(0, len(texts), step):
        chunk = encoder.encode(texts[start : start + step])
        vectors[start : start + len(chunk)] = np.stack([e.text_vector for e in chunk])
        print(f"  embedded {min(start + step, len(texts))}/{len(texts)} {tag}", flush=True)
    np.save(path, vectors)
    return vectors


def write_head(
    out_dir: Path,
    weights: dict[str, npt.NDArray[Any]],
    meta: dict[str, Any],
    dtype: type[np.floating[Any]] = np.float32,
) -> None:
    """Write weights.npz and meta.json of a head.

    ``dtype=np.float16`` halves a wide (ensemble) head on disk; ``nlp.heads`` computes in
    float32 whatever the file holds.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {k: np.asarray(v, dtype) for k, v in weights.items()}
    np.savez_compressed(out_dir / "weights.npz", **arrays)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")


def machine_description() -> dict[str, Any]:
    """What a training run or benchmark ran on: CPUs, CPU model, its int8 dot-product
    instructions, Python and platform.

    The int8 encoder's vectors depend on the CPU's integer instructions: the same export gives
    other vectors with VNNI (VPDPBUSD) than without it (AVX2's saturating VPMADDUBSW), so a
    head trained on one kind of CPU scores a little differently on the other. Heads and
    quality figures therefore record it.
    """
    model, flags = "", set[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return {
        "cpus": os.cpu_count(),
        "cpu": model or platform.processor() or platform.machine(),
        "int8_instructions": vnni or (["avx2 (no VNNI)"] if "avx2" in flags else []),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
