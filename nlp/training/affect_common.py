"""Shared pieces of the affect training commands: encoder, cached vectors, a masked MLP trainer.

Heads are small MLPs over standardised mean-pooled vectors, trained with torch on cached
embeddings (the encoder is frozen here) and written as NumPy weights for ``nlp.heads``.
A mask lets one head learn from data sets that label different subsets of its outputs
(GoEmotions, SemEval E-c and TweetEval emotion all train the one ``emotions`` head).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nlp.encoder import Encoder, EncoderOptions
from nlp.heads import fold_standardisation
from nlp.training.common import cached_text_vectors

FloatArray = npt.NDArray[np.float32]
_TMP = Path("/tmp/undertone-train")  # noqa: S108 - a cache of our own files, not a secret


def add_encoder_args(parser: argparse.ArgumentParser) -> None:
    """Options every affect training command shares."""
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--heads-dir", type=Path, default=Path("models/heads"))
    parser.add_argument("--encoder-dir", type=Path, default=None)
    parser.add_argument("--adapter", type=Path, default=None, help="encoder adapter to merge")
    parser.add_argument("--cache-dir", type=Path, default=_TMP / "cache")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-length", type=int, default=128)


def build_encoder(args: argparse.Namespace) -> Encoder:
    """The served encoder (ONNX int8 unless ``args.runtime`` says otherwise).

    The ONNX export is made once per adapter, outside the repository, and the encoder's
    name carries the adapter's sha256: neither an export nor a vector cache of another
    encoder is ever reused.
    """
    from nlp.onnx_export import adapter_sha256
    from nlp.training.sentiment import default_encoder_dir, ensure_onnx

    encoder_dir = args.encoder_dir or default_encoder_dir()
    sha = adapter_sha256(args.adapter) if args.adapter else None
    runtime: Literal["onnx-int8", "onnx", "torch"] = getattr(args, "runtime", "onnx-int8")
    if runtime == "torch":
        model_dir = encoder_dir
    else:
        onnx_dir = _TMP / (f"onnx-{sha[:12]}" if sha else "onnx")
        model_dir = ensure_onnx(encoder_dir, onnx_dir, args.adapter)
    name = "all-MiniLM-L6-v2" + (f"+adapter-{sha[:12]}" if sha else "")
    return Encoder(
        model_dir, EncoderOptions(runtime=runtime, max_length=args.max_length, batch_size=64),
        name=name,
    )  # fmt: skip


def vectors(encoder: Encoder, texts: Sequence[str], cache_dir: Path, tag: str) -> FloatArray:
    """Cached mean-pooled vectors (the cache key holds the encoder name, hence the adapter)."""
    return cached_text_vectors(encoder, list(texts), cache_dir, f"affect-{tag}")


def adapter_meta(encoder: Encoder) -> dict[str, Any]:
    """The meta.json entry that binds a head to the encoder it was trained on."""
    return {"requires_adapter_sha256": encoder.adapter_sha256} if encoder.adapter_sha256 else {}


@dataclass(frozen=True)
class MlpOptions:
    """The head's shape and training schedule."""

    hidden: int = 256
    dropout: float = 0.2
    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    loss: str = "bce"  # "bce" (sigmoid outputs) or "mse" (regression)


