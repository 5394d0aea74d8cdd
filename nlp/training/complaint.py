"""Train the complaint head ("is this text a complaint, stated or not") and measure it under shift.

    python -m nlp.training.complaint --data-dir ../shared/data --out models/heads/complaint

Sources and how their labels map onto the question: ``nlp.training.complaint_data.SOURCES``.
The head is a class-balanced, sample-weighted logistic regression on standardised mean-pooled
vectors (the sentiment head's ``input`` convention), its C chosen on a seeded slice of the
training rows and its temperature fitted on another slice (never on a test set).

Three measurements, each training on rows disjoint from its test:
- ``airline_unseen_companies`` (the shipped head): trained on everything except the tweets
  to Delta and Southwest, tested on those tweets (customer tweets to companies never seen);
- ``airline_unseen_companies_check``: the same with United and American held out instead;
- ``shift_no_airline``: trained without any airline tweet, tested on all of them;
- ``shift_no_reviews``: trained without the review sentences, tested on all of them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlp.encoder import Encoder
from nlp.training.affect_common import build_encoder
from nlp.training.common import (
    cached_text_vectors,
    expected_calibration_error,
    seed_everything,
    write_head,
)
from nlp.training.complaint_data import (
    CHECK_AIRLINES,
    HELD_OUT_AIRLINES,
    SOURCES,
    Example,
    read_all,
)

HEAD_VERSION = "complaint.v1"
_TMP = Path("/tmp/undertone-train")  # noqa: S108 - a cache of our own files, not a secret
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("models/heads/complaint"))
    parser.add_argument("--encoder-dir", type=Path, default=None)
    parser.add_argument("--adapter", type=Path, default=None, help="encoder adapter to merge")
    parser.add_argument("--runtime", default="onnx-int8", choices=["onnx-int8", "onnx", "torch"])
    parser.add_argument("--cache-dir", type=Path, default=_TMP / "cache")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--version", default=HEAD_VERSION)
    return parser.parse_args(argv)


def embed(encoder: Encoder, examples: Sequence[Example], cache_dir: Path) -> FloatArray:
    """Vectors of every example, cached per source."""
    out = np.zeros((len(examples), encoder.dim), dtype=np.float32)
    sources = sorted({e.source for e in examples})
    for source in sources:
        rows = [i for i, e in enumerate(examples) if e.source == source]
        texts = [examples[i].text for i in rows]
        tag = "s17" if source == "semeval" else f"complaint-{source}"
        out[rows] = cached_text_vectors(encoder, texts, cache_dir, tag)
    return out


def binary_report(gold: IntArray, prob: FloatArray, threshold: float = 0.5) -> dict[str, Any]:
    """Macro-F1, per-class precision/recall/F1, accuracy and ECE of P(complaint)."""
    predicted = (prob >= threshold).astype(np.int64)
    per_class: dict[str, dict[str, float]] = {}
    for label, name in ((1, "complaint"), (0, "not_complaint")):
        tp = float(((predicted == label) & (gold == label)).sum())
        precision = tp / max(float((predicted == label).sum()), 1.0)
        recall = tp / max(float((gold == label).sum()), 1.0)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": int((gold == label).sum()),
        }
    two = np.stack([1.0 - prob, prob], axis=1).astype(np.float32)
    return {
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4),
        "accuracy": round(float((predicted == gold).mean()), 4),
        "ece": round(expected_calibration_error(two, gold), 4),
        "per_class": per_class,
        "n": len(gold),
    }


class ComplaintModel:
    """Standardiser + logistic regression + temperature: the head's weights."""

    def __init__(
        self,
        mean: FloatArray,
        scale: FloatArray,
        coef: FloatArray,
        bias: float,
        temperature: float,
        c: float,
    ) -> None:
        self.mean, self.scale, self.coef, self.bias = mean, scale, coef, bias
        self.temperature, self.c = temperature, c

    def logits(self, x: FloatArray) -> FloatArray:
        """Uncalibrated logits."""
        z = (x - self.mean) / self.scale
        out: FloatArray = (z @ self.coef + self.bias).astype(np.float32)
        return out

    def prob(self, x: FloatArray) -> FloatArray:
        """Calibrated P(complaint)."""
        out: FloatArray = (1.0 / (1.0 + np.exp(-self.logits(x) / self.temperature))).astype(
            np.float32
        )
        return out

    def weights(self) -> dict[str, Any]:
        """weights.npz arrays (the NumPy head format)."""
        return {
            "mean": self.mean,
            "scale": self.scale,
            "W0": self.coef.reshape(-1, 1),
            "b0": np.array([self.bias], np.float32),
        }


