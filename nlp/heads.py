"""Small classifier heads over the shared encoder's vectors, run in NumPy (no torch to serve).

A head lives in ``models/heads/<name>/``: ``weights.npz`` and ``meta.json``. The weights are
a small MLP: ``W0, b0, W1, b1, ...`` applied as ``x @ W + b`` with ReLU between layers
(a single ``W0, b0`` is a linear head), optionally after standardising the input with
``mean``/``scale``. ``meta.json`` names the head's kind, which picks the output function:

- ``softmax``: one label out of several (sentiment),
- ``sigmoid``: independent yes/no labels with per-label thresholds (emotions, irony),
- ``regression``: values clipped to ``meta.range`` (intensity).

New kinds register with :func:`register_kind`; adding a head never adds an encoder run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlp.errors import ModelLoadError

FloatArray = npt.NDArray[np.float32]
OutputFn = Callable[[FloatArray, "HeadMeta"], FloatArray]


def _softmax(logits: FloatArray, meta: HeadMeta) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted / meta.temperature)
    result: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return result


def _sigmoid(logits: FloatArray, meta: HeadMeta) -> FloatArray:
    result: FloatArray = (1.0 / (1.0 + np.exp(-logits / meta.temperature))).astype(np.float32)
    return result


def _regression(values: FloatArray, meta: HeadMeta) -> FloatArray:
    low, high = meta.value_range
    result: FloatArray = np.clip(values, low, high).astype(np.float32)
    return result


_KINDS: dict[str, OutputFn] = {
    "softmax": _softmax,
    "sigmoid": _sigmoid,
    "regression": _regression,
}


def register_kind(kind: str, output: OutputFn) -> None:
    """Add a head kind: a function from raw outputs (rows) to scores."""
    _KINDS[kind] = output


def head_kinds() -> tuple[str, ...]:
    """The registered head kinds."""
    return tuple(_KINDS)


@dataclass(frozen=True)
class HeadMeta:
    """What ``meta.json`` says about a head."""

    name: str
    version: str  # a versioned registry name, e.g. "sentiment.v1"
    kind: str
    labels: tuple[str, ...]
    # Which vector the head reads: "mean" (raw mean-pooled) or "unit" (L2-normalised).
    input: str = "mean"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    temperature: float = 1.0  # calibration: logits are divided by it before the output fn
    value_range: tuple[float, float] = (0.0, 1.0)
    extra: Mapping[str, Any] = field(default_factory=dict)  # training data, metrics, ...

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadMeta:
        """Parse a meta.json object; unknown keys are kept in ``extra``."""
        known = {"name", "version", "kind", "labels", "input", "thresholds", "temperature"}
        try:
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                kind=str(data["kind"]),
                labels=tuple(str(label) for label in data["labels"]),
                input=str(data.get("input", "mean")),
                thresholds={str(k): float(v) for k, v in data.get("thresholds", {}).items()},
                temperature=float(data.get("temperature", 1.0)),
                value_range=tuple(data.get("range", (0.0, 1.0))),
                extra={k: v for k, v in data.items() if k not in known | {"range"}},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"invalid head meta.json: {e}") from e


def fold_standardisation(
    weight: FloatArray, bias: FloatArray, mean: FloatArray, scale: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """A first layer that reads raw rows: ``(x - mean) / scale @ W + b = x @ W' + b'``."""
    folded_weight = (weight / scale[:, None]).astype(np.float32)
    folded_bias = (bias - (mean / scale) @ weight).astype(np.float32)
    return folded_weight, folded_bias


class Head:
    """One trained head: vectors in, scores out (one row per vector, one column per label)."""

    def __init__(self, meta: HeadMeta, weights: Mapping[str, npt.NDArray[Any]]) -> None:
        if meta.kind not in _KINDS:
            raise ModelLoadError(f"head {meta.name}: unknown kind {meta.kind!r}")
        self.meta = meta
        layers: list[tuple[FloatArray, FloatArray]] = []
        while f"W{len(layers)}" in weights:
            i = len(layers)
            layers.append(
                (
                    np.asarray(weights[f"W{i}"], np.float32),
                    np.asarray(weights[f"b{i}"], np.float32),
                )
            )
        if not layers:
            raise ModelLoadError(f"head {meta.name}: weights.npz has no W0/b0")
        if layers[-1][0].shape[1] != len(meta.labels):
            raise ModelLoadError(
                f"head {meta.name}: {layers[-1][0].shape[1]} outputs for {len(meta.labels)} labels"
            )
        self._layers = layers
        self._mean = np.asarray(weights["mean"], np.float32) if "mean" in weights else None
        self._scale = np.asarray(weights["scale"], np.float32) if "scale" in weights else None
        self.input_dim = int(layers[0][0].shape[0])
        # Standardising folded into the first layer, (x - m) / s @ W + b = x @ (W / s) + b',
        # so inference makes one pass over the input rows instead of three.
        self._folded = list(layers)
        if self._mean is not None and self._scale is not None:
            self._folded[0] = fold_standardisation(*layers[0], self._mean, self._scale)

    @classmethod
    def load(cls, directory: Path) -> Head:
        """Load ``weights.npz`` and ``meta.json`` from a head directory."""
        meta_path, weights_path = directory / "meta.json", directory / "weights.npz"
        if not meta_path.is_file() or not weights_path.is_file():
            raise ModelLoadError(f"{directory} needs meta.json and weights.npz")
        meta = HeadMeta.from_json(json.loads(meta_path.read_text()))
        with np.load(weights_path) as data:
            weights = {k: data[k] for k in data.files}
        return cls(meta, weights)

    def arrays(self) -> dict[str, FloatArray]:
        """The weights as stored in weights.npz (for fine-tuning from this head)."""
        arrays: dict[str, FloatArray] = {}
        for i, (weight, bias) in enumerate(self._layers):
            arrays[f"W{i}"], arrays[f"b{i}"] = weight.copy(), bias.copy()
        if self._mean is not None and self._scale is not None:
            arrays["mean"], arrays["scale"] = self._mean.copy(), self._scale.copy()
        return arrays

    @property
    def name(self) -> str:
        """The head's name (its key in results)."""
        return self.meta.name

    def raw(self, vectors: FloatArray) -> FloatArray:
        """The last layer's outputs (logits or values) for rows of vectors."""
        x = np.asarray(vectors, dtype=np.float32)
        for i, (weight, bias) in enumerate(self._folded):
            x = x @ weight + bias
            if i < len(self._folded) - 1:
                np.maximum(x, 0.0, out=x)
        return x

    def predict(self, vectors: FloatArray) -> FloatArray:
        """Scores for rows of vectors: probabilities (softmax, sigmoid) or values."""
        return _KINDS[self.meta.kind](self.raw(vectors), self.meta)


