"""The baseline a user would pick: a Hugging Face text-classification pipeline, one text at a time.

    python -m benchmarks.hf_pipeline_baseline --input texts.txt --tokenizer-dir DIR --out r.json

The model is RoBERTa-base-sized (``RobertaConfig()`` defaults: 12 layers, hidden 768,
125M parameters) with random weights, built offline: the architecture decides the cost, not
the weights. RoBERTa's own byte-level BPE tokenizer cannot be downloaded here, so the
MiniLM WordPiece tokenizer (uncased, 30,522 entries, all valid RoBERTa embedding ids) stands
in; on English tweets it yields about as many tokens as RoBERTa's BPE, so the cost per text
is representative.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    """Run the pipeline over the texts and write texts/s as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, required=True, help="one text per line")
    parser.add_argument("--tokenizer-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"

    import torch
    from transformers import (
        AutoTokenizer,
        RobertaConfig,
        RobertaForSequenceClassification,
        pipeline,
    )

    torch.manual_seed(0)
    texts = [line for line in args.input.read_text(encoding="utf-8").splitlines() if line]
    started = time.perf_counter()
    config = RobertaConfig(num_labels=3)
    model = RobertaForSequenceClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer_dir), local_files_only=True)
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)
    loaded = time.perf_counter()
    for text in texts[: args.warmup]:
        classify(text, truncation=True)
    begin = time.perf_counter()
    for text in texts:
        classify(text, truncation=True)
    elapsed = time.perf_counter() - begin
    result = {
        "texts": len(texts),
        "seconds": round(elapsed, 3),
        "texts_per_second": round(len(texts) / elapsed, 2),
        "load_seconds": round(loaded - started, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