def _fit_lr(z: FloatArray, y: IntArray, w: FloatArray, c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    return model.fit(z, y, sample_weight=w)


def _fit_temperature(logits: FloatArray, y: IntArray) -> float:
    """The temperature minimising log-loss on a calibration slice (grid search, robust)."""
    best, best_loss = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.25), np.log(4.0), 61)):
        p = np.clip(1.0 / (1.0 + np.exp(-logits / t)), 1e-6, 1 - 1e-6)
        loss = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def fit(x: FloatArray, y: IntArray, w: FloatArray, seed: int) -> ComplaintModel:
    """C on one 10% slice, temperature on another, then refit on all but the calibration slice."""
    order = np.random.default_rng(seed).permutation(len(y))
    cut = len(order) // 10
    select, calibrate, rest = order[:cut], order[cut : 2 * cut], order[2 * cut :]
    mean = x[rest].mean(axis=0)
    scale = x[rest].std(axis=0) + 1e-6
    z = (x - mean) / scale
    scores: dict[float, float] = {}
    for c in (0.01, 0.1, 1.0):
        model = _fit_lr(z[rest], y[rest], w[rest], c, seed)
        prob = model.predict_proba(z[select])[:, 1].astype(np.float32)
        scores[c] = binary_report(y[select], prob)["macro_f1"]
    best_c = max(scores, key=lambda c: scores[c])
    train = np.concatenate([select, rest])
    model = _fit_lr(z[train], y[train], w[train], best_c, seed)
    coef = model.coef_[0].astype(np.float32)
    bias = float(model.intercept_[0])
    temperature = _fit_temperature((z[calibrate] @ coef + bias).astype(np.float32), y[calibrate])
    return ComplaintModel(mean, scale, coef, bias, temperature, best_c)


def experiment(
    examples: Sequence[Example], x: FloatArray, train: IntArray, test: IntArray, seed: int
) -> tuple[ComplaintModel, dict[str, Any]]:
    """Fit on `train` rows, report on `test` rows."""
    y = np.array([e.label for e in examples], dtype=np.int64)
    w = np.array([e.weight for e in examples], dtype=np.float32)
    model = fit(x[train], y[train], w[train], seed)
    report = binary_report(y[test], model.prob(x[test]))
    report["train_rows"] = len(train)
    report["train_sources"] = sorted({examples[i].source for i in train})
    report["C"], report["temperature"] = model.c, round(model.temperature, 4)
    return model, report


def splits(examples: Sequence[Example]) -> dict[str, tuple[IntArray, IntArray]]:
    """The three train/test splits (indices into `examples`)."""
    idx = np.arange(len(examples))
    source = np.array([e.source for e in examples])
    group = np.array([e.group for e in examples])
    unseen = (source == "airline") & np.isin(group, HELD_OUT_AIRLINES)
    check = (source == "airline") & np.isin(group, CHECK_AIRLINES)
    return {
        "airline_unseen_companies": (idx[~unseen], idx[unseen]),
        "airline_unseen_companies_check": (idx[~check], idx[check]),
        "shift_no_airline": (idx[source != "airline"], idx[source == "airline"]),
        "shift_no_reviews": (idx[source != "reviews"], idx[source == "reviews"]),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the three measurements and write the shipped head (the first one's model)."""
    args = parse_args(argv)
    seed_everything(args.seed)
    started = time.time()
    examples = read_all(args.data_dir, args.seed)
    print(f"{len(examples)} examples", flush=True)
    encoder = build_encoder(args)
    x = embed(encoder, examples, args.cache_dir)
    metrics: dict[str, Any] = {}
    shipped: ComplaintModel | None = None
    for name, (train, test) in splits(examples).items():
        model, report = experiment(examples, x, train, test, args.seed)
        metrics[name] = report
        print(name, json.dumps(report), flush=True)
        if name == "airline_unseen_companies":
            shipped = model
    assert shipped is not None
    meta = {
        "name": "complaint",
        "version": args.version,
        "kind": "sigmoid",
        "labels": ["complaint"],
        "input": "mean",
        "temperature": round(shipped.temperature, 4),
        "thresholds": {"complaint": 0.5},
        "encoder": encoder.name,
        "training": {
            "command": "python -m nlp.training.complaint",
            "question": "is this text a complaint, stated or not",
            "sources": SOURCES,
            "never_trained_on": f"airline tweets to {', '.join(HELD_OUT_AIRLINES)}",
            "rows": len(splits(examples)["airline_unseen_companies"][0]),
            "model": f"logistic regression, class_weight=balanced, sample weights per source, "
            f"C={shipped.c} (chosen on a seeded 10% slice), temperature fitted on another "
            "seeded 10% slice",
            "encoder_runtime": args.runtime,
            "max_length": args.max_length,
            "seed": args.seed,
            "seconds": round(time.time() - started, 1),
        },
        "metrics": metrics,
    }
    if encoder.adapter_sha256 is not None:
        meta["requires_adapter_sha256"] = encoder.adapter_sha256
    write_head(args.out, shipped.weights(), meta)
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