def train_mlp(
    x: FloatArray,
    y: FloatArray,
    mask: FloatArray,
    weight: FloatArray,
    holdout: npt.NDArray[np.int64],
    options: MlpOptions,
    seed: int,
) -> tuple[dict[str, FloatArray], int]:
    """Train on every row not in ``holdout``; keep the epoch with the lowest holdout loss.

    Args:
        x: input vectors (rows).
        y: targets (rows x outputs), any value where ``mask`` is 0.
        mask: 1 where the row's source labels that output.
        weight: per-row loss weight.
        holdout: rows used only to pick the epoch.
        options: shape and schedule.
        seed: torch seed.

    Returns:
        The head's weights (``mean``, ``scale``, ``W0``, ``b0``, ``W1``, ``b1``) and the epoch.
    """
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a small MLP: more threads only contend on shared cores
    train_rows = np.setdiff1d(np.arange(len(x)), holdout)
    mean = x[train_rows].mean(axis=0)
    scale = x[train_rows].std(axis=0) + 1e-6
    z = torch.tensor((x - mean) / scale, dtype=torch.float32)
    yt, mt = torch.tensor(y, dtype=torch.float32), torch.tensor(mask, dtype=torch.float32)
    wt = torch.tensor(weight, dtype=torch.float32)
    model = torch.nn.Sequential(
        torch.nn.Dropout(options.dropout),
        torch.nn.Linear(x.shape[1], options.hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(options.dropout),
        torch.nn.Linear(options.hidden, y.shape[1]),
    )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )

    def loss_of(rows: Any) -> Any:
        out = model(z[rows])
        if options.loss == "bce":
            each = torch.nn.functional.binary_cross_entropy_with_logits(
                out, yt[rows], reduction="none"
            )
        else:
            each = (out - yt[rows]) ** 2
        each = each * mt[rows] * wt[rows, None]
        return each.sum() / torch.clamp((mt[rows] * wt[rows, None]).sum(), min=1e-6)

    generator = np.random.default_rng(seed)
    best: tuple[float, int, dict[str, Any]] = (float("inf"), 0, {})
    hold = torch.tensor(holdout)
    for epoch in range(1, options.epochs + 1):
        model.train()
        order = generator.permutation(train_rows)
        for start in range(0, len(order), options.batch_size):
            optimiser.zero_grad()
            loss_of(torch.tensor(order[start : start + options.batch_size])).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            held = float(loss_of(hold))
        if held < best[0]:
            best = (held, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    weights = {
        "mean": mean.astype(np.float32),
        "scale": scale.astype(np.float32),
        "W0": state["1.weight"].T.copy(),
        "b0": state["1.bias"].copy(),
        "W1": state["4.weight"].T.copy(),
        "b1": state["4.bias"].copy(),
    }
    return weights, best[1]


def train_mlp_bagged(
    x: FloatArray,
    y: FloatArray,
    mask: FloatArray,
    weight: FloatArray,
    options: MlpOptions,
    seed: int,
    members: int,
    calibrate: Callable[[FloatArray, npt.NDArray[np.int64]], float] | None = None,
) -> tuple[dict[str, FloatArray], list[dict[str, float]]]:
    """A bagged ensemble of ``members`` MLPs, returned as one wider MLP.

    Member ``i`` trains with seed ``seed + i`` and picks its epoch on its own seeded 10% of the
    rows (``holdout_rows(n, seed + i)``), so the members differ in data as well as in
    initialisation. ``calibrate(holdout_logits, holdout_rows)`` gives a member's temperature on
    its own held-out rows. The average of the members' (temperature-scaled) outputs is exactly
    one MLP whose hidden layer is the members' hidden layers side by side: each member's
    standardisation is folded into its first layer, and its last layer is divided by
    ``members x temperature``. So the head file keeps the ``W0, b0, W1, b1`` shape and serving
    costs one wider matrix product, still far below the encoder pass.

    Returns:
        The folded weights (no ``mean``/``scale``) and each member's epoch and temperature.
    """
    first_w, first_b, last_w = [], [], []
    last_b = np.zeros(y.shape[1], np.float64)
    members_info: list[dict[str, float]] = []
    for member in range(members):
        member_seed = seed + member
        holdout = holdout_rows(len(x), member_seed)
        weights, epoch = train_mlp(x, y, mask, weight, holdout, options, member_seed)
        temperature = calibrate(mlp_raw(weights, x[holdout]), holdout) if calibrate else 1.0
        # An input that never varied in training (some pooled dimensions are constant) was
        # standardised to 0 with a scale of ~1e-6: it contributed nothing, and folding 1/scale
        # into the weights would only overflow, so its row is left out.
        live = weights["scale"] > 1e-4
        first, first_bias = fold_standardisation(
            np.where(live[:, None], weights["W0"], 0.0),
            weights["b0"],
            np.where(live, weights["mean"], 0.0),
            np.where(live, weights["scale"], 1.0),
        )
        first_w.append(first)
        first_b.append(first_bias)
        last_w.append(weights["W1"] / (members * temperature))
        last_b += weights["b1"] / (members * temperature)
        members_info.append({"seed": member_seed, "epoch": epoch, "temperature": temperature})
        print(f"member {member + 1}/{members}: epoch {epoch}, T {temperature}", flush=True)
    folded = {
        "W0": np.concatenate(first_w, axis=1).astype(np.float32),
        "b0": np.concatenate(first_b).astype(np.float32),
        "W1": np.concatenate(last_w, axis=0).astype(np.float32),
        "b1": last_b.astype(np.float32),
    }
    return folded, members_info


def mlp_raw(weights: dict[str, FloatArray], x: FloatArray) -> FloatArray:
    """The head's last-layer outputs in NumPy (what ``nlp.heads.Head.raw`` computes)."""
    z = (x - weights["mean"]) / weights["scale"] if "mean" in weights else x
    hidden = np.maximum(z @ weights["W0"] + weights["b0"], 0.0)
    out: FloatArray = (hidden @ weights["W1"] + weights["b1"]).astype(np.float32)
    return out


def sigmoid(logits: FloatArray, temperature: float = 1.0) -> FloatArray:
    """Element-wise logistic function of logits / temperature."""
    result: FloatArray = (1.0 / (1.0 + np.exp(-logits / temperature))).astype(np.float32)
    return result


def fit_temperature(logits: FloatArray, gold: FloatArray, mask: FloatArray) -> float:
    """The temperature minimising the masked binary log-loss (grid search, 0.5 to 3)."""
    best = (float("inf"), 1.0)
    for t in np.arange(0.5, 3.01, 0.05):
        p = np.clip(sigmoid(logits, float(t)), 1e-7, 1 - 1e-7)
        nll = -(gold * np.log(p) + (1 - gold) * np.log(1 - p))
        value = float((nll * mask).sum() / max(mask.sum(), 1.0))
        if value < best[0]:
            best = (value, float(t))
    return round(best[1], 2)


def binary_ece(prob: FloatArray, gold: FloatArray, bins: int = 15) -> float:
    """ECE of P(label) against the 0/1 outcome, equal-width bins (pooled over all entries)."""
    p, g = np.asarray(prob).ravel(), np.asarray(gold).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (p > low) & (p <= high) if low > 0 else (p >= low) & (p <= high)
        if inside.any():
            ece += inside.mean() * abs(g[inside].mean() - p[inside].mean())
    return float(ece)


def f1(gold: npt.NDArray[Any], predicted: npt.NDArray[Any]) -> float:
    """F1 of the positive class."""
    tp = float((gold.astype(bool) & predicted.astype(bool)).sum())
    denominator = float(gold.astype(bool).sum() + predicted.astype(bool).sum())
    return 2 * tp / denominator if denominator else 0.0


def best_threshold(prob: FloatArray, gold: npt.NDArray[Any]) -> float:
    """The threshold in 0.05..0.95 (step 0.01) maximising F1 of the positive class."""
    grid = np.arange(0.05, 0.951, 0.01)
    scores = [f1(gold, prob >= t) for t in grid]
    return round(float(grid[int(np.argmax(scores))]), 2)


def holdout_rows(n: int, seed: int, fraction: float = 0.1) -> npt.NDArray[np.int64]:
    """A seeded slice of the training rows for epochs, temperature and thresholds."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: max(1, int(n * fraction))]).astype(np.int64)