def load_heads(heads_dir: Path, names: Sequence[str] | None = None) -> dict[str, Head]:
    """Every head under ``heads_dir`` (one sub-directory each), or only those named.

    Args:
        heads_dir: a directory of head directories (e.g. models/heads).
        names: heads to load; None loads every directory holding a meta.json.

    Returns:
        Heads by name, in name order.
    """
    if not heads_dir.is_dir():
        raise ModelLoadError(f"heads directory {heads_dir} does not exist")
    wanted = sorted(names) if names is not None else None
    dirs = sorted(p for p in heads_dir.iterdir() if (p / "meta.json").is_file())
    heads = {head.name: head for head in (Head.load(p) for p in dirs)}
    if wanted is not None:
        missing = [n for n in wanted if n not in heads]
        if missing:
            raise ModelLoadError(f"heads {missing} not found in {heads_dir}")
        heads = {n: heads[n] for n in wanted}
    return heads


ADAPTER_DIRNAME = "encoder-adapter"


def encoder_adapter(heads_dir: Path) -> Path | None:
    """The shipped encoder adapter (``<heads_dir>/encoder-adapter/adapter.npz``), if any.

    Heads trained on the adapted encoder record its sha256; set-up merges this file into
    the ONNX export (``export_encoder(adapter=...)``) and the torch runtime merges it at load.
    """
    path = heads_dir / ADAPTER_DIRNAME / "adapter.npz"
    return path if path.is_file() else None
