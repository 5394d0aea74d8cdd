"""Does an adapted encoder keep the embeddings the taxonomy mapping reads?

    python -m nlp.training.embedding_check --data-dir ../shared/data \
        --base /tmp/undertone-train/onnx --adapted /tmp/undertone-train/ft3/onnx

Nearest-neighbour intent accuracy on BANKING77 (a fine-grained case-type taxonomy): a seeded
20% of the training rows is held out, each held-out query takes the intent of its most
cosine-similar remaining row. Run for both encoders; the adapted one must not drop.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from nlp.encoder import Encoder, EncoderOptions


def nn_accuracy(encoder: Encoder, texts: list[str], labels: list[str], seed: int) -> float:
    """Held-out nearest-neighbour accuracy of the L2-normalised text vectors."""
    units = np.stack([e.text_unit for e in encoder.encode(texts)])
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = len(order) // 5
    held, pool = order[:cut], order[cut:]
    nearest = pool[(units[held] @ units[pool].T).argmax(axis=1)]
    gold = np.asarray(labels)
    return float((gold[nearest] == gold[held]).mean())


def main(argv: list[str] | None = None) -> None:
    """Print (and optionally write) both accuracies."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--base", type=Path, required=True, help="ONNX dir of the base encoder")
    parser.add_argument("--adapted", type=Path, required=True, help="ONNX dir with adapter")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with (args.data_dir / "banking77" / "banking_data" / "train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    texts, labels = [r["text"] for r in rows], [r["category"] for r in rows]
    result: dict[str, float] = {"rows": len(rows), "held_out": len(rows) // 5}
    for name in ("base", "adapted"):
        encoder = Encoder(getattr(args, name), EncoderOptions(max_length=128, batch_size=64))
        result[f"{name}_nn_accuracy"] = round(nn_accuracy(encoder, texts, labels, args.seed), 4)
        print(name, result[f"{name}_nn_accuracy"], flush=True)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
