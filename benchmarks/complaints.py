"""Complaint detection quality: macro-F1, per-class precision/recall/F1 and ECE under shift.

    python -m benchmarks.complaints --data-dir ../shared/data [--shipped-only]

Evaluates the shipped head (models/heads/complaint, run through the NumPy head exactly as
served) on the customer tweets to airlines it never saw (Delta, Southwest), then re-runs
the training command's measurements (``nlp.training.complaint.splits``: the same split with
United and American held out instead, no airline data at all -> airline tweets, no review
data -> review sentences), each training on rows disjoint from its test.
Writes benchmarks/results/complaints.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlp.training.common import machine_description

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "complaints.json"
HEAD_DIR = REPO / "models" / "heads" / "complaint"
PUBLISHED = {
    "note": "Preotiuc-Pietro et al. 2019, complaints in tweets to companies, in-domain",
    "macro_f1": [0.79, 0.87],
}


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and write the results file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--shipped-only", action="store_true", help="skip the re-fits")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from nlp.heads import Head, encoder_adapter
    from nlp.training import complaint as training
    from nlp.training.complaint_data import read_all

    started = time.time()
    # The served encoder: with the shipped adapter merged when there is one (the head was
    # trained on it and scores the bare encoder's vectors wrongly).
    adapter = encoder_adapter(HEAD_DIR.parent)
    options = training.parse_args(
        ["--data-dir", str(args.data_dir), *(["--adapter", str(adapter)] if adapter else [])]
    )
    examples = read_all(args.data_dir, options.seed)
    encoder = training.build_encoder(options)
    x = training.embed(encoder, examples, options.cache_dir)
    y = np.array([e.label for e in examples], dtype=np.int64)
    splits = training.splits(examples)

    head = Head.load(HEAD_DIR)
    _, test = splits["airline_unseen_companies"]
    prob = head.predict(x[test])[:, 0]
    results: dict[str, Any] = {
        "shipped_head": {
            "version": head.meta.version,
            "encoder": encoder.name,
            "test": "airline tweets to Delta and Southwest (never trained on)",
            **training.binary_report(y[test], prob, head.meta.thresholds.get("complaint", 0.5)),
        },
        "published_reference": PUBLISHED,
    }
    if not args.shipped_only:
        for name, (train, test_rows) in splits.items():
            _, report = training.experiment(examples, x, train, test_rows, options.seed)
            results[name] = report
            print(name, report["macro_f1"], flush=True)
    results["machine"] = machine_description()
    results["seconds"] = round(time.time() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    rows = [(k, v) for k, v in results.items() if isinstance(v, dict) and "per_class" in v]
    header = ("measurement", "macro-F1", "F1 compl.", "F1 not", "ECE", "n")
    print("{:34s} {:>8s} {:>9s} {:>7s} {:>6s} {:>6s}".format(*header))
    for name, report in rows:
        per = report["per_class"]
        print(
            f"{name:34s} {report['macro_f1']:8.4f} {per['complaint']['f1']:9.4f} "
            f"{per['not_complaint']['f1']:7.4f} {report['ece']:6.4f} {report['n']:6d}"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
