"""Train the ``irony`` head: the probability that a text is ironic or sarcastic.

    python -m nlp.training.irony --data-dir ../shared/data [--adapter PATH]

Data (deduplicated by a normalised text key; every text of TweetEval irony val is dropped,
since TweetEval's irony split is drawn from SemEval-2018 Task 3):
- TweetEval irony train and SemEval-2018 Task 3 subtask A train (ironic 0/1);
- iSarcasmEval train: tweets labelled sarcastic 0/1 by their authors, plus each sarcastic
  tweet's plain rephrase by its author as a non-sarcastic example (same meaning, no irony:
  it teaches the head the form, not the topic), weight ``--rephrase-weight``.
A seeded 10% of the training rows picks the epoch, the temperature and the decision
threshold (F1 of the ironic class). Reported on TweetEval irony val: F1 of the ironic
class (the official metric) at that threshold, and the ECE of P(ironic).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlp.training.affect_common import (
    MlpOptions,
    adapter_meta,
    add_encoder_args,
    best_threshold,
    binary_ece,
    build_encoder,
    f1,
    fit_temperature,
    holdout_rows,
    mlp_raw,
    sigmoid,
    train_mlp,
    vectors,
)
from nlp.training.affect_data import (
    BinaryText,
    overlap_key,
    read_isarcasmeval,
    read_semeval_irony,
    read_tweeteval_single,
)
from nlp.training.common import seed_everything, write_head

HEAD_VERSION = "irony.v1"


def training_rows(data_dir: Path, held_out: set[str]) -> list[BinaryText]:
    """Every irony/sarcasm training row, deduplicated, minus the held-out texts."""
    tweeteval = [
        BinaryText(r.text, int("irony" in r.labels), "tweeteval")
        for r in read_tweeteval_single(data_dir, "irony", "train")
    ]
    sarcasm, rephrases = read_isarcasmeval(data_dir)
    rows: list[BinaryText] = []
    seen = set(held_out)
    for row in tweeteval + read_semeval_irony(data_dir) + sarcasm + rephrases:
        key = overlap_key(row.text)
        if key and key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_encoder_args(parser)
    parser.add_argument("--out", type=Path, default=None, help="default: HEADS_DIR/irony")
    parser.add_argument("--rephrase-weight", type=float, default=0.5)
    parser.add_argument("--version", default=HEAD_VERSION)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate on TweetEval irony val, write the head; returns the metrics."""
    args = parse_args(argv)
    seed_everything(args.seed)
    started = time.time()
    val = read_tweeteval_single(args.data_dir, "irony", "val")
    held_out = {overlap_key(r.text) for r in val} - {""}
    train = training_rows(args.data_dir, held_out)
    sources = sorted({r.source for r in train})
    print({s: sum(r.source == s for r in train) for s in sources}, flush=True)
    encoder = build_encoder(args)
    x = vectors(encoder, [r.text for r in train], args.cache_dir, "irony-train")
    y = np.array([[r.label] for r in train], dtype=np.float32)
    weight = np.array(
        [args.rephrase_weight if r.source.endswith("rephrase") else 1.0 for r in train],
        dtype=np.float32,
    )
    holdout = holdout_rows(len(x), args.seed)
    weights, epoch = train_mlp(
        x, y, np.ones_like(y), weight, holdout, MlpOptions(dropout=0.3), args.seed
    )
    raw_hold = mlp_raw(weights, x[holdout])
    temperature = fit_temperature(raw_hold, y[holdout], np.ones_like(y[holdout]))
    threshold = best_threshold(sigmoid(raw_hold, temperature)[:, 0], y[holdout, 0])
    x_val = vectors(encoder, [r.text for r in val], args.cache_dir, "irony-val")
    p_val = sigmoid(mlp_raw(weights, x_val), temperature)[:, 0]
    gold = np.array([int("irony" in r.labels) for r in val])
    metrics = {
        "tweeteval_irony_val": {
            "f1_ironic": round(f1(gold, p_val >= threshold), 4),
            "f1_ironic_at_0.5": round(f1(gold, p_val >= 0.5), 4),
            "threshold": threshold,
            "accuracy": round(float(((p_val >= threshold) == gold).mean()), 4),
            "ece": round(binary_ece(p_val, gold), 4),
            "n": len(val),
        }
    }
    print(f"best epoch {epoch}, T {temperature}", json.dumps(metrics, indent=2), flush=True)
    meta = {
        "name": "irony",
        "version": args.version,
        "kind": "sigmoid",
        "labels": ["irony"],
        "input": "mean",
        "temperature": temperature,
        "thresholds": {"irony": threshold},
        "encoder": encoder.name,
        **adapter_meta(encoder),
        "training": {
            "command": "python -m nlp.training.irony",
            "sources": {s: sum(r.source == s for r in train) for s in sources},
            "rephrase_weight": args.rephrase_weight,
            "dropped": "texts of TweetEval irony val (normalised-text match), duplicates",
            "model": f"MLP 384-256-1, BCE; epoch {epoch}, temperature and threshold chosen "
            "on a seeded 10% of the training rows",
            "rows": len(train),
            "seed": args.seed,
            "seconds": round(time.time() - started, 1),
        },
        "metrics": metrics,
    }
    write_head(args.out or args.heads_dir / "irony", weights, meta)
    return metrics


if __name__ == "__main__":
    main()
