"""Throughput and peak memory of `undertone analyze` beside a Hugging Face pipeline baseline.

    python -m benchmarks.analyze_throughput --data-dir ../shared/data

Both run in one invocation on the same texts (TweetEval sentiment val, or generated
tweet-like texts when the data is absent), each in its own subprocess, so each peak RSS is
that process's own (``os.wait4`` returns the child's rusage). Ours runs the real CLI twice,
on one text and on all, so its model loading can be told apart from its steady rate; the
baseline (``benchmarks/hf_pipeline_baseline.py``) classifies one text at a time, as
tweetnlp users do, over a RoBERTa-base-sized model with random weights.
Results: a table on stdout and benchmarks/results/analyze_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nlp.training.common import machine_description

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "analyze_throughput.json"
_CLI = "from service.cli import main; main()"


def load_texts(data_dir: Path, limit: int) -> tuple[list[str], str]:
    """TweetEval sentiment val texts, or generated tweet-like texts when the data is absent."""
    path = data_dir / "tweeteval" / "datasets" / "sentiment" / "val_text.txt"
    if path.is_file():
        texts = [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
        return texts[:limit], f"TweetEval sentiment val ({path})"
    rng = random.Random(7)
    subjects = ["my order", "the app", "your support line", "the new update", "this flight"]
    verbs = ["is great", "crashed again", "took forever", "was fine I guess", "made my day"]
    tails = ["!!", " smh", ". Thanks @acme", " #fail", ". Will try again tomorrow."]
    texts = [
        f"{rng.choice(subjects).capitalize()} {rng.choice(verbs)}{rng.choice(tails)} "
        f"{rng.choice(subjects)} {rng.choice(verbs)}."
        for _ in range(limit)
    ]
    return texts, "generated tweet-like texts (no ../shared/data)"


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run a command; return its wall seconds and peak RSS in MiB (its own, via wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=REPO)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[:4]}... failed with exit code {process.returncode}")
    return elapsed, int(usage.ru_maxrss / 1024)  # ru_maxrss is KiB on Linux


def ensure_encoder_onnx(artifacts_dir: Path) -> None:
    """Export the encoder into the artifacts directory if `models setup` has not yet."""
    target = artifacts_dir / "encoder-onnx"
    if (target / "model.int8.onnx").is_file():
        return
    from models.registry import package_model_dir
    from nlp.onnx_export import export_encoder

    print(f"exporting the encoder to {target} (once)", flush=True)
    export_encoder(package_model_dir("encoder"), target)


def child_env(artifacts_dir: Path) -> dict[str, str]:
    """The environment of a measured Undertone process: offline, on these model artifacts."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "UNDERTONE_MODELS__ARTIFACTS_DIR": str(artifacts_dir.resolve()),
    }


def measure_ours(texts: list[str], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """`undertone analyze` on one text and on all texts."""
    runs: dict[str, tuple[float, int]] = {}
    for name, subset in (("one", texts[:1]), ("all", texts)):
        source = work / f"in-{name}.jsonl"
        source.write_text(
            "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(subset))
        )
        command = [sys.executable, "-c", _CLI, "analyze", "--input", str(source)]
        command += ["--output", str(work / f"out-{name}.jsonl")]
        runs[name] = run_measured(command, env)
    (t_one, _), (t_all, rss) = runs["one"], runs["all"]
    return {
        "command": "undertone analyze --input IN.jsonl --output OUT.jsonl",
        "texts": len(texts),
        "seconds": round(t_all, 2),
        "texts_per_second": round(len(texts) / t_all, 2),
        "startup_seconds": round(t_one, 2),
        "texts_per_second_after_startup": round((len(texts) - 1) / max(t_all - t_one, 1e-6), 2),
        "peak_rss_mib": rss,
    }


def measure_baseline(texts: list[str], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The HF pipeline, one text at a time, in its own process."""
    from models.registry import package_model_dir

    source, out = work / "baseline.txt", work / "baseline.json"
    source.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
    command = [sys.executable, "-m", "benchmarks.hf_pipeline_baseline", "--input", str(source)]
    command += ["--tokenizer-dir", str(package_model_dir("encoder")), "--out", str(out)]
    seconds, rss = run_measured(command, env)
    result: dict[str, Any] = json.loads(out.read_text())
    result.update({"process_seconds": round(seconds, 2), "peak_rss_mib": rss})
    result["what"] = 'pipeline("text-classification"), RobertaConfig() random weights, 1 text/call'
    return result


def main() -> None:
    """Measure both, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description="undertone analyze vs an HF pipeline")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--texts", type=int, default=2000, help="texts for undertone analyze")
    parser.add_argument(
        "--baseline-texts", type=int, default=300, help="the first N of the same texts"
    )
    parser.add_argument("--artifacts-dir", type=Path, default=REPO / "var" / "models")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    texts, source = load_texts(args.data_dir, args.texts)
    # Other work on the machine skews both sides; the load averages say how much.
    load_at_start = list(os.getloadavg())
    ensure_encoder_onnx(args.artifacts_dir)
    with tempfile.TemporaryDirectory(prefix="undertone-bench-") as tmp:
        work = Path(tmp)
        env = {**child_env(args.artifacts_dir), "UNDERTONE_DATA_DIR": str(work / "data")}
        ours = measure_ours(texts, work, env)
        baseline = measure_baseline(texts[: args.baseline_texts], work, env)
    ratio = ours["texts_per_second"] / baseline["texts_per_second"]
    ratio_warm = ours["texts_per_second_after_startup"] / baseline["texts_per_second"]
    report = {
        "texts": source,
        "machine": machine_description(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "undertone_analyze": ours,
        "hf_pipeline_baseline": baseline,
        "throughput_ratio": round(ratio, 2),
        "throughput_ratio_after_startup": round(ratio_warm, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        ("undertone analyze", ours["texts"], ours["texts_per_second"], ours["peak_rss_mib"]),
        ("  (after start-up)", "", ours["texts_per_second_after_startup"], ""),
        ("HF pipeline, RoBERTa-base", baseline["texts"], baseline["texts_per_second"],
         baseline["peak_rss_mib"]),
    ]  # fmt: skip
    print(f"\ntexts: {source}")
    print(f"{'':28}{'texts':>7}{'texts/s':>10}{'peak RSS MiB':>14}")
    for name, n, rate, rss in rows:
        print(f"{name:28}{n!s:>7}{rate!s:>10}{rss!s:>14}")
    print(f"throughput ratio: {ratio:.1f}x ({ratio_warm:.1f}x after start-up)")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
