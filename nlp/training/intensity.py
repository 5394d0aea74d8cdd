"""Train the ``intensity`` head: how intense anger, fear, joy and sadness are, in [0, 1].

    python -m nlp.training.intensity --data-dir ../shared/data [--adapter PATH]

Data: SemEval-2018 Task 1 EI-reg train, one file per emotion; each tweet supervises only its
emotion's output (a masked squared error). Reported: Pearson r per emotion on EI-reg dev
(the official metric) and their mean. The head is a bagged ensemble (``--members``, default
8) of MLPs 384-512-4, each picking its epoch on its own seeded 10% of the training rows,
folded into one MLP 384-4096-4 (``affect_common.train_mlp_bagged``), stored in float16. One MLP
384-256-4 (``intensity.v2``) reached mean r 0.692; the ensemble was chosen over single MLPs of
256/512/1024 units and over members sharing one held-out slice by EI-reg dev (0.690-0.724).

What the analyzer makes of it (``nlp.analyzer``): EI-reg scores how intense an emotion is
in tweets chosen because they express it, so the regressor's value only means something
when the emotion is there. ``emotions[e].intensity`` is therefore the regressed value times
the emotions head's probability of ``e``, and the text's overall ``intensity`` is the
highest of the four.
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
    build_encoder,
    mlp_raw,
    train_mlp_bagged,
    vectors,
)
from nlp.training.affect_data import INTENSITY_EMOTIONS, read_ei_reg
from nlp.training.common import seed_everything, write_head

HEAD_VERSION = "intensity.v1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_encoder_args(parser)
    parser.add_argument("--out", type=Path, default=None, help="default: HEADS_DIR/intensity")
    parser.add_argument("--version", default=HEAD_VERSION)
    parser.add_argument("--members", type=int, default=8, help="MLPs in the bagged ensemble")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate on EI-reg dev, write the head; returns the metrics."""
    args = parse_args(argv)
    seed_everything(args.seed)
    started = time.time()
    train = [r for e in INTENSITY_EMOTIONS for r in read_ei_reg(args.data_dir, e, "train")]
    dev = {e: read_ei_reg(args.data_dir, e, "dev") for e in INTENSITY_EMOTIONS}
    encoder = build_encoder(args)
    x = vectors(encoder, [r.text for r in train], args.cache_dir, "eireg-train")
    y = np.zeros((len(train), len(INTENSITY_EMOTIONS)), dtype=np.float32)
    mask = np.zeros_like(y)
    for i, row in enumerate(train):
        column = INTENSITY_EMOTIONS.index(row.emotion)
        y[i, column], mask[i, column] = row.score, 1.0
    options = MlpOptions(loss="mse", epochs=100, dropout=0.4, hidden=512)
    weights, members = train_mlp_bagged(
        x, y, mask, np.ones(len(x), np.float32), options, args.seed, args.members
    )
    pearson: dict[str, float] = {}
    for column, emotion in enumerate(INTENSITY_EMOTIONS):
        rows = dev[emotion]
        x_dev = vectors(encoder, [r.text for r in rows], args.cache_dir, f"eireg-dev-{emotion}")
        predicted = np.clip(mlp_raw(weights, x_dev)[:, column], 0.0, 1.0)
        gold = np.array([r.score for r in rows])
        pearson[emotion] = round(float(np.corrcoef(predicted, gold)[0, 1]), 4)
    metrics = {
        "ei_reg_dev": {
            "pearson": pearson,
            "mean_pearson": round(float(np.mean(list(pearson.values()))), 4),
            "n": {e: len(rows) for e, rows in dev.items()},
        }
    }
    print(json.dumps(metrics, indent=2), flush=True)
    meta = {
        "name": "intensity",
        "version": args.version,
        "kind": "regression",
        "labels": list(INTENSITY_EMOTIONS),
        "input": "mean",
        "range": [0.0, 1.0],
        "encoder": encoder.name,
        **adapter_meta(encoder),
        "combine": "emotions[e].intensity = value(e) * emotions[e].score; "
        "intensity = max over the four",
        "training": {
            "command": "python -m nlp.training.intensity",
            "data": "semeval2018_task1_affect EI-reg train (anger, fear, joy, sadness)",
            "model": f"bagged ensemble of {args.members} MLPs 384-512-4 (dropout 0.4, masked "
            "squared error), each with its epoch chosen on its own seeded 10% of the training "
            f"rows, folded into one MLP 384-{512 * args.members}-4, float16 on disk",
            "members": members,
            "rows": len(train),
            "seed": args.seed,
            "seconds": round(time.time() - started, 1),
        },
        "metrics": metrics,
    }
    write_head(args.out or args.heads_dir / "intensity", weights, meta, dtype=np.float16)
    return metrics


if __name__ == "__main__":
    main()
